"""Interrupted time series for launches to everyone, and the labelled before/after fallback."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats as sps

from models.causal.results import Estimate, normal_estimate_fields

NON_CAUSAL_WARNING = (
    "before/after comparison: not causal. Anything else that changed at launch (season, "
    "marketing, a trend already under way) is counted as the initiative's effect."
)


@dataclass
class ITSResult(Estimate):
    """Segmented regression: ``effect`` is the level change at launch."""

    slope_change: float = float("nan")
    slope_change_se: float = float("nan")
    slope_change_p_value: float = float("nan")
    pre_slope: float = float("nan")
    maxlags: int = 0
    seasonality: str | None = None


def _as_step(time: pd.Series, launch) -> tuple[np.ndarray, np.ndarray]:
    """Time in steps since the start (days for dates, else the raw numbers) and at launch."""
    if pd.api.types.is_datetime64_any_dtype(time) or isinstance(
        launch, (pd.Timestamp, str)
    ):
        t = pd.to_datetime(time)
        t0 = t.min()
        step = ((t - t0) / pd.Timedelta(days=1)).to_numpy(float)
        at = (pd.Timestamp(launch) - t0) / pd.Timedelta(days=1)
        return step, float(at)
    return time.to_numpy(float), float(launch)


def interrupted_time_series(
    df: pd.DataFrame,
    *,
    time: str,
    outcome: str,
    launch,
    seasonality: str | None = "weekly",
    maxlags: int | None = None,
    alpha: float = 0.05,
) -> ITSResult:
    """Segmented regression of a KPI series on trend, level change and slope change at launch.

    ``outcome ~ t + post + (t - launch)·post [+ day-of-week]`` with Newey–West (HAC) errors, so
    autocorrelated days do not overstate certainty. ``seasonality="weekly"`` adds day-of-week
    effects (needs dates). ``maxlags`` defaults to the Newey–West rule floor(4 (n/100)^(2/9)).
    Assumes the pre-launch trend would have continued; nothing else may change at launch.
    """
    data = df[[time, outcome]].dropna().sort_values(time).reset_index(drop=True)
    t, at = _as_step(data[time], launch)
    post = (t >= at).astype(float)
    if post.sum() < 2 or (1 - post).sum() < 2:
        raise ValueError("need at least two observations on each side of launch")
    X = pd.DataFrame(
        {
            "const": 1.0,
            "trend": t - at,
            "level_change": post,
            "slope_change": (t - at) * post,
        }
    )
    if seasonality == "weekly":
        dow = pd.to_datetime(data[time]).dt.day_of_week
        X = X.join(pd.get_dummies(dow, prefix="dow", drop_first=True, dtype=float))
    elif seasonality is not None:
        raise ValueError("seasonality must be 'weekly' or None")
    n = len(data)
    lags = int(np.floor(4 * (n / 100) ** (2 / 9))) if maxlags is None else int(maxlags)
    fit = sm.OLS(data[outcome].to_numpy(float), X).fit(
        cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": True}
    )
    est = normal_estimate_fields(
        float(fit.params["level_change"]), float(fit.bse["level_change"]), alpha
    )
    return ITSResult(
        **est,
        n=n,
        method="interrupted_time_series",
        slope_change=float(fit.params["slope_change"]),
        slope_change_se=float(fit.bse["slope_change"]),
        slope_change_p_value=float(fit.pvalues["slope_change"]),
        pre_slope=float(fit.params["trend"]),
        maxlags=lags,
        seasonality=seasonality,
    )


def before_after(
    df: pd.DataFrame, *, time: str, outcome: str, launch, alpha: float = 0.05
) -> Estimate:
    """Mean after launch minus mean before (Welch t). Not causal; kept as a labelled fallback."""
    data = df[[time, outcome]].dropna()
    t, at = _as_step(data[time], launch)
    y = data[outcome].to_numpy(float)
    before, after = y[t < at], y[t >= at]
    res = sps.ttest_ind(after, before, equal_var=False)
    se = float(
        np.sqrt(before.var(ddof=1) / len(before) + after.var(ddof=1) / len(after))
    )
    est = normal_estimate_fields(
        float(after.mean() - before.mean()), se, alpha, df=float(res.df)
    )
    return Estimate(
        **est, n=len(y), method="before_after", warnings=[NON_CAUSAL_WARNING]
    )
