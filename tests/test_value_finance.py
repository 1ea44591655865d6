"""Initiative finance: cash flows, NPV / IRR / payback, scenarios, tornado and Monte Carlo."""

import numpy as np
import numpy_financial as npf
import pytest
from scipy import stats

from models.value import (
    SCENARIO_COLUMNS,
    Assumptions,
    cash_flows,
    initiative_financials,
    initiative_scenarios,
    irr,
    monte_carlo,
    monthly_rate,
    npv,
    payback_months,
    roi,
    scenarios,
    tornado,
)

BASE = Assumptions(
    effect_per_month=100,
    effect_se=30,
    value_per_conversion=20,
    one_off_cost=20_000,
    recurring_cost=500,
    horizon_months=24,
    discount_rate=0.10,
    adoption=0.8,
)


def test_cash_flows_layout_and_start_offset():
    flows = cash_flows(1000, 10, 100, horizon_months=4, start_offset=1)
    # month 0: one-off; month 1: cost only (value delayed one month); months 2-4: value - cost.
    assert flows.tolist() == [-1000, -10, 90, 90, 90]


def test_cash_flows_broadcast_to_draws():
    flows = cash_flows(np.array([1000, 2000]), 10, 100, horizon_months=3)
    assert flows.shape == (2, 4)
    assert flows[:, 0].tolist() == [-1000, -2000]


def test_monthly_rate_compounds_to_annual():
    assert (1 + monthly_rate(0.10)) ** 12 == pytest.approx(1.10, rel=1e-12)


def test_npv_matches_numpy_financial_with_monthly_rate():
    flows = cash_flows(5000, 100, 600, horizon_months=12)
    assert npv(0.10, flows) == pytest.approx(npf.npv(monthly_rate(0.10), flows), rel=1e-12)
    two = np.vstack([flows, flows * 2])
    assert npv(0.10, two) == pytest.approx([npv(0.10, flows), 2 * npv(0.10, flows)])


def test_irr_is_annualized_and_nan_when_undefined():
    # -100 now, +110 a month later: 10 % a month, 1.1 ** 12 - 1 = 213.8 % a year.
    assert irr([-100, 110]) == pytest.approx(1.1**12 - 1, rel=1e-9)
    assert np.isnan(irr([-100, -10, -10]))  # all costs: no rate makes NPV zero
    assert np.isnan(irr([10, 10]))


def test_payback_is_fractional_and_none_when_never():
    # Cumulative: -100, -60, -20, +20 -> crosses in month 3 after half of its +40.
    assert payback_months([-100, 40, 40, 40]) == pytest.approx(2.5)
    assert payback_months([-100, 10, 10]) is None
    assert payback_months([0, 5]) == 0.0


def test_roi():
    assert roi(150, 100) == pytest.approx(0.5)
    assert np.isnan(roi(10, 0))


def test_initiative_financials_by_hand():
    f = initiative_financials(
        effect_per_month=10,
        effect_se=2,
        value_per_conversion=50,
        one_off_cost=1000,
        recurring_cost=100,
        horizon_months=12,
        discount_rate=0.0,
    )
    # value 10 x 50 x 12 = 6000; cost 1000 + 100 x 12 = 2200; at 0 % the NPV is the plain sum.
    assert f["value"] == 6000 and f["cost"] == 2200
    assert f["roi"] == pytest.approx((6000 - 2200) / 2200)
    assert f["npv"] == pytest.approx(6000 - 2200)
    assert f["payback_months"] == pytest.approx(2.5)  # -1000 + 400 a month
    assert f["npv_se"] == pytest.approx(2 * 50 * 12)  # linear in the effect


def test_scenarios_follow_declared_adoption():
    sc = scenarios(BASE, {"low": 0.2, "base": 0.5, "high": 0.8})
    assert sc["name"].tolist() == ["low", "base", "high"]
    assert sc["npv"].is_monotonic_increasing
    # NPV is linear in adoption: equal steps of adoption give equal steps of NPV.
    assert np.diff(sc["npv"]).tolist() == pytest.approx([np.diff(sc["npv"])[0]] * 2)


def test_tornado_sorted_by_swing_and_effect_uses_its_ci():
    t = tornado(BASE, {"one_off_cost": (15_000, 40_000)})
    assert t["swing"].is_monotonic_decreasing
    assert set(t["parameter"]) == {
        "effect_per_month",
        "value_per_conversion",
        "one_off_cost",
        "recurring_cost",
        "adoption",
        "discount_rate",
    }
    eff = t.set_index("parameter").loc["effect_per_month"]
    assert eff["low_value"] == pytest.approx(100 - 1.96 * 30, abs=0.01)
    one_off = t.set_index("parameter").loc["one_off_cost"]
    # The one-off cost is paid at t = 0, so its NPV swing is exactly the range width.
    assert one_off["swing"] == pytest.approx(25_000)
    assert one_off["npv_low"] > one_off["npv_high"]  # a higher cost lowers NPV


def test_monte_carlo_without_uncertainty_is_the_point_estimate():
    certain = Assumptions(**{**BASE.__dict__, "effect_se": 0.0})
    mc = monte_carlo(certain, n=500, seed=1, irr_subsample=50)
    point = initiative_financials(100, 0, 20, 20_000, 500, 24, 0.10, adoption=0.8)
    assert mc.npv_p10 == pytest.approx(point["npv"]) and mc.npv_p90 == pytest.approx(point["npv"])
    assert mc.irr_p50 == pytest.approx(point["irr"])
    assert mc.payback_p50 == pytest.approx(point["payback_months"])


def test_monte_carlo_matches_normal_theory_for_the_effect():
    # With only the effect uncertain, NPV ~ Normal(point NPV, npv_se) exactly.
    point = initiative_financials(100, 30, 20, 20_000, 500, 24, 0.10, adoption=0.8)
    mc = monte_carlo(BASE, n=20_000, seed=7, irr_subsample=200)
    expected_p = stats.norm.sf(0, loc=point["npv"], scale=point["npv_se"])
    # Binomial SE of a proportion over 20 000 draws is <= 0.0035; 4 SE keeps flakes out.
    assert mc.prob_npv_positive == pytest.approx(expected_p, abs=0.014)
    assert mc.npv_p50 == pytest.approx(point["npv"], abs=0.05 * point["npv_se"])
    assert mc.npv_p90 - mc.npv_p10 == pytest.approx(2 * 1.2816 * point["npv_se"], rel=0.03)
    assert mc.draws["irr"].notna().sum() <= 200  # IRR only on the subsample


def test_monte_carlo_cost_ranges_are_triangular_and_seeded():
    ranges = {"one_off_cost": (15_000, 30_000)}
    a = monte_carlo(BASE, ranges, n=5000, seed=3)
    b = monte_carlo(BASE, ranges, n=5000, seed=3)
    assert a.summary() == b.summary()
    cost = a.draws["one_off_cost"]
    assert cost.between(15_000, 30_000).all()
    # Triangular(15k, mode 20k, 30k) has mean (15 + 20 + 30) / 3 = 21.67k.
    assert cost.mean() == pytest.approx(65_000 / 3, rel=0.01)
    with pytest.raises(ValueError):
        monte_carlo(BASE, ranges, distribution="lognormal")


def test_initiative_scenarios_rows_match_the_mart():
    df = initiative_scenarios(
        "onboarding", BASE, {"low": 0.2, "base": 0.5, "high": 0.8}, {"recurring_cost": (300, 900)}, n=2000, seed=0
    )
    assert list(df.columns) == SCENARIO_COLUMNS
    assert (df["initiative"] == "onboarding").all()
    counts = df["kind"].value_counts().to_dict()
    assert counts == {"scenario": 3, "sensitivity": 6, "monte_carlo": 4}
    mc = df[df["kind"] == "monte_carlo"].set_index("name")
    assert mc.loc["p10", "npv"] <= mc.loc["p50", "npv"] <= mc.loc["p90", "npv"]
    assert df.loc[df["kind"] == "sensitivity", ["low_value", "high_value"]].notna().all().all()
    assert df["payback_months"].dtype == float


def test_irr_array_is_irr_of_each_row():
    """The Monte Carlo's IRRs, solved for every draw at once, are ``irr``'s (numpy-financial's), each
    number equal: Monte Carlo draws, and rows with leading, trailing and inner zeros, a single sign,
    several sign changes, all zero."""
    from models.value_finance import irr_array

    rng = np.random.default_rng(3)
    n = 400
    rows = [cash_flows(rng.uniform(1e4, 4e4, n), rng.uniform(0, 2500, n), rng.normal(2500, 2000, n), 24, 0)]
    rows.append(cash_flows(rng.uniform(1e4, 4e4, n), rng.uniform(500, 900, n), rng.normal(900, 600, n), 18, 3))
    odd = rng.normal(0, 100, (n, 13)) * (rng.random((n, 13)) < 0.7)  # zeros anywhere
    odd[:10] = np.abs(odd[:10])  # one sign: no IRR
    odd[10] = 0.0
    rows.append(odd)
    rows.append(np.array([[-100, 110, 0, 0], [0, 0, -100, 110], [-100, 0, 0, 74], [-100, 100, 0, -7]]))
    for flows in rows:
        want = np.array([irr(f) for f in flows])
        assert np.array_equal(irr_array(flows), want, equal_nan=True)
        assert np.isfinite(want).sum() > 0
