"""Each plan KPI's current value, previous value and weekly trend, computed from the event frame.

The one KPI computation: marts.initiative_portfolio (KPI movement against target), the report's KPI
cards and ``trackplan review``'s KPI tree all read it (``kpi_values(con, plan)`` on a warehouse),
so they cannot disagree. Definitions follow metrics.yaml: the measure, event, property, period and,
for rates, the signup cohort whose window has closed by the as-of date.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from models.marts.events_frame import normalize, prop_column
from tracking_plan.model import KPI, Plan

DAY = pd.Timedelta(days=1)
DEFAULT_PERIOD_DAYS = 30  # a month: the usual reporting period when the KPI names none
# Paid conversion is counted within this many days of signup: the plan's sample purchase model
# and most self-serve trials close within four weeks.
CONVERSION_WINDOW_DAYS = 28
TREND_POINTS = 8  # weekly values shown as the trend (two months)

KPI_COLUMNS = [
    "kpi",
    "name",
    "objective",
    "owner",
    "measure",
    "event",
    "unit",
    "target",
    "direction",
    "deadline",
    "financial",
    "as_of",
    "period_days",
    "current",
    "previous",
    "change",
    "on_track",
    "trend",
    "how",
]


def _cohort_rate(
    events: pd.DataFrame,
    plan: Plan,
    kpi: KPI,
    as_of: pd.Timestamp,
    period: pd.Timedelta,
    window: pd.Timedelta,
    min_count: int,
) -> float:
    signup = plan.metrics.signup.event if plan.metrics.signup else "Account Created"
    s = events[events["event_name"] == signup].drop_duplicates("person_id")
    s = s[(s["timestamp"] <= as_of - window) & (s["timestamp"] > as_of - window - period)]
    if s.empty:
        return float("nan")
    e = events.loc[events["event_name"] == kpi.event, ["person_id", "timestamp"]]
    j = s[["person_id", "timestamp"]].merge(e, on="person_id", how="left", suffixes=("_s", ""))
    inside = (j["timestamp"] > j["timestamp_s"]) & (j["timestamp"] <= j["timestamp_s"] + window)
    hits = inside.groupby(j["person_id"]).sum()
    return float((s["person_id"].map(hits).fillna(0) >= min_count).mean())


def kpi_value(events: pd.DataFrame, plan: Plan, kpi: KPI, as_of: pd.Timestamp) -> float:
    """The KPI as of ``as_of`` (NaN when the plan's measure cannot be computed from events alone)."""
    period = (kpi.period_days or DEFAULT_PERIOD_DAYS) * DAY
    act = plan.metrics.activation
    if kpi.measure == "activation_rate":
        return _cohort_rate(
            events, plan, kpi, as_of, period, (act.window_days if act else 7) * DAY, act.min_count if act else 1
        )
    if kpi.measure == "conversion_rate":
        return _cohort_rate(events, plan, kpi, as_of, period, CONVERSION_WINDOW_DAYS * DAY, 1)
    in_period = events[(events["timestamp"] > as_of - period) & (events["timestamp"] <= as_of)]
    if kpi.measure == "active_persons":
        return float(in_period["person_id"].nunique())
    hits = in_period[in_period["event_name"] == kpi.event]
    if kpi.measure == "event_count":
        return float(len(hits))
    col = prop_column(kpi.property) if kpi.property else None
    if col is None or col not in hits:
        return float("nan")
    if kpi.measure == "revenue":
        return float(hits[col].sum())
    if kpi.measure == "average_property":
        return float(hits[col].mean()) if hits[col].notna().any() else float("nan")
    return float("nan")  # retention: read marts.retention


def how(plan: Plan, kpi: KPI) -> str:
    """How ``kpi_value`` computes the KPI, in one line (shown beside the value)."""
    period = kpi.period_days or DEFAULT_PERIOD_DAYS
    act = plan.metrics.activation
    signup = plan.metrics.signup.event if plan.metrics.signup else "Account Created"
    if kpi.measure == "activation_rate":
        window, n = (act.window_days, act.min_count) if act else (7, 1)
        return (
            f"persons signing up ({signup}) in the last {period} days whose {window}-day window has closed "
            f"with >= {n} {kpi.event}, / those signups"
        )
    if kpi.measure == "conversion_rate":
        return (
            f"persons signing up ({signup}) in the last {period} days whose {CONVERSION_WINDOW_DAYS}-day window "
            f"has closed with a {kpi.event}, / those signups"
        )
    if kpi.measure == "retention":
        return "retention: week-1 retention of marts.retention (kpi_values reads it)"
    what = {
        "active_persons": "distinct persons",
        "event_count": f"{kpi.event} events",
        "revenue": f"sum of {kpi.event}.{kpi.property}",
        "average_property": f"mean of {kpi.event}.{kpi.property}",
    }
    return f"{what.get(kpi.measure, kpi.measure)}, last {period} days (stitch.events)"


def on_track(kpi: KPI, value: float) -> bool | None:
    if kpi.target is None or not np.isfinite(value):
        return None
    return bool(value >= kpi.target) if kpi.direction == "increase" else bool(value <= kpi.target)


def compute_kpi_values(events: pd.DataFrame, plan: Plan, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """One row per KPI: current and previous-period value, change, on-track flag, weekly trend (JSON)."""
    events = normalize(events, plan)
    as_of = as_of if as_of is not None else events["timestamp"].max()
    rows = []
    for k in plan.metrics.kpis:
        period = k.period_days or DEFAULT_PERIOD_DAYS
        current = kpi_value(events, plan, k, as_of)
        previous = kpi_value(events, plan, k, as_of - period * DAY)
        trend = [
            {"as_of": str((as_of - w * 7 * DAY).date()), "value": kpi_value(events, plan, k, as_of - w * 7 * DAY)}
            for w in range(TREND_POINTS - 1, -1, -1)
        ]
        rows.append(
            {
                "kpi": k.key,
                "name": k.name or k.key,
                "objective": k.objective,
                "owner": k.owner,
                "measure": k.measure,
                "event": k.event,
                "unit": k.unit,
                "target": k.target,
                "direction": k.direction,
                "deadline": k.deadline,
                "financial": k.financial,
                "as_of": as_of,
                "period_days": period,
                "current": current,
                "previous": previous,
                "change": current - previous,
                "on_track": on_track(k, current),
                "trend": json.dumps(
                    [{**t, "value": None if not np.isfinite(t["value"]) else t["value"]} for t in trend]
                ),
                "how": how(plan, k),
            }
        )
    return pd.DataFrame(rows).reindex(columns=KPI_COLUMNS)


def kpi_values(con, plan: Plan) -> pd.DataFrame:
    """``compute_kpi_values`` on a warehouse's stitch.events (empty when the table is missing or empty)."""
    from models.marts.events_frame import load_events

    tables = {f"{s}.{t}" for s, t in con.execute("select schema_name, table_name from duckdb_tables()").fetchall()}
    events = load_events(con, plan) if "stitch.events" in tables else pd.DataFrame()
    out = compute_kpi_values(events, plan) if len(events) else pd.DataFrame(columns=KPI_COLUMNS)
    retention = [k for k in plan.metrics.kpis if k.measure == "retention"]
    if retention and len(out) and "marts.retention" in tables:
        # retention is the mart's week-1 retention over every cohort (not recomputed from events here)
        (v,) = con.execute(
            "select sum(retained) / nullif(sum(cohort_size), 0) from marts.retention "
            "where period_type = 'week' and period = 1"
        ).fetchall()[0]
        v = float("nan") if v is None else float(v)
        for k in retention:
            i = out.index[out["kpi"] == k.key]
            out.loc[i, "current"] = v
            out.loc[i, "on_track"] = on_track(k, v)
            out.loc[i, "how"] = "week-1 retention over every cohort (marts.retention)"
    return out
