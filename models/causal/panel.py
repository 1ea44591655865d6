"""Panel difference-in-differences: two-way fixed effects, event study, placebo launch.

Unit and period fixed effects are absorbed by alternating projections (demeaning by unit, then by
period, until stable: the method fixest and pyfixest use), so a panel with thousands of units needs
no dummy matrix. Standard errors are clustered by unit with fixest's default small-sample
correction (fixed effects nested in the clusters are not counted as parameters), which is what the
textbook figures we check against were computed with.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps

# (not statsmodels.api, which loads every model it has: ~0.25 CPU-s of each run)
from statsmodels.regression.linear_model import OLS

from models.causal.inputs import indicator, numeric, require_columns
from models.causal.results import Estimate, normal_estimate_fields

# Demeaning stops when no column moves by more than this (in units of the data); far below any
# reported precision, and reached in a handful of sweeps on balanced panels (exact after one).
_DEMEAN_TOL = 1e-10
_DEMEAN_MAX_ITER = 1000
# The pre-trend and placebo checks "pass" when they fail to reject at this level.
CHECK_ALPHA = 0.05


@dataclass
class TWFEResult(Estimate):
    """Two-way fixed-effects DiD: ``effect`` is the coefficient on the treated-and-post indicator."""

    n_units: int = 0
    n_periods: int = 0
    n_clusters: int = 0


@dataclass
class EventStudyResult(Estimate):
    """Event study: lead/lag coefficients relative to the period before launch (-1)."""

    coefficients: pd.DataFrame = field(default_factory=pd.DataFrame)
    pretrend_p_value: float = float("nan")
    pretrend_passed: bool = False


def _demean(values: np.ndarray, unit_codes: np.ndarray, time_codes: np.ndarray) -> np.ndarray:
    """Remove unit and period means from each column (alternating projections)."""
    out = values.astype(float).copy()
    n_u, n_t = unit_codes.max() + 1, time_codes.max() + 1
    cnt_u = np.bincount(unit_codes, minlength=n_u)[:, None]
    cnt_t = np.bincount(time_codes, minlength=n_t)[:, None]
    k = out.shape[1]

    def group_means(codes, n_groups, counts):
        sums = np.zeros((n_groups, k))
        np.add.at(sums, codes, out)
        return sums / counts

    for _ in range(_DEMEAN_MAX_ITER):
        out -= group_means(unit_codes, n_u, cnt_u)[unit_codes]
        step = group_means(time_codes, n_t, cnt_t)[time_codes]
        out -= step
        if np.abs(step).max() < _DEMEAN_TOL:
            break
    return out


def _fe_ols(y, X, unit_codes, time_codes, cluster_codes):
    """OLS on demeaned data with cluster-robust covariance (fixest small-sample convention).

    Returns params, covariance and the residual degrees of freedom used for inference.
    """
    Z = _demean(np.column_stack([y, X]), unit_codes, time_codes)
    yd, Xd = Z[:, 0], Z[:, 1:]
    # a regressor the unit and period effects absorb (treated in every period, every unit treated from
    # the same period, none treated) or one the others span leaves its coefficient unidentified: OLS
    # would return an arbitrary solution of a rank-deficient design (statsmodels only warns)
    X = np.asarray(X, float)
    absorbed = np.linalg.norm(Xd, axis=0) <= 1e-7 * np.maximum(np.linalg.norm(X, axis=0), 1.0)
    if absorbed.any() or np.linalg.matrix_rank(Xd) < Xd.shape[1]:
        raise ValueError(
            "the treatment is not identified: once unit and period effects are removed "
            + ("it does not vary" if absorbed.any() else "its indicators are collinear")
            + " (every treated unit treated in every period, every unit treated from the same period, or none treated)"
        )
    fit = OLS(yd, Xd).fit(cov_type="cluster", cov_kwds={"groups": cluster_codes, "use_correction": False})
    n, k = Xd.shape
    n_clusters = len(np.unique(cluster_codes))
    # Unit FE are nested in unit clusters so they do not count; period FE (minus the one that the
    # unit FE already span) do. Then the usual G/(G-1) * (n-1)/(n-K) scaling, as fixest's default.
    k_total = k + (time_codes.max() + 1) - 1
    scale = n_clusters / (n_clusters - 1) * (n - 1) / (n - k_total)
    return fit.params, fit.cov_params() * scale, n_clusters


def _period_codes(time: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Dense integer index of each row's period (0 = earliest) and the sorted distinct periods."""
    periods = np.sort(pd.unique(time))
    return np.searchsorted(periods, time.to_numpy()), periods


def twfe_did(
    df: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    treated: str,
    alpha: float = 0.05,
) -> TWFEResult:
    """Two-way fixed-effects DiD: outcome on a treated-and-post indicator, unit and period FE.

    ``treated`` is 1 for a unit in a period after it was treated, else 0. Errors are clustered by
    unit. With staggered adoption and effects that change over time TWFE can be biased; check with
    ``event_study``.
    """
    require_columns(df, "twfe_did", outcome=outcome, unit=unit, time=time, treated=treated)
    data = df[[outcome, unit, time, treated]].dropna()
    unit_codes = pd.factorize(data[unit])[0]
    time_codes, periods = _period_codes(data[time])
    params, cov, g = _fe_ols(
        numeric(data[outcome], "twfe_did", "outcome"),
        indicator(data[treated], "twfe_did", "treated")[:, None].astype(float),
        unit_codes,
        time_codes,
        unit_codes,
    )
    est = normal_estimate_fields(float(params[0]), float(np.sqrt(cov[0, 0])), alpha, df=g - 1)
    return TWFEResult(
        **est,
        n=len(data),
        method="twfe_did",
        n_units=int(unit_codes.max() + 1),
        n_periods=len(periods),
        n_clusters=g,
    )


def _launch_index(
    data: pd.DataFrame,
    time: str,
    periods: np.ndarray,
    launch_col: str | None,
    group: str | None,
    launch,
) -> np.ndarray:
    """Each row's launch period index (NaN for never-treated units)."""
    if launch_col is not None:
        first = data[launch_col].to_numpy()
        idx = np.searchsorted(periods, first).astype(float)  # first period on or after launch
        idx[pd.isna(first)] = np.nan
        return idx
    if group is None or launch is None:
        raise ValueError("give launch_col (per-unit launch), or group (0/1 column) and launch")
    start = float(np.searchsorted(periods, np.asarray(launch, dtype=periods.dtype)))
    return np.where(data[group].to_numpy(float) > 0, start, np.nan)


def event_study(
    df: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    launch_col: str | None = None,
    group: str | None = None,
    launch=None,
    leads: int = 4,
    lags: int = 4,
    alpha: float = 0.05,
) -> EventStudyResult:
    """Event study of leads and lags around launch, unit and period FE, errors clustered by unit.

    Say who is treated when either by ``launch_col`` (each unit's launch period, missing for
    never-treated units) or by ``group`` (1 = treated) with one ``launch`` for all. Relative period
    -1 is the reference; periods beyond ``leads``/``lags`` are binned into the end points. The
    leads' joint Wald test is the parallel pre-trend test: ``pretrend_passed`` when p >= 0.05.
    ``effect`` is the mean of the lag coefficients (the average post-launch effect).
    """
    require_columns(df, "event_study", outcome=outcome, unit=unit, time=time, launch_col=launch_col, group=group)
    numeric(df[outcome], "event_study", "outcome")
    if group:
        indicator(df[group].dropna(), "event_study", "group")
    cols = [outcome, unit, time] + [c for c in (launch_col, group) if c]
    data = df[cols].dropna(subset=[outcome, unit, time]).reset_index(drop=True)
    unit_codes = pd.factorize(data[unit])[0]
    time_codes, periods = _period_codes(data[time])
    start = _launch_index(data, time, periods, launch_col, group, launch)
    rel = time_codes - start  # NaN for never treated
    rel = np.clip(rel, -leads, lags)
    names, columns = [], []
    for k in [*range(-leads, -1), *range(lags + 1)]:
        names.append(k)
        columns.append(np.where(rel == k, 1.0, 0.0))
    X = np.column_stack(columns)
    params, cov, g = _fe_ols(data[outcome].to_numpy(float), X, unit_codes, time_codes, unit_codes)
    se = np.sqrt(np.diag(cov))
    crit = sps.t(g - 1).ppf(1 - alpha / 2)
    coefs = pd.DataFrame(
        {
            "rel_period": names,
            "coef": params,
            "std_error": se,
            "ci_low": params - crit * se,
            "ci_high": params + crit * se,
        }
    )
    coefs["kind"] = np.where(coefs["rel_period"] < 0, "lead", "lag")

    lead_idx = np.flatnonzero(np.asarray(names) < 0)
    lag_idx = np.flatnonzero(np.asarray(names) >= 0)
    if len(lead_idx):
        b, V = params[lead_idx], cov[np.ix_(lead_idx, lead_idx)]
        wald = float(b @ np.linalg.solve(V, b))
        q = len(lead_idx)
        # F form of the Wald test with G - 1 denominator df, as for cluster-robust inference.
        pre_p = float(sps.f.sf(wald / q, q, g - 1))
    else:
        pre_p = float("nan")
    w = np.full(len(lag_idx), 1 / len(lag_idx))
    avg = float(w @ params[lag_idx])
    avg_se = float(np.sqrt(w @ cov[np.ix_(lag_idx, lag_idx)] @ w))
    est = normal_estimate_fields(avg, avg_se, alpha, df=g - 1)
    return EventStudyResult(
        **est,
        n=len(data),
        method="event_study",
        coefficients=coefs,
        pretrend_p_value=pre_p,
        pretrend_passed=bool(np.isfinite(pre_p) and pre_p >= CHECK_ALPHA),
    )


def placebo_did(
    df: pd.DataFrame,
    *,
    outcome: str,
    unit: str,
    time: str,
    group: str,
    launch,
    shift: int = 2,
    placebo_launch=None,
    alpha: float = 0.05,
) -> TWFEResult:
    """Placebo test: pretend launch happened earlier and use only pre-launch data.

    The fake launch is ``placebo_launch`` when given, else ``shift`` periods before ``launch``.
    A real effect cannot act before launch, so a significant placebo estimate means the treated
    and control groups were already diverging. ``warnings`` says whether the placebo passed.
    """
    require_columns(df, "placebo_did", outcome=outcome, unit=unit, time=time, group=group)
    numeric(df[outcome], "placebo_did", "outcome")
    data = df.dropna(subset=[outcome, unit, time, group])
    indicator(data[group], "placebo_did", "group")
    periods = np.sort(pd.unique(data[time]))
    true_start = int(np.searchsorted(periods, np.asarray(launch, dtype=periods.dtype)))
    if placebo_launch is not None:
        fake_start = int(np.searchsorted(periods, np.asarray(placebo_launch, dtype=periods.dtype)))
    else:
        fake_start = true_start - shift
    if not 1 <= fake_start < true_start:
        raise ValueError("the placebo launch needs pre-launch periods on both sides of it")
    codes = np.searchsorted(periods, data[time].to_numpy())
    pre = data.loc[codes < true_start].copy()
    pre_codes = codes[codes < true_start]
    pre["_placebo"] = ((pre[group].to_numpy(float) > 0) & (pre_codes >= fake_start)).astype(float)
    res = twfe_did(pre, outcome=outcome, unit=unit, time=time, treated="_placebo", alpha=alpha)
    res.method = "placebo_did"
    passed = res.p_value >= CHECK_ALPHA
    res.warnings.append("placebo passed" if passed else "placebo failed: an 'effect' appears before launch")
    return res
