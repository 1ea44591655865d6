"""Propensity-score estimates of the effect on the treated (ATT): nearest-neighbour and IPW."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as sps
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

# (not statsmodels.api, which loads every model it has: ~0.25 CPU-s of each run)
from statsmodels.regression.linear_model import WLS
from statsmodels.tools.tools import add_constant

from models.causal.inputs import indicator, listed, numeric, require_columns
from models.causal.results import Estimate, normal_estimate_fields

# A standardized mean difference above 0.1 is the usual sign of meaningful imbalance
# (Austin 2009, Statistics in Medicine 28:3083; cobalt's customary threshold).
SMD_FLAG = 0.1
# ... but a fixed 0.1 ignores sampling noise: the SMD of a covariate balanced by design has a
# standard deviation of about sqrt(2/n) at n per arm (0.14 at 100), so at ~100 treated accounts a
# sample weighted on exactly the covariates of the selection exceeded 0.1 on 33-58 % of draws
# (benchmarks/calibration.py). A covariate is flagged only when its SMD after adjustment also
# exceeds what chance gives a sample balanced in expectation: family-wise false-alarm rate at most
# BALANCE_ALPHA over all the covariates checked (Bonferroni).
BALANCE_ALPHA = 0.05


@dataclass
class MatchResult(Estimate):
    """ATT with the balance table and how many units the matching kept."""

    balance: pd.DataFrame = field(default_factory=pd.DataFrame)
    n_treated: int = 0
    n_control: int = 0
    n_treated_unmatched: int = 0
    n_trimmed: int = 0
    naive_effect: float = float("nan")

    @property
    def balanced(self) -> bool:
        """True when no covariate is flagged: see :func:`balance_table`."""
        return bool(len(self.balance)) and not bool(self.balance["flagged"].any())


def propensity_scores(X: np.ndarray, t: np.ndarray, seed: int = 0) -> np.ndarray:
    """P(treated | X) from an unpenalized logistic regression on standardized covariates."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=np.inf, max_iter=5000, random_state=seed))
    model.fit(X, t)
    return model.predict_proba(X)[:, 1]


def balance_table(
    X: pd.DataFrame,
    t: np.ndarray,
    w_after: np.ndarray,
    *,
    threshold: float = SMD_FLAG,
    alpha: float = BALANCE_ALPHA,
) -> pd.DataFrame:
    """Standardized mean differences before (all units) and after (matched/weighted) adjustment.

    Both use the pre-adjustment pooled standard deviation, so a fall in SMD is a fall in the mean
    gap, not a change of yardstick (cobalt's convention). ``smd_se`` is the standard error of the
    SMD after adjustment: the weighted mean difference's sandwich (HC1) standard error from the
    same weighted regression as the effect's, over that yardstick, so it shrinks with the
    effective sample size. A covariate is ``flagged`` when
    ``|smd_after| > smd_threshold = max(threshold, z(1 - alpha / (2k)) * smd_se)`` over the ``k``
    covariates checked: the imbalance is both practically large (above 0.1) and larger than
    chance gives a sample balanced in expectation, so data whose selection the weights remove
    raise a flag on at most ``alpha`` of samples whatever their size, and a large sample does not
    flag a trivial SMD. The sandwich treats the weights as fixed; a propensity score estimated
    on the same data balances a little better than that, so the rate is at most ``alpha``.
    """
    rows = []
    treated = t == 1
    used = w_after > 0
    crit = float(sps.norm.isf(alpha / (2 * max(X.shape[1], 1))))
    design = add_constant(t[used].astype(float), has_constant="add")
    for col in X.columns:
        x = X[col].to_numpy(float)
        sd = np.sqrt((x[treated].var(ddof=1) + x[~treated].var(ddof=1)) / 2)
        before = (x[treated].mean() - x[~treated].mean()) / sd if sd > 0 else 0.0
        fit = WLS(x[used], design, weights=w_after[used]).fit(cov_type="HC1")
        gap, gap_se = float(fit.params[1]), float(fit.bse[1])  # weighted mean treated - control
        after = gap / sd if sd > 0 else 0.0
        smd_se = gap_se / sd if sd > 0 and np.isfinite(gap_se) else 0.0
        bar = max(threshold, crit * smd_se)
        rows.append(
            {
                "covariate": col,
                "smd_before": float(before),
                "smd_after": float(after),
                "smd_se": float(smd_se),
                "smd_threshold": float(bar),
                "flagged": bool(abs(after) > bar),
            }
        )
    return pd.DataFrame(rows)


# the refusal when the trim (or, for nearest, the caliper) leaves an arm empty
NO_COMPARABLE = "no treated unit has a comparable control; loosen caliper or trim"


def matched_effect(
    df: pd.DataFrame,
    *,
    treatment: str,
    outcome: str,
    covariates: list[str],
    method: str = "nearest",
    caliper: float | None = 0.2,
    trim: tuple[float, float] | None = (0.05, 0.95),
    alpha: float = 0.05,
    seed: int = 0,
    balance_also: Sequence[str] = (),
) -> MatchResult:
    """Average effect on the treated, adjusting for ``covariates`` through the propensity score.

    ``method="nearest"``: each treated unit is matched, with replacement, to the control unit with
    the closest logit propensity score, within ``caliper`` standard deviations of the logit score
    (Austin 2011 recommends 0.2); treated units with no control that close are dropped.
    ``method="ipw"``: controls are weighted by p/(1-p). Units outside ``trim`` propensity bounds
    are dropped first (common support), so the effect is the treated's within it. The bounds are
    0.05-0.95 (Crump et al. 2009 argue for 0.1-0.9): at 0.01-0.99 a control scored 0.99 weighs 99,
    and where few controls resemble the heaviest treated units IPW's 95% interval covered the truth
    on 78 of 100 samples of 1,000 units (92 at 0.05-0.95: benchmarks/calibration.py,
    ``matching_overlap``). The standard errors allow for the propensity score being estimated on
    the same data: for IPW the sandwich of the logistic score stacked with the
    weighted means (:func:`ipw_att_se`), for nearest-neighbour matching Abadie & Imbens' variance
    with their 2016 adjustment for the estimated score (:func:`nearest_att_se`). The weighted-
    regression sandwich that treated weights and matches as fixed overstated them 1.5-1.8 times
    (benchmarks/calibration.py). The estimate is only as good as the no-unmeasured-confounders
    assumption.
    ``balance_also``: further columns whose balance is checked though the propensity model leaves
    them out (cobalt's ``addl``).
    Raises ValueError when fewer than two units of either arm are left to compare (after the trim,
    and the caliper for ``nearest``): one unit has no spread to give a standard error.
    """
    if method not in {"nearest", "ipw"}:
        raise ValueError("method must be 'nearest' or 'ipw'")
    fn = f"matched_effect ({method})"
    if not len(covariates):
        raise ValueError(f"{fn}: covariates is empty: the propensity score needs at least one column")
    extra = [c for c in balance_also if c not in covariates]
    require_columns(
        df, fn, treatment=treatment, outcome=outcome, covariates=list(covariates), balance_also=list(balance_also)
    )
    data = df[[treatment, outcome, *covariates, *extra]].dropna().reset_index(drop=True)
    t = indicator(data[treatment], fn, "treatment")
    y = numeric(data[outcome], fn, "outcome")
    for c in [*covariates, *extra]:
        data[c] = numeric(data[c], fn, "covariates" if c in covariates else "balance_also")
    Xdf = data[covariates]
    naive = float(y[t == 1].mean() - y[t == 0].mean())
    ps = propensity_scores(Xdf.to_numpy(), t, seed)

    keep = np.ones(len(t), bool)
    if trim is not None:
        keep = (ps >= trim[0]) & (ps <= trim[1])
    n_trimmed = int((~keep).sum())
    eps = 1e-12  # keeps the logit finite for scores the solver rounds to 0 or 1
    logit = np.log(np.clip(ps, eps, 1 - eps) / np.clip(1 - ps, eps, 1 - eps))

    weights = np.zeros(len(t))
    unmatched = 0
    if method == "nearest":
        treated_idx = np.flatnonzero((t == 1) & keep)
        control_idx = np.flatnonzero((t == 0) & keep)
        if not len(treated_idx) or not len(control_idx):  # (the neighbour search needs both)
            raise ValueError(NO_COMPARABLE)
        if np.ptp(logit[keep]) < 1e-9:
            # every score ties: each treated unit "matched" the first control at distance 0 (within
            # any caliper), and the refusal that followed blamed the caliper or trim
            raise ValueError(
                f"{fn}: every unit has the same propensity score (covariates {listed(covariates)} do not "
                "vary): nothing to match on"
            )
        nn = NearestNeighbors(n_neighbors=1).fit(logit[control_idx, None])
        dist, pos = nn.kneighbors(logit[treated_idx, None])
        dist, matched_controls = dist[:, 0], control_idx[pos[:, 0]]
        ok = np.ones(len(treated_idx), bool)
        if caliper is not None:
            ok = dist <= caliper * logit[keep].std(ddof=1)
        unmatched = int((~ok).sum())
        weights[treated_idx[ok]] = 1.0
        # A control matched k times stands in for k treated units.
        np.add.at(weights, matched_controls[ok], 1.0)
    else:
        weights[(t == 1) & keep] = 1.0
        c = (t == 0) & keep
        weights[c] = ps[c] / (1 - ps[c])

    used = weights > 0
    n_treated, n_control = int((used & (t == 1)).sum()), int((used & (t == 0)).sum())
    if not n_treated or not n_control:
        raise ValueError(NO_COMPARABLE)
    if n_treated < 2 or n_control < 2:
        # one unit of an arm has no spread to estimate: its standard error came out 0 (with numpy's
        # divide warnings), a certainty the data do not hold
        dropped = f"{n_trimmed} of {len(t)} units outside the trim" + (
            f", {unmatched} treated unmatched" if unmatched else ""
        )
        raise ValueError(
            f"{n_treated} treated and {n_control} control units left to compare ({dropped}): "
            "too few for a standard error; loosen caliper or trim"
        )
    design = add_constant(t[used].astype(float))
    # (only the point estimate: the standard errors are the estimated-score sandwiches below)
    fit = WLS(y[used], design, weights=weights[used]).fit()
    Z = _standardized(Xdf.to_numpy(float))
    if method == "ipw":
        se = ipw_att_se(y, t, Z, ps, keep)
    else:
        matched = np.full(len(t), -1)
        matched[treated_idx[ok]] = matched_controls[ok]
        se = nearest_att_se(y, t, Z, ps, keep, matched, float(fit.params[1]))
    est = normal_estimate_fields(float(fit.params[1]), se, alpha)
    return MatchResult(
        **est,
        n=int(used.sum()),
        method=f"matching_{method}",
        balance=balance_table(data[[*covariates, *extra]].astype(float), t, weights),
        n_treated=n_treated,
        n_control=n_control,
        n_treated_unmatched=unmatched,
        n_trimmed=n_trimmed,
        naive_effect=naive,
    )


# -- standard errors that allow for the estimated propensity score -----------------------------------
# The logistic propensity model is fitted on the same data, and for the effect on the treated that
# changes the estimator's variance (Abadie & Imbens 2016, Econometrica 84:781): the weighted-regression
# sandwich that treats the weights or matches as fixed overstated the standard error of both estimators
# by a factor of ~1.5 (IPW) and ~1.8 (nearest) on benchmarks/calibration.py's own matching DGP.
NEIGHBOURS_LOCAL = 4  # units per group whose outcomes and covariates estimate E[.|p] and cov(X, Y | p)
NEIGHBOURS_VARIANCE = 2  # other controls whose outcomes estimate a control's conditional variance


def _standardized(X: np.ndarray) -> np.ndarray:
    """The covariates that vary, standardized. A constant one adds nothing to the score, and its column
    of zeros made the logistic information singular (numpy's "Singular matrix" came out of IPW)."""
    sd = X.std(axis=0)
    varies = sd > 0
    return (X[:, varies] - X[:, varies].mean(axis=0)) / sd[varies]


def _logit_information(Zc: np.ndarray, ps: np.ndarray) -> np.ndarray:
    """Fisher information per unit of the logistic model: mean of p(1-p)·z z'."""
    return (Zc * (ps * (1 - ps))[:, None]).T @ Zc / len(ps)


def ipw_att_se(y: np.ndarray, t: np.ndarray, Z: np.ndarray, ps: np.ndarray, keep: np.ndarray) -> float:
    """Standard error of the IPW (odds-weighted, normalized) ATT, stacked with the logistic score.

    The M-estimation sandwich of the joint estimating equations: the logistic score ``z(t - p)``
    (``z`` = 1 and the standardized covariates, all units), ``t(y - mu1) = 0`` and
    ``(1 - t) w (y - mu0) = 0`` with ``w = p/(1 - p)`` over the units kept by the trim (Lunceford &
    Davidian 2004, Statistics in Medicine 23:2937, for the ATE; Reifeis & Hudgens 2022, American
    Journal of Epidemiology 191:1092, for these ATT weights). ``effect = mu1 - mu0``; its influence
    function carries the propensity model's through ``dw/dbeta = w z``.
    """
    N = len(t)
    Zc = np.column_stack([np.ones(N), Z])
    W = ((t == 1) & keep).astype(float)
    C = ((t == 0) & keep).astype(float)
    # the odds weight of the kept controls only: a unit the trim dropped may have a score of 1 (its
    # weight, inf, times 0 was NaN: perfect separation gave every estimate a NaN standard error)
    w = np.zeros(N)
    w[C > 0] = ps[C > 0] / (1 - ps[C > 0])
    mu1 = float(W @ y / W.sum())
    d0 = float((C * w).sum())
    mu0 = float((C * w) @ y / d0)
    info = _logit_information(Zc, ps)
    if_beta = np.linalg.solve(info, (Zc * (t - ps)[:, None]).T).T  # per-unit influence of beta
    H0 = (Zc * (C * w * (y - mu0))[:, None]).sum(axis=0) / N
    phi1 = W * (y - mu1) / (W.sum() / N)
    phi0 = (C * w * (y - mu0) + if_beta @ H0) / (d0 / N)
    phi = phi1 - phi0
    dof = N / max(N - Zc.shape[1] - 2, 1)
    return float(np.sqrt(dof * (phi @ phi)) / N)


def _local(logit: np.ndarray, pool: np.ndarray, query: np.ndarray, k: int):
    """Indices into ``pool`` of the k units nearest each ``query`` unit in the logit score."""
    k = min(k, len(pool))
    nn = NearestNeighbors(n_neighbors=k).fit(logit[pool, None])
    return pool[nn.kneighbors(logit[query, None], return_distance=False)]


def nearest_att_se(
    y: np.ndarray,
    t: np.ndarray,
    Z: np.ndarray,
    ps: np.ndarray,
    keep: np.ndarray,
    matched: np.ndarray,
    tau: float,
) -> float:
    """Standard error of 1:1 nearest-neighbour matching on the estimated propensity score (ATT).

    ``matched[i]`` is the control matched to treated unit ``i`` (-1: unmatched or not treated).
    First the variance for a known score (Abadie & Imbens 2006, Econometrica 74:235; Abadie, Drukker,
    Herr & Imbens 2004, Stata Journal 4:290): ``(1/N1²)[Σ_treated (y_i - y_m(i) - tau)² + Σ_controls
    K_j(K_j - 1)·s²_j]``, ``K_j`` the times control ``j`` is used and ``s²_j`` its outcome's
    conditional variance from its nearest other controls. Then Abadie & Imbens' (2016, Econometrica
    84:781, Theorem 2) adjustment for a score estimated by logistic maximum likelihood:
    ``+ (-c' I⁻¹ c + d' I⁻¹ d) / N``, with ``I`` the logistic model's information per unit,
    ``c = (1/N1) Σ_i f_i [cov(X, mu1 | p_i) + p_i/(1-p_i)·cov(X, mu0 | p_i) + E[X | p_i](tau(p_i) - tau)]``
    (``f = p(1-p)``, the logistic density at the index; the covariance of the estimator with the
    score) and ``d = dtau/dtheta``, which the theorem's ``c`` gives as
    ``d = c - (1/N1) Σ_i p_i cov(X, mu0 | p_i)`` (only the imputed control outcomes move with the
    score: this form needs no regression of the outcome on X). The conditional moments are local:
    the ``NEIGHBOURS_LOCAL`` units of each group nearest in the logit score (no covariance for a
    constant). Units the trim or caliper dropped are outside the estimand; the score still uses
    every unit, as the fit did. If sampling noise made the adjusted variance non-positive the
    known-score variance is kept.
    """
    N_all = len(t)
    Zc = np.column_stack([np.ones(N_all), Z])
    eps = 1e-12
    logit = np.log(np.clip(ps, eps, 1 - eps) / np.clip(1 - ps, eps, 1 - eps))
    treated = np.flatnonzero(matched >= 0)
    controls = np.flatnonzero((t == 0) & keep)
    n1 = len(treated)
    gap = y[treated] - y[matched[treated]] - tau
    K = np.bincount(matched[treated], minlength=N_all).astype(float)
    reused = controls[K[controls] > 1]
    s2 = np.zeros(N_all)
    if len(reused) and len(controls) > 1:
        J = min(NEIGHBOURS_VARIANCE, len(controls) - 1)
        nb = _local(logit, controls, reused, J + 1)  # the unit itself is among its own nearest
        others = np.array([[j for j in row if j != u][:J] for row, u in zip(nb, reused)])
        s2[reused] = J / (J + 1) * (y[reused] - y[others].mean(axis=1)) ** 2
    v_known = float((gap @ gap + (K * (K - 1)) @ s2) / n1**2)

    sample = np.concatenate([treated, controls])
    L = NEIGHBOURS_LOCAL
    if n1 < 2 or len(controls) < 2:
        return float(np.sqrt(v_known))

    def moments(pool):
        idx = _local(logit, pool, sample, L)  # (len(sample), L)
        Xn, Yn = Zc[idx], y[idx]  # (s, L, k), (s, L)
        Xm, Ym = Xn.mean(axis=1), Yn.mean(axis=1)
        cov = np.einsum("slk,sl->sk", Xn - Xm[:, None, :], Yn - Ym[:, None]) / max(idx.shape[1] - 1, 1)
        return Xm, Ym, cov

    X1, Y1, cov1 = moments(treated)
    X0, Y0, cov0 = moments(controls)
    p = ps[sample]
    f = p * (1 - p)
    share1 = n1 / len(sample)
    Xbar = share1 * X1 + (1 - share1) * X0  # E[X | p]: both groups' local means (balanced given p)
    tau_p = Y1 - Y0
    c = (f[:, None] * (cov1 + (p / (1 - p))[:, None] * cov0 + Xbar * (tau_p - tau)[:, None])).sum(axis=0) / n1
    d = c - (p[:, None] * cov0).sum(axis=0) / n1
    info = _logit_information(Zc, ps)
    adj = float(-c @ np.linalg.solve(info, c) + d @ np.linalg.solve(info, d)) / N_all
    v = v_known + adj
    return float(np.sqrt(v if v > 0 else v_known))
