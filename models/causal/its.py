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
    errors: str = "ar1"  # "ar1" (feasible GLS, Student t with ``df``) or "newey_west" (HAC, normal)
    ar1_rho: float = float("nan")
    df: float = float("nan")


def _as_step(time: pd.Series, launch) -> tuple[np.ndarray, np.ndarray]:
    """Time in steps since the start (days for dates, else the raw numbers) and at launch."""
    if pd.api.types.is_datetime64_any_dtype(time) or isinstance(launch, (pd.Timestamp, str)):
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

    ``outcome ~ t + post + (t - launch)·post [+ day-of-week]`` with errors that allow for
    autocorrelated days, so they do not overstate certainty. By default the errors are AR(1) and
    the fit is iterated feasible GLS (Cochrane–Orcutt, statsmodels' ``GLSAR``) with Student-t
    inference on its residual df: on an AR(1) series (rho 0-0.7, 45-365 days) its 95 % intervals
    cover 91-95 %, where Newey–West with the usual bandwidth and normal critical values covered
    ~86 % (benchmarks/calibration.py). With ``maxlags`` the OLS fit with Newey–West (HAC) errors
    of that many lags and normal inference is used instead. ``seasonality="weekly"`` adds
    day-of-week effects (needs dates). Assumes the pre-launch trend would have continued; nothing
    else may change at launch.
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
    y = data[outcome].to_numpy(float)
    rho = float("nan")
    if maxlags is None:
        model = sm.GLSAR(y, X, rho=1)
        fit = model.iterative_fit(maxiter=20)
        params, se, lags, errors, dist_df = fit.params, fit.bse, 0, "ar1", float(fit.df_resid)
        rho = float(np.asarray(model.rho).ravel()[0])
    else:
        lags = int(maxlags)
        fit = sm.OLS(y, X).fit(cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": True})
        params, se, errors, dist_df = fit.params, fit.bse, "newey_west", None
    est = normal_estimate_fields(float(params["level_change"]), float(se["level_change"]), alpha, dist_df)
    slope = normal_estimate_fields(float(params["slope_change"]), float(se["slope_change"]), alpha, dist_df)
    return ITSResult(
        **est,
        n=n,
        method="interrupted_time_series",
        slope_change=float(params["slope_change"]),
        slope_change_se=float(se["slope_change"]),
        slope_change_p_value=slope["p_value"],
        pre_slope=float(params["trend"]),
        maxlags=lags,
        seasonality=seasonality,
        errors=errors,
        ar1_rho=rho,
        df=float(dist_df) if dist_df is not None else float("nan"),
    )


def before_after(df: pd.DataFrame, *, time: str, outcome: str, launch, alpha: float = 0.05) -> Estimate:
    """Mean after launch minus mean before (Welch t). Not causal; kept as a labelled fallback."""
    data = df[[time, outcome]].dropna()
    t, at = _as_step(data[time], launch)
    y = data[outcome].to_numpy(float)
    before, after = y[t < at], y[t >= at]
    res = sps.ttest_ind(after, before, equal_var=False)
    se = float(np.sqrt(before.var(ddof=1) / len(before) + after.var(ddof=1) / len(after)))
    est = normal_estimate_fields(float(after.mean() - before.mean()), se, alpha, df=float(res.df))
    return Estimate(**est, n=len(y), method="before_after", warnings=[NON_CAUSAL_WARNING])
