"""Propensity-score estimates of the effect on the treated (ATT): nearest-neighbour and IPW."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import stats as sps
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

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
    design = sm.add_constant(t[used].astype(float), has_constant="add")
    for col in X.columns:
        x = X[col].to_numpy(float)
        sd = np.sqrt((x[treated].var(ddof=1) + x[~treated].var(ddof=1)) / 2)
        before = (x[treated].mean() - x[~treated].mean()) / sd if sd > 0 else 0.0
        fit = sm.WLS(x[used], design, weights=w_after[used]).fit(cov_type="HC1")
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


def matched_effect(
    df: pd.DataFrame,
    *,
    treatment: str,
    outcome: str,
    covariates: list[str],
    method: str = "nearest",
    caliper: float | None = 0.2,
    trim: tuple[float, float] | None = (0.01, 0.99),
    alpha: float = 0.05,
    seed: int = 0,
    balance_also: Sequence[str] = (),
) -> MatchResult:
    """Average effect on the treated, adjusting for ``covariates`` through the propensity score.

    ``method="nearest"``: each treated unit is matched, with replacement, to the control unit with
    the closest logit propensity score, within ``caliper`` standard deviations of the logit score
    (Austin 2011 recommends 0.2); treated units with no control that close are dropped.
    ``method="ipw"``: controls are weighted by p/(1-p). Units outside ``trim`` propensity bounds
    are dropped first (common support). The standard error is the weighted-regression sandwich
    on the matched/weighted sample (it counts re-used controls, not the propensity model's own
    uncertainty). The estimate is only as good as the no-unmeasured-confounders assumption.
    ``balance_also``: further columns whose balance is checked though the propensity model leaves
    them out (cobalt's ``addl``).
    """
    if method not in {"nearest", "ipw"}:
        raise ValueError("method must be 'nearest' or 'ipw'")
    extra = [c for c in balance_also if c not in covariates]
    data = df[[treatment, outcome, *covariates, *extra]].dropna().reset_index(drop=True)
    t = data[treatment].to_numpy(int)
    y = data[outcome].to_numpy(float)
    Xdf = data[covariates].astype(float)
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
    if not (used & (t == 1)).any() or not (used & (t == 0)).any():
        raise ValueError("no treated unit has a comparable control; loosen caliper or trim")
    design = sm.add_constant(t[used].astype(float))
    fit = sm.WLS(y[used], design, weights=weights[used]).fit(cov_type="HC1")
    est = normal_estimate_fields(float(fit.params[1]), float(fit.bse[1]), alpha)
    return MatchResult(
        **est,
        n=int(used.sum()),
        method=f"matching_{method}",
        balance=balance_table(data[[*covariates, *extra]].astype(float), t, weights),
        n_treated=int(((t == 1) & used).sum()),
        n_control=int(((t == 0) & used).sum()),
        n_treated_unmatched=unmatched,
        n_trimmed=n_trimmed,
        naive_effect=naive,
    )
