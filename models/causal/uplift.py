"""Uplift modelling for randomized campaigns: T-learner scores, Qini / uplift curves (per-segment
readouts: `models.stats.uplift_by_segment`, beside the two-sample test they use).

Curve definitions follow Radcliffe (2007) for Qini and Devriendt et al. (2020) for the uplift
curve, the same ones scikit-uplift (``sklift.metrics``) implements, so the numbers agree with it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.base import clone, is_classifier
from sklearn.ensemble import (
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.model_selection import KFold
from threadpoolctl import threadpool_limits

from models.causal.inputs import indicator, numeric, require_columns


def _design(df: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """Features as numbers: categorical columns one-hot encoded."""
    return pd.get_dummies(df[features], dtype=float)


def _predict(model, X):
    return model.predict_proba(X)[:, 1] if is_classifier(model) else model.predict(X)


def uplift_t_learner(
    df: pd.DataFrame,
    *,
    treatment: str,
    outcome: str,
    features: list[str],
    model=None,
    cv: int | None = 3,
    seed: int = 0,
) -> pd.Series:
    """Per-row uplift score: predicted outcome if treated minus if not (two-model T-learner).

    One model is fit on the treated rows and one on the controls (``model`` is cloned; default a
    shallow histogram gradient-boosting classifier for 0/1 outcomes, regressor otherwise). With ``cv``
    folds each row is scored by models that never saw it, so a Qini curve on the same data is an
    honest out-of-sample check; ``cv=None`` fits once on everything (for scoring new data later).
    """
    require_columns(df, "uplift_t_learner", treatment=treatment, outcome=outcome, features=list(features))
    t = indicator(df[treatment], "uplift_t_learner", "treatment")
    y = numeric(df[outcome], "uplift_t_learner", "outcome")
    X = _design(df, features).to_numpy()
    if model is None:
        binary = set(np.unique(y)).issubset({0.0, 1.0})
        # Shallow, few trees: the uplift is a small difference of two noisy fits, and deep
        # models mostly fit noise into it (and are 5x slower for no gain on our sample data).
        params = {"max_iter": 50, "max_depth": 3, "random_state": seed}
        model = HistGradientBoostingClassifier(**params) if binary else HistGradientBoostingRegressor(**params)
    scores = np.empty(len(df))
    splits = (
        [(np.arange(len(df)), np.arange(len(df)))]
        if cv is None
        else KFold(n_splits=cv, shuffle=True, random_state=seed).split(X)
    )
    # One OpenMP thread: a few features over thousands of rows leave each thread microseconds of work
    # per split, so a second thread only waits, and on a shared machine its spinning cost 50x the
    # CPU of the fits (17 of the 1M run's 123 CPU-s). The trees are the same with any thread count.
    with threadpool_limits(limits=1, user_api="openmp"):
        for train, test in splits:
            tr, ct = train[t[train] == 1], train[t[train] == 0]
            m1 = clone(model).fit(X[tr], y[tr])
            m0 = clone(model).fit(X[ct], y[ct])
            scores[test] = _predict(m1, X[test]) - _predict(m0, X[test])
    return pd.Series(scores, index=df.index, name="uplift")


def _cumulative(y, treatment, score):
    """Cumulative counts after each distinct score, scanning from the highest score down."""
    y, t, s = (np.asarray(a, float) for a in (y, treatment, score))
    order = np.argsort(s, kind="mergesort")[::-1]
    y, t, s = y[order], t[order], s[order]
    # Rows with tied scores cannot be told apart, so the curve only has a point after each tie.
    ends = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    n_all = ends + 1.0
    n_t = np.cumsum(t)[ends]
    y_t = np.cumsum(y * t)[ends]
    y_c = np.cumsum(y * (1 - t))[ends]
    return n_all, n_t, n_all - n_t, y_t, y_c


def _start_at_origin(x, v):
    return np.r_[0.0, x], np.r_[0.0, v]


def qini_curve(y, treatment, score) -> tuple[np.ndarray, np.ndarray]:
    """Qini curve: targeting the top-k by score, treated responders minus scaled control responders.

    Returns ``(k, qini)`` with k the number of units targeted (from 0). qini(k) = Y_t(k) -
    Y_c(k) * N_t(k) / N_c(k): the incremental responders had the top k all been treated.
    """
    n_all, n_t, n_c, y_t, y_c = _cumulative(y, treatment, score)
    ratio = np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c > 0)
    return _start_at_origin(n_all, y_t - y_c * ratio)


def uplift_curve(y, treatment, score) -> tuple[np.ndarray, np.ndarray]:
    """Uplift curve: (response rate treated - response rate control) in the top k, times k."""
    n_all, n_t, n_c, y_t, y_c = _cumulative(y, treatment, score)
    rt = np.divide(y_t, n_t, out=np.zeros_like(y_t), where=n_t > 0)
    rc = np.divide(y_c, n_c, out=np.zeros_like(y_c), where=n_c > 0)
    return _start_at_origin(n_all, (rt - rc) * n_all)


def _area_over_random(x, v) -> float:
    """Area between the curve and the straight line from (0, 0) to its end point."""
    return float(np.trapezoid(v, x) - x[-1] * v[-1] / 2)


def qini_auc(y, treatment, score, normalize: bool = True) -> float:
    """Area between the Qini curve and random targeting; normalized by the perfect model's area.

    The perfect model ranks treated responders first and control responders last (so it also
    captures negative effects). Normalized: 1 = perfect, 0 = no better than random.
    """
    area = _area_over_random(*qini_curve(y, treatment, score))
    if not normalize:
        return area
    y_, t_ = np.asarray(y, float), np.asarray(treatment, float)
    perfect = _area_over_random(*qini_curve(y_, t_, y_ * t_ - y_ * (1 - t_)))
    return area / perfect


def auuc(y, treatment, score, normalize: bool = True) -> float:
    """Area under the uplift curve above random targeting; normalized by the perfect model's area.

    The perfect ranking puts treated responders, then control non-responders first; of the two
    groups that lower uplift (treated non-responders, control responders) the larger goes last.
    """
    area = _area_over_random(*uplift_curve(y, treatment, score))
    if not normalize:
        return area
    y_, t_ = np.asarray(y, float), np.asarray(treatment, float)
    control_responders = np.sum((y_ == 1) & (t_ == 0))
    treated_non_responders = np.sum((y_ == 0) & (t_ == 1))
    tiebreak = y_ if control_responders > treated_non_responders else t_
    perfect = _area_over_random(*uplift_curve(y_, t_, 2 * (y_ == t_) + tiebreak))
    return area / perfect
