"""Quasi-experimental estimators and uplift in models.stats: published figures (The Effect,
Dehejia & Wahba / Lalonde via causaldata), scikit-uplift's metrics, and seeded simulations with
planted effects."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from support.marts_sample import within  # (the truth within 4 standard errors)

from models.stats import (
    auuc,
    before_after,
    event_study,
    interrupted_time_series,
    matched_effect,
    placebo_did,
    qini_auc,
    qini_curve,
    twfe_did,
    uplift_by_segment,
    uplift_curve,
    uplift_t_learner,
)

causaldata = pytest.importorskip("causaldata", reason="causaldata ships the published datasets")


# ------------------------------------------------------------------------------------------
# Two-way fixed effects, event study, placebo
# ------------------------------------------------------------------------------------------
def test_twfe_reproduces_the_effect_organ_donation_estimate():
    """Kessler & Roth (2014) organ-donor registration, as analysed in Huntington-Klein, The
    Effect (2022), ch. 18, section 18.2: TWFE of Rate on California x post-Q3 2011 with state and
    quarter fixed effects, SE clustered by state: -0.0225 (0.006)."""
    d = causaldata.organ_donations.load_pandas().data
    d["treated"] = ((d["State"] == "California") & (d["Quarter_Num"] >= 4)).astype(int)
    res = twfe_did(d, outcome="Rate", unit="State", time="Quarter_Num", treated="treated")
    assert round(res.effect, 4) == -0.0225
    assert round(res.std_error, 3) == 0.006  # the book prints three decimals
    assert (res.n, res.n_units, res.n_periods) == (162, 27, 6)
    assert res.ci_high < 0


def _panel(seed=0, units=80, periods=12, launch=8, effect=2.0, pre_trend=0.0):
    """Half the units treated from ``launch``; ``pre_trend`` adds a treated-only drift."""
    rng = np.random.default_rng(seed)
    u, t = np.meshgrid(np.arange(units), np.arange(periods), indexing="ij")
    u, t = u.ravel(), t.ravel()
    treated = u < units // 2
    y = (
        rng.normal(0, 3, units)[u]
        + 0.5 * t
        + rng.normal(0, 1, u.size)
        + effect * (treated & (t >= launch))
        + pre_trend * treated * (t - launch)
    )
    return pd.DataFrame(
        {
            "unit": u,
            "period": t,
            "group": treated.astype(int),
            "y": y,
            "d": (treated & (t >= launch)).astype(int),
        }
    )


def test_event_study_recovers_effect_and_passes_parallel_pretrends():
    df = _panel()
    es = event_study(
        df,
        outcome="y",
        unit="unit",
        time="period",
        group="group",
        launch=8,
        leads=4,
        lags=3,
    )
    leads = es.coefficients[es.coefficients["kind"] == "lead"]
    assert list(leads["rel_period"]) == [-4, -3, -2]
    # on any seed (a 5% test rejects, and a 95% interval misses, on 1 seed in 20 by design: their
    # rates are benchmarks/calibration.py's): the pre-trend test far from rejecting and its verdict
    # its p-value's, the truth within 4 standard errors
    assert es.pretrend_p_value > 1e-4 and es.pretrend_passed == (es.pretrend_p_value >= 0.05)
    assert within(2.0, es.effect, es.std_error)
    twfe = twfe_did(df, outcome="y", unit="unit", time="period", treated="d")
    assert within(2.0, twfe.effect, twfe.std_error)
    placebo = placebo_did(df, outcome="y", unit="unit", time="period", group="group", launch=8)
    assert placebo.p_value > 1e-4 and ("placebo passed" in placebo.warnings) == (placebo.p_value >= 0.05)
    dated = placebo_did(
        df,
        outcome="y",
        unit="unit",
        time="period",
        group="group",
        launch=8,
        placebo_launch=5,
    )
    assert dated.n == placebo.n and dated.effect != placebo.effect  # a different fake date
    with pytest.raises(ValueError):
        placebo_did(
            df,
            outcome="y",
            unit="unit",
            time="period",
            group="group",
            launch=8,
            placebo_launch=9,
        )


def test_event_study_and_placebo_catch_diverging_pretrends():
    df = _panel(pre_trend=0.4)
    es = event_study(
        df,
        outcome="y",
        unit="unit",
        time="period",
        group="group",
        launch=8,
        leads=4,
        lags=3,
    )
    assert not es.pretrend_passed and es.pretrend_p_value < 0.01
    placebo = placebo_did(df, outcome="y", unit="unit", time="period", group="group", launch=8)
    assert placebo.p_value < 0.05 and placebo.warnings[0].startswith("placebo failed")


def test_event_study_accepts_staggered_launch_dates():
    df = _panel(units=90)
    # Three cohorts launch at periods 6, 8 and never; launch dates as real dates, not indexes.
    first = np.where(df["unit"] < 30, 6, np.where(df["unit"] < 60, 8, np.nan))
    days = pd.Timestamp("2025-01-06") + pd.to_timedelta(df["period"] * 7, unit="D")
    launch = pd.Timestamp("2025-01-06") + pd.to_timedelta(first * 7, unit="D")
    effect = np.where(df["period"] >= first, 1.5, 0.0)
    staggered = pd.DataFrame(
        {
            "unit": df["unit"],
            "week": days,
            "launch": launch,
            "y": df["y"] - 2.0 * df["d"] + effect,
        }
    )
    es = event_study(
        staggered,
        outcome="y",
        unit="unit",
        time="week",
        launch_col="launch",
        leads=3,
        lags=3,
    )
    assert es.pretrend_p_value > 1e-4 and es.pretrend_passed == (es.pretrend_p_value >= 0.05)
    assert within(1.5, es.effect, es.std_error)  # (its 95% interval missed 1.5 with all seeds + 4000)


# ------------------------------------------------------------------------------------------
# Propensity-score matching and IPW
# ------------------------------------------------------------------------------------------
LALONDE_COVARIATES = [
    "age",
    "age2",
    "educ",
    "educ2",
    "marr",
    "nodegree",
    "black",
    "hisp",
    "re74",
    "re75",
    "u74",
    "u75",
    "educ_re74",
]


@pytest.fixture(scope="module")
def lalonde():
    """NSW treated men + CPS comparison group (Dehejia & Wahba 1999), covariates as in their
    propensity model (squares, unemployment dummies, educ x re74)."""
    nsw = causaldata.nsw_mixtape.load_pandas().data
    cps = causaldata.cps_mixtape.load_pandas().data
    experimental = nsw.loc[nsw.treat == 1, "re78"].mean() - nsw.loc[nsw.treat == 0, "re78"].mean()
    d = pd.concat([nsw[nsw.treat == 1], cps], ignore_index=True)
    d["age2"], d["educ2"] = d.age**2, d.educ**2
    d["u74"], d["u75"] = (d.re74 == 0).astype(int), (d.re75 == 0).astype(int)
    d["educ_re74"] = d.educ * d.re74
    return d, experimental


@pytest.mark.parametrize("method", ["nearest", "ipw"])
def test_matching_on_cps_recovers_the_lalonde_experimental_benchmark(lalonde, method):
    """Dehejia & Wahba (1999, JASA, Table 3): experimental ATT $1,794; the raw NSW-vs-CPS gap is
    about -$8,500; propensity-score methods on CPS land near $1,700."""
    d, experimental = lalonde
    assert experimental == pytest.approx(1794.34, abs=0.01)
    res = matched_effect(
        d,
        treatment="treat",
        outcome="re78",
        covariates=LALONDE_COVARIATES,
        method=method,
    )
    assert res.naive_effect < -8000  # the observational comparison points the wrong way
    # The CI must cover the experimental benchmark and the point estimate fall within $1,000
    # of it: with 185 treated men earnings are noisy (SE ~ $700-1,000), and Dehejia & Wahba's
    # own CPS estimates span $1,360-1,774 across specifications.
    assert res.ci_low < experimental < res.ci_high
    assert abs(res.effect - experimental) < 1000
    bal = res.balance.set_index("covariate")
    assert (bal["smd_before"].abs() > 1).any()  # re74/re75/marr are wildly unbalanced raw
    assert bal["smd_after"].abs().max() < 0.25  # and close to balanced after adjustment
    assert res.n_trimmed > 0  # most CPS men are outside the treated group's common support


def test_matching_undoes_self_selection_of_heavy_users():
    """Heavier users opt in to a feature; the naive gap (~4.9) overstates the planted +1.0 effect.
    Both methods remove most of it on any seed (the largest error left over seeds 0-299 was 0.14 of
    the naive one's). The heaviest users have few comparable controls, so IPW's standard error is
    the less reliable one here: nearest-neighbour matching recovers the truth within 4 of its standard
    errors (at most 3.0 over those seeds), IPW on 299 of them (seed 159: 4.02; at the earlier trim,
    0.01-0.99, on 96% of draws, and a draw of seed shift 660000 had it 4.3 away), so no claim for one
    sample: its coverage is measured in benchmarks/calibration.py (``matching_overlap``)."""
    rng = np.random.default_rng(5)
    n = 4000
    usage = rng.gamma(2.0, 1.5, n)
    tenure = rng.normal(12, 4, n)
    p_opt_in = 1 / (1 + np.exp(-(-2.5 + 0.6 * usage + 0.05 * tenure)))
    opted = (rng.random(n) < p_opt_in).astype(int)
    y = 2.0 * usage + 0.1 * tenure + 1.0 * opted + rng.normal(0, 1.5, n)
    df = pd.DataFrame({"opted": opted, "y": y, "usage": usage, "tenure": tenure})
    for method in ("nearest", "ipw"):
        res = matched_effect(
            df,
            treatment="opted",
            outcome="y",
            covariates=["usage", "tenure"],
            method=method,
        )
        assert abs(res.effect - 1.0) < 0.5 * abs(res.naive_effect - 1.0)
        assert res.naive_effect > res.ci_high  # the naive estimate is outside the CI
        if method == "nearest":
            assert within(1.0, res.effect, res.std_error)
        # (the balance check is a test at 5% family-wise: it flagged IPW here on 6 of seeds 0-79, so
        # it is no claim for one sample; its false-alarm rate is the test below and the benchmark's)
        assert set(res.balance["covariate"]) == {"usage", "tenure"}
    assert set(res.to_dict()["balance"][0]) == {
        "covariate",
        "smd_before",
        "smd_after",
        "smd_se",
        "smd_threshold",
        "flagged",
    }


def _selected(seed: int, n: int, coefs=(0.8, 0.5, 0.3)) -> pd.DataFrame:
    """n units, standard-normal covariates, selection logistic in them (-1 + coefs · x)."""
    rng = np.random.default_rng([seed, 24])
    x = rng.normal(size=(n, len(coefs)))
    t = (rng.random(n) < 1 / (1 + np.exp(-(-1 + x @ np.array(coefs))))).astype(int)
    df = pd.DataFrame(x, columns=[f"x{i + 1}" for i in range(len(coefs))])
    return df.assign(t=t, y=x.sum(axis=1) + 0.5 * t + rng.normal(size=n))


@pytest.mark.parametrize("method", ["nearest", "ipw"])
def test_balance_check_does_not_flag_chance_imbalance_of_a_small_sample(method):
    """300 units (~100 treated): a covariate balanced by design has an SMD whose SD is ~0.14, so the
    fixed 0.1 rule fired on ~30-60 % of such samples; the check's family-wise false-alarm rate is
    at most 5 %. Over 16 seeds P(5 or more alarms | 5 %) ≈ 0.1 %, while the fixed rule (checked
    here on the same samples, where it fires on ~1/3 to 2/3: P(never) < 0.2 %) does fire."""
    alarms = fixed_rule = 0
    for seed in range(1, 17):
        res = matched_effect(
            _selected(seed, 300), treatment="t", outcome="y", covariates=["x1", "x2", "x3"], method=method
        )
        alarms += not res.balanced
        fixed_rule += bool((res.balance["smd_after"].abs() > 0.1).any())
    assert alarms <= 4
    assert fixed_rule > alarms


def test_balance_check_flags_a_left_out_confounder_and_not_a_trivial_one():
    """The propensity model leaves out a covariate of the selection, checked through
    ``balance_also`` (cobalt's ``addl``). A strong one (SMD ≈ 0.6 left) is flagged on every seed
    at 2,000 units; at 40,000 units a weak one (SMD ≈ 0.04, beyond chance there) is not, because
    it stays under the practical 0.1."""
    for seed in range(1, 4):
        res = matched_effect(
            _selected(seed, 2000, (0.8, 1.2)),
            treatment="t",
            outcome="y",
            covariates=["x1"],
            method="ipw",
            balance_also=["x2"],
        )
        row = res.balance.set_index("covariate").loc["x2"]
        assert row["flagged"] and not res.balanced
        assert row["smd_after"] > 0.4  # the imbalance the selection left
        big = _selected(seed, 40_000, (0.8, 0.5, 0.08))
        res = matched_effect(
            big, treatment="t", outcome="y", covariates=["x1", "x2"], method="ipw", balance_also=["x3"]
        )
        row = res.balance.set_index("covariate").loc["x3"]
        assert 0.01 < row["smd_after"] < 0.1  # small, but a real imbalance ...
        assert abs(row["smd_after"]) > 2 * row["smd_se"]  # ... distinguishable from chance at this size
        assert not row["flagged"] and row["smd_threshold"] == pytest.approx(0.1)


def test_balance_threshold_is_the_chance_band_of_an_unweighted_difference():
    """With equal weights the SMD's standard error is Welch's for the mean difference over the
    pooled SD (HC1 scales it by n/(n-2)); the bar is max(0.1, z(1 - 0.05/(2k))·SE)."""
    from scipy import stats as sps

    from models.causal.matching import balance_table

    for seed in range(1, 4):
        df = _selected(seed, 120)
        t = df["t"].to_numpy()
        X = df[["x1", "x2", "x3"]]
        tab = balance_table(X, t, np.ones(len(t))).set_index("covariate")
        crit = sps.norm.isf(0.05 / 6)
        for c in X:
            a, b = X.loc[t == 1, c], X.loc[t == 0, c]
            sd = np.sqrt((a.var() + b.var()) / 2)
            welch = np.sqrt(a.var(ddof=0) / len(a) + b.var(ddof=0) / len(b)) * np.sqrt(len(t) / (len(t) - 2))
            assert tab.loc[c, "smd_after"] == pytest.approx((a.mean() - b.mean()) / sd)
            assert tab.loc[c, "smd_se"] == pytest.approx(welch / sd, rel=1e-6)
            assert tab.loc[c, "smd_threshold"] == pytest.approx(max(0.1, crit * welch / sd), rel=1e-6)
            assert tab.loc[c, "flagged"] == (abs(tab.loc[c, "smd_after"]) > tab.loc[c, "smd_threshold"])


# ------------------------------------------------------------------------------------------
# Interrupted time series
# ------------------------------------------------------------------------------------------
def _daily_kpi(seed=11, days=140, launch_day=90, level=5.0, slope=0.0):
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2025-01-01", periods=days, freq="D")
    t = np.arange(days)
    noise = np.zeros(days)
    e = rng.normal(0, 1.5, days)
    for i in range(1, days):  # AR(1) errors: the reason for HAC standard errors
        noise[i] = 0.5 * noise[i - 1] + e[i]
    weekly = np.array([0, 1, 1.5, 1, 0.5, -3, -3.5])[dates.day_of_week]
    post = t >= launch_day
    y = 100 + 0.1 * t + weekly + level * post + slope * (t - launch_day) * post + noise
    return pd.DataFrame({"day": dates, "signups": y}), dates[launch_day]


def test_its_recovers_a_planted_level_change_with_ar1_errors():
    df, launch = _daily_kpi()
    res = interrupted_time_series(df, time="day", outcome="signups", launch=launch)
    # on any seed (over _daily_kpi's seeds 0-299: the level's z spread 1.07, its smallest estimate
    # 1.85 standard errors above 0; p < 0.01 missed on 5 of them, so power is not claimed here)
    assert within(5.0, res.effect, res.std_error) and res.effect > 0
    assert within(0.0, res.slope_change, res.slope_change_se)  # no slope change was planted
    # AR(1) errors by feasible GLS: the planted rho 0.5 is recovered (over seeds 0-299: mean 0.497,
    # sd 0.086, lowest 0.18, past the asymptotic 4 standard errors on one), inference is Student t
    assert res.errors == "ar1" and abs(res.ar1_rho - 0.5) < 0.4
    assert res.df == 140 - 10  # exact AR(1) GLS keeps every day; 10 coefficients
    naive = interrupted_time_series(df, time="day", outcome="signups", launch=launch, maxlags=0)
    # Positive autocorrelation: the AR(1) error must exceed the iid one.
    assert res.std_error > naive.std_error


def test_its_errors_hold_on_a_daily_count_whose_variance_follows_its_mean():
    """A daily count (Poisson, as the generator's orders: ~1.1 a day, 1.8 after the launch, weekday
    factors) has a larger variance after the launch, where the level change takes its information.
    Over 500 such series (any seeds: the statements are ~3 Monte Carlo standard errors from their
    expectation) the HC3 errors' z-scores have a mean square near 1 (≈ 1.05; the bound 1.25), the
    pooled-variance errors' larger (≈ 1.29); no negative AR(1) coefficient narrows an interval."""
    days, launch = 106, 75
    day = pd.date_range("2026-08-01", periods=days, freq="D")
    wk = np.array([1.1, 1.1, 1.1, 1.1, 1.0, 0.8, 0.8])[day.day_of_week]
    mu = wk * np.where(np.arange(days) >= launch, 1.8, 1.1)
    truth = 0.7 * wk[launch:].mean()
    z = {"HC3": [], "nonrobust": []}
    for seed in range(1, 501):
        y = np.random.default_rng([seed, 24]).poisson(mu).astype(float)
        df = pd.DataFrame({"day": day, "y": y})
        for cov, got in z.items():
            r = interrupted_time_series(df, time="day", outcome="y", launch=day[launch], cov_type=cov)
            assert r.ar1_rho >= 0.0 and r.cov_type == cov
            got.append((r.effect - truth) / r.std_error)
    ms = {k: float(np.mean(np.square(v))) for k, v in z.items()}
    assert ms["HC3"] < 1.25
    assert ms["nonrobust"] > ms["HC3"]


def test_its_ar1_coefficient_is_not_biased_by_the_fitted_terms():
    """70 days, 10 terms (trend, level, slope, weekdays), AR(1) errors with rho 0.5: the residuals'
    lag-1 autocorrelation underestimates rho (≈ 0.41 on average here: why the Cochrane-Orcutt
    intervals under-covered); the design-corrected coefficient is unbiased within Monte Carlo error
    over 40 seeds (4 standard errors of the seed mean) and above the residuals' on every seed."""
    from models.causal.its import ar1_rho_unbiased

    days, launch = 70, 45
    dates = pd.date_range("2026-03-02", periods=days, freq="D")
    t = np.arange(days)
    X = np.column_stack(
        [
            np.ones(days),
            t - launch,
            t >= launch,
            (t - launch) * (t >= launch),
            *[(dates.day_of_week == d).astype(float) for d in range(1, 7)],
        ]
    )
    corrected, residual = [], []
    for seed in range(1, 41):
        rng = np.random.default_rng([seed, 2401])
        e = np.zeros(days)
        e[0] = rng.normal(0, 1 / np.sqrt(1 - 0.25))
        for i in range(1, days):
            e[i] = 0.5 * e[i - 1] + rng.normal()
        y = X @ rng.normal(0, 1, X.shape[1]) + e
        corrected.append(ar1_rho_unbiased(y, X))
        r = y - X @ np.linalg.lstsq(X, y, rcond=None)[0]
        residual.append(r[1:] @ r[:-1] / (r @ r))
    se = np.std(corrected, ddof=1) / np.sqrt(40)
    assert abs(np.mean(corrected) - 0.5) < 4 * se
    gap = np.array(corrected) - np.array(residual)  # paired on each seed: the correction, ≈ 0.08 here
    assert gap.mean() > 0.05 and gap.mean() > 4 * gap.std(ddof=1) / np.sqrt(40)
    assert (gap > 0).all()


def test_before_after_is_labelled_and_biased_by_the_trend():
    df, launch = _daily_kpi()
    res = before_after(df, time="day", outcome="signups", launch=launch)
    assert res.method == "before_after" and "not causal" in res.warnings[0]
    # The 0.1/day trend over ~70 days between the two means adds ~7 to the planted 5.
    assert res.ci_low > 5.0


# ------------------------------------------------------------------------------------------
# Uplift
# ------------------------------------------------------------------------------------------
def test_qini_by_hand():
    """Six people, scores descending: T1 y1, C0 y0, T1 y0, C0 y1, T1 y1, C0 y0."""
    y = np.array([1, 0, 0, 1, 1, 0])
    t = np.array([1, 0, 1, 0, 1, 0])
    s = np.array([6, 5, 4, 3, 2, 1])
    k, q = qini_curve(y, t, s)
    # k=1: 1 - 0; k=2: 1 - 0*1/1; k=3: 1 - 0*2/1; k=4: 1 - 1*2/2; k=5: 2 - 1*3/2; k=6: 2 - 1*3/3
    assert list(k) == [0, 1, 2, 3, 4, 5, 6]
    assert q == pytest.approx([0, 1, 1, 1, 0, 0.5, 1])
    _k2, u = uplift_curve(y, t, s)
    # k=4: (1/2 - 1/2) * 4 = 0; k=6: (2/3 - 1/3) * 6 = 2
    assert u[4] == pytest.approx(0) and u[6] == pytest.approx(2)
    # Area over the random line: trapezoids .5+1+1+.5+.25+.75 = 4 minus the triangle 6 * 1 / 2.
    assert qini_auc(y, t, s, normalize=False) == pytest.approx(4.0 - 3.0)


@pytest.fixture(scope="module")
def campaign():
    """Randomized campaign; only segment 'smb' responds (+8 points on a 10% base)."""
    rng = np.random.default_rng(17)
    n = 9000
    segment = rng.choice(["consumer", "smb", "enterprise"], n)
    x = rng.normal(0, 1, n)
    treat = rng.integers(0, 2, n)
    p = 0.10 + 0.02 * (x > 0) + 0.08 * treat * (segment == "smb")
    y = (rng.random(n) < p).astype(int)
    df = pd.DataFrame({"segment": segment, "x": x, "treat": treat, "converted": y})
    df["score"] = uplift_t_learner(df, treatment="treat", outcome="converted", features=["segment", "x"])
    return df


def test_t_learner_fits_on_one_openmp_thread_with_the_same_scores(campaign):
    # The fits are tiny (a few features, thousands of rows): a second OpenMP thread only spins
    # (50x the CPU of the fits under load), so they run on one. The trees must not depend on it:
    # the same folds fitted by hand with two threads give the same scores, bit for bit.
    from sklearn.base import clone
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import KFold
    from threadpoolctl import threadpool_info, threadpool_limits

    seen: list[int] = []

    class Recording(HistGradientBoostingClassifier):
        def fit(self, X, y, sample_weight=None):
            seen.extend(p["num_threads"] for p in threadpool_info() if p["user_api"] == "openmp")
            return super().fit(X, y, sample_weight)

    df = campaign.iloc[:3000]
    params = {"max_iter": 50, "max_depth": 3, "random_state": 0}
    got = uplift_t_learner(
        df, treatment="treat", outcome="converted", features=["segment", "x"], model=Recording(**params)
    )
    assert seen and set(seen) == {1}
    X = pd.get_dummies(df[["segment", "x"]], dtype=float).to_numpy()
    t, y = df["treat"].to_numpy(int), df["converted"].to_numpy(float)
    want = np.empty(len(df))
    with threadpool_limits(limits=2, user_api="openmp"):
        for train, test in KFold(n_splits=3, shuffle=True, random_state=0).split(X):
            m1 = clone(HistGradientBoostingClassifier(**params)).fit(X[train[t[train] == 1]], y[train[t[train] == 1]])
            m0 = clone(HistGradientBoostingClassifier(**params)).fit(X[train[t[train] == 0]], y[train[t[train] == 0]])
            want[test] = m1.predict_proba(X[test])[:, 1] - m0.predict_proba(X[test])[:, 1]
    assert np.array_equal(got.to_numpy(), want)


def test_uplift_metrics_agree_with_scikit_uplift(campaign):
    sklift = pytest.importorskip("sklift.metrics", reason="scikit-uplift not installed")
    y, t, s = campaign["converted"], campaign["treat"], campaign["score"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # sklift uses a deprecated sklearn helper
        ref_q = sklift.qini_curve(y, s, t)
        ref_u = sklift.uplift_curve(y, s, t)
        ref_qauc = sklift.qini_auc_score(y, s, t)
        ref_auuc = sklift.uplift_auc_score(y, s, t)
    for ours, ref in ((qini_curve(y, t, s), ref_q), (uplift_curve(y, t, s), ref_u)):
        assert np.array_equal(ours[0], ref[0])
        assert np.allclose(ours[1], ref[1], rtol=1e-12, atol=1e-9)
    assert qini_auc(y, t, s) == pytest.approx(ref_qauc, rel=1e-9)
    assert auuc(y, t, s) == pytest.approx(ref_auuc, rel=1e-9)
    # Out-of-fold T-learner scores find the responding segment: their mean is highest in it. On
    # seeds 0-59 of this campaign the margin over the next segment was 0.032-0.11 (mean 0.066, sd
    # 0.016: zero lies 4 sd below). Their Qini is not a claim to make on any seed: against an oracle
    # that knows the planted effect it ranged from -0.06x to 0.96x (under 0.5x on 11 seeds in 60).
    mean = pd.Series(s).groupby(campaign["segment"].to_numpy()).mean()
    assert mean["smb"] > mean.drop("smb").max()


def test_uplift_by_segment_targets_only_the_responding_segment(campaign):
    seg = uplift_by_segment(
        campaign,
        segment="segment",
        treatment="treat",
        outcome="converted",
        score="score",
    )
    # on any seed: the responding segment first and targeted (its uplift ~6.7 standard errors above 0),
    # every uplift within 4 standard errors of its truth, and a segment targeted exactly when its whole
    # interval is above 0 (a null segment is, on ~1 seed in 40 each: seeds + 14000, + 16000)
    se = (seg["ci_high"] - seg["ci_low"]) / (2 * 1.959964)
    truth = np.where(seg["segment"] == "smb", 0.08, 0.0)
    assert seg.iloc[0]["segment"] == "smb" and seg.iloc[0]["target"]
    assert all(within(t, u, e) for t, u, e in zip(truth, seg["uplift"], se, strict=True))
    assert list(seg["target"]) == list(seg["ci_low"] > 0)
    smb = seg.iloc[0]
    assert smb["predicted_uplift"] > seg.iloc[1:]["predicted_uplift"].max()


@pytest.mark.parametrize(
    "design",
    [
        "treated units treated in every period",
        "every unit treated from the same period",
        "no unit treated",
    ],
)
def test_twfe_refuses_a_treatment_the_fixed_effects_absorb(design):
    """Unit and period effects absorb such a treatment indicator: the effect is not identified, and
    OLS of the demeaned data would return an arbitrary number (3.5e13 here before) with a warning on
    stderr. The estimator refuses it instead."""
    rng = np.random.default_rng(2)
    units, periods = np.repeat(np.arange(40), 6), np.tile(np.arange(6), 40)
    d = {
        "treated units treated in every period": units < 20,
        "every unit treated from the same period": periods >= 3,
        "no unit treated": np.zeros(len(units), bool),
    }[design]
    df = pd.DataFrame({"unit": units, "period": periods, "d": d.astype(float), "y": rng.normal(0, 1, len(units))})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="not identified"):
            twfe_did(df, outcome="y", unit="unit", time="period", treated="d")
    # one treated group from period 3 on, beside a control group: identified
    ok = df.assign(d=((units < 20) & (periods >= 3)).astype(float))
    assert np.isfinite(twfe_did(ok, outcome="y", unit="unit", time="period", treated="d").std_error)


def test_ipw_standard_error_when_the_trim_drops_units_scored_1():
    """A covariate that separates treated from control perfectly scores most units 0 or 1: the trim
    drops them, and the units left in the overlap (none to ~7 of each arm, by draw) give an estimate
    with a finite (wide) standard error when each arm keeps two or more. With one, there is no spread
    to estimate (its standard error came out 0, with numpy's divide warnings: a draw of seed shift
    600000 kept one of each), and the estimate is refused, naming what is left. The dropped units'
    odds weight (infinite) once turned the standard error into NaN."""
    from models.causal.matching import propensity_scores

    rng = np.random.default_rng(3)
    seen = {"estimated": 0, "refused": 0}
    for _ in range(40):
        x = rng.normal(0, 1, 400)
        t = (x > 0).astype(int)
        df = pd.DataFrame({"t": t, "x": x, "y": rng.normal(0, 1, 400) + 0.5 * t})
        ps = propensity_scores(x[:, None], t)
        lo, hi = matched_effect.__kwdefaults__["trim"]
        kept = (ps >= lo) & (ps <= hi)
        left = int((kept & (t == 1)).sum()), int((kept & (t == 0)).sum())
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # (the NaN came with numpy's divide and multiply warnings)
            if min(left) < 2:
                with pytest.raises(ValueError) as refused:
                    matched_effect(df, treatment="t", outcome="y", covariates=["x"], method="ipw")
                said = str(refused.value)
                if min(left) == 0:
                    assert said.startswith("no treated unit has a comparable control")
                else:
                    assert said.startswith(f"{left[0]} treated and {left[1]} control units left to compare")
                    assert f"({400 - sum(left)} of 400 units outside the trim)" in said and "loosen" in said
                seen["refused"] += 1
                continue
            r = matched_effect(df, treatment="t", outcome="y", covariates=["x"], method="ipw")
        assert (r.n_treated, r.n_control, r.n_trimmed) == (*left, 400 - sum(left))
        assert r.n_trimmed > 300 and np.isfinite(r.std_error) and r.std_error > 0 and r.ci_low < r.effect < r.ci_high
        seen["estimated"] += 1
    # (seeds 0-299 of this draw left an arm fewer than two units 42% of the time: forty draws see both)
    assert seen["estimated"] and seen["refused"]


def test_nearest_matching_refuses_one_control_for_every_treated_unit():
    """Twenty treated units around one control, amid controls spread wide: nearest-neighbour matching
    with replacement pairs them all with it, and one control has no spread for a standard error.
    Refused, naming what is left, while propensity weighting, which keeps every control, estimates.
    With no control inside the trim at all, the neighbour search is not run on nothing (scikit-learn's
    own error about an empty array came out): the same refusal as the weighting's."""
    x = np.r_[np.linspace(-3, 3, 60), 0.5, 0.495 + np.linspace(0, 0.01, 20)]
    t = np.r_[np.zeros(61, int), np.ones(20, int)]
    df = pd.DataFrame({"t": t, "x": x, "y": t + np.linspace(0, 1, 81)})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"^20 treated and 1 control units left to compare .*too few"):
            matched_effect(df, treatment="t", outcome="y", covariates=["x"], method="nearest")
        r = matched_effect(df, treatment="t", outcome="y", covariates=["x"], method="ipw")
    assert (r.n_treated, r.n_control) == (20, 61) and np.isfinite(r.std_error) and r.std_error > 0
    # the treated above every control but one, whose score the trim drops too
    x = np.r_[np.linspace(-3, 2.9, 59), 2.965, 2.96 + np.linspace(0, 0.01, 20)]
    df = pd.DataFrame({"t": np.r_[np.zeros(60, int), np.ones(20, int)], "x": x, "y": np.linspace(0, 1, 80)})
    for method in ("nearest", "ipw"):
        with pytest.raises(ValueError, match="^no treated unit has a comparable control"):
            matched_effect(df, treatment="t", outcome="y", covariates=["x"], method=method)


def test_before_after_refuses_a_side_without_two_observations():
    """Without two observations before the launch (or after it) there is no difference of means to
    give: refused as interrupted_time_series refuses it, not NaN with numpy's warnings."""
    days = pd.DataFrame({"day": pd.date_range("2026-01-01", periods=30), "y": np.arange(30.0)})
    for launch in ("2025-12-01", "2026-01-02", "2026-01-30", "2026-03-01"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(ValueError, match="two observations on each side"):
                before_after(days, time="day", outcome="y", launch=pd.Timestamp(launch))
    # two days before (0, 1: mean 0.5) and 28 after (2..29: mean 15.5)
    assert before_after(days, time="day", outcome="y", launch=pd.Timestamp("2026-01-03")).effect == pytest.approx(15.0)
