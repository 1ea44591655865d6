"""`trackplan generate`: seeded, deterministic, realistic Segment-spec traffic for the sample plan.

Persons arrive through marketing channels, browse anonymously on 1-3 devices, sign up, activate or
not, invite teammates, buy, renew and churn; an A/B test, three quasi-experimental initiatives,
channel effects and a share of tracking bugs are planted, and their true values are written to
`<out>/_truth.json` so every estimator downstream can be checked against them.

Same seed and arguments, same bytes: every draw comes from one `numpy.random.Generator`.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import numpy_financial as npf
import orjson

from tracking_plan.loader import load_plan

from . import params as P
from .faults import Incident
from .landing import DayWriter
from .sim import DAY, Simulation

__all__ = ["DEFAULT_START", "GenerateResult", "Incident", "generate", "write_costs"]

DEFAULT_START = P.DEFAULT_END - timedelta(days=P.DEFAULT_DAYS)
GENERATOR_VERSION = "2"


@dataclass
class GenerateResult:
    out: Path
    truth_path: Path
    start: date
    end: date  # last day written (inclusive)
    days: int
    files: list[str] = field(default_factory=list)
    lines: int = 0
    events_valid: int = 0
    events_invalid: int = 0
    duplicates: int = 0
    consent_dropped: int = 0
    persons: int = 0
    seconds: float = 0.0


def generate(
    out: Path | str,
    days: int = P.DEFAULT_DAYS,
    users: int = 2000,
    seed: int = 42,
    bug_rate: float = 0.01,
    start: date | None = None,
    incidents: list[Incident] | None = None,
    progress: Callable[[int, int], None] | None = None,
    plan=None,
) -> GenerateResult:
    """Write a landing zone of `days` days of traffic from `users` existing accounts (plus arrivals).

    `start` defaults to `days` before 2026-11-16, so the default 107 days run 2026-08-01..2026-11-15
    and cover every dated experiment and initiative of the sample plan with a pre-period.
    Output grows linearly with `users`: about 175 lines per user over the default 107 days.
    `bug_rate=0` gives only valid events, no duplicates and no broken lines.
    """
    t_start = time.perf_counter()
    if days < 1 or users < 1:
        raise ValueError("days and users must be at least 1")
    if not 0.0 <= bug_rate <= 0.5:
        raise ValueError("bug_rate is a share of events between 0 and 0.5")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _clean(out)
    plan = plan or load_plan()
    start = start or (P.DEFAULT_END - timedelta(days=days))
    rng = np.random.default_rng(seed)
    sim = Simulation(plan, rng, start, days, users)
    writer = DayWriter(out, np.random.default_rng([seed, 1]), plan, days, bug_rate, incidents)
    for k in range(days):
        sim.day(k)
        buf, sim.buf = sim.buf, []
        d = start + timedelta(days=k)
        writer.flush(k, d, sim.t0 + (k + 1) * DAY, buf)
        if progress:
            progress(k + 1, days)
    truth = _truth(sim, writer, seed=seed, users=users, bug_rate=bug_rate, incidents=incidents or [])
    truth_path = out / "_truth.json"
    truth_path.write_bytes(
        orjson.dumps(truth, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)
    )
    write_costs(out / "_costs.csv", truth["channels"]["spend_by_month"])
    t = writer.totals
    return GenerateResult(
        out=out,
        truth_path=truth_path,
        start=start,
        end=start + timedelta(days=days - 1),
        days=days,
        files=writer.files,
        lines=t["lines"],
        events_valid=t["events_valid"],
        events_invalid=t["events_invalid"],
        duplicates=t["duplicates"],
        consent_dropped=t["consent_dropped"],
        persons=len(sim.persons),
        seconds=time.perf_counter() - t_start,
    )


def _clean(out: Path) -> None:
    """Remove files an earlier run wrote here (only our own names), so no stale part survives."""
    for f in out.glob("date=*/events-*.json*"):
        f.unlink()
    for name in ("_truth.json", "_costs.csv"):
        (out / name).unlink(missing_ok=True)


def write_costs(path: Path | str, spend_by_month: dict[str, dict[str, float]]) -> None:
    """Marketing spend as the plan's costs file: month,channel,spend (channel = utm_source)."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["month", "channel", "spend"])
        for month in sorted(spend_by_month):
            for ch, spend in sorted(spend_by_month[month].items()):
                w.writerow([month, ch, f"{spend:.2f}"])


# -- the planted truth ------------------------------------------------------------------------------
def _mean(xs) -> float | None:
    xs = list(xs)
    return float(np.mean(xs)) if xs else None


def _truth(sim: Simulation, writer: DayWriter, *, seed, users, bug_rate, incidents) -> dict:
    persons = sim.persons
    day0 = sim.start
    truth = {
        "generator": {
            "version": GENERATOR_VERSION,
            "seed": seed,
            "users": users,
            "days": sim.days,
            "start": day0.isoformat(),
            "end": (day0 + timedelta(days=sim.days - 1)).isoformat(),
            "bug_rate": bug_rate,
        },
        "totals": {
            **writer.totals,
            "expected_loaded": writer.totals["events_valid"] - writer.totals["consent_dropped"],
            "note": "lines = events_valid + events_invalid + duplicates; events_valid includes the "
            "consent_dropped ones, so loaded = events_valid - consent_dropped",
        },
        "bugs": {
            "by_kind": writer.bugs,
            "by_event": writer.bugs_by_event,
            "invalid_kinds": sorted(
                k for k in writer.bugs if k in ("wrong_type", "unknown_event", "missing_required", "malformed")
            ),
        },
        "daily": writer.daily,
        "incidents": [
            {**i.to_dict(), "affected": writer.incident_stats.get(f"{i.kind}:{i.event}", 0)} for i in incidents
        ],
        "population": {
            "persons": len(persons),
            "existing_accounts": sum(p.kind == "base" for p in persons),
            "visitors": sum(p.kind == "new" for p in persons),
            "signed_up_in_window": sum(p.kind != "base" and p.user_id is not None for p in persons),
            "invitees": sum(p.kind == "invitee" for p in persons),
            "devices": sum(len(p.devices) for p in persons),
        },
    }
    truth["experiment"] = _truth_experiment(sim)
    truth["initiatives"] = {
        "eu_live_chat": _truth_did(sim),
        "slack_integration": _truth_matching(sim),
        "new_pricing_page": _truth_its(sim),
    }
    truth["channels"] = _truth_channels(sim)
    others = [c for c in P.CHANNELS if c != "capterra"]
    truth["churn"] = {
        "per_renewal_probability": P.CHURN_PER_RENEWAL,
        "note": "monthly subscriptions renew every 30 days; at each renewal the account cancels "
        "(Subscription Cancelled) with this probability by acquisition channel (first touch); "
        "'existing' = accounts created before the window",
        "planted": {
            "channel": "capterra",
            "other_channels": others,
            "hazard_ratio_vs_others": P.CHURN_PER_RENEWAL["capterra"] / P.CHURN_PER_RENEWAL[others[0]],
            "note": "every channel but capterra (and accounts older than the window) has the same "
            "per-renewal probability; the ratio is the one a monthly churn rate "
            "(cancellations / customer-months) estimates",
        },
        "realized": {
            g: {"renewals_due": n, "cancelled": k, "rate": k / n if n else None}
            for g, (n, k) in sorted(sim.renewals.items())
        },
    }
    truth["value"] = _truth_value(sim, truth)
    truth["seasonality"] = {"weekday_factor_mon_to_sun": list(P.WEEKDAY)}
    return truth


def _truth_experiment(sim: Simulation) -> dict:
    exp = sim.exp
    if exp is None or sim.exp_ms is None:
        return {"present": False}
    cutoff = sim.t_end - 7 * DAY  # only signups whose 7-day window is complete in the data
    arms: dict = {}
    seg: dict = {}
    for p in sim.persons:
        if p.variant is None or p.signup_ms > cutoff:
            continue
        a = arms.setdefault(p.variant, {"exposed": 0, "activated": 0})
        a["exposed"] += 1
        a["activated"] += p.activated
        s = seg.setdefault(p.size, {}).setdefault(p.variant, {"exposed": 0, "activated": 0})
        s["exposed"] += 1
        s["activated"] += p.activated
    for d in [*arms.values(), *(v for s in seg.values() for v in s.values())]:
        d["rate"] = d["activated"] / d["exposed"] if d["exposed"] else None
    n_ch = arms.get("checklist", {}).get("exposed", 0)
    mix = {s: seg.get(s, {}).get("checklist", {}).get("exposed", 0) / n_ch if n_ch else 0 for s in P.SIZES}
    expected = sum(P.CHECKLIST_LIFT[s] * w for s, w in mix.items())
    return {
        "present": True,
        "key": exp.key,
        "start": exp.start,
        "exposure_event": exp.exposure_event,
        "allocation": {"control": 0.5, "checklist": 0.5},
        "srm": False,
        "metric": "activation: 3+ Task Completed within 7 days of Account Created",
        "control_rate": P.ACTIVATION_BASE,
        "true_lift_abs_by_company_size": P.CHECKLIST_LIFT,
        "true_lift_abs": expected,
        "uplift_segments": [s for s, v in P.CHECKLIST_LIFT.items() if v > 0],
        "uplift_note": "the checklist helps only company_size 1-10 and 11-50; elsewhere its effect is 0",
        "realized": {
            "arms": arms,
            "by_company_size": seg,
            "population": "exposed accounts created at least 7 days before the data ends",
        },
        "guardrail_support_tickets_effect": 0.0,
    }


def _conversion(persons, region: str, lo: int, hi: int, window: int) -> dict:
    pool = [
        p
        for p in persons
        if p.kind != "base" and p.region == region and p.signup_ms is not None and lo <= p.signup_ms < hi
    ]
    conv = sum(1 for p in pool if p.order_ms is not None and p.order_ms - p.signup_ms < window)
    return {"accounts": len(pool), "converted": conv, "rate": conv / len(pool) if pool else None}


def _truth_did(sim: Simulation) -> dict:
    if sim.chat_ms is None:
        return {"present": False}
    window = 28 * DAY
    last = sim.t_end - window
    inside = sim.t0 < sim.chat_ms < last
    out = {
        "present": inside,
        "method": "diff_in_diff",
        "launch": _d(sim.chat_ms),
        "segment_field": "context.location.region",
        "treated": ["eu"],
        "control": ["na"],
        "kpi": "paid_conversion_rate",
        "estimand": "share of accounts created in a period (day/week of Account Created) that place an "
        "Order Completed within 28 days; accounts created on/after launch in the EU are treated",
        "true_effect_abs": P.CHAT_LIFT,
        "parallel_pre_trends": True,
        "note": "additive lift; the same calendar trend and the A/B test's effect hit both regions equally. "
        "Cohorts created later than 28 days before the data ends are censored.",
        "non_financial": {
            "support_tickets": {
                "eu_rate_multiplier_after_launch": P.CHAT_TICKET_MULT,
                "true_effect_rel": P.CHAT_TICKET_MULT - 1.0,
                "note": "tickets per session in the EU after launch; NA unchanged",
            },
            "nps_score": {"eu_mean_lift_after_launch": P.CHAT_NPS_LIFT},
            "chat_widget_opened": "only EU web sessions, only from launch",
        },
    }
    if inside:
        out["realized"] = {
            r: {
                "pre": _conversion(sim.persons, r, sim.t0, sim.chat_ms, window),
                "post": _conversion(sim.persons, r, sim.chat_ms, last + DAY, window),
            }
            for r in ("eu", "na")
        }
    return out


def _truth_matching(sim: Simulation) -> dict:
    if sim.slack_day is None:
        return {"present": False, "note": "the initiative start is not inside the window with a pre-period"}
    study = [sim.persons[i] for i in sim.truth_study]
    start = sim.slack_ms
    other = {}
    for p in study:
        o = p.buy_ms is not None and start <= p.buy_ms < sim.t_end
        if p.kind == "base":
            o = o or bool(sim.slack_day <= sim.fire[p.idx] < sim.days)
        other[p.idx] = o
    y1 = {i: int(v[2] or other[i]) for i, v in sim.truth_study.items()}
    y0 = {i: int(v[1] or other[i]) for i, v in sim.truth_study.items()}
    obs = {i: (y1[i] if v[0] else y0[i]) for i, v in sim.truth_study.items()}
    treated = [i for i, v in sim.truth_study.items() if v[0]]
    control = [i for i, v in sim.truth_study.items() if not v[0]]
    att = _mean(y1[i] - y0[i] for i in treated)
    naive = (_mean(obs[i] for i in treated) or 0) - (_mean(obs[i] for i in control) or 0)
    a, b1, b2 = P.SLACK_LOGIT
    c0, c1, c2 = P.UPGRADE_P
    return {
        "present": True,
        "method": "matching",
        "start": _d(start),
        "treatment": "Integration Connected with integration = slack (within 20 days of the start)",
        "population": "accounts signed up before the start and not yet paying at the start",
        "outcome": "any Order Completed from the start until the data ends",
        "covariates": {
            "pre_events": "events of the person (any type, stitched) from the window start to the initiative start",
            "company_size_rank": "1..5 for 1-10, 11-50, 51-200, 201-1000, 1000+",
        },
        "selection": {
            "logit": f"{a} + {b1}*log1p(pre_events) + {b2}*(company_size_rank-3)",
            "note": "selection on these observables only: matching on them is unconfounded",
        },
        "outcome_model": f"P(upgrade) = {c0} + {c1}*log1p(pre_events) + {c2}*(company_size_rank-1) + "
        f"{P.SLACK_EFFECT}*slack, plus orders from other causes",
        "true_effect_on_upgrade_probability": P.SLACK_EFFECT,
        "true_att": att,
        "naive_difference": naive,
        "n_population": len(study),
        "n_treated": len(treated),
        "naive_overstates": naive > (att or 0),
    }


def _truth_its(sim: Simulation) -> dict:
    if sim.pricing_ms is None or not (sim.t0 < sim.pricing_ms < sim.t_end):
        return {"present": False}
    days = sim.days
    act = np.zeros(days)
    cf = np.zeros(days)
    for i in sim.free_at_start:
        p = sim.persons[i]
        blocked = _paid_before(p, sim)  # an upgrade for another reason ends the hazard
        f, g = int(sim.fire[i]), int(sim.fire_cf[i])
        if f < days and f < blocked:
            act[f] += 1
        if g < days and g < blocked:
            cf[g] += 1
    post = sim.pricing_post
    launch_day = int(np.argmax(post))
    level = float(np.mean(act[post] - cf[post]))
    # expected: extra hazard times the free pool on the launch day, averaged over the weekday factor
    return {
        "present": True,
        "method": "interrupted_time_series",
        "launch": _d(sim.pricing_ms),
        "kpi_series": "daily count of Order Completed (all accounts)",
        "true_level_change_per_day": level,
        "note": "the launch raises the daily upgrade hazard of free existing accounts by "
        f"{P.PRICING_HAZARD_LIFT} (times the weekday factor); true_level_change_per_day is the mean "
        "over post-launch days of factual minus counterfactual orders (common random numbers)",
        "counterfactual_extra_orders": int(act[post].sum() - cf[post].sum()),
        "launch_day_index": launch_day,
        "slope_change": 0.0,
    }


def _paid_before(p, sim) -> int:
    """Day index from which this account is already paying for other reasons (days if never)."""
    if p.study and p.a_up and p.a_ms is not None and p.a_ms < sim.t_end:
        return int((p.a_ms - sim.t0) // DAY)
    return sim.days


def _truth_channels(sim: Simulation) -> dict:
    spend: dict[str, dict[str, float]] = {}
    for k in range(sim.days):
        month = (sim.start + timedelta(days=k)).strftime("%Y-%m")
        for j, ch in enumerate(P.CHANNELS):
            if ch in P.COST_PER_VISIT:
                m = spend.setdefault(month, {})
                m[ch] = m.get(ch, 0.0) + sim.visitor_days[k, j] * P.COST_PER_VISIT[ch]
    spend = {m: {c: round(v, 2) for c, v in d.items()} for m, d in spend.items()}
    by_ch: dict[str, dict] = {}
    for p in sim.persons:
        if p.kind == "base":
            continue
        d = by_ch.setdefault(p.channel, {"visitors": 0, "signups": 0, "customers": 0, "with_linkedin_touch": 0})
        d["visitors"] += 1
        d["signups"] += p.user_id is not None
        d["customers"] += p.ever_paid
        d["with_linkedin_touch"] += "linkedin" in p.touches
    lk = [p for p in sim.persons if p.user_id is not None and p.kind != "base"]
    with_l = [p.ever_paid for p in lk if "linkedin" in p.touches]
    without = [p.ever_paid for p in lk if "linkedin" not in p.touches]
    # the planted purchase model: an order within 28 days of signup (later upgrades have other causes,
    # e.g. the Slack study's heavy users), among signups whose 28 days are over
    done = [p for p in lk if p.signup_ms + 28 * DAY <= sim.t_end]

    def in_28(p) -> bool:
        return p.order_ms is not None and p.order_ms - p.signup_ms < 28 * DAY

    return {
        "channels": list(P.CHANNELS),
        "utm": {c: P.CAMPAIGNS[c][0] for c in P.CHANNELS},
        "mix_of_arrivals": dict(zip(P.CHANNELS, P.CHANNEL_MIX)),
        "planted": {
            "linkedin_touch_purchase_multiplier": P.LINKEDIN_TOUCH_MULT,
            "note": "a linkedin/paid_social touch before signup doubles the core purchase probability",
        },
        "purchase_multiplier_by_first_channel": P.CHANNEL_BUY_MULT,
        "cost_per_arriving_visitor": P.COST_PER_VISIT,
        "spend_by_month": spend,
        "by_first_channel": by_ch,
        "conversion_of_signups": {
            "with_linkedin_touch": _mean(with_l),
            "without": _mean(without),
            "note": "ever paid in the window, for any reason",
        },
        "conversion_within_28_days": {
            "with_linkedin_touch": _mean(in_28(p) for p in done if "linkedin" in p.touches),
            "without": _mean(in_28(p) for p in done if "linkedin" not in p.touches),
            # (the signups each share is of: at 300 users ~110 and ~370, too few for the planted 2x to
            # show on every seed; tests/test_generate.py weighs the contrast by them)
            "signups_with_linkedin_touch": sum("linkedin" in p.touches for p in done),
            "signups_without": sum("linkedin" not in p.touches for p in done),
            "note": "an order within 28 days of signup, signups at least 28 days "
            "before the end: the outcome the linkedin multiplier acts on",
        },
    }


def _monthly_rate(rate_annual: float) -> float:
    return (1.0 + rate_annual) ** (1.0 / 12.0) - 1.0


def _npv(ini, effect_per_month: float, one_off: float, recurring: float) -> float:
    """NPV (numpy-financial) of month-0 one-off cost, then value minus recurring cost each month."""
    value = effect_per_month * ini.adoption.base * ini.value_per_conversion
    flows = [-one_off] + [value - recurring] * ini.horizon_months
    return float(npf.npv(_monthly_rate(ini.discount_rate), flows))


def _true_effect_per_month(sim: Simulation, truth: dict, key: str) -> tuple[float, float, str] | None:
    """(true effect in the initiative's unit, eligible units per month, what is counted) or None."""
    month = 30.4375 * DAY
    t = truth["initiatives"].get(key) or {}
    if key == "onboarding_checklist" and truth["experiment"].get("present"):
        shown = [p.signup_ms for p in sim.persons if p.variant is not None]
        if not shown:
            return None
        span = max((max(shown) - min(shown)) / DAY, 1.0)
        return (
            truth["experiment"]["true_lift_abs"],
            len(shown) / span * 30.4375,
            "exposed persons (both arms) per month over the exposure period",
        )
    if key == "eu_live_chat" and t.get("present"):
        window = 28 * DAY
        n = sum(
            1
            for p in sim.persons
            if p.kind != "base"
            and p.region == "eu"
            and p.signup_ms is not None
            and sim.chat_ms <= p.signup_ms
            and p.signup_ms + window <= sim.t_end
        )
        months = max((sim.t_end - sim.chat_ms - window) / month, 1.0 / 30.4375)
        return (
            t["true_effect_abs"],
            n / months,
            "EU accounts created after launch with a complete 28-day window, per month",
        )
    if key == "slack_integration" and t.get("present") and t.get("true_att") is not None:
        return (
            t["true_att"],
            t["n_treated"] / ((sim.t_end - sim.slack_ms) / month),
            "accounts that connected Slack, per month since the start",
        )
    if key == "new_pricing_page" and t.get("present"):
        return t["true_level_change_per_day"], 30.4375, "days per month (the effect is orders per day)"
    return None


def _truth_value(sim: Simulation, truth: dict) -> dict:
    """Each initiative's true NPV at its true effect, and whether its declared cost ranges straddle break-even.

    NPV follows the marts' convention (marts.initiative_roi): monthly flows over the plan's horizon,
    the one-off cost at month 0, value = effect per month × base adoption × value per conversion,
    discounted at the monthly equivalent of the plan's annual rate; computed with numpy-financial.
    """
    out: dict = {}
    rng = np.random.default_rng(0)  # not the simulation's stream: the data do not depend on this
    for key, ini in sim.inits.items():
        got = _true_effect_per_month(sim, truth, key)
        if got is None:
            continue
        effect, per_month, counted = got
        epm = effect * per_month
        c = ini.costs
        one_lo, one_hi = c.one_off_range or (c.one_off, c.one_off)
        rec_lo, rec_hi = c.recurring_range or (c.recurring_monthly, c.recurring_monthly)
        base = _npv(ini, epm, c.one_off, c.recurring_monthly)
        cheapest, dearest = _npv(ini, epm, one_lo, rec_lo), _npv(ini, epm, one_hi, rec_hi)
        value = epm * ini.adoption.base * ini.value_per_conversion
        flows = [-c.one_off] + [value - c.recurring_monthly] * ini.horizon_months
        irr_m = npf.irr(flows) if min(flows) < 0 < max(flows) else float("nan")
        # P(NPV > 0) over the declared cost ranges alone (triangular, mode at the base cost), the effect
        # held at its true value: how much the costs by themselves leave the sign open
        n = 20_000
        one = rng.triangular(one_lo, c.one_off, one_hi, n) if one_hi > one_lo else np.full(n, float(c.one_off))
        rec = (
            rng.triangular(rec_lo, c.recurring_monthly, rec_hi, n)
            if rec_hi > rec_lo
            else np.full(n, float(c.recurring_monthly))
        )
        annuity = float(((1 + _monthly_rate(ini.discount_rate)) ** -np.arange(1, ini.horizon_months + 1)).sum())
        npvs = -one + (value - rec) * annuity
        out[key] = {
            "method": ini.evaluation.method,
            "true_effect": effect,
            "eligible_per_month": per_month,
            "eligible": counted,
            "true_effect_per_month": epm,
            "value_per_conversion": ini.value_per_conversion,
            "adoption_base": ini.adoption.base,
            "horizon_months": ini.horizon_months,
            "discount_rate_annual": ini.discount_rate,
            "costs": {
                "one_off": c.one_off,
                "one_off_range": [one_lo, one_hi],
                "recurring_monthly": c.recurring_monthly,
                "recurring_range": [rec_lo, rec_hi],
            },
            "true_npv_base_cost": base,
            "true_npv_lowest_costs": cheapest,
            "true_npv_highest_costs": dearest,
            "break_even_one_off_cost": base + c.one_off,
            "true_irr_annual": float((1 + irr_m) ** 12 - 1) if np.isfinite(irr_m) else None,
            "cost_ranges_straddle_break_even": bool(cheapest > 0 > dearest),
            "true_prob_npv_positive_over_cost_ranges": float((npvs > 0).mean()),
        }
    return {
        "initiatives": out,
        "planted": {
            "uncertain_npv": sorted(k for k, v in out.items() if v["cost_ranges_straddle_break_even"]),
            "positive_at_every_declared_cost": sorted(k for k, v in out.items() if v["true_npv_highest_costs"] > 0),
            "note": "at its true effect an initiative in uncertain_npv pays back at the cheap end of its "
            "declared cost ranges (metrics.yaml) and loses money at the dear end",
        },
    }


def _d(ms: int) -> str:
    return (date(1970, 1, 1) + timedelta(milliseconds=ms)).isoformat()
