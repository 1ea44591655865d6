"""Probabilistic CLV (BG/NBD + Gamma-Gamma) against the published CDNOW fits, and simple CLV/CAC."""

from importlib.metadata import PackageNotFoundError, distribution

import numpy as np
import pandas as pd
import pytest

from models.value import (
    BGNBDParams,
    cac,
    customer_clv,
    expected_purchases,
    fit_bgnbd,
    fit_gamma_gamma,
    payback_months_cac,
    probability_alive,
    rfm_summary,
    simple_clv,
)


def cdnow_file(name: str):
    """A CDNOW file shipped in the `lifetimes` wheel, read from disk (the package is not imported:
    it is unmaintained and fails on pandas 3; we only use its copy of the data)."""
    try:
        path = distribution("lifetimes").locate_file(f"lifetimes/datasets/{name}")
    except PackageNotFoundError:
        pytest.skip("the lifetimes package (which ships the CDNOW data) is not installed")
    if not path.exists():
        pytest.skip(f"{name} missing from the installed lifetimes package")
    return path


@pytest.fixture(scope="module")
def cdnow_summary() -> pd.DataFrame:
    # 2357 CDNOW customers, 39-week calibration, in weeks: x, t_x, T and mean repeat spend zbar.
    df = pd.read_csv(cdnow_file("cdnow_customers_summary_with_transactions.csv"))
    return df.rename(columns={"x": "frequency", "t_x": "recency", "zbar": "monetary_value"})


def test_bgnbd_reproduces_fader_hardie_lee_2005(cdnow_summary):
    # Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way", the CDNOW application:
    # r 0.243, alpha 4.414, a 0.793, b 2.426, log-likelihood -9582.4. Published to 3 decimals,
    # so we allow half a unit in the last place (0.2 % relative on the smallest, r).
    fit = fit_bgnbd(cdnow_summary)
    assert fit.n == 2357
    assert fit.r == pytest.approx(0.243, abs=5e-4)
    assert fit.alpha == pytest.approx(4.414, abs=5e-4)
    assert fit.a == pytest.approx(0.793, abs=5e-4)
    assert fit.b == pytest.approx(2.426, abs=5e-4)
    assert fit.log_likelihood == pytest.approx(-9582.4, abs=0.05)


def test_bgnbd_conditional_expectation_worked_example():
    # Same paper: a customer with x = 2, t_x = 30.43, T = 38.86 weeks is expected to make 1.226
    # purchases in the next 39 weeks (published to 3 decimals).
    params = BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0, n=0)
    assert expected_purchases(params, 39, 2, 30.43, 38.86) == pytest.approx(1.226, abs=5e-3)
    # One-time buyers and non-repeaters: the model assumes they are alive (dropout only happens
    # right after a purchase), and more recent repeaters are more likely alive.
    assert probability_alive(params, 0, 0, 38.86) == 1.0
    assert probability_alive(params, 2, 35, 38.86) > probability_alive(params, 2, 10, 38.86)


def test_gamma_gamma_reproduces_published_cdnow_fit(cdnow_summary):
    # Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value" (CDNOW, also the lifetimes
    # docs' example): p 6.25, q 3.74, gamma (v) 15.44 on the 946 repeat buyers. Published to 2 decimals;
    # 0.5 % relative covers the rounding (15.447 rounds to 15.45 vs the published 15.44).
    fit = fit_gamma_gamma(cdnow_summary)
    assert fit.n == 946
    assert fit.p == pytest.approx(6.25, rel=5e-3)
    assert fit.q == pytest.approx(3.74, rel=5e-3)
    assert fit.v == pytest.approx(15.44, rel=5e-3)


def test_rfm_summary_rebuilds_the_published_summary_from_transactions(cdnow_summary):
    tx = pd.read_csv(
        cdnow_file("CDNOW_sample.txt"),
        sep=r"\s+",
        header=None,
        names=["master_id", "customer_id", "date", "cds", "value"],
        dtype={"date": str},
    )
    tx["date"] = pd.to_datetime(tx["date"], format="%Y%m%d")
    # 39-week calibration period ending 1997-09-30, fractional weeks, as in the paper.
    got = rfm_summary(tx, customer="customer_id", time="date", value="value", observation_end="1997-09-30", freq="W")
    want = cdnow_summary.set_index("ID")
    assert len(got) == 2357
    assert (got["frequency"].to_numpy() == want["frequency"].to_numpy()).all()
    # The shipped summary is rounded to 2 decimals: differences up to 0.005 are rounding.
    for col in ("recency", "T", "monetary_value"):
        assert np.abs(got[col].to_numpy() - want[col].to_numpy()).max() <= 0.0051, col
    assert got.attrs["time_unit_days"] == 7.0


def test_rfm_summary_merges_same_day_and_ignores_after_end():
    tx = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "b"],
            "date": ["2024-01-01", "2024-01-01", "2024-01-11", "2024-03-01", "2024-01-05"],
            "value": [5.0, 5.0, 30.0, 99.0, 7.0],
        }
    )
    s = rfm_summary(tx, value="value", observation_end="2024-01-31")
    assert s.loc["a"].to_dict() == {"frequency": 1, "recency": 10.0, "T": 30.0, "monetary_value": 30.0}
    assert s.loc["b"].to_dict() == {"frequency": 0, "recency": 0.0, "T": 26.0, "monetary_value": 0.0}


def test_customer_clv_behaves(cdnow_summary):
    bg, gg = fit_bgnbd(cdnow_summary), fit_gamma_gamma(cdnow_summary)
    weeks = {"time_unit_days": 7.0}  # the summary is in weeks
    one_year = customer_clv(cdnow_summary, 365, 0.10, 0.3, bg, gg, **weeks)
    assert list(one_year.columns) == ["p_alive", "expected_purchases", "expected_avg_value", "clv"]
    assert one_year["p_alive"].between(0, 1).all()
    # Horizon in days over a weekly summary: 365 days = 52.14 weeks of expected purchases.
    direct = expected_purchases(bg, 365 / 7, *(cdnow_summary[c] for c in ("frequency", "recency", "T")))
    assert one_year["expected_purchases"].to_numpy() == pytest.approx(np.asarray(direct))
    two_years = customer_clv(cdnow_summary, 730, 0.10, 0.3, bg, gg, **weeks)
    assert (two_years["clv"] > one_year["clv"]).all()
    undiscounted = customer_clv(cdnow_summary, 365, 0.0, 0.3, bg, gg, **weeks)
    # At 0 % the CLV is exactly margin x value per purchase x expected purchases.
    assert undiscounted["clv"].to_numpy() == pytest.approx(
        (0.3 * one_year["expected_avg_value"] * one_year["expected_purchases"]).to_numpy()
    )
    assert (one_year["clv"] < undiscounted["clv"]).all()


def test_fit_recovers_planted_parameters_on_simulated_customers():
    # Simulate the BG/NBD story itself: Gamma purchase rates, Beta dropout after each purchase.
    rng = np.random.default_rng(42)
    r, alpha, a, b, T, n = 0.5, 6.0, 0.8, 2.5, 52.0, 4000
    lam, p = rng.gamma(r, 1 / alpha, n), rng.beta(a, b, n)
    freq, rec = np.zeros(n, int), np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1 / lam[i])
            if t > T:
                break
            freq[i] += 1
            rec[i] = t
            if rng.random() < p[i]:
                break
    fit = fit_bgnbd(pd.DataFrame({"frequency": freq, "recency": rec, "T": T}))
    # 4000 customers: over 60 draws (seeds 1000-1059) the fit's relative standard deviations were
    # 3.4 % (r), 5.2 % (alpha), 11.6 % (a) and 15.7 % (b), the largest errors 9 %, 14 %, 36 % and 54 %
    # (the dropout's Beta is the less identified): each band is ~4 of its SDs. (A 25 % band on all
    # four held at seed 42 and failed at seed shift 450000: a 1.6-SD band on b.)
    assert fit.r == pytest.approx(r, rel=0.15) and fit.alpha == pytest.approx(alpha, rel=0.2)
    assert fit.a == pytest.approx(a, rel=0.5) and fit.b == pytest.approx(b, rel=0.65)


def test_simple_clv_cac_and_payback():
    assert simple_clv(50, 0.8, 0.05) == pytest.approx(800)  # 50 x .8 / .05
    assert np.isnan(simple_clv(50, 0.8, 0.0))
    assert cac(10_000, 40) == 250 and np.isnan(cac(10_000, 0))
    assert payback_months_cac(250, 50, 0.8) == pytest.approx(6.25)
    assert simple_clv(np.array([50, 100]), 0.5, np.array([0.1, 0.05])).tolist() == [250, 1000]


def test_bgnbd_fit_over_distinct_triples_is_the_fit_over_customers():
    """fit_bgnbd sums the likelihood once per distinct (x, t_x, T), weighted by its customers; the
    oracle minimizes the plain per-customer sum. Whole weeks: 3000 customers, few distinct triples."""
    from models.value_clv import _fit, bgnbd_log_likelihood

    rng = np.random.default_rng(7)
    n = 3000
    T = rng.integers(1, 9, n).astype(float)
    freq = np.minimum(rng.poisson(0.6, n), T).astype(float)
    rec = np.where(freq > 0, np.ceil(rng.uniform(0, 1, n) * T), 0.0)
    summary = pd.DataFrame({"frequency": freq, "recency": rec, "T": T})
    assert len(summary.drop_duplicates()) < n / 10
    fit = fit_bgnbd(summary)
    scale = float(np.mean(T))
    res = _fit(lambda lp: -bgnbd_log_likelihood(*np.exp(lp), freq, rec / scale, T / scale).sum(), np.zeros(4))
    r, alpha, a, b = np.exp(res.x)
    assert fit.r == pytest.approx(r, rel=1e-4) and fit.alpha == pytest.approx(alpha * scale, rel=1e-4)
    assert fit.a == pytest.approx(a, rel=1e-4) and fit.b == pytest.approx(b, rel=1e-4)
    ll = bgnbd_log_likelihood(r, alpha * scale, a, b, freq, rec, T).sum()
    assert fit.log_likelihood == pytest.approx(ll, rel=1e-6) and fit.n == n
