"""marts.experiment_results: each declared experiment read out per variant and metric.

Exposure is a person's first exposure event carrying the experiment's id; a metric counts only
what the person did after that first exposure. The statistics are ``models.stats.ab_readout``
(GrowthBook conventions): fixed-horizon Welch/proportion CI, the always-valid confidence sequence
when the plan says ``sequential: true``, CUPED when a pre-exposure value of the metric varies,
SRM against the planned allocation, power and sample size at the plan's MDE.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from models.stats import ab_readout
from tracking_plan.model import KPI, Experiment, Plan

from .aggregates import EventSource, exposure_outcomes_sql, first_exposures_sql, source_of, times
from .events_frame import prop_column

DAYS_PER_MONTH = 30.4375  # 365.25 / 12: exposures per month for the ROI from the test's own traffic
# Pre-exposure lookback for CUPED's covariate: GrowthBook's default regression-adjustment window.
CUPED_LOOKBACK_DAYS = 14

RESULT_COLUMNS = [
    "experiment",
    "hypothesis",
    "metric",
    "metric_role",
    "metric_event",
    "metric_kind",
    "direction",
    "variant",
    "is_control",
    "exposures",
    "analysed",
    "conversions",
    "rate",
    "control_rate",
    "lift_abs",
    "std_error",
    "ci_low",
    "ci_high",
    "lift_rel",
    "rel_ci_low",
    "rel_ci_high",
    "p_value",
    "significant",
    "sequential",
    "seq_ci_low",
    "seq_ci_high",
    "seq_p_value",
    "decision_ci_low",
    "decision_ci_high",
    "srm_p_value",
    "srm_flag",
    "power",
    "mde",
    "required_n_per_arm",
    "cuped",
    "theta",
    "guardrail_regression",
    "first_exposure",
    "last_exposure",
    "exposures_per_month",
    "error",
]


def resolve_metric(plan: Plan, metric: str) -> tuple[str, str, KPI | None]:
    """(event, kind, kpi) of a metric named by KPI key or by event name.

    kind is ``activation`` (min_count events within the activation window), ``sum`` (a revenue
    property summed), ``mean`` (a property averaged) or ``conversion`` (did the event at all).
    """
    kpi = next((k for k in plan.metrics.kpis if k.key == metric), None)
    act = plan.metrics.activation
    if kpi is None:
        return metric, "conversion", None
    if kpi.measure == "activation_rate":
        return (kpi.event or (act.event if act else metric)), "activation", kpi
    if kpi.measure == "revenue" and kpi.property:
        return kpi.event or metric, "sum", kpi
    if kpi.measure == "average_property" and kpi.property:
        return kpi.event or metric, "mean", kpi
    return kpi.event or metric, "conversion", kpi


def exposures(events, exp: Experiment, plan: Plan | None = None) -> pd.DataFrame:
    """First exposure per person: person_id, variant, exposed_at (before ``start`` ignored), by time.

    ``events`` is an ``aggregates.EventSource`` or an event frame (then ``plan`` names its columns)."""
    src = source_of(events, plan)
    return times(src.df(first_exposures_sql(src.ev, exp.exposure_event, exp.key, exp.start)), "exposed_at")


def metric_outcomes(
    events, exposed: pd.DataFrame | Experiment, plan: Plan, metric: str, data_end: pd.Timestamp
) -> tuple[pd.DataFrame, dict]:
    """Per exposed person the metric's value after exposure (``y``) and before it (``pre``).

    ``exposed`` is the experiment (its first exposures are read in the same query) or a frame of
    ``exposures``. Activation needs its whole window inside the data (persons exposed later are
    left out, not counted as failures); the others count everything from exposure to the end of
    the data. The counts and sums per person come from ``aggregates.exposure_outcomes_sql``.
    """
    event, kind, kpi = resolve_metric(plan, metric)
    act = plan.metrics.activation
    window_days = act.window_days if act else 7
    src = source_of(events, plan)
    if isinstance(exposed, pd.DataFrame):
        name = f"exposed_{id(exposed)}"
        src.con.register(name, exposed[["person_id", "variant", "exposed_at"]])
        x = f"select cast(person_id as varchar) as person_id, variant, cast(exposed_at as timestamp) as exposed_at from {name}"
    else:
        x = first_exposures_sql(src.ev, exposed.exposure_event, exposed.key, exposed.start)
    prop = prop_column(kpi.property) if kpi is not None and kpi.property and kind in ("sum", "mean") else None
    agg = times(src.df(exposure_outcomes_sql(src.ev, x, event, prop, window_days, CUPED_LOOKBACK_DAYS)), "exposed_at")
    out = agg[["person_id", "variant", "exposed_at"]].copy()
    if kind == "activation":
        out["y"] = (agg["n_window"] >= (act.min_count if act else 1)).astype(float)
        out.loc[out["exposed_at"] + pd.Timedelta(days=window_days) > data_end, "y"] = np.nan  # window not complete yet
    elif kind == "sum":
        out["y"] = agg["v_sum"].astype(float).fillna(0.0)
    elif kind == "mean":
        out["y"] = agg["v_mean"].astype(float)
    else:
        out["y"] = (agg["n_after"] > 0).astype(float)
    out["pre"] = agg["pre"].astype(float)
    info = {"metric_event": event, "metric_kind": kind, "direction": kpi.direction if kpi is not None else "increase"}
    return out, info


def _pre_usable(frame: pd.DataFrame) -> bool:
    """CUPED only helps (and is only defined) when the pre-exposure value varies."""
    pre = frame.dropna(subset=["y"])["pre"]
    return len(pre) > 2 and float(pre.var()) > 0


def readout(frame: pd.DataFrame, exp: Experiment) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Fixed-horizon readout and, when the plan asks for it, the sequential one (same rows)."""
    frame = frame[frame["variant"].isin(exp.variants)]
    pre = "pre" if _pre_usable(frame) else None
    kw = {
        "variant": "variant",
        "outcome": "y",
        "control": exp.control,
        "weights": exp.allocation,
        "alpha": exp.alpha,
        "pre": pre,
        "mde": exp.mde,
        "target_power": exp.power,
    }
    fixed = ab_readout(frame, sequential=False, **kw)
    seq = ab_readout(frame, sequential=True, **kw) if exp.sequential else None
    return fixed, seq


def _regression(direction: str, low: float, high: float) -> bool:
    """A guardrail regresses when its interval lies wholly on the harmful side of zero."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return False
    return low > 0 if direction == "decrease" else high < 0


def experiment_rows(events, plan: Plan, exp: Experiment, data_end: pd.Timestamp) -> list[dict]:
    src = source_of(events, plan)
    exposed = exposures(src, exp)
    if exposed.empty:
        return []
    span_days = max((exposed["exposed_at"].max() - exposed["exposed_at"].min()) / pd.Timedelta(days=1), 1.0)
    per_month = len(exposed) / span_days * DAYS_PER_MONTH
    counts = exposed["variant"].value_counts()
    rows = []
    metrics = [(exp.primary_metric, "primary")] + [(m, "guardrail") for m in exp.guardrail_metrics]
    for metric, role in metrics:
        # (the first exposures read above, not again in each metric's query: 10M events, ~0.4 CPU-s each)
        frame, info = metric_outcomes(src, exposed, plan, metric, data_end)
        common = {
            "experiment": exp.key,
            "hypothesis": exp.hypothesis,
            "metric": metric,
            "metric_role": role,
            **info,
            "sequential": exp.sequential,
            "mde": exp.mde,
            "first_exposure": exposed["exposed_at"].min(),
            "last_exposure": exposed["exposed_at"].max(),
            "exposures_per_month": per_month,
        }
        observed = frame.dropna(subset=["y"])
        ctrl = observed[observed["variant"] == exp.control]["y"]
        try:
            fixed, seq = readout(frame, exp)
        except (ValueError, KeyError) as exc:  # e.g. the control arm has no exposures yet
            fixed, seq = pd.DataFrame(), None
            common["error"] = str(exc)
        rows.append(
            {
                **common,
                "variant": exp.control,
                "is_control": True,
                "exposures": int(counts.get(exp.control, 0)),
                "analysed": len(ctrl),
                "conversions": float(ctrl.sum()),
                "rate": float(ctrl.mean()) if len(ctrl) else np.nan,
                "control_rate": float(ctrl.mean()) if len(ctrl) else np.nan,
                "srm_p_value": fixed["srm_p_value"].iloc[0] if len(fixed) else np.nan,
                "srm_flag": bool(fixed["srm_flag"].iloc[0]) if len(fixed) else False,
            }
        )
        for i, r in fixed.iterrows():
            arm = observed[observed["variant"] == r["variant"]]["y"]
            s = seq.iloc[i] if seq is not None else None
            lo = s["ci_low"] if s is not None else r["ci_low"]
            hi = s["ci_high"] if s is not None else r["ci_high"]
            rows.append(
                {
                    **common,
                    "variant": r["variant"],
                    "is_control": False,
                    "exposures": int(counts.get(r["variant"], 0)),
                    "analysed": int(r["n"]),
                    "conversions": float(arm.sum()),
                    "rate": r["mean"],
                    "control_rate": r["control_mean"],
                    "lift_abs": r["lift_abs"],
                    "std_error": r["std_error"],
                    "ci_low": r["ci_low"],
                    "ci_high": r["ci_high"],
                    "lift_rel": r["lift_rel"],
                    "rel_ci_low": r["rel_ci_low"],
                    "rel_ci_high": r["rel_ci_high"],
                    "p_value": r["p_value"],
                    "significant": r["significant"],
                    "seq_ci_low": s["ci_low"] if s is not None else np.nan,
                    "seq_ci_high": s["ci_high"] if s is not None else np.nan,
                    "seq_p_value": s["p_value"] if s is not None else np.nan,
                    "decision_ci_low": lo,
                    "decision_ci_high": hi,
                    "srm_p_value": r["srm_p_value"],
                    "srm_flag": r["srm_flag"],
                    "power": r["power"],
                    "required_n_per_arm": r["required_n_per_arm"],
                    "cuped": r["theta"] is not None and not pd.isna(r["theta"]),
                    "theta": r["theta"],
                    "guardrail_regression": role == "guardrail" and _regression(info["direction"], lo, hi),
                    "error": r["error"],
                }
            )
    return rows


def compute_experiment_results(events, plan: Plan, data_end: pd.Timestamp | None = None) -> pd.DataFrame:
    """One row per experiment × variant × metric (control rows carry counts and SRM only).

    ``events``: an ``aggregates.EventSource`` (a warehouse) or an event frame (one row per event)."""
    src = source_of(events, plan)
    data_end = data_end if data_end is not None else src.data_end()
    rows = [r for exp in plan.metrics.experiments for r in experiment_rows(src, plan, exp, data_end)]
    out = pd.DataFrame(rows).reindex(columns=RESULT_COLUMNS)
    for c in ("is_control", "significant", "srm_flag", "cuped", "guardrail_regression", "sequential"):
        out[c] = out[c].eq(True)  # (a missing flag is false; fillna(False) on an all-missing float column warns)
    return out


# -- the model (pipelines/model_assets.py builds marts.experiment_results with it) ---------------------------
def build(con, plan: Plan) -> pd.DataFrame:
    """marts.experiment_results from per-person aggregates of stitch.events."""
    return compute_experiment_results(EventSource.warehouse(con, plan), plan)


def summary(df: pd.DataFrame) -> dict:
    n = len(df)
    return {
        "srm_flags": int(df["srm_flag"].sum()) if n else 0,
        "guardrail_regressions": int(df["guardrail_regression"].sum()) if n else 0,
    }
