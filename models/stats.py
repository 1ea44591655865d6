"""Statistics behind ``marts.experiment_results`` and ``marts.initiative_roi``, for analysts too.

Pure functions on pandas / numpy; the marts call them, and an analyst can call them on their own
data. Every estimator returns a small dataclass with ``effect, std_error, p_value, ci_low,
ci_high, n`` (plus named extras) and ``to_dict()``; ``ab_readout`` returns a DataFrame.

A/B conventions follow GrowthBook's gbstats 0.8 so that its published test fixtures reproduce:
Welch t with Welch–Satterthwaite df, proportion variance p(1-p) for binary outcomes, delta-method
relative lift, CUPED with one theta pooled over both arms, and asymptotic confidence sequences
(Howard et al. 2021, normal mixture) for always-valid sequential readouts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf
from scipy import stats as sps
from statsmodels.stats.power import TTestIndPower

from models.causal.inputs import ColumnNotFound, indicator, numeric, require_columns
from models.causal.its import ITSResult, before_after, interrupted_time_series
from models.causal.matching import MatchResult, matched_effect
from models.causal.panel import (
    EventStudyResult,
    TWFEResult,
    event_study,
    placebo_did,
    twfe_did,
)
from models.causal.results import Estimate, normal_estimate_fields
from models.causal.uplift import (
    auuc,
    qini_auc,
    qini_curve,
    uplift_curve,
    uplift_t_learner,
)
from tracking_plan.power import normal_power, normal_sample_size, proportion_effectsize

# GrowthBook flags a sample-ratio mismatch below this p-value (DEFAULT_SRM_THRESHOLD); a looser
# threshold would fire on many healthy experiments because the marts check every experiment daily.
SRM_THRESHOLD = 0.001
# GrowthBook's default sequential_tuning_parameter: the total sample size at which the
# confidence sequence is tightest; below or above it the sequence is a little wider.
DEFAULT_TUNING = 5000.0


# --------------------------------------------------------------------------------------------
# Sufficient statistics and the two-sample test
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArmStats:
    """One arm's sufficient statistics: n, sum, sum of squares (and the pre-period covariate's).

    ``binary`` arms use the proportion variance p(1-p), as GrowthBook's ProportionStatistic.
    """

    n: int
    sum: float
    sum_squares: float
    binary: bool = False
    pre_sum: float | None = None
    pre_sum_squares: float | None = None
    sum_of_products: float | None = None  # Σ post·pre, for CUPED
    pre_binary: bool = False

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n else float("nan")

    @property
    def var(self) -> float:
        return _variance(self.n, self.sum, self.sum_squares, self.binary)

    @property
    def has_pre(self) -> bool:
        return self.pre_sum is not None

    @property
    def pre_mean(self) -> float:
        return self.pre_sum / self.n

    @property
    def pre_var(self) -> float:
        return _variance(self.n, self.pre_sum, self.pre_sum_squares, self.pre_binary)

    @property
    def cov(self) -> float:
        """Covariance of outcome and pre-period covariate within the arm.

        Divided by n when both are 0/1, like the proportion variance p(1-p), else by n - 1
        (GrowthBook's convention; its CUPED proportion fixture depends on it).
        """
        if self.n < 2:
            return float("nan")
        dof = self.n if (self.binary and self.pre_binary) else self.n - 1
        return (self.sum_of_products - self.sum * self.pre_sum / self.n) / dof

    def __add__(self, other: ArmStats) -> ArmStats:
        def add(a, b):
            return None if a is None or b is None else a + b

        return ArmStats(
            self.n + other.n,
            self.sum + other.sum,
            self.sum_squares + other.sum_squares,
            self.binary and other.binary,
            add(self.pre_sum, other.pre_sum),
            add(self.pre_sum_squares, other.pre_sum_squares),
            add(self.sum_of_products, other.sum_of_products),
            self.pre_binary and other.pre_binary,
        )


def _variance(n: float, s: float, ss: float, binary: bool) -> float:
    if n < 2:
        return float("nan")
    if binary:
        p = s / n
        return p * (1 - p)
    return (ss - s * s / n) / (n - 1)


@dataclass
class TTestResult(Estimate):
    """A two-arm comparison: ``effect`` is absolute (B - A) or relative ((B - A) / A)."""

    relative: bool = False
    df: float = float("nan")
    theta: float | None = None  # CUPED coefficient when a pre-period covariate was used
    sequential: bool = False
    error: str | None = None


def cuped_theta(a: ArmStats, b: ArmStats) -> float:
    """CUPED's theta: cov(post, pre) / var(pre) over both arms pooled (GrowthBook's choice).

    Pooling keeps theta independent of the treatment, so the adjustment cannot create an effect.
    """
    pooled = a + b
    var_pre = pooled.pre_var
    return pooled.cov / var_pre if var_pre > 0 else 0.0


def confidence_sequence(est, se, n, alpha: float = 0.05, tuning: float = DEFAULT_TUNING):
    """Always-valid (1 - alpha) confidence sequence around ``est``; works elementwise on arrays.

    The asymptotic normal-mixture sequence of Howard, Ramdas, McAuliffe & Sekhon (2021, Annals of
    Statistics), parametrised as GrowthBook does: ``n`` is the total sample size of both arms,
    ``se`` the usual standard error of ``est`` and ``tuning`` the sample size where the sequence is
    tightest. Returns ``(low, high)``. Checking it after every batch keeps the chance that it ever
    excludes the truth at or below ``alpha``.
    """
    est, se, n = np.asarray(est, float), np.asarray(se, float), np.asarray(n, float)
    rho2 = (-2 * np.log(alpha) + np.log(-2 * np.log(alpha) + 1)) / tuning
    s2 = se**2 * n  # per-unit variance of the estimator
    nr2 = n * rho2
    half = np.sqrt(s2 * 2 * (nr2 + 1) / (n * nr2) * np.log(np.sqrt(nr2 + 1) / alpha))
    return est - half, est + half


def sequential_p_value(est, se, n, alpha: float = 0.05, tuning: float = DEFAULT_TUNING):
    """Smallest alpha at which the confidence sequence (rho fixed by ``alpha``) excludes 0, capped at 1."""
    est, se, n = np.asarray(est, float), np.asarray(se, float), np.asarray(n, float)
    rho2 = (-2 * np.log(alpha) + np.log(-2 * np.log(alpha) + 1)) / tuning
    nr2 = n * rho2
    p = np.sqrt(nr2 + 1) * np.exp(-(est**2) * n * nr2 / (2 * se**2 * n * (nr2 + 1)))
    return np.minimum(p, 1.0)


def ttest_from_stats(
    a: ArmStats,
    b: ArmStats,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    sequential: bool = False,
    tuning: float = DEFAULT_TUNING,
    cuped: bool | None = None,
    alternative: str = "two-sided",
) -> TTestResult:
    """Compare arm ``b`` with control ``a`` from sufficient statistics.

    Welch t with Welch–Satterthwaite df; with pre-period sums on both arms (or ``cuped=True``) the
    CUPED estimate with df = n_A + n_B - 2; with ``sequential`` the confidence sequence instead of
    the fixed-horizon interval (normal, so valid under continuous monitoring). ``alternative``
    ``"greater"`` (treatment above control) or ``"less"`` gives GrowthBook's one-sided tests: a
    half-infinite interval and the one-sided p-value (sequential: its one-sided confidence
    sequence, p-value capped at 0.4999 as gbstats' bisection is).
    """
    if alternative not in ("two-sided", "greater", "less"):
        raise ValueError("alternative must be 'two-sided', 'greater' or 'less'")
    use_cuped = (a.has_pre and b.has_pre) if cuped is None else cuped
    n = a.n + b.n
    method = "cuped" if use_cuped else "welch_t"
    if sequential:
        method += "+sequential"
    base = {"n": n, "method": method, "relative": relative, "sequential": sequential}
    problem = None
    if a.n < 2 or b.n < 2:
        problem = "fewer than 2 units in an arm"
    elif not (a.var > 0 and b.var > 0):
        problem = "zero or negative variance"
    if problem:
        return TTestResult(
            effect=float("nan"),
            std_error=float("nan"),
            p_value=float("nan"),
            ci_low=float("nan"),
            ci_high=float("nan"),
            error=problem,
            **base,
        )
    if relative and a.mean == 0:
        return TTestResult(
            effect=float("nan"),
            std_error=float("nan"),
            p_value=float("nan"),
            ci_low=float("nan"),
            ci_high=float("nan"),
            error="control mean is zero",
            **base,
        )

    ma, mb, va, vb = a.mean, b.mean, a.var, b.var
    theta = None
    if use_cuped:
        theta = cuped_theta(a, b)
        adj_var_a = va + theta**2 * a.pre_var - 2 * theta * a.cov
        adj_var_b = vb + theta**2 * b.pre_var - 2 * theta * b.cov
        diff = (mb - ma) - theta * (b.pre_mean - a.pre_mean)
        if relative:
            effect = diff / ma
            # GrowthBook's frequentist_variance_relative_cuped: the control-arm term keeps the
            # covariance between the adjusted difference and the control mean in the denominator.
            control_term = (va * mb**2 / ma**2 - 2 * theta * a.cov * mb / ma + theta**2 * a.pre_var) / (a.n * ma**2)
            var = adj_var_b / (b.n * ma**2) + control_term
        else:
            effect = diff
            var = adj_var_a / a.n + adj_var_b / b.n
        df = float(n - 2)
    else:
        if relative:
            effect = (mb - ma) / ma
            var = vb / (b.n * ma**2) + va * mb**2 / (a.n * ma**4)
        else:
            effect = mb - ma
            var = va / a.n + vb / b.n
        ga, gb = va / a.n, vb / b.n
        df = (ga + gb) ** 2 / (ga**2 / (a.n - 1) + gb**2 / (b.n - 1))
    se = math.sqrt(var) if var > 0 else float("nan")
    if alternative != "two-sided":
        fields_ = _one_sided_fields(effect, se, n, df, alpha, alternative == "less", sequential, tuning)
    elif sequential:
        lo, hi = confidence_sequence(effect, se, n, alpha, tuning)
        fields_ = {
            "effect": effect,
            "std_error": se,
            "ci_low": float(lo),
            "ci_high": float(hi),
            "p_value": float(sequential_p_value(effect, se, n, alpha, tuning)),
        }
    else:
        fields_ = normal_estimate_fields(effect, se, alpha, df=df)
    return TTestResult(**fields_, df=df, theta=theta, **base)


def _one_sided_fields(effect, se, n, df, alpha, lesser, sequential, tuning) -> dict:
    """Interval and p-value of a one-sided test (GrowthBook's OneSided / SequentialOneSided TTests)."""
    if not (se > 0 and math.isfinite(se)):  # no interval and no p-value: the two-sided form's NaNs
        return normal_estimate_fields(effect, se, alpha)
    if sequential:
        # rho as for a two-sided sequence at 2 alpha; half-width of Howard et al.'s one-sided boundary
        a2 = 2 * alpha
        nr2 = n * (-2 * math.log(a2) + math.log(-2 * math.log(a2) + 1)) / tuning
        s2 = se**2 * n
        scale = s2 * 2 * (nr2 + 1) / (n * nr2)
        root = math.sqrt(nr2 + 1)
        half = math.sqrt(scale * math.log(1 + root / (2 * alpha)))
        p = _one_sided_sequential_p(effect, scale, root, lesser)
    else:
        dist = sps.t(df)
        half = float(dist.ppf(1 - alpha)) * se
        p = float(dist.cdf(effect / se) if lesser else dist.sf(effect / se))
    lo, hi = (-math.inf, effect + half) if lesser else (effect - half, math.inf)
    return {
        "effect": float(effect),
        "std_error": float(se),
        "p_value": float(p),
        "ci_low": float(lo),
        "ci_high": float(hi),
    }


def _one_sided_sequential_p(effect, scale, root, lesser) -> float:
    """gbstats' p-value of a one-sided confidence sequence: the alpha in [1e-5, 0.4999] at which the
    bound touches 0, found by the same bisection (tolerance 1e-6 on the bound), so that the answer
    agrees with GrowthBook's to its last reported digit (the closed form differs by ~1e-4)."""

    def bound(a):
        half = math.sqrt(scale * math.log(1 + root / (2 * a)))
        return effect + half if lesser else effect - half

    lo_a, hi_a = 1e-5, 0.4999
    if (bound(lo_a) < 0) if lesser else (bound(lo_a) > 0):
        return lo_a
    if (bound(hi_a) > 0) if lesser else (bound(hi_a) < 0):
        return hi_a
    a, diff, iters = 0.5 * (lo_a + hi_a), 0.0, 0
    for iters in range(100):
        diff = bound(a)
        if (diff > 0) if lesser else (diff < 0):
            lo_a = a
        else:
            hi_a = a
        a = 0.5 * (lo_a + hi_a)
        if abs(diff) < 1e-6:
            break
    return a if abs(diff) < 1e-6 and iters != 100 else float("nan")


def srm_p_value(counts: Sequence[float], weights: Sequence[float] | None = None) -> float:
    """Sample-ratio-mismatch test: Pearson chi-square of arm counts against planned weights."""
    counts = np.asarray(counts, float)
    w = np.ones_like(counts) if weights is None else np.asarray(weights, float)
    expected = counts.sum() * w / w.sum()
    return float(sps.chisquare(counts, f_exp=expected).pvalue)


# --------------------------------------------------------------------------------------------
# Power and sample size
# --------------------------------------------------------------------------------------------
def _effect_size(baseline_rate, mde, relative, sd, baseline_mean) -> tuple[float, bool]:
    """Standardized effect (Cohen's h for rates, d for means) and whether it is a proportion."""
    if sd is None:
        if baseline_rate is None:
            raise ValueError("give baseline_rate for a conversion metric, or sd for a mean")
        p1 = baseline_rate * (1 + mde) if relative else baseline_rate + mde
        if not 0 < p1 < 1:
            raise ValueError(f"baseline and MDE imply an impossible rate {p1:.4f}")
        return abs(float(proportion_effectsize(p1, baseline_rate))), True
    if not sd > 0:  # (a metric every unit has the same value of: no effect is measured in its sd)
        raise ValueError(f"a mean metric needs a positive sd, not {sd}")
    centre = baseline_mean if baseline_mean is not None else baseline_rate
    if relative and centre is None:
        raise ValueError("a relative MDE on a mean needs baseline_mean")
    delta = mde * centre if relative else mde
    return abs(delta / sd), False


def sample_size(
    baseline_rate: float | None = None,
    mde: float = 0.05,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    relative: bool = True,
    sd: float | None = None,
    baseline_mean: float | None = None,
) -> int:
    """Units needed in the control arm (the treatment arm needs ``ratio`` times as many).

    A conversion metric takes ``baseline_rate`` (normal approximation on Cohen's h); a mean metric
    takes ``sd`` and, for a relative ``mde``, ``baseline_mean`` (two-sample t). Two-sided test.
    """
    if not ratio > 0:  # (an arm without units: the observed ratio of an empty treatment arm is 0)
        raise ValueError(f"ratio (treated per control unit) must be positive, not {ratio}")
    es, is_prop = _effect_size(baseline_rate, mde, relative, sd, baseline_mean)
    if is_prop:  # the one closed form, shared with `trackplan lint`
        return math.ceil(normal_sample_size(es, alpha, power, ratio))
    # the smallest sample a t-test has (2 units in each arm): an effect that large needs no more.
    # (statsmodels' root finder does not look below it: it warned, failed to converge and gave NaN)
    smallest = max(2, math.ceil(2 / ratio))
    if _t_power(es, smallest, alpha, ratio) >= power:
        return smallest
    n = TTestIndPower().solve_power(effect_size=es, nobs1=None, alpha=alpha, power=power, ratio=ratio)
    return math.ceil(float(np.squeeze(n)))


def achieved_power(
    n: float,
    baseline_rate: float | None = None,
    mde: float = 0.05,
    alpha: float = 0.05,
    ratio: float = 1.0,
    relative: bool = True,
    sd: float | None = None,
    baseline_mean: float | None = None,
) -> float:
    """Power of a two-sided test with ``n`` control units (and ``ratio * n`` treated) at ``mde``."""
    es, is_prop = _effect_size(baseline_rate, mde, relative, sd, baseline_mean)
    if es == 0 or n < 2 or not n * ratio >= 2:  # (either arm under 2 units: no test to have power)
        return float(alpha) if es == 0 else float("nan")
    if is_prop:
        return normal_power(es, n, alpha, ratio)
    return _t_power(es, n, alpha, ratio)


def _t_power(es: float, n: float, alpha: float, ratio: float) -> float:
    """Power of the two-sided two-sample t-test (statsmodels). Its far tail, under an effect of many
    sds, underflows to NaN in scipy's noncentral t (es 20, 2 units an arm): the power is then its
    near tail alone, which is all of it."""
    p = float(TTestIndPower().power(effect_size=es, nobs1=n, alpha=alpha, ratio=ratio))
    if math.isnan(p):
        p = float(TTestIndPower().power(effect_size=es, nobs1=n, alpha=alpha / 2, ratio=ratio, alternative="larger"))
    return p


# --------------------------------------------------------------------------------------------
# A/B readout on unit-level rows
# --------------------------------------------------------------------------------------------
def _is_binary(s: pd.Series) -> bool:
    values = pd.unique(s.dropna())
    return len(values) > 0 and set(np.asarray(values, float)).issubset({0.0, 1.0})


def _arm(frame: pd.DataFrame, outcome: str, pre: str | None, binary: bool, pre_binary: bool) -> ArmStats:
    y = frame[outcome].to_numpy(float)
    if pre is None:
        return ArmStats(len(y), float(y.sum()), float((y * y).sum()), binary)
    x = frame[pre].to_numpy(float)
    return ArmStats(
        len(y),
        float(y.sum()),
        float((y * y).sum()),
        binary,
        float(x.sum()),
        float((x * x).sum()),
        float((x * y).sum()),
        pre_binary,
    )


def ab_readout(
    df: pd.DataFrame,
    *,
    variant: str,
    outcome: str,
    control,
    weights: Mapping | Sequence[float] | None = None,
    alpha: float = 0.05,
    pre: str | None = None,
    sequential: bool = False,
    tuning: float = DEFAULT_TUNING,
    mde: float | None = None,
    mde_relative: bool = True,
    target_power: float = 0.8,
) -> pd.DataFrame:
    """One row per non-control variant: means, lifts with CIs, p-value, SRM, power, sample size.

    ``df`` has one row per assigned unit. ``outcome`` is 0/1 (conversion; proportion variance) or
    numeric (Welch t). ``pre`` names each unit's pre-exposure value of the metric and turns on
    CUPED. ``sequential`` reports always-valid confidence sequences (safe to look every day).
    ``weights`` are the planned allocation (a mapping variant -> weight, or a sequence in the order
    control, then the other variants sorted); equal when omitted. With ``mde`` (relative to the
    control mean unless ``mde_relative=False``) ``power`` is at the MDE and ``required_n_per_arm``
    the fixed-horizon sample size for ``target_power``; without it ``power`` is at the observed
    lift. Units with a missing outcome count for SRM but not in the means.
    """
    require_columns(df, "ab_readout", variant=variant, outcome=outcome, pre=pre)
    numeric(df[outcome], "ab_readout", "outcome")
    arms = [v for v in pd.unique(df[variant].dropna())]
    if control not in arms:
        raise ValueError(f"control {control!r} not among variants {arms}")
    others = sorted((v for v in arms if v != control), key=str)
    order = [control, *others]
    counts = df[variant].value_counts().reindex(order).to_numpy(float)
    if weights is None:
        w = None
    elif isinstance(weights, Mapping):
        w = [float(weights[v]) for v in order]
    else:
        w = list(map(float, weights))
    srm = srm_p_value(counts, w)

    observed = df.dropna(subset=[outcome] + ([pre] if pre else []))
    binary = _is_binary(observed[outcome])
    pre_binary = bool(pre) and _is_binary(observed[pre])
    groups = {k: g for k, g in observed.groupby(variant, sort=False)}
    empty = observed.iloc[:0]
    ctrl = _arm(groups.get(control, empty), outcome, pre, binary, pre_binary)

    rows = []
    for v in others:
        arm = _arm(groups.get(v, empty), outcome, pre, binary, pre_binary)
        kw = {"alpha": alpha, "sequential": sequential, "tuning": tuning}
        ab = ttest_from_stats(ctrl, arm, relative=False, **kw)
        rel = ttest_from_stats(ctrl, arm, relative=True, **kw)
        ratio = arm.n / ctrl.n if ctrl.n else float("nan")
        # Power uses the (CUPED-adjusted when available) outcome spread of the control arm.
        sd = None
        if not binary:
            sd = math.sqrt(
                ctrl.var if ab.theta is None else ctrl.var + ab.theta**2 * ctrl.pre_var - 2 * ab.theta * ctrl.cov
            )
        base = {
            "baseline_rate": ctrl.mean if binary else None,
            "sd": sd,
            "baseline_mean": ctrl.mean,
            "alpha": alpha,
        }
        power = required = float("nan")
        try:
            if mde is not None:
                power = achieved_power(ctrl.n, mde=mde, ratio=ratio, relative=mde_relative, **base)
                required = sample_size(
                    mde=mde,
                    power=target_power,
                    ratio=ratio,
                    relative=mde_relative,
                    **base,
                )
            elif math.isfinite(ab.effect):
                power = achieved_power(ctrl.n, mde=ab.effect, ratio=ratio, relative=False, **base)
        except ValueError:
            pass  # an MDE that implies an impossible rate leaves power undefined, not an error
        rows.append(
            {
                "variant": v,
                "n": arm.n,
                "mean": arm.mean,
                "control_n": ctrl.n,
                "control_mean": ctrl.mean,
                "outcome_type": "binary" if binary else "continuous",
                "method": ab.method,
                "lift_abs": ab.effect,
                "std_error": ab.std_error,
                "ci_low": ab.ci_low,
                "ci_high": ab.ci_high,
                "lift_rel": rel.effect,
                "rel_std_error": rel.std_error,
                "rel_ci_low": rel.ci_low,
                "rel_ci_high": rel.ci_high,
                "p_value": ab.p_value,
                "significant": bool(ab.p_value < alpha),
                "srm_p_value": srm,
                "srm_flag": bool(srm < SRM_THRESHOLD),
                "power": power,
                "mde": mde,
                "required_n_per_arm": required,
                "theta": ab.theta,
                "error": ab.error,
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# Difference-in-differences (2 x 2)
# --------------------------------------------------------------------------------------------
@dataclass
class DiDResult(Estimate):
    """Canonical 2x2 DiD: ``effect`` is the treated x post interaction."""

    cell_means: pd.DataFrame = field(default_factory=pd.DataFrame)
    cov_type: str = "HC1"


def diff_in_diff(
    df: pd.DataFrame,
    *,
    outcome: str,
    treated: str,
    post: str,
    cluster: str | None = None,
    alpha: float = 0.05,
    cov_type: str = "HC1",
) -> DiDResult:
    """2x2 difference-in-differences by OLS of outcome on treated, post and treated x post.

    Standard errors are heteroskedasticity-robust (HC1) by default, cluster-robust by ``cluster``
    when given (use it whenever units are observed more than once), or ``cov_type="nonrobust"``
    for textbook OLS errors. The estimate assumes parallel trends; with more than two periods
    prefer ``twfe_did`` and its ``event_study`` pre-trend test.
    """
    require_columns(df, "diff_in_diff", outcome=outcome, treated=treated, post=post, cluster=cluster)
    cols = [outcome, treated, post] + ([cluster] if cluster else [])
    data = df[cols].dropna()
    frame = pd.DataFrame(
        {
            "y": numeric(data[outcome], "diff_in_diff", "outcome"),
            "d": indicator(data[treated], "diff_in_diff", "treated"),
            "t": indicator(data[post], "diff_in_diff", "post"),
        },
        index=data.index,
    )
    # the interaction is identified only with rows in each of the four cells (treated/control x
    # before/after); without them OLS returns an arbitrary solution of a rank-deficient design
    # (statsmodels only warns): refused, as any estimator here refuses data it cannot estimate from
    have = set(np.unique(2 * (frame["d"].to_numpy() != 0) + (frame["t"].to_numpy() != 0)).tolist())
    missing = [
        f"{'treated' if d else 'control'} {'after' if t else 'before'}"
        for d in (1, 0)
        for t in (0, 1)
        if 2 * d + t not in have
    ]
    if missing:
        raise ValueError(
            f"diff_in_diff needs rows in all four cells (treated/control x before/after); none for: "
            f"{', '.join(missing)}"
        )
    model = smf.ols("y ~ d + t + d:t", data=frame)
    if np.linalg.matrix_rank(model.exog) < model.exog.shape[1]:  # (e.g. 0/1 columns that are not)
        raise ValueError(f"diff_in_diff: {treated} and {post} do not identify the interaction (rank-deficient design)")
    if cluster:
        groups = pd.factorize(data[cluster])[0]
        fit = model.fit(cov_type="cluster", cov_kwds={"groups": groups})
        used = "cluster"
        dist_df = None  # statsmodels' cluster p-values are normal; keep CI consistent with them
    else:
        fit = model.fit(cov_type=cov_type)
        used = cov_type
        dist_df = fit.df_resid if cov_type == "nonrobust" else None
    est = normal_estimate_fields(float(fit.params["d:t"]), float(fit.bse["d:t"]), alpha, dist_df)
    cells = frame.groupby(["d", "t"])["y"].agg(["mean", "size"]).reset_index()
    cells.columns = ["treated", "post", "mean", "n"]
    return DiDResult(**est, n=int(fit.nobs), method="diff_in_diff", cell_means=cells, cov_type=used)


# --------------------------------------------------------------------------------------------
# Evidence grade
# --------------------------------------------------------------------------------------------
RANDOMIZED = {"ab_test", "randomized", "experiment", "ab_readout"}
QUASI = {
    "diff_in_diff",
    "twfe_did",
    "event_study",
    "matching",
    "matched_effect",
    "ipw",
    "interrupted_time_series",
    "its",
    "synthetic_control",
}
NON_CAUSAL = {"before_after"}


@dataclass(frozen=True)
class EvidenceGrade:
    grade: str
    label: str

    def __str__(self) -> str:
        return f"{self.grade}: {self.label}"


def evidence_grade(method: str, checks_passed: bool | None = None) -> EvidenceGrade:
    """How much to trust an effect estimate, from its design and its robustness checks.

    A randomized experiment whose checks passed (no sample-ratio mismatch) > a quasi-experiment
    whose checks passed (pre-trends, placebo, balance) > a quasi-experiment whose checks failed or
    were not run > a before/after comparison. A randomized test that failed its integrity check
    drops to C: an SRM means the randomization itself is in doubt.
    """
    key = method.strip().lower()
    if key in RANDOMIZED:
        if checks_passed is False:
            return EvidenceGrade("C", "randomized, integrity check failed (e.g. sample-ratio mismatch)")
        return EvidenceGrade("A", "randomized experiment")
    if key in QUASI:
        if checks_passed:
            return EvidenceGrade("B", "quasi-experimental, robustness checks passed")
        reason = "not run" if checks_passed is None else "failed"
        return EvidenceGrade("C", f"quasi-experimental, robustness checks {reason}")
    if key in NON_CAUSAL:
        return EvidenceGrade("D", "before/after comparison, not causal")
    raise ValueError(f"unknown evaluation method {method!r}")


# --------------------------------------------------------------------------------------------
# Uplift by segment: the two-sample test per segment (here, beside the test it uses)
# --------------------------------------------------------------------------------------------
def uplift_by_segment(
    df: pd.DataFrame,
    *,
    segment: str,
    treatment: str,
    outcome: str,
    score: str | None = None,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Measured uplift per segment with a Welch CI; ``target`` when the whole CI is above zero.

    Sorted by uplift, best first. ``score`` (a column of model uplift scores) adds the mean
    predicted uplift beside the measured one, to see whether the model ranks segments rightly.
    """
    require_columns(df, "uplift_by_segment", segment=segment, treatment=treatment, outcome=outcome, score=score)
    indicator(df[treatment], "uplift_by_segment", "treatment")
    numeric(df[outcome], "uplift_by_segment", "outcome")
    rows = []
    for key, g in df.groupby(segment, sort=True):
        arms = []
        for flag in (0, 1):
            y = g.loc[g[treatment] == flag, outcome].to_numpy(float)
            arms.append(
                ArmStats(
                    len(y),
                    float(y.sum()),
                    float((y * y).sum()),
                    binary=set(np.unique(y)).issubset({0.0, 1.0}),
                )
            )
        res = ttest_from_stats(arms[0], arms[1], alpha=alpha)
        row = {
            segment: key,
            "n_treated": arms[1].n,
            "n_control": arms[0].n,
            "rate_treated": arms[1].mean,
            "rate_control": arms[0].mean,
            "uplift": res.effect,
            "ci_low": res.ci_low,
            "ci_high": res.ci_high,
            "p_value": res.p_value,
            "target": bool(res.ci_low > 0),
        }
        if score is not None:
            row["predicted_uplift"] = float(g[score].mean())
        rows.append(row)
    out = pd.DataFrame(rows)
    return out.sort_values("uplift", ascending=False, ignore_index=True)


__all__ = [
    "DEFAULT_TUNING",
    "SRM_THRESHOLD",
    "ArmStats",
    "ColumnNotFound",
    "DiDResult",
    "Estimate",
    "EventStudyResult",
    "EvidenceGrade",
    "ITSResult",
    "MatchResult",
    "TTestResult",
    "TWFEResult",
    "ab_readout",
    "achieved_power",
    "auuc",
    "before_after",
    "confidence_sequence",
    "cuped_theta",
    "diff_in_diff",
    "event_study",
    "evidence_grade",
    "interrupted_time_series",
    "matched_effect",
    "placebo_did",
    "qini_auc",
    "qini_curve",
    "sample_size",
    "sequential_p_value",
    "srm_p_value",
    "ttest_from_stats",
    "twfe_did",
    "uplift_by_segment",
    "uplift_curve",
    "uplift_t_learner",
]
