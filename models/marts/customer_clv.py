"""marts.customer_clv: probabilistic CLV (BG/NBD + Gamma-Gamma) by acquisition channel, beside
the simple margin × lifetime CLV and the CAC of marts.customer_value.

A customer's purchases are their revenue events (the purchase event and subscription renewals).
BG/NBD gives each customer's probability of still being alive and expected purchases over the
horizon; Gamma-Gamma their expected spend per purchase. One model is fitted on all customers
(a channel rarely has enough repeat buyers for its own fit) and averaged per channel, so a channel
whose customers stop buying shows up in p_alive even before they cancel.
"""

import pandas as pd

from models.frames import frame
from models.value import customer_clv, fit_bgnbd, rfm_summary
from tracking_plan.model import Plan

HORIZON_DAYS = 365  # a year ahead: the horizon CAC payback is usually judged against
DISCOUNT_RATE = 0.10  # annual; the plan's initiatives use the same default
COLUMNS = [
    "channel",
    "customers",
    "repeat_customers",
    "mean_p_alive",
    "expected_purchases_12m",
    "expected_avg_value",
    "clv_probabilistic",
    "clv_simple",
    "cac",
    "clv_probabilistic_cac_ratio",
    "horizon_days",
    "r",
    "alpha",
    "a",
    "b",
    "note",
]
MIN_REPEATERS = 20  # fewer repeat buyers cannot pin down four parameters


def revenue_events(con, plan: Plan) -> pd.DataFrame:
    """The purchases the model needs, aggregated in SQL to one row per person × UTC day with a purchase
    (its memory grows with buyers and days, not with events): ``timestamp`` the day's last purchase
    time, ``revenue`` the day's sum, ``purchases`` its distinct purchase times, ``channel`` the
    person's first session's source. Lossless for the model: RFM counts purchase days, and the
    newest timestamp (the observation end) and the distinct purchase times are kept."""
    purchase = plan.metrics.purchase.event if plan.metrics.purchase else "Order Completed"
    return frame(
        con,
        """
with first_session as (
    select person_id, arg_min(coalesce(utm_source, 'direct'), started_at) as channel
    from staging.sessions group by person_id
), purchases as (
    select e.person_id, e."timestamp",
           coalesce(try_cast(e.properties ->> '$.revenue' as double), 0) as revenue
    from stitch.events e
    where e.person_id is not null and e.event_name in (?, 'Subscription Renewed')
)
select p.person_id, max(p."timestamp") as "timestamp", sum(p.revenue) as revenue,
       count(distinct p."timestamp") as purchases, coalesce(any_value(f.channel), 'direct') as channel
from purchases p left join first_session f using (person_id)
group by p.person_id, p."timestamp"::date
order by p.person_id, 2
""",
        [purchase],
    )


def compute_customer_clv(revenue: pd.DataFrame, value: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    """One row per acquisition channel; ``value`` is marts.customer_value (its plan = 'all' rows)."""
    if revenue.empty:
        return pd.DataFrame(columns=COLUMNS)
    end = revenue["timestamp"].max()
    summary = rfm_summary(
        revenue, customer="person_id", time="timestamp", value="revenue", observation_end=end, freq="W"
    )
    params = fit_bgnbd(summary)
    repeaters = int((summary["frequency"] > 0).sum())
    values = [params.r, params.alpha, params.a, params.b]
    if repeaters < MIN_REPEATERS or not all(1e-6 < v < 1e6 for v in values):
        # BG/NBD describes repeat purchases that may silently stop (non-contractual). Monthly
        # renewals, or one order each, leave it unidentified: say so instead of printing 1e20s.
        note = f"BG/NBD not identified ({repeaters} repeat buyers; purchases look contractual): use clv_simple"
        return _channel_rows(revenue, value, None, note)
    per = customer_clv(
        summary, horizon_days=HORIZON_DAYS, discount_rate=DISCOUNT_RATE, margin=plan.metrics.gross_margin, bgnbd=params
    )
    per = per.join(summary[["frequency"]])
    return _channel_rows(revenue, value, per, "", params)


def _purchase_times(revenue: pd.DataFrame) -> pd.Series:
    """Distinct purchase times per person: from the per-day rows' counts, or from one row per event."""
    if "purchases" in revenue:
        return revenue.groupby("person_id")["purchases"].sum()
    return revenue.groupby("person_id")["timestamp"].nunique()


def _channel_rows(
    revenue: pd.DataFrame, value: pd.DataFrame, per: pd.DataFrame | None, note: str, params=None
) -> pd.DataFrame:
    channel = revenue.groupby("person_id")["channel"].first()
    if per is None:
        per = pd.DataFrame(index=channel.index).assign(
            clv=float("nan"),
            p_alive=float("nan"),
            expected_purchases=float("nan"),
            expected_avg_value=float("nan"),
            frequency=_purchase_times(revenue).reindex(channel.index) - 1,
        )
    per["channel"] = per.index.map(channel)
    out = (
        per.groupby("channel")
        .agg(
            customers=("clv", "size"),
            repeat_customers=("frequency", lambda f: int((f > 0).sum())),
            mean_p_alive=("p_alive", "mean"),
            expected_purchases_12m=("expected_purchases", "mean"),
            expected_avg_value=("expected_avg_value", "mean"),
            clv_probabilistic=("clv", "mean"),
        )
        .reset_index()
    )
    simple = value[value["plan"] == "all"].set_index("channel") if len(value) else pd.DataFrame()
    out["clv_simple"] = out["channel"].map(simple["clv"]) if "clv" in simple else None
    out["cac"] = out["channel"].map(simple["cac"]) if "cac" in simple else None
    out["clv_probabilistic_cac_ratio"] = out["clv_probabilistic"] / out["cac"].where(out["cac"] > 0)
    out["horizon_days"] = HORIZON_DAYS
    for k in ("r", "alpha", "a", "b"):
        out[k] = getattr(params, k) if params is not None else float("nan")
    out["note"] = note
    return out.reindex(columns=COLUMNS)


def build(con, plan: Plan) -> pd.DataFrame:
    """marts.customer_clv from stitch.events, staging.sessions and marts.customer_value."""
    value = frame(con, "select * from marts.customer_value")
    return compute_customer_clv(revenue_events(con, plan), value, plan)
