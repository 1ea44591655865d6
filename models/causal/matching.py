"""Propensity-score estimates of the effect on the treated (ATT): nearest-neighbour and IPW."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.api as sm
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import NearestNeighbors
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from models.causal.results import Estimate, normal_estimate_fields

# A standardized mean difference above 0.1 is the usual sign of meaningful imbalance
# (Austin 2009, Statistics in Medicine 28:3083).
SMD_FLAG = 0.1


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
        """True when no covariate's standardized mean difference after matching exceeds 0.1."""
        return bool(len(self.balance)) and not bool(self.balance["flagged"].any())


def propensity_scores(X: np.ndarray, t: np.ndarray, seed: int = 0) -> np.ndarray:
    """P(treated | X) from an unpenalized logistic regression on standardized covariates."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=np.inf, max_iter=5000, random_state=seed))
    model.fit(X, t)
    return model.predict_proba(X)[:, 1]


def _weighted_mean_var(x: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    m = np.average(x, weights=w)
    return float(m), float(np.average((x - m) ** 2, weights=w))


def balance_table(X: pd.DataFrame, t: np.ndarray, w_after: np.ndarray) -> pd.DataFrame:
    """Standardized mean differences before (all units) and after (matched/weighted) adjustment.

    Both use the pre-adjustment pooled standard deviation, so a fall in SMD is a fall in the mean
    gap, not a change of yardstick.
    """
    rows = []
    treated = t == 1
    for col in X.columns:
        x = X[col].to_numpy(float)
        sd = np.sqrt((x[treated].var(ddof=1) + x[~treated].var(ddof=1)) / 2)
        before = (x[treated].mean() - x[~treated].mean()) / sd if sd > 0 else 0.0
        keep_t, keep_c = treated & (w_after > 0), ~treated & (w_after > 0)
        mt, _ = _weighted_mean_var(x[keep_t], w_after[keep_t])
        mc, _ = _weighted_mean_var(x[keep_c], w_after[keep_c])
        after = (mt - mc) / sd if sd > 0 else 0.0
        rows.append(
            {
                "covariate": col,
                "smd_before": float(before),
                "smd_after": float(after),
                "flagged": bool(abs(after) > SMD_FLAG),
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
) -> MatchResult:
    """Average effect on the treated, adjusting for ``covariates`` through the propensity score.

    ``method="nearest"``: each treated unit is matched, with replacement, to the control unit with
    the closest logit propensity score, within ``caliper`` standard deviations of the logit score
    (Austin 2011 recommends 0.2); treated units with no control that close are dropped.
    ``method="ipw"``: controls are weighted by p/(1-p). Units outside ``trim`` propensity bounds
    are dropped first (common support). The standard error is the weighted-regression sandwich
    on the matched/weighted sample (it counts re-used controls, not the propensity model's own
    uncertainty). The estimate is only as good as the no-unmeasured-confounders assumption.
    """
    if method not in {"nearest", "ipw"}:
        raise ValueError("method must be 'nearest' or 'ipw'")
    data = df[[treatment, outcome, *covariates]].dropna().reset_index(drop=True)
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
        balance=balance_table(Xdf, t, weights),
        n_treated=int(((t == 1) & used).sum()),
        n_control=int(((t == 0) & used).sum()),
        n_treated_unmatched=unmatched,
        n_trimmed=n_trimmed,
        naive_effect=naive,
    )
