"""Portfolio review: a stop / continue / scale / pivot recommendation per initiative, ranked.

Rules live in metrics.yaml as an ordered list; the first rule whose conditions all hold wins, and
an initiative that matches none gets ``default``. Conditions use a fixed vocabulary, so nothing
from the plan is ever evaluated as code::

    portfolio_rules:
      evidence_order: [A, B, C, D]        # best first
      default: continue
      rules:
        - then: scale
          prob_npv_positive_min: 0.8        # <column>_min: value >= threshold
          evidence_min: B                   # grade at least as good as B
        - then: stop
          prob_npv_positive_max: 0.2        # <column>_max: value <= threshold
          evidence_min: B
        - then: pivot
          prob_npv_positive_max: 0.5
          kpi_on_track_is: false            # <column>_is: equality

A missing or NaN value never satisfies a condition: without the figure, the rule does not fire.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

ACTIONS = ("stop", "continue", "scale", "pivot")

DEFAULT_RULES: dict = {
    # A randomized test (A) is the strongest evidence, then quasi-experiments (B), before/after (C),
    # none (D). Mirrors the evidence grades of marts.initiative_roi.
    "evidence_order": ["A", "B", "C", "D"],
    "default": "continue",
    "rules": [
        # Put more money in only when a loss is unlikely (< 20 %) and the evidence is causal.
        {"then": "scale", "prob_npv_positive_min": 0.8, "evidence_min": "B"},
        # Stop when a gain is unlikely (< 20 %) on causal evidence: more data will not rescue it.
        {"then": "stop", "prob_npv_positive_max": 0.2, "evidence_min": "B"},
        # A coin flip or worse that is not moving its KPI: keep the goal, change the approach.
        {"then": "pivot", "prob_npv_positive_max": 0.5, "kpi_on_track_is": False},
    ],
}

_SUFFIXES = ("_min", "_max", "_is")


def validate_rules(rules: Mapping) -> dict:
    """Check a rule set's shape and vocabulary; returns it with defaults filled in.

    Raises ``ValueError`` naming the offending rule, so ``trackplan lint`` can report it.
    """
    out = {
        "evidence_order": list(rules.get("evidence_order", DEFAULT_RULES["evidence_order"])),
        "default": rules.get("default", "continue"),
        "rules": list(rules.get("rules", [])),
    }
    if out["default"] not in ACTIONS:
        raise ValueError(f"portfolio default {out['default']!r} is not one of {ACTIONS}")
    for i, rule in enumerate(out["rules"]):
        if rule.get("then") not in ACTIONS:
            raise ValueError(f"portfolio rule {i}: 'then' must be one of {ACTIONS}, got {rule.get('then')!r}")
        for key, threshold in rule.items():
            if key == "then":
                continue
            if not key.endswith(_SUFFIXES):
                raise ValueError(f"portfolio rule {i}: condition {key!r} must end in one of {_SUFFIXES}")
            if key in ("evidence_min", "evidence_max") and threshold not in out["evidence_order"]:
                raise ValueError(
                    f"portfolio rule {i}: {key} {threshold!r} is not an evidence grade {out['evidence_order']}"
                )
            if (
                key.endswith(("_min", "_max"))
                and not key.startswith("evidence_")
                and not isinstance(threshold, (int, float))
            ):
                raise ValueError(f"portfolio rule {i}: {key} needs a number, got {threshold!r}")
    return out


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA


def _holds(row: Mapping, key: str, threshold, order: list[str]) -> tuple[bool, str]:
    if key.startswith("evidence_") and key.endswith(("_min", "_max")):
        grade = row.get("evidence_grade")
        if _missing(grade) or grade not in order:
            return False, f"evidence {grade!r} unknown"
        rank, limit = order.index(grade), order.index(threshold)  # lower index = better evidence
        ok = rank <= limit if key.endswith("_min") else rank >= limit
        return ok, f"evidence {grade} {'at least' if key.endswith('_min') else 'at most'} {threshold}"
    column = key.rsplit("_", 1)[0]
    value = row.get(column)
    if _missing(value):
        return False, f"{column} missing"
    if key.endswith("_min"):
        return value >= threshold, f"{column} {value:.3g} >= {threshold}"
    if key.endswith("_max"):
        return value <= threshold, f"{column} {value:.3g} <= {threshold}"
    return bool(value == threshold), f"{column} is {value}"


def recommend_with_reason(row: Mapping, rules: Mapping | None = None) -> tuple[str, str]:
    """The recommendation and the conditions that produced it (for the review table)."""
    rules = validate_rules(rules if rules is not None else DEFAULT_RULES)
    for rule in rules["rules"]:
        checks = [_holds(row, k, v, rules["evidence_order"]) for k, v in rule.items() if k != "then"]
        if all(ok for ok, _ in checks):
            return rule["then"], "; ".join(reason for _, reason in checks)
    return rules["default"], "no rule matched"


NOT_EVALUABLE = "not evaluable"


def _not_evaluable(row: Mapping) -> tuple[str, str] | None:
    """An initiative with no effect estimate has nothing to decide on: it is not evaluable (and says
    why), rather than falling through to the default action as if it had been weighed."""
    if "estimate" not in row or not _missing(row.get("estimate")):
        return None
    label = row.get("evidence_label")
    why = (
        label if isinstance(label, str) and label.startswith(NOT_EVALUABLE) else f"{NOT_EVALUABLE}: no effect estimate"
    )
    return NOT_EVALUABLE, why


def recommend(row: Mapping, rules: Mapping | None = None) -> str:
    """stop / continue / scale / pivot for one initiative row (a dict or a pandas row)."""
    return recommend_with_reason(row, rules)[0]


def portfolio(df: pd.DataFrame, rules: Mapping | None = None) -> pd.DataFrame:
    """Every initiative with its recommendation and reason, ranked by expected NPV (best first).

    Expected NPV is the Monte Carlo mean (``npv_mean``) when present, else the point ``npv``.
    """
    out = df.copy()
    expected = out["npv_mean"] if "npv_mean" in out else out["npv"]
    out["expected_npv"] = expected.astype(float)
    recs = [_not_evaluable(row) or recommend_with_reason(row, rules) for row in out.to_dict("records")]
    out["recommendation"] = [r for r, _ in recs]
    out["reason"] = [why for _, why in recs]
    out = out.sort_values("expected_npv", ascending=False, na_position="last", ignore_index=True)
    out["rank"] = range(1, len(out) + 1)
    return out
