"""marts.channel_attribution, marts.initiative_scenarios, marts.initiative_portfolio and KPI values; on the
generated sample, the planted channel contribution, churn by channel and uncertain-NPV initiative."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from support.marts_sample import Z, within

from models.kpis import compute_kpi_values
from models.marts.channel_attribution import (
    channel_of,
    channels,
    compute_channel_attribution,
    marketing_touches,
)
from models.marts.initiative_portfolio import compute_initiative_portfolio, plan_rules
from models.marts.initiative_scenarios import compute_initiative_scenarios
from models.value import initiative_financials
from tracking_plan.loader import load_plan

T0 = pd.Timestamp("2026-10-01 10:00")
DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def plan():
    return load_plan()


# -- attribution ---------------------------------------------------------------------------------------------
def test_channel_names():
    assert channel_of("google", "cpc") == "google/cpc"
    assert channel_of(None, None) == "direct" and channel_of(float("nan"), None) == "direct"
    assert channel_of("newsletter", None) == "newsletter"


def test_channels_of_whole_columns_match_channel_of():
    # the vectorised form the mart uses, against the per-session function on every kind of missing value
    source = ["google", "", None, "x", "y", float("nan"), "z", "linkedin"]
    medium = ["cpc", "a", None, "", None, "m", float("nan"), "social"]
    for dtype in (object, "str"):
        s = pd.Series(source, dtype=dtype, index=range(10, 18))
        m = pd.Series(medium, dtype=dtype, index=range(30, 38))
        assert channels(s, m) == [channel_of(a, b) for a, b in zip(s, m, strict=True)]
    assert channels(s, m)[:2] == ["google/cpc", "direct"] and channels(s, m)[3] == "x"


def test_later_direct_sessions_are_not_touches():
    t = pd.DataFrame(
        {
            "person_id": ["a", "a", "a", "b"],
            "timestamp": [T0, T0 + DAY, T0 + 2 * DAY, T0],
            "channel": ["google/cpc", "direct", "newsletter/email", "direct"],
        }
    )
    kept = marketing_touches(t)
    assert kept["channel"].tolist() == ["google/cpc", "newsletter/email", "direct"]


def test_attribution_by_hand():
    """a: google → newsletter → buys 100; b: first visit direct → buys 50; c: linkedin, never buys.

    Markov by hand: P(conversion) = 2/3; removing google or newsletter leaves only b's path
    converting (1/3), removal effect 1/2; direct likewise 1/2; linkedin 0. Credit ∝ removal effect:
    2/3 of a conversion each to google, newsletter and direct.
    """
    sessions = pd.DataFrame(
        {
            "person_id": ["a", "a", "b", "c"],
            "started_at": [T0, T0 + DAY, T0, T0],
            "utm_source": ["google", "newsletter", None, "linkedin"],
            "utm_medium": ["cpc", "email", None, "paid_social"],
        }
    )
    conv = pd.DataFrame({"person_id": ["a", "b"], "timestamp": [T0 + 2 * DAY, T0 + DAY], "value": [100.0, 50.0]})
    out = compute_channel_attribution(sessions, conv)
    got = {(r["model"], r["channel"]): (r["conversions"], r["value"]) for r in out.to_dict("records")}
    assert got[("first_touch", "google/cpc")] == (1.0, 100.0)
    assert got[("last_touch", "newsletter/email")] == (1.0, 100.0)
    assert got[("linear", "google/cpc")] == pytest.approx((0.5, 50.0))
    assert got[("position_based", "newsletter/email")] == pytest.approx((0.5, 50.0))  # two touches split evenly
    assert got[("first_touch", "direct")] == (1.0, 50.0)
    # time decay (7-day half-life): the touch a day older gets 2^(-1/7) of the newer one's weight
    w_old = 2 ** (-2 / 7) / (2 ** (-2 / 7) + 2 ** (-1 / 7))
    assert got[("time_decay", "google/cpc")][0] == pytest.approx(w_old)
    markov = out[out["model"] == "markov"].set_index("channel")
    assert markov.loc[["google/cpc", "newsletter/email", "direct"], "removal_effect"].tolist() == pytest.approx(
        [0.5] * 3
    )
    assert markov.loc["linkedin/paid_social", "removal_effect"] == pytest.approx(0.0)
    assert markov.loc["direct", "conversions"] == pytest.approx(2 / 3)
    for _, g in out.groupby("model"):
        assert g["conversions"].sum() == pytest.approx(2.0) and g["value"].sum() == pytest.approx(150.0)


# -- scenarios and portfolio --------------------------------------------------------------------------------------
def _roi(plan, effects: dict[str, tuple[float, float, str]]) -> pd.DataFrame:
    rows = []
    for ini in plan.metrics.initiatives:
        eff, se, grade = effects.get(ini.key, (np.nan, np.nan, "C"))
        rows.append(
            {
                "initiative": ini.key,
                "name": ini.name,
                "owner": ini.owner,
                "method": ini.evaluation.method,
                "evidence_grade": grade,
                "evidence_label": "",
                "estimate": eff / 100,
                "ci_low": np.nan,
                "ci_high": np.nan,
                "unit": "x",
                "effect_per_month": eff,
                "effect_per_month_se": se,
                "npv": np.nan,
                "irr": np.nan,
                "payback_months": np.nan,
                "non_financial": "[]",
            }
        )
    return pd.DataFrame(rows)


def test_scenarios_rows(plan):
    roi = _roi(plan, {"eu_live_chat": (20.0, 5.0, "B")})
    sc = compute_initiative_scenarios(roi, plan, n=2000)
    assert set(sc["initiative"]) == {"eu_live_chat"}  # no estimate, no scenarios
    ini = next(i for i in plan.metrics.initiatives if i.key == "eu_live_chat")
    base = sc[(sc["kind"] == "scenario") & (sc["name"] == "base")].iloc[0]
    fin = initiative_financials(
        20.0,
        5.0,
        ini.value_per_conversion,
        ini.costs.one_off,
        ini.costs.recurring_monthly,
        ini.horizon_months,
        ini.discount_rate,
        adoption=ini.adoption.base,
    )
    assert base["npv"] == pytest.approx(fin["npv"])
    npvs = sc[sc["kind"] == "scenario"].set_index("name")["npv"]
    assert npvs["low"] < npvs["base"] < npvs["high"]  # adoption 0.5 < 1 < 1.3
    tornado = sc[sc["kind"] == "sensitivity"].set_index("parameter")
    assert tuple(tornado.loc["one_off_cost", ["low_value", "high_value"]]) == tuple(ini.costs.one_off_range)
    assert tornado["swing"].is_monotonic_decreasing
    mc = sc[sc["kind"] == "monte_carlo"].set_index("name")["npv"]
    assert mc["p10"] <= mc["p50"] <= mc["p90"]
    hist = sc[sc["kind"] == "distribution"]
    assert hist["share"].sum() == pytest.approx(1.0) and len(hist) == 20


def test_portfolio_recommendations_follow_plan_rules(plan):
    roi = _roi(
        plan,
        {
            "onboarding_checklist": (80.0, 5.0, "A"),  # sure winner, randomized: scale
            "eu_live_chat": (1.0, 0.5, "B"),  # cannot pay its costs back: stop
            "slack_integration": (3.0, 3.0, "C"),
        },
    )  # uncertain, weak evidence
    sc = compute_initiative_scenarios(roi, plan, n=2000)
    kpis = pd.DataFrame(
        [
            {"kpi": "activation_rate", "current": 0.30, "target": 0.35, "direction": "increase", "on_track": False},
            {
                "kpi": "paid_conversion_rate",
                "current": 0.10,
                "target": 0.12,
                "direction": "increase",
                "on_track": False,
            },
        ]
    )
    pf = compute_initiative_portfolio(roi, sc, kpis, plan).set_index("initiative")
    assert pf.loc["onboarding_checklist", "recommendation"] == "scale"
    assert pf.loc["eu_live_chat", "recommendation"] == "stop"
    slack = pf.loc["slack_integration"]
    expected = "pivot" if slack["prob_npv_positive"] <= 0.5 else "continue"
    assert slack["recommendation"] == expected
    assert pf.loc["new_pricing_page", "recommendation"] == "not evaluable"  # no estimate: nothing to weigh
    assert pf.loc["new_pricing_page", "reason"].startswith("not evaluable")
    assert pf.loc["onboarding_checklist", "kpi_gap"] == pytest.approx(-0.05)
    ranked = pf.sort_values("rank")
    assert ranked.index[0] == "onboarding_checklist" and ranked["rank"].tolist() == [1, 2, 3, 4]
    assert ranked["expected_npv"].dropna().is_monotonic_decreasing
    assert json.loads(pf.loc["eu_live_chat", "rules"]) == plan_rules(
        next(i for i in plan.metrics.initiatives if i.key == "eu_live_chat")
    )


# -- KPI values ------------------------------------------------------------------------------------------------
def test_kpi_values_by_measure(plan):
    end = pd.Timestamp("2026-11-15 12:00")
    rows = []
    # 10 tickets in the last 30 days, 4 in the 30 before: support_tickets (decrease, target 150) on track
    rows += [
        {"person_id": f"t{i}", "event_name": "Support Ticket Created", "timestamp": end - i * DAY} for i in range(10)
    ]
    rows += [
        {"person_id": f"o{i}", "event_name": "Support Ticket Created", "timestamp": end - (35 + i) * DAY}
        for i in range(4)
    ]
    # survey scores 6 and 9 in the period: mean 7.5
    rows += [
        {"person_id": "s", "event_name": "Survey Responded", "timestamp": end - 2 * DAY, "prop:score": 6.0},
        {"person_id": "s", "event_name": "Survey Responded", "timestamp": end - 3 * DAY, "prop:score": 9.0},
    ]
    # 4 signups 10-20 days before the end: 1 does 3 tasks within 7 days -> activation 0.25
    for i in range(4):
        s = end - (12 + i) * DAY
        rows.append({"person_id": f"n{i}", "event_name": "Account Created", "timestamp": s})
        rows += [
            {"person_id": f"n{i}", "event_name": "Task Completed", "timestamp": s + (k + 1) * DAY}
            for k in range(3 if i == 0 else 2)
        ]
    rows.append({"person_id": "x", "event_name": "Order Completed", "timestamp": end - DAY, "prop:revenue": 120.0})
    k = compute_kpi_values(pd.DataFrame(rows), plan).set_index("kpi")
    assert k.loc["support_tickets", "current"] == 10 and k.loc["support_tickets", "previous"] == 4
    assert k.loc["support_tickets", "on_track"] is True
    assert k.loc["nps_score", "current"] == pytest.approx(7.5) and k.loc["nps_score", "on_track"] is False
    assert k.loc["activation_rate", "current"] == pytest.approx(0.25)
    assert k.loc["revenue", "current"] == pytest.approx(120.0)
    assert len(json.loads(k.loc["support_tickets", "trend"])) == 8


# -- the generated sample ---------------------------------------------------------------------------------------
def _seeds():
    from support.marts_sample import SEEDS

    return SEEDS


@pytest.fixture(scope="module", params=_seeds(), ids=lambda s: f"seed{s}")
def marts(request):
    import duckdb
    from support.marts_sample import built_marts

    path, truth = built_marts(request.param)
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = {
            t: con.execute(f"select * from marts.{t}").df()
            for t in (
                "channel_attribution",
                "initiative_scenarios",
                "initiative_portfolio",
                "initiative_roi",
                "customer_value",
            )
        }
        purchases = con.execute("select count(*) from stitch.events where event_name = 'Order Completed'").fetchall()[
            0
        ][0]
    finally:
        con.close()
    return tables, truth, purchases


def test_sample_attribution_credits_every_purchase_once_per_model(marts):
    tables, truth, purchases = marts
    a = tables["channel_attribution"]
    for model, g in a.groupby("model"):
        assert g["conversions"].sum() == pytest.approx(purchases), model  # every purchase credited once
    markov = a[a["model"] == "markov"].set_index("channel")
    per_touch = markov["share_conversions"] / markov["share_of_touches"]
    # A LinkedIn touch doubles the purchase probability (planted: checked exactly on the model by
    # tests/test_generate.py). Per touch the Markov removal effects credit LinkedIn above Google by
    # 0.16 on average (sd 0.065 over seeds 1-64), yet below it on seed 70002, and below Capterra (same
    # multiplier as Google) on 9 of seeds 3-64: removal effects follow the conversions that pass
    # through a channel, not its effect, and a 600-user sample cannot rank them on any seed. The model
    # itself is checked against the ChannelAttribution package (test_value_attribution.py) and its
    # bias against a known chain in benchmarks/calibration.py; here, what holds on any seed:
    assert truth["channels"]["planted"]["linkedin_touch_purchase_multiplier"] == 2.0
    assert per_touch.notna().all() and (per_touch.drop("(none)", errors="ignore") > 0).all()
    assert {"linkedin/paid_social", "google/cpc", "capterra/cpc"} <= set(per_touch.index)


def test_attribution_reads_only_the_touch_sessions_and_equals_it_over_every_session():
    """build selects in SQL only the sessions marketing_touches keeps; the mart is the pure function's
    over every session of the sample (the oracle), and most sessions were not read."""
    import duckdb
    from support.marts_sample import sample

    from models.marts.channel_attribution import build, purchases, touch_sessions

    path, _ = sample()
    con = duckdb.connect(str(path), read_only=True)
    try:
        every = con.execute("select person_id, started_at, utm_source, utm_medium from staging.sessions").df()
        want = compute_channel_attribution(every, purchases(con, load_plan()))
        got = build(con, load_plan())
        n = len(touch_sessions(con))
    finally:
        con.close()
    assert n < len(every) and n >= every["person_id"].nunique()
    pd.testing.assert_frame_equal(got, want)


def test_sample_scenarios_and_portfolio(marts):
    tables, _, _ = marts
    sc, pf, roi = tables["initiative_scenarios"], tables["initiative_portfolio"], tables["initiative_roi"]
    estimated = set(roi.loc[roi["effect_per_month"].notna(), "initiative"])
    assert set(sc["initiative"]) == estimated
    kinds = sc.groupby("initiative")["kind"].agg(set)
    assert all(k == {"scenario", "sensitivity", "monte_carlo", "distribution"} for k in kinds)
    assert len(pf) == len(roi) and pf["rank"].tolist() == list(range(1, len(pf) + 1))
    assert set(pf["recommendation"]) <= {"stop", "continue", "scale", "pivot", "not evaluable"}
    assert pf["evidence_grade"].notna().all() and pf["kpi_current"].notna().all()
    ok = pf.dropna(subset=["npv_p10"])
    assert (ok["npv_p10"] <= ok["npv_p50"]).all() and (ok["npv_p50"] <= ok["npv_p90"]).all()


def rate_ratio_ci(a: int, exposure_a: float, b: int, exposure_b: float, level: float = 0.95) -> tuple[float, float]:
    """Exact interval for the ratio of two Poisson rates (a / exposure_a) / (b / exposure_b).

    Given a + b events, a is binomial with p = R·Ea / (R·Ea + Eb); the Clopper-Pearson interval of p
    maps to one for R.
    """
    ci = sps.binomtest(a, a + b).proportion_ci(level, method="exact")

    def ratio(q: float) -> float:
        return q / (1 - q) * exposure_b / exposure_a if q < 1 else math.inf

    return ratio(ci.low), ratio(ci.high)


def test_sample_churn_by_channel_recovers_planted_capterra_churn(marts):
    tables, truth, _ = marts
    cv = tables["customer_value"]
    cv = cv[cv["plan"] == "all"].set_index("channel")
    planted = truth["churn"]["planted"]
    assert planted["channel"] == "capterra"
    cap = cv.loc["capterra"]
    # capterra's customers cancel more often than every other customer pooled (planted 4.4x, ≈ 11 against
    # 26 cancellations: the log rate ratio is ≈ 4 of its standard errors above 0, so the point estimate,
    # not a 95 % bound, is what holds on any seed)
    rest = cv.drop(index="capterra")[["churned_customers", "customer_months"]].sum()
    assert cap["churned_customers"] / cap["customer_months"] > rest["churned_customers"] / rest["customer_months"]
    # against the channels planted with one common lower rate, the exact interval at Z standard errors'
    # confidence holds the planted ratio (organic arrives without a UTM source, so the mart counts it under
    # direct with the accounts older than the window, whose rate differs: it is left out)
    level = 1 - 2 * sps.norm.sf(Z)
    same = cv.loc[[c for c in planted["other_channels"] if c in cv.index]].sum()
    low, high = rate_ratio_ci(
        int(cap["churned_customers"]),
        cap["customer_months"],
        int(same["churned_customers"]),
        same["customer_months"],
        level,
    )
    assert low <= planted["hazard_ratio_vs_others"] <= high


def test_sample_npv_truth_and_the_uncertain_initiative(marts, plan):
    tables, truth, _ = marts
    value = truth["value"]
    roi = tables["initiative_roi"].set_index("initiative")
    pf = tables["initiative_portfolio"].set_index("initiative")
    for key, t in value["initiatives"].items():
        ini = next(i for i in plan.metrics.initiatives if i.key == key)
        # the generator's numpy-financial NPV follows the marts' convention
        fin = initiative_financials(
            t["true_effect_per_month"],
            0.0,
            ini.value_per_conversion,
            ini.costs.one_off,
            ini.costs.recurring_monthly,
            ini.horizon_months,
            ini.discount_rate,
            adoption=ini.adoption.base,
        )
        assert fin["npv"] == pytest.approx(t["true_npv_base_cost"])
        # recovered: the true NPV lies within Z standard errors (the effect's sampling error) of the NPV
        r = roi.loc[key]
        assert within(t["true_npv_base_cost"], r["npv"], r["npv_se"]), key
    # planted: at its true effect slack_integration loses money at the dear end of its declared cost
    # ranges; the other three pay back at any declared cost. Whether slack_integration pays back at the
    # cheap end is this sample's draw: its true effect is the realized ATT over its ~170 treated accounts
    # (0.036-0.134 over 35 seeds), the cheap end positive above ~0.047 (34 of the 35; seed 80001 not).
    # The generator lists it in `uncertain_npv` exactly when the cost ranges straddle break-even.
    assert value["planted"]["positive_at_every_declared_cost"] == [
        "eu_live_chat",
        "new_pricing_page",
        "onboarding_checklist",
    ]
    t = value["initiatives"]["slack_integration"]
    assert t["true_npv_highest_costs"] < 0
    assert value["planted"]["uncertain_npv"] == (["slack_integration"] if t["true_npv_lowest_costs"] > 0 else [])
    # the Monte Carlo over the effect's sampling distribution and the cost ranges leaves the sign open.
    # How open depends on where this sample's estimate fell (within 4 standard errors of the truth,
    # above): 0.05-0.95 held on seeds 1-2, not on seed 60001 (0.0016); some draws fall on each side
    assert 0 < pf.loc["slack_integration", "prob_npv_positive"] < 1
