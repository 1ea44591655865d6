"""marts.initiative_scenarios: adoption scenarios, NPV tornado, Monte Carlo and an NPV histogram per initiative.

``compute_initiative_scenarios`` is a pure function of marts.initiative_roi and the plan; the
finance is ``models.value``'s.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.frames import frame
from models.value import Assumptions, initiative_scenarios, monte_carlo
from models.value_finance import SCENARIO_COLUMNS
from tracking_plan.model import Initiative, Plan

__all__ = ["assumptions_of", "build", "compute_initiative_scenarios", "ranges_of"]

MC_DRAWS = 5_000  # P10/P90 move by well under 1 % of their spread between reruns at this size
MC_SEED = 0  # the same inputs give the same table
HISTOGRAM_BINS = 20  # bars of the NPV distribution chart in the report
COLUMNS = [*SCENARIO_COLUMNS, "share", "method", "evidence_grade"]  # the finance table, the histogram, the evidence


def assumptions_of(ini: Initiative, roi_row: dict) -> Assumptions:
    return Assumptions(
        effect_per_month=float(roi_row["effect_per_month"]),
        value_per_conversion=ini.value_per_conversion,
        one_off_cost=ini.costs.one_off,
        recurring_cost=ini.costs.recurring_monthly,
        horizon_months=ini.horizon_months,
        discount_rate=ini.discount_rate,
        effect_se=float(roi_row["effect_per_month_se"] or 0.0),
        adoption=ini.adoption.base,
    )


def ranges_of(ini: Initiative) -> dict:
    """The plan's declared uncertainty: cost ranges and the adoption low/high."""
    r = {"adoption": (ini.adoption.low, ini.adoption.high)}
    if ini.costs.one_off_range:
        r["one_off_cost"] = tuple(ini.costs.one_off_range)
    if ini.costs.recurring_range:
        r["recurring_cost"] = tuple(ini.costs.recurring_range)
    return r


def _histogram(key: str, draws: pd.Series) -> pd.DataFrame:
    counts, edges = np.histogram(draws, bins=HISTOGRAM_BINS)
    return pd.DataFrame(
        {
            "initiative": key,
            "kind": "distribution",
            "name": [f"bin_{i:02d}" for i in range(len(counts))],
            "low_value": edges[:-1],
            "high_value": edges[1:],
            "npv": (edges[:-1] + edges[1:]) / 2,
            "share": counts / counts.sum(),
        }
    )


def compute_initiative_scenarios(roi: pd.DataFrame, plan: Plan, n: int = MC_DRAWS, seed: int = MC_SEED) -> pd.DataFrame:
    """Per initiative with an effect estimate: adoption scenarios, tornado rows, Monte Carlo P10/P50/P90,
    and the NPV histogram (``kind = distribution``, ``share`` of draws per bin)."""
    frames = []
    by_key = {r["initiative"]: r for r in roi.to_dict("records")}
    for ini in plan.metrics.initiatives:
        row = by_key.get(ini.key)
        if row is None or not np.isfinite(float(row.get("effect_per_month") or np.nan)):
            continue
        a = assumptions_of(ini, row)
        adoption = {"low": ini.adoption.low, "base": ini.adoption.base, "high": ini.adoption.high}
        sc = initiative_scenarios(ini.key, a, adoption, ranges_of(ini), n=n, seed=seed)
        mc = monte_carlo(a, ranges_of(ini), n=n, seed=seed)  # same seed: the same draws as above
        frames += [sc, _histogram(ini.key, mc.draws["npv"])]
    if not frames:  # no initiative has an effect yet: the table still has every column (its YAML's)
        return pd.DataFrame(columns=COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    meta = roi.set_index("initiative")[["method", "evidence_grade"]]
    return out.join(meta, on="initiative").reindex(columns=COLUMNS)


def build(con, plan: Plan) -> pd.DataFrame:
    """marts.initiative_scenarios from marts.initiative_roi."""
    return compute_initiative_scenarios(frame(con, "select * from marts.initiative_roi"), plan)
