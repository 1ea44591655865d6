"""marts.initiative_roi: how much each initiative moved its KPI, how sure we are, and what it is worth.

``build(con, plan)`` reads the tables; the logic is the pure function ``compute_initiative_roi(events,
plan, experiment_results)`` that tests and analysts call directly (estimators: models/marts/initiatives.py
and models.stats; finance: models.value).
"""

import json

import pandas as pd

from models.frames import frame
from models.stats import before_after, diff_in_diff
from models.value import initiative_financials, roi
from tracking_plan.model import Initiative, Plan

from .aggregates import EventSource, person_days_sql, property_rows_sql, source_of, times
from .experiment_results import DAYS_PER_MONTH, compute_experiment_results
from .initiatives import Skip, estimate, grade_of, json_safe

__all__ = ["build", "compute_experiment_results", "compute_initiative_roi", "non_financial_changes"]

ROI_COLUMNS = [
    "initiative",
    "name",
    "owner",
    "kpi",
    "start",
    "method",
    "unit",
    "estimate",
    "std_error",
    "ci_low",
    "ci_high",
    "p_value",
    "n",
    "population",
    "effect_per_month",
    "effect_per_month_se",
    "checks_run",
    "checks_passed",
    "all_checks_passed",
    "evidence_grade",
    "evidence_label",
    "causal",
    "incremental_conversions",
    "value_per_conversion",
    "value_to_date",
    "months_since_start",
    "costs_to_date",
    "roi_to_date",
    "horizon_months",
    "discount_rate",
    "adoption",
    "value",
    "cost",
    "roi",
    "npv",
    "npv_se",
    "irr",
    "payback_months",
    "non_financial",
    "details",
    "warnings",
    "as_of",
]


# -- non-financial KPIs ---------------------------------------------------------------------------------
def _kpi_rows(events, plan: Plan, kpi_key: str, segment_field: str | None = None) -> tuple[pd.DataFrame, str] | None:
    """Rows whose mean is the KPI, with the person, segment and day each belongs to.

    An event count becomes events per active person-day (so a growing user base is not an effect;
    one row per person × day from ``aggregates.person_days_sql``, segment = the day's first region);
    an average property is one row per event carrying it (``aggregates.property_rows_sql``: only
    that KPI's own events, segment = ``segment_field`` at the event).
    """
    kpi = next((k for k in plan.metrics.kpis if k.key == kpi_key), None)
    if kpi is None or not kpi.event:
        return None
    src = source_of(events, plan)
    if kpi.measure == "average_property" and kpi.property:
        sql = property_rows_sql(src.ev, kpi.event, kpi.property, segment_field or "region")
        r = times(src.df(sql), "timestamp", "day")
        return r.assign(y=r["y"].astype(float)), "mean per event"
    r = times(src.per_person("person_days", lambda ev: person_days_sql(ev, kpi.event)), "day")
    return r.assign(y=r["y"].astype(float)), "per active person-day"


def non_financial_changes(
    events, plan: Plan, ini: Initiative, experiment_results: pd.DataFrame | None = None
) -> list[dict]:
    """Measured change of each non-financial KPI the initiative names.

    Same design as the initiative where it has one: the experiment's readout of that metric, or a
    DiD between the initiative's segments; otherwise before/after (labelled not causal).
    """
    out = []
    start = pd.Timestamp(ini.start)
    ev = ini.evaluation
    for key in ini.non_financial_kpis:
        kpi = next((k for k in plan.metrics.kpis if k.key == key), None)
        row = {"kpi": key, "unit": kpi.unit if kpi else None, "direction": kpi.direction if kpi else "increase"}
        er = experiment_results
        if ev.method == "ab_test" and er is not None and len(er):
            hit = er[(er["experiment"] == ev.experiment) & (er["metric"] == key) & ~er["is_control"].astype(bool)]
            if len(hit):
                h = hit.iloc[0]
                out.append(
                    {
                        **row,
                        "method": "ab_test",
                        "basis": "share of exposed persons with the event",
                        "baseline": h["control_rate"],
                        "change": h["lift_abs"],
                        "ci_low": h["ci_low"],
                        "ci_high": h["ci_high"],
                        "rel_change": h["lift_rel"],
                        "p_value": h["p_value"],
                    }
                )
                continue
        got = _kpi_rows(events, plan, key, ev.segment_field)
        if got is None:
            out.append({**row, "method": None, "error": "KPI has no event to measure"})
            continue
        rows, basis = got
        rows = rows.assign(post=(rows["day"] >= start).astype(float))
        if ev.method == "diff_in_diff" and ev.segment_field:
            rows = rows[rows["segment"].isin(ev.treated) | rows["segment"].isin(ev.control)]
            rows = rows.assign(treated=rows["segment"].isin(ev.treated).astype(float))
            try:
                r = diff_in_diff(rows, outcome="y", treated="treated", post="post", cluster="person_id")
            except ValueError as exc:
                out.append({**row, "method": "diff_in_diff", "error": str(exc)})
                continue
            base = float(rows.loc[(rows["treated"] > 0) & (rows["post"] > 0), "y"].mean() - r.effect)
            method = "diff_in_diff"
        else:
            if (rows["post"] == 0).sum() < 2 or (rows["post"] > 0).sum() < 2:
                out.append({**row, "method": "before_after", "error": "too few observations"})
                continue
            r = before_after(rows, time="day", outcome="y", launch=start)
            base = float(rows.loc[rows["post"] == 0, "y"].mean())
            method = "before_after (not causal)"
        out.append(
            {
                **row,
                "method": method,
                "basis": basis,
                "baseline": base,
                "change": r.effect,
                "ci_low": r.ci_low,
                "ci_high": r.ci_high,
                "p_value": r.p_value,
                "rel_change": r.effect / base if base else float("nan"),
            }
        )
    return out


# -- initiative ROI ---------------------------------------------------------------------------------------
def _months_between(a: pd.Timestamp, b: pd.Timestamp) -> float:
    return max((b - a) / pd.Timedelta(days=1), 0.0) / DAYS_PER_MONTH


def initiative_row(
    events, plan: Plan, ini: Initiative, experiment_results: pd.DataFrame, data_end: pd.Timestamp
) -> dict:
    method = ini.evaluation.method
    start = pd.Timestamp(ini.start)
    # (no data_end: no events at all; the initiative is then not evaluable, below)
    months = _months_between(start, data_end) if data_end is not None else 0.0
    started = data_end is not None and data_end >= start
    costs_to_date = ini.costs.one_off + ini.costs.recurring_monthly * months if started else 0.0
    row = {
        "initiative": ini.key,
        "name": ini.name or ini.key,
        "owner": ini.owner,
        "kpi": ini.kpi,
        "start": start.date(),
        "method": method,
        "value_per_conversion": ini.value_per_conversion,
        "months_since_start": months,
        "costs_to_date": costs_to_date,
        "horizon_months": ini.horizon_months,
        "discount_rate": ini.discount_rate,
        "adoption": ini.adoption.base,
        "as_of": data_end,
        "causal": method != "before_after",
    }
    warnings: list[str] = []
    try:
        if data_end is None:
            why = events.why_empty()
            raise Skip("no events loaded yet" + (f": {why}; see ingest.ingestion_log" if why else ""))
        if data_end < start:
            raise Skip("the initiative has not started in the data")
        got = estimate(events, plan, ini, experiment_results, data_end)
    except Skip as why:
        warnings.append(f"no estimate: {why}")
        # no estimate, no evidence: a grade here would be made up (a design is not a result)
        row.update(
            {
                "checks_run": "[]",
                "checks_passed": "[]",
                "all_checks_passed": None,
                "evidence_grade": None,
                "evidence_label": f"not evaluable: {why}",
                "warnings": json.dumps(warnings),
                "non_financial": json.dumps(json_safe(non_financial_changes(events, plan, ini, experiment_results))),
            }
        )
        return row
    est = got["estimate"]
    grade, label, passed = grade_of(method, got["checks"])
    warnings += list(getattr(est, "warnings", []) or [])
    if method == "before_after":
        warnings.append("before/after is not causal: anything else that changed at the start counts as effect")
    value_to_date = got["incremental_conversions"] * ini.value_per_conversion
    fin = initiative_financials(
        got["effect_per_month"],
        got["effect_per_month_se"],
        ini.value_per_conversion,
        ini.costs.one_off,
        ini.costs.recurring_monthly,
        ini.horizon_months,
        ini.discount_rate,
        adoption=ini.adoption.base,
    )
    row.update(
        {
            "unit": got["unit"],
            "estimate": est.effect,
            "std_error": est.std_error,
            "ci_low": est.ci_low,
            "ci_high": est.ci_high,
            "p_value": est.p_value,
            "n": est.n,
            "population": got["population"],
            "effect_per_month": got["effect_per_month"],
            "effect_per_month_se": got["effect_per_month_se"],
            "checks_run": json.dumps(sorted(got["checks"])),
            "checks_passed": json.dumps(sorted(k for k, v in got["checks"].items() if v)),
            "all_checks_passed": passed,
            "evidence_grade": grade,
            "evidence_label": label,
            "incremental_conversions": got["incremental_conversions"],
            "value_to_date": value_to_date,
            "roi_to_date": roi(value_to_date, costs_to_date) if costs_to_date else float("nan"),
            **fin,
            "details": json.dumps(json_safe(got["details"])),
            "warnings": json.dumps(warnings),
            "non_financial": json.dumps(json_safe(non_financial_changes(events, plan, ini, experiment_results))),
        }
    )
    return row


def compute_initiative_roi(
    events,
    plan: Plan,
    experiment_results: pd.DataFrame | None = None,
    data_end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """One row per initiative: method, estimate with CI, checks, evidence grade, value, costs, NPV/IRR.

    ``events``: an ``aggregates.EventSource`` (a warehouse) or an event frame (one row per event)."""
    events = source_of(events, plan)
    data_end = data_end if data_end is not None else events.data_end()
    if experiment_results is None:
        experiment_results = compute_experiment_results(events, plan, data_end)
    rows = [initiative_row(events, plan, ini, experiment_results, data_end) for ini in plan.metrics.initiatives]
    out = pd.DataFrame(rows).reindex(columns=ROI_COLUMNS)
    for c in ("payback_months", "irr", "npv", "estimate", "ci_low", "ci_high", "roi", "roi_to_date"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype(float)
    return out


# -- the model (pipelines/model_assets.py builds marts.initiative_roi with it) ------------------------------
def build(con, plan: Plan, keep=None) -> pd.DataFrame:
    """marts.initiative_roi from per-person and per-day aggregates of stitch.events and marts.experiment_results
    (the per-person ones kept by ``keep``, when the pipeline gives it: ``EventSource.per_person``)."""
    experiment_results = frame(con, "select * from marts.experiment_results")
    return compute_initiative_roi(EventSource.warehouse(con, plan, keep), plan, experiment_results)


def summary(df: pd.DataFrame) -> dict:
    return {"evidence_grades": {r["initiative"]: r["evidence_grade"] for r in df.to_dict("records")}}
