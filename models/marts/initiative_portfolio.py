"""marts.initiative_portfolio: one row per initiative, ranked by expected NPV, with its recommendation.

``compute_initiative_portfolio`` is a pure function; the decision rules are ``models.value``'s
(``portfolio``); KPI progress comes from models.kpis, the one KPI computation.
"""

import json

import numpy as np
import pandas as pd

from models.frames import frame
from models.kpis import compute_kpi_values
from models.value import portfolio
from tracking_plan.model import Initiative, Plan

from .aggregates import EventSource

__all__ = ["build", "compute_initiative_portfolio", "plan_rules"]


# -- portfolio ----------------------------------------------------------------------------------------------------
def plan_rules(ini: Initiative) -> dict:
    """The initiative's decision_rules from metrics.yaml in ``models.value.portfolio``'s vocabulary."""
    r = ini.decision_rules
    return {
        "evidence_order": ["A", "B", "C", "D"],
        "default": "continue",
        "rules": [
            {
                "then": "scale",
                "prob_npv_positive_min": r.scale_if_prob_npv_positive,
                "evidence_min": r.min_evidence_to_scale,
            },
            {
                "then": "stop",
                "prob_npv_positive_max": r.stop_if_prob_npv_positive,
                "evidence_min": r.min_evidence_to_scale,
            },
            # a coin flip or worse that is not moving its KPI: keep the goal, change the approach
            {"then": "pivot", "prob_npv_positive_max": 0.5, "kpi_on_track_is": False},
        ],
    }


PORTFOLIO_COLUMNS = [
    "rank",
    "initiative",
    "name",
    "owner",
    "method",
    "evidence_grade",
    "evidence_label",
    "estimate",
    "ci_low",
    "ci_high",
    "unit",
    "npv",
    "npv_p10",
    "npv_p50",
    "npv_p90",
    "npv_mean",
    "expected_npv",
    "prob_npv_positive",
    "irr",
    "payback_months",
    "kpi",
    "kpi_current",
    "kpi_target",
    "kpi_direction",
    "kpi_on_track",
    "kpi_gap",
    "recommendation",
    "reason",
    "rules",
    "non_financial",
]


def compute_initiative_portfolio(
    roi: pd.DataFrame, scenarios: pd.DataFrame, kpis: pd.DataFrame, plan: Plan
) -> pd.DataFrame:
    """One row per initiative: evidence, NPV distribution, KPI vs target, recommendation, rank by expected NPV."""
    mc = scenarios[scenarios["kind"] == "monte_carlo"] if len(scenarios) else scenarios
    kv = kpis.set_index("kpi") if len(kpis) else pd.DataFrame()
    rows = []
    for ini in plan.metrics.initiatives:
        r = roi[roi["initiative"] == ini.key]
        r = r.iloc[0].to_dict() if len(r) else {"initiative": ini.key}
        m = mc[mc["initiative"] == ini.key].set_index("name") if len(mc) else pd.DataFrame()

        def pick(name: str, col: str, m=m) -> float:
            return float(m.loc[name, col]) if name in m.index else np.nan

        k = kv.loc[ini.kpi] if ini.kpi in kv.index else {}
        current, target = k.get("current", np.nan), k.get("target", np.nan)
        row = {
            **{
                c: r.get(c)
                for c in (
                    "initiative",
                    "name",
                    "owner",
                    "method",
                    "evidence_grade",
                    "evidence_label",
                    "estimate",
                    "ci_low",
                    "ci_high",
                    "unit",
                    "npv",
                    "irr",
                    "payback_months",
                    "non_financial",
                )
            },
            "npv_p10": pick("p10", "npv"),
            "npv_p50": pick("p50", "npv"),
            "npv_p90": pick("p90", "npv"),
            "npv_mean": pick("mean", "npv"),
            "prob_npv_positive": pick("mean", "prob_npv_positive"),
            "kpi": ini.kpi,
            "kpi_current": current,
            "kpi_target": target,
            "kpi_direction": k.get("direction"),
            "kpi_on_track": k.get("on_track"),
            "kpi_gap": (current - target)
            if target is not None and np.isfinite(float(target if target is not None else np.nan))
            else np.nan,
        }
        rules = plan_rules(ini)
        ranked = portfolio(pd.DataFrame([row]), rules)  # each initiative has its own rules
        rows.append({**ranked.iloc[0].to_dict(), "rules": json.dumps(rules)})
    out = pd.DataFrame(rows)
    if out.empty:
        return pd.DataFrame(columns=PORTFOLIO_COLUMNS)
    out = out.sort_values("expected_npv", ascending=False, na_position="last", ignore_index=True)
    out["rank"] = range(1, len(out) + 1)
    return out.reindex(columns=PORTFOLIO_COLUMNS)


def build(con, plan: Plan) -> pd.DataFrame:
    """marts.initiative_portfolio from marts.initiative_roi, marts.initiative_scenarios and the KPIs."""
    roi = frame(con, "select * from marts.initiative_roi")
    scenarios = frame(con, "select * from marts.initiative_scenarios")
    kpis = compute_kpi_values(EventSource.warehouse(con, plan), plan)
    return compute_initiative_portfolio(roi, scenarios, kpis, plan)


def summary(df: pd.DataFrame) -> dict:
    return {"recommendations": {r["initiative"]: r["recommendation"] for r in df.to_dict("records")}}
