"""The result objects every estimator in ``models.stats`` returns."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import pandas as pd
from scipy import stats as sps


@dataclass
class Estimate:
    """An effect with its uncertainty; subclasses add the extras their method produces."""

    effect: float
    std_error: float
    p_value: float
    ci_low: float
    ci_high: float
    n: int
    method: str = ""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python view (DataFrames become lists of records) for marts and JSON."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, pd.DataFrame):
                value = value.to_dict(orient="records")
            elif isinstance(value, pd.Series):
                value = value.to_dict()
            out[f.name] = value
        return out


def normal_estimate_fields(effect: float, se: float, alpha: float, df: float | None = None) -> dict:
    """p-value and CI for a normal (or Student t when ``df`` is given) estimate."""
    if not (se > 0 and math.isfinite(se)):
        return {
            "effect": effect,
            "std_error": se,
            "p_value": float("nan"),
            "ci_low": float("nan"),
            "ci_high": float("nan"),
        }
    dist = sps.t(df) if df is not None else sps.norm()
    crit = float(dist.ppf(1 - alpha / 2))
    return {
        "effect": float(effect),
        "std_error": float(se),
        "p_value": float(2 * dist.sf(abs(effect / se))),
        "ci_low": float(effect - crit * se),
        "ci_high": float(effect + crit * se),
    }


__all__ = ["Estimate", "asdict", "normal_estimate_fields"]
