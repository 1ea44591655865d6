"""Each plan KPI's current value, previous value and weekly trend, computed from SQL aggregates of the events.

The one KPI computation: marts.initiative_portfolio (KPI movement against target), the report's KPI
cards and ``trackplan review``'s KPI tree all read it (``kpi_values(con, plan)`` on a warehouse),
so they cannot disagree. Definitions follow metrics.yaml: the measure, event, property, period and,
for rates, the signup cohort whose window has closed by the as-of date. DuckDB computes each value
(``models.marts.aggregates``: one row per time window, or per signed-up person for the rates), so
the memory does not grow with the events.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from models.marts.aggregates import EventSource, cohort_hits_sql, kpi_windows_sql, source_of, times
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


WINDOW_MEASURES = ("active_persons", "event_count", "revenue", "average_property")


def _cohort_rates(
    src: EventSource,
    plan: Plan,
    kpi: KPI,
    as_ofs: list[pd.Timestamp],
    period: pd.Timedelta,
    window_days: float,
    min_count: int,
) -> list[float]:
    """Per as-of date: the share of persons whose first signup lies in (as_of - window - period,
    as_of - window] with >= ``min_count`` of the KPI's event in (signup, signup + window]."""
    signup = plan.metrics.signup.event if plan.metrics.signup else "Account Created"
    per = times(src.df(cohort_hits_sql(src.ev, signup, kpi.event, window_days)), "signup_at")
    window = window_days * DAY
    out = []
    for as_of in as_ofs:
        s = per[(per["signup_at"] <= as_of - window) & (per["signup_at"] > as_of - window - period)]
        out.append(float((s["hits"] >= min_count).mean()) if len(s) else float("nan"))
    return out


def kpi_values_at(src: EventSource, plan: Plan, kpi: KPI, as_ofs: list[pd.Timestamp]) -> list[float]:
    """The KPI as of each date (NaN when the plan's measure cannot be computed from events alone)."""
    period = (kpi.period_days or DEFAULT_PERIOD_DAYS) * DAY
    act = plan.metrics.activation
    if kpi.measure == "activation_rate":
        return _cohort_rates(src, plan, kpi, as_ofs, period, act.window_days if act else 7, act.min_count if act else 1)
    if kpi.measure == "conversion_rate":
        return _cohort_rates(src, plan, kpi, as_ofs, period, CONVERSION_WINDOW_DAYS, 1)
    if kpi.measure not in WINDOW_MEASURES or (kpi.measure in ("revenue", "average_property") and not kpi.property):
        return [float("nan")] * len(as_ofs)  # retention: read marts.retention
    windows = [(i, t - period, t) for i, t in enumerate(as_ofs)]
    got = src.df(kpi_windows_sql(src.ev, kpi.measure, kpi.event, kpi.property, windows))
    values = dict(zip(got["i"], got["value"]))
    return [float("nan") if pd.isna(values.get(i)) else float(values[i]) for i in range(len(as_ofs))]


def kpi_value(events, plan: Plan, kpi: KPI, as_of: pd.Timestamp) -> float:
    """The KPI as of ``as_of``; ``events`` an ``aggregates.EventSource`` or an event frame."""
    return kpi_values_at(source_of(events, plan), plan, kpi, [as_of])[0]


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


def kpi_row(plan: Plan, k: KPI, as_of, period: int, current: float, previous: float, trend: list[dict]) -> dict:
    """One row of the KPI values (KPI_COLUMNS): the KPI's plan fields beside its values."""
    return {
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
        "trend": json.dumps([{**t, "value": None if not np.isfinite(t["value"]) else t["value"]} for t in trend]),
        "how": how(plan, k),
    }


def compute_kpi_values(events, plan: Plan, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """One row per KPI: current and previous-period value, change, on-track flag, weekly trend (JSON).

    ``events``: an ``aggregates.EventSource`` (a warehouse) or an event frame (one row per event)."""
    src = source_of(events, plan)
    as_of = as_of if as_of is not None else src.data_end()
    rows = []
    for k in plan.metrics.kpis:
        period = k.period_days or DEFAULT_PERIOD_DAYS
        if as_of is None:  # no events at all: no value yet, and no trend
            points, current, previous, values = [], float("nan"), float("nan"), []
        else:
            points = [as_of - w * 7 * DAY for w in range(TREND_POINTS - 1, -1, -1)]
            current, previous, *values = kpi_values_at(src, plan, k, [as_of, as_of - period * DAY, *points])
        trend = [{"as_of": str(t.date()), "value": v} for t, v in zip(points, values)]
        rows.append(kpi_row(plan, k, as_of, period, current, previous, trend))
    return pd.DataFrame(rows).reindex(columns=KPI_COLUMNS)


def kpi_values(con, plan: Plan) -> pd.DataFrame:
    """``compute_kpi_values`` on a warehouse's stitch.events (empty when the table is missing or empty)."""
    tables = {  # (stitch.events is a view)
        f"{s}.{t}" for s, t in con.execute("select table_schema, table_name from information_schema.tables").fetchall()
    }
    src = EventSource.warehouse(con, plan) if "stitch.events" in tables else None
    has_events = src is not None and src.span()[2] > 0
    out = compute_kpi_values(src, plan) if has_events else pd.DataFrame(columns=KPI_COLUMNS)
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
