"""The marts' per-event path before issue 18, kept only as the oracle for tests/test_marts_aggregates.py.

Until the Python marts read SQL aggregates (models/marts/aggregates.py), they loaded one pandas row
per stitched event (``load_events``) and built their analysis frames with the pandas code below. It
is kept verbatim (from main at the change) so the test can check, on the sample warehouse, that every
aggregate-built frame, and so every mart, is what this straightforward per-event reading gives.
Nothing outside the tests imports it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.kpis import CONVERSION_WINDOW_DAYS, DEFAULT_PERIOD_DAYS, KPI_COLUMNS, TREND_POINTS, kpi_row
from models.marts.events_frame import (
    normalize,
    prop_column,
    property_names,
    segment_fields,
    treatment_where,
    where_column,
    where_keys,
)
from models.marts.experiment_results import CUPED_LOOKBACK_DAYS, resolve_metric
from models.marts.initiatives import COMPANY_SIZES, DAY, FREE_PLANS, Skip
from tracking_plan.model import KPI, Experiment, Initiative, Plan


# -- models/marts/events_frame.py ----------------------------------------------------------------
def _field_sql(path: str) -> str:
    """SQL for an event field path: a typed column when ingest already has one, else JSON."""
    if path in ("context.location.region", "region"):
        return "region"
    head, _, rest = path.partition(".")
    if head in ("context", "properties", "traits") and rest:
        return f"json_extract_string({head}, '$.{rest}')"
    return f"json_extract_string(properties, '$.{path}')"


def load_events(con, plan: Plan) -> pd.DataFrame:
    """Read the narrow event frame from ``stitch.events`` (events without a person are skipped)."""
    props = ", ".join(
        f"try_cast(json_extract_string(properties, '$.{p}') as double) as \"{prop_column(p)}\""
        for p in property_names(plan)
    )
    segs = "".join(f', {_field_sql(f)} as "{f}"' for f in segment_fields(plan) if _field_sql(f) != "region")
    segs += "".join(f", json_extract_string(properties, '$.{k}') as \"{where_column(k)}\"" for k in where_keys(plan))
    sql = f"""
select person_id, event_name, "timestamp", region, user_id is not null as has_user,
       json_extract_string(properties, '$.experiment_id') as experiment_id,
       coalesce(json_extract_string(properties, '$.variation_id'),
                json_extract_string(properties, '$.variant')) as variant,
       coalesce(json_extract_string(traits, '$.company_size'),
                json_extract_string(properties, '$.company_size')) as company_size,
       coalesce(try_cast(json_extract_string(properties, '$.seats') as double),
                try_cast(json_extract_string(traits, '$.seats') as double)) as seats,
       json_extract_string(traits, '$.plan') as plan,
       {props}{segs}
from stitch.events
where person_id is not null and "timestamp" is not null
order by person_id, "timestamp"
"""
    df = con.execute(sql).df()
    for f in segment_fields(plan):
        if f not in df:
            df[f] = df["region"]
    return df


# -- models/marts/experiment_results.py + experiment_uplift.py -------------------------------------
def exposures(events: pd.DataFrame, exp: Experiment) -> pd.DataFrame:
    """First exposure per person: person_id, variant, exposed_at (before ``start`` ignored)."""
    e = events[(events["event_name"] == exp.exposure_event) & (events["experiment_id"] == exp.key)]
    if exp.start:
        e = e[e["timestamp"] >= pd.Timestamp(exp.start)]
    first = e.sort_values("timestamp", kind="stable").drop_duplicates("person_id")
    return (
        first[["person_id", "variant", "timestamp"]].rename(columns={"timestamp": "exposed_at"}).reset_index(drop=True)
    )


def metric_outcomes(
    events: pd.DataFrame, exposed: pd.DataFrame, plan: Plan, metric: str, data_end: pd.Timestamp
) -> tuple[pd.DataFrame, dict]:
    """Per exposed person the metric's value after exposure (``y``) and before it (``pre``).

    Activation needs its whole window inside the data (persons exposed later are left out, not
    counted as failures); the others count everything from exposure to the end of the data.
    """
    event, kind, kpi = resolve_metric(plan, metric)
    act = plan.metrics.activation
    window = pd.Timedelta(days=act.window_days if act else 7)
    ev = events[events["event_name"] == event]
    prop = prop_column(kpi.property) if kpi is not None and kpi.property else None
    cols = ["person_id", "timestamp"] + ([prop] if prop else [])
    j = exposed.merge(ev[cols], on="person_id", how="left")
    after = j["timestamp"] > j["exposed_at"]
    before = (j["timestamp"] < j["exposed_at"]) & (
        j["timestamp"] >= j["exposed_at"] - pd.Timedelta(days=CUPED_LOOKBACK_DAYS)
    )
    out = exposed.copy()
    if kind == "activation":
        inside = after & (j["timestamp"] <= j["exposed_at"] + window)
        n = inside.groupby(j["person_id"]).sum()
        out["y"] = (out["person_id"].map(n).fillna(0) >= (act.min_count if act else 1)).astype(float)
        out.loc[out["exposed_at"] + window > data_end, "y"] = np.nan  # window not complete yet
    elif kind in ("sum", "mean"):
        vals = j[prop].where(after)
        g = vals.groupby(j["person_id"])
        agg = g.sum() if kind == "sum" else g.mean()
        out["y"] = out["person_id"].map(agg)
        if kind == "sum":
            out["y"] = out["y"].fillna(0.0)
    else:
        n = after.groupby(j["person_id"]).sum()
        out["y"] = (out["person_id"].map(n).fillna(0) > 0).astype(float)
    pre_counts = before.groupby(j["person_id"]).sum()
    out["pre"] = out["person_id"].map(pre_counts).fillna(0).astype(float)
    info = {"metric_event": event, "metric_kind": kind, "direction": kpi.direction if kpi is not None else "increase"}
    return out, info


def company_sizes(events: pd.DataFrame) -> pd.Series:
    """experiment_uplift's segment: each person's last non-null company size."""
    return events.dropna(subset=["company_size"]).groupby("person_id")["company_size"].last()


# -- models/marts/initiatives.py --------------------------------------------------------------------
def _signups(events: pd.DataFrame, plan: Plan) -> pd.DataFrame:
    ev = plan.metrics.signup.event if plan.metrics.signup else "Account Created"
    s = events[events["event_name"] == ev].drop_duplicates("person_id")
    return s.rename(columns={"timestamp": "signup_at"})


def _first_after(events: pd.DataFrame, event: str, anchor: pd.DataFrame, col: str) -> pd.Series:
    """Per anchor row, the first ``event`` time strictly after ``anchor[col]`` (NaT if none)."""
    e = events.loc[events["event_name"] == event, ["person_id", "timestamp"]]
    j = anchor[["person_id", col]].merge(e, on="person_id", how="left")
    j = j[j["timestamp"] > j[col]]
    if j.empty:
        return pd.Series(pd.NaT, index=anchor.index, dtype="datetime64[ns]")
    return anchor["person_id"].map(j.groupby("person_id")["timestamp"].min())


def did_frame(events: pd.DataFrame, plan: Plan, ini: Initiative, data_end: pd.Timestamp) -> pd.DataFrame:
    """One row per account in a treated or control segment with a complete outcome window."""
    ev_name, _, _ = resolve_metric(plan, ini.kpi)
    ev = ini.evaluation
    window = ev.window_days * DAY
    s = _signups(events, plan)
    seg = s[ev.segment_field or "region"]
    s = s.assign(segment=seg, treated=seg.isin(ev.treated).astype(float))
    s = s[seg.isin(ev.treated) | seg.isin(ev.control)]
    s = s[s["signup_at"] + window <= data_end].copy()
    first = _first_after(events, ev_name, s, "signup_at")
    start = pd.Timestamp(ini.start)
    s["y"] = (first <= s["signup_at"] + window).astype(float)
    s["post"] = (s["signup_at"] >= start).astype(float)
    s["rel_week"] = np.floor((s["signup_at"] - start) / (7 * DAY)).astype(int)
    return s[["person_id", "signup_at", "segment", "treated", "post", "rel_week", "y"]].reset_index(drop=True)


def matching_frame(events: pd.DataFrame, plan: Plan, ini: Initiative, data_end: pd.Timestamp) -> pd.DataFrame:
    """Accounts known and not yet paying at the start: treatment, outcome, pre-period covariates."""
    ev = ini.evaluation
    ev_name, _, _ = resolve_metric(plan, ini.kpi)
    start = pd.Timestamp(ini.start)
    pre = events[events["timestamp"] < start]
    # Accounts at the start: identified persons who did not sign up after it (accounts older than
    # the data have no signup event at all, and may have been quiet before the start).
    signed = _signups(events, plan)
    late = set(signed.loc[signed["signup_at"] >= start, "person_id"])
    accounts = [p for p in events.loc[events["has_user"].astype(bool), "person_id"].unique() if p not in late]
    # Already paying: bought before the start, or billed (an event with revenue) before any purchase
    # of theirs, i.e. a subscriber from before the data began.
    buys = events[events["event_name"] == ev_name].groupby("person_id")["timestamp"].min()
    rev = events[events[prop_column("revenue")].notna()] if prop_column("revenue") in events else events.iloc[:0]
    first_rev = rev.groupby("person_id")["timestamp"].min()
    # A paid plan in the person's traits before any purchase of theirs: an annual subscriber from
    # before the data began, who is never billed inside it.
    paid = events[events["plan"].notna() & ~events["plan"].astype(str).str.lower().isin(FREE_PLANS)]
    first_paid = paid.groupby("person_id")["timestamp"].min()
    paying = set(buys[buys < start].index) | {
        p for p, t in [*first_rev.items(), *first_paid.items()] if p not in buys.index or t < buys[p]
    }
    df = pd.DataFrame({"person_id": pd.Series([p for p in accounts if p not in paying], dtype=object)})
    if df.empty:
        raise Skip("no account existed, unpaid, at the start")
    treat = events[
        (events["event_name"] == ev.treatment_event)
        & (events["timestamp"] >= start)
        & (events["timestamp"] < start + ev.window_days * DAY)
    ]
    for key, value in treatment_where(ini).items():  # e.g. {integration: slack}
        treat = treat[treat[where_column(key)].astype(str) == str(value)]
    df["treated"] = df["person_id"].isin(set(treat["person_id"])).astype(int)
    df["y"] = pd.to_datetime(df["person_id"].map(buys.to_dict())).between(start, data_end).astype(float)
    pre_counts = pre.groupby("person_id").size()
    df["pre_events"] = np.log1p(df["person_id"].map(pre_counts).fillna(0))  # counts are skewed
    sizes = events.dropna(subset=["company_size"]).groupby("person_id")["company_size"].last()
    rank = {s: i + 1 for i, s in enumerate(COMPANY_SIZES)}
    df["company_size_rank"] = df["person_id"].map(sizes).map(rank)
    df["company_size_rank"] = df["company_size_rank"].fillna(df["company_size_rank"].median())
    seats = pre.dropna(subset=["seats"]).groupby("person_id")["seats"].max()
    df["seats"] = np.log1p(df["person_id"].map(seats).fillna(0))
    return df


def daily_series(events: pd.DataFrame, event: str, data_start, data_end) -> pd.DataFrame:
    """Daily count of ``event`` over every day of the data (days without one count 0)."""
    days = pd.date_range(pd.Timestamp(data_start).normalize(), pd.Timestamp(data_end).normalize(), freq="D")
    counts = events.loc[events["event_name"] == event, "timestamp"].dt.normalize().value_counts()
    # the last day is usually partial: leave it out rather than read it as a drop
    days = days[:-1] if len(days) > 1 and pd.Timestamp(data_end) < days[-1] + DAY - pd.Timedelta(minutes=1) else days
    return pd.DataFrame({"day": days, "y": counts.reindex(days).fillna(0).to_numpy(float)})


# -- models/marts/initiative_roi.py ------------------------------------------------------------------
def _kpi_rows(events: pd.DataFrame, plan: Plan, kpi_key: str) -> tuple[pd.DataFrame, str] | None:
    """Rows whose mean is the KPI, with the segment and time each belongs to.

    An event count becomes events per active person-day (so a growing user base is not an effect);
    an average property is one row per event carrying it.
    """
    kpi = next((k for k in plan.metrics.kpis if k.key == kpi_key), None)
    if kpi is None or not kpi.event:
        return None
    if kpi.measure == "average_property" and kpi.property:
        r = events.loc[events["event_name"] == kpi.event].dropna(subset=[prop_column(kpi.property)])
        return r.assign(y=r[prop_column(kpi.property)], day=r["timestamp"].dt.normalize()), "mean per event"
    e = events.assign(day=events["timestamp"].dt.normalize())
    active = e.groupby(["person_id", "day"], as_index=False).agg(region=("region", "first"))
    hits = e[e["event_name"] == kpi.event].groupby(["person_id", "day"]).size().rename("y")
    active = active.join(hits, on=["person_id", "day"])
    return active.assign(y=active["y"].fillna(0.0)), "per active person-day"


# -- models/kpis.py ----------------------------------------------------------------------------------
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
    return float("nan")


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
        rows.append(kpi_row(plan, k, as_of, period, current, previous, trend))
    return pd.DataFrame(rows).reindex(columns=KPI_COLUMNS)
