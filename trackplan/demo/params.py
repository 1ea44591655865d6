"""Every behavioural knob of the generator, with the planted true effects.

Rates are per day unless named otherwise. The planted effects are additive on probabilities (not
multiplicative) where an estimator downstream assumes additivity: a difference-in-differences on
conversion rates recovers an additive lift exactly, whatever the regions' base rates.
"""

from __future__ import annotations

from datetime import date

DEFAULT_END = date(2026, 11, 16)  # exclusive: the default window ends 2026-11-15, before "today"
DEFAULT_DAYS = 107  # 2026-08-01 .. 2026-11-15: covers every initiative of the sample plan with a pre-period

# -- people ---------------------------------------------------------------------------------------
REGIONS = ("na", "eu", "apac", "latam")
REGION_MIX = (0.45, 0.30, 0.15, 0.10)
REGION_UTC_OFFSET = {"na": -5, "eu": 1, "apac": 8, "latam": -3}
REGION_LOCALES = {
    "na": ("en-US", "en-CA"),
    "eu": ("en-GB", "de-DE", "fr-FR", "nl-NL"),
    "apac": ("en-AU", "ja-JP", "en-SG"),
    "latam": ("es-MX", "pt-BR"),
}
CURRENCY = {"na": "USD", "eu": "EUR", "apac": "USD", "latam": "USD"}
SIZES = ("1-10", "11-50", "51-200", "201-1000", "1000+")
SIZE_MIX = (0.32, 0.30, 0.20, 0.11, 0.07)
SIZE_EMPLOYEES = {
    "1-10": (2, 10),
    "11-50": (11, 50),
    "51-200": (51, 200),
    "201-1000": (201, 1000),
    "1000+": (1001, 20000),
}
SIZE_SEATS = {"1-10": (2, 6), "11-50": (4, 15), "51-200": (8, 40), "201-1000": (15, 80), "1000+": (25, 150)}
DEVICES_MIX = (0.55, 0.33, 0.12)  # 1, 2 or 3 devices per person
CONSENT_ANALYTICS = 0.96  # a few % decline analytics (kept, PII stripped)
CONSENT_MARKETING = 0.93  # ... or marketing (their marketing events are dropped)
# Local-time activity by hour: a working-day curve, lower at night.
HOURLY = (1, 1, 1, 1, 1, 2, 3, 6, 10, 12, 12, 11, 9, 11, 12, 12, 11, 9, 7, 6, 5, 4, 3, 2)
WEEKDAY = (1.0, 1.04, 1.03, 1.0, 0.92, 0.45, 0.38)  # Mon..Sun: weekends are lower

# -- acquisition ----------------------------------------------------------------------------------
ARRIVALS_PER_USER = 0.06  # new visitors per day per existing account (`users`)
CHANNELS = ("google", "linkedin", "newsletter", "organic", "referral", "capterra")
CHANNEL_MIX = (
    0.27,
    0.13,
    0.10,
    0.18,
    0.08,
    0.24,
)  # capterra is a big channel: enough of its customers to measure their churn
CAMPAIGNS = {  # context.campaign per channel; organic arrives without UTM
    "google": (
        {"source": "google", "medium": "cpc", "name": "brand_search"},
        {"source": "google", "medium": "cpc", "name": "project_management_generic"},
    ),
    "linkedin": ({"source": "linkedin", "medium": "paid_social", "name": "team_leads_q3"},),
    "newsletter": ({"source": "newsletter", "medium": "email", "name": "monthly_digest"},),
    "organic": (None,),
    "referral": ({"source": "referral", "medium": "referral", "name": "partner_blog"},),
    "capterra": ({"source": "capterra", "medium": "cpc", "name": "pm_software_listing"},),
}
INVITE_CAMPAIGN = {"source": "referral", "medium": "referral", "name": "teammate_invite"}
AD_NETWORK = {"google": "google", "linkedin": "linkedin", "capterra": "capterra"}
COST_PER_VISIT = {"google": 3.2, "linkedin": 7.5, "capterra": 4.1, "newsletter": 0.35}  # USD per arriving visitor
# Returning (pre-signup) visits: extra sessions and where they come from.
EXTRA_VISITS_MEAN = 1.1
RETURN_CHANNELS = ("organic", "google", "linkedin", "newsletter")
RETURN_MIX = (0.50, 0.22, 0.15, 0.13)
SIGNUP_RATE = {
    "google": 0.36,
    "linkedin": 0.33,
    "newsletter": 0.40,
    "organic": 0.30,
    "referral": 0.42,
    "capterra": 0.38,
}

# -- existing accounts (the `users` base, created before the window) -------------------------------
BASE_PAYING = 0.25
BASE_ACTIVE = 0.12  # daily probability of a session, times engagement and weekday
NEW_ACTIVE = 0.15
EVENTS_PER_SESSION = 3.0  # Poisson mean of product events in a session (plus page views)
PAID_ACTIVITY = 1.2
CHURNED_ACTIVITY = 0.25

# -- planted: A/B experiment onboarding_checklist ------------------------------------------------
ACTIVATION_BASE = 0.30  # P(3+ Task Completed in 7 days) in control, every company size
CHECKLIST_LIFT = {"1-10": 0.16, "11-50": 0.16, "51-200": 0.0, "201-1000": 0.0, "1000+": 0.0}

# -- planted: purchase of new accounts within 28 days of signup ------------------------------------
BUY_CORE = 0.055  # base P(order within 28 days) before channel multiplier
BUY_ACTIVATED = 0.07  # added to the core when activated
BUY_SIZE = 0.012  # added to the core per company-size rank above the smallest
LINKEDIN_TOUCH_MULT = 2.0  # a linkedin touch before signup doubles the core purchase probability
CHANNEL_BUY_MULT = {"google": 1.0, "linkedin": 1.0, "newsletter": 1.1, "organic": 0.9, "referral": 0.8, "capterra": 1.0}
REGION_BUY_OFFSET = {"na": 0.02, "eu": 0.0, "apac": -0.01, "latam": -0.015}
BUY_DELAY_DAYS = (0.3, 21.0)  # order placed this many days after signup: inside the 28-day window
CHAT_LIFT = 0.12  # eu_live_chat: added to EU accounts created on/after launch
PAYMENT_FAIL = 0.08

# -- planted: eu_live_chat non-financial KPIs ------------------------------------------------------
TICKET_RATE = 0.03  # per session
CHAT_TICKET_MULT = 0.55  # EU ticket rate after launch (chat answers questions)
CHAT_OPEN_RATE = 0.12  # per EU session after launch
SURVEY_RATE = 0.012  # per session
NPS_BASE_MEAN = 7.0
CHAT_NPS_LIFT = 0.6

# -- planted: slack_integration (matching) ---------------------------------------------------------
# Free accounts existing at the initiative start choose to connect Slack from observables only
# (pre-period events, company size), so matching on those is unconfounded; the same observables
# raise their upgrade probability, so the naive treated-vs-untreated difference overstates.
# Heavy users opt in (about 30 % of the study accounts connect, mostly the active ones) and an
# inactive account almost never upgrades on its own, while a heavy one often does: at 600 users the
# naive difference overstates the ATT (≈ 0.07) by ≈ 0.2, about four standard errors of the IPW
# estimate, so the naive figure falls outside the matched interval (seeds 1-20 and 42 of the
# marts sample: outside in 20 of 21, the interval holding the true ATT in 20 of 21).
SLACK_LOGIT = (-4.0, 1.6, 0.8)  # intercept, per log1p(pre_events), per (size_rank - 3)
UPGRADE_P = (-0.15, 0.25, 0.06)  # intercept, per log1p(pre_events), per (size_rank - 1); clipped to [0, 0.95]
SLACK_EFFECT = 0.10  # added to the upgrade probability of accounts that connect
SLACK_CONNECT_DAYS = 20.0  # connect within this many days of the start
UPGRADE_SPREAD_DAYS = 90.0  # upgrades spread evenly over this many days after the start

# -- planted: new_pricing_page (interrupted time series) -------------------------------------------
UPGRADE_HAZARD = 0.0025  # daily P(order) of a free existing account, times weekday factor
PRICING_HAZARD_LIFT = 0.005  # added from the launch on

# -- subscriptions ----------------------------------------------------------------------------------
PLANS = {"team": 12.0, "business": 24.0}  # per seat per month
BUSINESS_SHARE = 0.3
ANNUAL_SHARE = 0.2  # annual = 10 months' price
# planted: customers from the capterra listing cancel 4.4x as often as those of the other channels. The
# contrast and capterra's share of arrivals are set so that marts.customer_value at 600 users measures
# it (about 11 capterra cancellations against 26 among all other customers, seeds 1-20).
CHURN_PER_RENEWAL = {
    "google": 0.08,
    "linkedin": 0.08,
    "newsletter": 0.08,
    "organic": 0.08,
    "referral": 0.08,
    "capterra": 0.35,
    "existing": 0.06,
}

# -- collaboration ------------------------------------------------------------------------------------
INVITE_FIRST_WEEK = 0.2  # creators inviting teammates during onboarding
INVITE_PER_SESSION = 0.008
INVITE_ACCEPT = 0.45
