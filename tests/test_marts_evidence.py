"""marts.experiment_results and marts.initiative_roi: hand-built events, then the generator's planted effects."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from models.marts.events_frame import normalize, where_column
from models.marts.experiment_results import compute_experiment_results
from models.marts.initiative_roi import compute_initiative_roi, non_financial_changes
from models.marts.initiatives import (
    cross_section_event_study,
    did_frame,
    grade_of,
    matching_frame,
)
from models.stats import ab_readout
from tracking_plan.loader import load_plan

T0 = pd.Timestamp("2026-09-01 09:00")
DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def plan():
    return load_plan()


def ev(person, name, ts, **cols) -> dict:
    return {"person_id": person, "event_name": name, "timestamp": ts, "has_user": True, **cols}


def exposure(person, variant, ts=T0, key="onboarding_checklist") -> dict:
    return ev(person, "Experiment Viewed", ts, experiment_id=key, variant=variant)


def tasks(person, start, n, spacing=DAY) -> list[dict]:
    return [ev(person, "Task Completed", start + (i + 1) * spacing) for i in range(n)]


def experiment_events(n_control=10, act_control=3, n_treat=10, act_treat=6) -> list[dict]:
    rows = []
    for arm, n, k in (("control", n_control, act_control), ("checklist", n_treat, act_treat)):
        for i in range(n):
            p = f"{arm}{i}"
            rows.append(exposure(p, arm))
            rows += tasks(p, T0, 3 if i < k else 2)  # 3 tasks within 7 days = activated (plan min_count 3)
    return rows


# -- experiments --------------------------------------------------------------------------------------------
def test_experiment_counts_lift_and_srm(plan):
    rows = experiment_events()
    # Completions before exposure, or after the 7-day window, do not activate anyone.
    rows += [ev("control9", "Task Completed", T0 - DAY * i) for i in (1, 2, 3)]
    rows += [ev("control8", "Task Completed", T0 + DAY * 8)]
    # Exposed again in the other arm: the first exposure's arm counts.
    rows.append(exposure("control7", "checklist", T0 + DAY))
    # Exposed 3 days before the data ends: counted for SRM, not analysed (its window is open).
    end = T0 + 30 * DAY
    rows += [exposure("late", "checklist", end - 3 * DAY), ev("late", "Page Viewed", end)]
    out = compute_experiment_results(pd.DataFrame(rows), plan)
    prim = out[out["metric"] == "activation_rate"].set_index("variant")
    assert prim.loc["control", "exposures"] == 10 and prim.loc["checklist", "exposures"] == 11
    assert prim.loc["control", "analysed"] == 10 and prim.loc["checklist", "analysed"] == 10
    assert prim.loc["control", "rate"] == pytest.approx(0.3)
    assert prim.loc["checklist", "rate"] == pytest.approx(0.6)
    # control9's three pre-exposure completions make the pre-period value vary, so CUPED adjusts the
    # raw 0.3 difference by theta times the arms' pre-period gap (0 - 0.3).
    r = prim.loc["checklist"]
    assert r["cuped"] and r["lift_abs"] == pytest.approx(0.3 - r["theta"] * (0.0 - 0.3))
    assert prim.loc["checklist", "srm_p_value"] == pytest.approx(sps.chisquare([10, 11]).pvalue)
    # sequential: the always-valid interval is wider than the fixed-horizon one
    r = prim.loc["checklist"]
    assert r["sequential"] and r["seq_ci_low"] < r["ci_low"] and r["seq_ci_high"] > r["ci_high"]
    assert r["required_n_per_arm"] > 0 and 0 < r["power"] < 1


def test_guardrail_regression_flagged_and_cuped_used(plan):
    rng = np.random.default_rng(3)
    rows = []
    for arm, p_ticket in (("control", 0.05), ("checklist", 0.40)):
        for i in range(200):
            p = f"{arm}{i}"
            rows.append(exposure(p, arm))
            heavy = rng.random() < 0.5
            # tickets before exposure predict tickets after: CUPED's covariate
            rows += [ev(p, "Support Ticket Created", T0 - DAY * (j + 1)) for j in range(3 if heavy else 0)]
            if rng.random() < p_ticket + (0.3 if heavy else 0.0):
                rows.append(ev(p, "Support Ticket Created", T0 + 2 * DAY))
    out = compute_experiment_results(pd.DataFrame(rows), plan)
    g = out[(out["metric"] == "support_tickets") & ~out["is_control"]].iloc[0]
    assert g["metric_role"] == "guardrail" and g["direction"] == "decrease"
    assert g["guardrail_regression"]  # +35 points of tickets on 200 per arm is far outside the interval
    assert g["cuped"] and g["theta"] > 0
    # CUPED's interval is narrower than the unadjusted readout of the same persons
    frame = pd.DataFrame(
        [{"variant": r["variant"], "person_id": r["person_id"]} for r in rows if r["event_name"] == "Experiment Viewed"]
    )
    after = {r["person_id"] for r in rows if r["event_name"] == "Support Ticket Created" and r["timestamp"] > T0}
    frame["y"] = frame["person_id"].isin(after).astype(float)
    plain = ab_readout(frame, variant="variant", outcome="y", control="control")
    assert g["std_error"] < plain["std_error"].iloc[0]
    prim = out[(out["metric"] == "activation_rate") & ~out["is_control"]].iloc[0]
    assert not prim["guardrail_regression"]


# -- initiatives -----------------------------------------------------------------------------------------------
def _did_events(rng, n_per_cell=150, lift=0.0, pre_trend=0.0) -> list[dict]:
    """Signups in eu/na over 8 weeks before and 4 after 2026-10-01; orders within 28 days."""
    launch = pd.Timestamp("2026-10-01")
    rows = []
    i = 0
    for region in ("eu", "na"):
        for week in range(-8, 4):
            for _ in range(n_per_cell // 4):
                i += 1
                p = f"p{i}"
                t = launch + week * 7 * DAY + pd.Timedelta(hours=int(rng.integers(0, 160)))
                rate = 0.15 + (lift if region == "eu" and week >= 0 else 0.0)
                rate += pre_trend * (week + 8) if region == "eu" and week < 0 else 0.0
                rows.append(ev(p, "Account Created", t, region=region))
                if rng.random() < rate:
                    rows.append(ev(p, "Order Completed", t + 5 * DAY, region=region, **{"prop:revenue": 100.0}))
    rows.append(ev("clock", "Page Viewed", launch + 70 * DAY, region="na"))
    return rows


def test_did_frame_window_and_cells(plan):
    ini = next(i for i in plan.metrics.initiatives if i.key == "eu_live_chat")
    launch = pd.Timestamp(ini.start)
    rows = [
        ev("a", "Account Created", launch - 10 * DAY, region="eu"),
        ev("a", "Order Completed", launch + 10 * DAY, region="eu"),  # 20 days after signup: converts
        ev("b", "Account Created", launch + 1 * DAY, region="na"),
        ev("b", "Order Completed", launch + 30 * DAY, region="na"),  # 29 days: outside the 28-day window
        ev("c", "Account Created", launch + 2 * DAY, region="apac"),  # neither treated nor control
        ev("d", "Account Created", launch + 40 * DAY, region="eu"),  # window still open at the end
        ev("clock", "Page Viewed", launch + 50 * DAY, region="na"),
    ]
    df = normalize(pd.DataFrame(rows), plan)
    frame = did_frame(df, plan, ini, df["timestamp"].max()).set_index("person_id")
    assert list(frame.index) == ["a", "b"]
    assert frame.loc["a", ["treated", "post", "y"]].tolist() == [1.0, 0.0, 1.0]
    assert frame.loc["b", ["treated", "post", "y"]].tolist() == [0.0, 1.0, 0.0]


@pytest.mark.parametrize("seed", [1, 2])
def test_did_grade_falls_when_treated_group_was_already_diverging(plan, seed):
    """Parallel trends are planted on one sample, a diverging treated group on the other. On any seed
    (not one picked because its 5 % checks pass: about 1 in 10 fails one of the two) the parallel
    sample's pre-trend test is far from rejecting (p > 1e-4), its interval holds the lift within 4
    standard errors and its grade is B exactly when every check passed; the diverging one's pre-trend
    test rejects (a drift of 0.05 a week over 8 weeks: p < 1e-4) and its grade is C."""
    from support.marts_sample import within

    ini = next(i for i in plan.metrics.initiatives if i.key == "eu_live_chat")
    ok = pd.DataFrame(_did_events(np.random.default_rng([seed, 1]), lift=0.15))
    diverging = pd.DataFrame(_did_events(np.random.default_rng([seed, 2]), n_per_cell=1200, lift=0.0, pre_trend=0.05))
    studies = {}
    for name, df in (("ok", ok), ("diverging", diverging)):
        frame = did_frame(normalize(df, plan), plan, ini, df["timestamp"].max())
        studies[name] = cross_section_event_study(frame)
    assert studies["ok"]["pretrend_p_value"] > 1e-4
    assert studies["diverging"]["pretrend_p_value"] < 1e-4 and studies["diverging"]["pretrend_passed"] is False
    good = compute_initiative_roi(ok, plan).set_index("initiative").loc["eu_live_chat"]
    assert within(0.15, good["estimate"], good["std_error"])
    assert good["evidence_grade"] == ("B" if good["all_checks_passed"] else "C")
    bad = compute_initiative_roi(diverging, plan).set_index("initiative").loc["eu_live_chat"]
    assert bad["evidence_grade"] == "C" and "pretrend" not in json.loads(bad["checks_passed"])


def test_did_placebo_that_cannot_be_estimated_fails_its_check(plan, monkeypatch):
    """The placebo splits the before period at its middle signup; when the treated accounts all signed
    up in its first half, that split has no treated rows after it. The placebo is then not estimable:
    its check fails with the reason (it has not shown a flat pre-period), rather than passing on an
    arbitrary estimate of a rank-deficient design."""
    from models.marts import initiatives

    ini = next(i for i in plan.metrics.initiatives if i.key == "eu_live_chat")
    start = pd.Timestamp(ini.start)
    rng = np.random.default_rng(5)
    days = [*range(-40, 21), *range(-40, -25), *range(21)]
    treated = [0.0] * 61 + [1.0] * (len(days) - 61)
    signup = [start + d * DAY for d in days]
    frame = pd.DataFrame(
        {
            "person_id": [f"a{i}" for i in range(len(days))],
            "signup_at": signup,
            "segment": ["eu" if t else "na" for t in treated],
            "treated": treated,
            "post": [float(d >= 0) for d in days],
            "rel_week": [int(np.floor(d / 7)) for d in days],
            "y": rng.integers(0, 2, len(days)).astype(float),
        }
    )
    monkeypatch.setattr(initiatives, "did_frame", lambda *_a: frame)
    got = initiatives.estimate_did(None, plan, ini, start + 60 * DAY)
    assert got["checks"]["placebo"] is False
    assert got["details"]["placebo_p_value"] is None
    assert "treated after" in got["details"]["placebo_error"]


def test_matching_with_too_few_accounts_left_to_compare_is_not_evaluable(plan, monkeypatch):
    """Accounts whose pre-period activity alone tells who connected Slack score 0 or 1, and the trim
    drops them all: the initiative is not evaluable, saying why, instead of the mart failing on the
    estimator's error. When the weighting estimates but the nearest-neighbour cross-check cannot
    (every treated account paired with one control), that check fails, saying why."""
    from models.marts import initiatives

    ini = next(i for i in plan.metrics.initiatives if i.key == "slack_integration")
    end = pd.Timestamp(ini.start) + 60 * DAY
    rng = np.random.default_rng(11)
    n = 200
    treated = (np.arange(n) < 60).astype(float)
    separated = pd.DataFrame(
        {
            "treated": treated,
            "y": rng.integers(0, 2, n).astype(float),
            # every treated account was active 10-19 days, every other one 0-5
            "pre_events": np.where(treated > 0, rng.integers(10, 20, n), rng.integers(0, 6, n)).astype(float),
            "company_size_rank": 2.0,
            "seats": 0.0,
        }
    )
    monkeypatch.setattr(initiatives, "matching_frame", lambda *_a: separated)
    with pytest.raises(initiatives.Skip, match="^propensity weighting: no treated unit has a comparable control"):
        initiatives.estimate_matching(None, plan, ini, end)
    # twenty treated accounts around one control's activity (test_stats_causal's construction)
    x = np.r_[np.linspace(-3, 3, 60), 0.5, 0.495 + np.linspace(0, 0.01, 20)]
    t = np.r_[np.zeros(61), np.ones(20)]
    one = pd.DataFrame({"treated": t, "y": t + np.linspace(0, 1, 81), "pre_events": x, "company_size_rank": 2.0})
    monkeypatch.setattr(initiatives, "matching_frame", lambda *_a: one)
    got = initiatives.estimate_matching(None, plan, ini, end)
    assert got["checks"]["matching_agrees"] is False and np.isfinite(got["estimate"].std_error)
    assert got["details"]["nearest_effect"] is None
    assert got["details"]["nearest_error"].startswith("nearest-neighbour matching: ")
    assert "20 treated and 1 control units left to compare" in got["details"]["nearest_error"]


def test_matching_removes_heavy_user_selection(plan):
    """Heavy users opt in and buy more anyway: naive overstates, matching on pre-period activity recovers."""
    rng = np.random.default_rng(7)
    ini = next(i for i in plan.metrics.initiatives if i.key == "slack_integration")
    start = pd.Timestamp(ini.start)
    n = 3000
    pre = rng.poisson(np.exp(rng.normal(1.5, 1.0, n)))  # skewed activity, as real usage is
    x = np.log1p(pre)
    treated = rng.random(n) < 1 / (1 + np.exp(-(-2.0 + 0.8 * x)))
    true_att = 0.10
    buys = rng.random(n) < 0.02 + 0.12 * x + true_att * treated
    people = [f"u{i}" for i in range(n)]
    rows = [ev(p, "User Identified", start - 20 * DAY, company_size="11-50") for p in people]
    rows += [ev(people[i], "Page Viewed", start - DAY * (1 + j % 13)) for i in range(n) for j in range(pre[i])]
    # the plan treats only Slack connections (treatment_where: {integration: slack}): others are not treated
    rows += [
        ev(people[i], "Integration Connected", start + 3 * DAY, **{where_column("integration"): "slack"})
        for i in np.flatnonzero(treated)
    ]
    rows += [
        ev(people[i], "Integration Connected", start + 4 * DAY, **{where_column("integration"): "jira"})
        for i in np.flatnonzero(~treated)[:50]
    ]
    rows += [ev(people[i], "Order Completed", start + 30 * DAY, **{"prop:revenue": 50.0}) for i in np.flatnonzero(buys)]
    rows.append(ev("u0", "Page Viewed", start + 60 * DAY))
    df = pd.DataFrame(rows)
    frame = matching_frame(normalize(df, plan), plan, ini, df["timestamp"].max())
    assert len(frame) == n and frame["treated"].sum() == treated.sum()
    row = compute_initiative_roi(df, plan).set_index("initiative").loc["slack_integration"]
    details = json.loads(row["details"])
    # on any seed (the 95% interval itself misses the truth on 1 seed in 20, as it should: seed 1007
    # of this sample; benchmarks/calibration.py measures its coverage): the truth within 4 standard
    # errors, and the naive difference, 3-5 standard errors above it on seeds 0-99, outside the interval
    from support.marts_sample import within

    assert within(true_att, row["estimate"], row["std_error"])
    assert not row["ci_low"] <= details["naive_effect"] <= row["ci_high"]
    assert details["covariates_unavailable"] == ["company_size_rank", "seats"]  # constant here: dropped
    # balance holds on every seed; the nearest-neighbour cross-check is another estimator of the same
    # ATT, whose interval misses the IPW estimate on ~1 seed in 20 (4 of seeds 0-87): the grade follows
    passed = json.loads(row["checks_passed"])
    assert json.loads(row["checks_run"]) == ["balance", "matching_agrees"] and "balance" in passed
    assert row["evidence_grade"] == ("B" if passed == ["balance", "matching_agrees"] else "C")


def test_its_level_change_and_before_after_grade(plan):
    rng = np.random.default_rng(5)
    ini = next(i for i in plan.metrics.initiatives if i.key == "new_pricing_page")
    start = pd.Timestamp(ini.start)
    days = pd.date_range(start - 60 * DAY, start + 30 * DAY, freq="D")
    rows = []
    for d in days:
        k = rng.poisson(6 + (4 if d >= start else 0))  # planted level change: +4 orders a day
        rows += [
            ev(f"b{d.date()}_{j}", "Order Completed", d + pd.Timedelta(hours=12), **{"prop:revenue": 10.0})
            for j in range(k)
        ]
    rows.append(ev("clock", "Page Viewed", days[-1] + pd.Timedelta(hours=23, minutes=59)))
    df = pd.DataFrame(rows)
    its = compute_initiative_roi(df, plan).set_index("initiative").loc["new_pricing_page"]
    from support.marts_sample import within

    assert its["method"] == "interrupted_time_series" and within(4, its["estimate"], its["std_error"])
    assert its["effect_per_month"] == pytest.approx(its["estimate"] * 30.4375)
    ba = plan.model_copy(deep=True)
    target = next(i for i in ba.metrics.initiatives if i.key == "new_pricing_page")
    target.evaluation.method = "before_after"
    row = compute_initiative_roi(df, ba).set_index("initiative").loc["new_pricing_page"]
    assert row["evidence_grade"] == "D" and not row["causal"]
    assert any("not causal" in w for w in json.loads(row["warnings"]))


def test_ab_initiative_costs_and_value_to_date(plan):
    rows = experiment_events(n_control=40, act_control=10, n_treat=40, act_treat=20)
    rows.append(ev("clock", "Page Viewed", pd.Timestamp("2026-11-01")))
    df = pd.DataFrame(rows)
    row = compute_initiative_roi(df, plan).set_index("initiative").loc["onboarding_checklist"]
    ini = next(i for i in plan.metrics.initiatives if i.key == "onboarding_checklist")
    months = (pd.Timestamp("2026-11-01") - pd.Timestamp(ini.start)) / DAY / 30.4375
    assert row["months_since_start"] == pytest.approx(months)
    assert row["costs_to_date"] == pytest.approx(ini.costs.one_off + ini.costs.recurring_monthly * months)
    assert row["estimate"] == pytest.approx(0.25)
    assert row["incremental_conversions"] == pytest.approx(0.25 * 40)  # lift × exposures of the variant
    assert row["value_to_date"] == pytest.approx(0.25 * 40 * ini.value_per_conversion)
    assert row["evidence_grade"] == "A" and json.loads(row["checks_run"]) == ["srm"]
    assert np.isfinite(row["npv"]) and row["horizon_months"] == ini.horizon_months


def test_grade_of_reflects_checks():
    assert grade_of("diff_in_diff", {"pretrend": True, "placebo": True})[0] == "B"
    assert grade_of("diff_in_diff", {"pretrend": True, "placebo": False})[0] == "C"
    assert grade_of("ab_test", {"srm": False})[0] == "C"
    assert grade_of("before_after", {})[0] == "D"


# -- the generator's planted effects -----------------------------------------------------------------------------
def _seeds():
    from support.marts_sample import SEEDS

    return SEEDS


@pytest.fixture(scope="module", params=_seeds(), ids=lambda s: f"seed{s}")
def recovered(request, plan):
    import duckdb
    from support.marts_sample import built_marts

    path, truth = built_marts(request.param)
    con = duckdb.connect(str(path), read_only=True)
    try:
        er = con.execute("select * from marts.experiment_results").df()
        roi = con.execute("select * from marts.initiative_roi").df().set_index("initiative")
        truth = {**truth, "_ab_boundary": _ab_boundary(con, truth)}
    finally:
        con.close()
    return er, roi, truth


def _ab_boundary(con, truth) -> dict[str, tuple[int, int]]:
    """Per arm, (exposed, activated) of the persons the generator counts (signed up at least 7 days
    before the end of its last day) whose 7-day window the mart leaves out: it ends after the data's
    last event ("activation needs its whole window inside the data", experiment_results). They are
    the exposures of the last 7 days' first minutes to hours (the time between the last event and
    midnight): seed shift 1140000's seed 1 had one, the only difference between the two counts."""
    x = truth["experiment"]
    end = dt.datetime.fromisoformat(truth["generator"]["end"]) + dt.timedelta(days=1)
    rows = con.execute(
        """
        with x as (
            select person_id, arg_min(properties ->> '$.variation_id', "timestamp") as variant,
                   min("timestamp") as exposed_at
            from stitch.events
            where event_name = ? and properties ->> '$.experiment_id' = ? and "timestamp" >= ?::timestamp
            group by person_id
        ), s as (
            select person_id, min("timestamp") as signup_at from stitch.events
            where event_name = 'Account Created' group by person_id
        )
        select x.variant, count(*),
               count(*) filter (where (select count(*) from stitch.events t where t.person_id = x.person_id
                                       and t.event_name = 'Task Completed' and t."timestamp" > x.exposed_at
                                       and t."timestamp" <= x.exposed_at + interval 7 day) >= 3)
        from x join s using (person_id)
        where x.exposed_at + interval 7 day > (select max("timestamp") from stitch.events)
          and s.signup_at <= ?::timestamp - interval 7 day
        group by x.variant""",
        [x["exposure_event"], x["key"], x["start"], end],
    ).fetchall()
    return {v: (n, k) for v, n, k in rows}


# Every statement below holds on any seed except with negligible probability: truths within 4
# standard errors (Z), checks planted to pass compared at 1e-4 rather than at their 5 % level.
def test_planted_ab_lift_recovered(recovered):
    from support.marts_sample import within

    er, _, truth = recovered
    r = er[(er["metric"] == "activation_rate") & ~er["is_control"]].iloc[0]
    arms = truth["experiment"]["realized"]["arms"]
    # the mart reads the same persons the generator counted, but for those whose window ends after the
    # data's last event (_ab_boundary: the mart leaves them out by its rule)
    left_out, left_activated = truth["_ab_boundary"].get("checklist", (0, 0))
    assert r["analysed"] == arms["checklist"]["exposed"] - left_out
    assert r["conversions"] == arms["checklist"]["activated"] - left_activated
    assert within(truth["experiment"]["true_lift_abs"], r["lift_abs"], r["std_error"])
    assert r["srm_p_value"] > 1e-4  # planted 50/50: no sample-ratio mismatch
    g = er[(er["metric"] == "support_tickets") & ~er["is_control"]].iloc[0]
    assert within(0.0, g["lift_abs"], g["std_error"])  # the planted guardrail effect is 0


def test_planted_did_recovered(recovered):
    from support.marts_sample import Z, within

    _, roi, truth = recovered
    t = truth["initiatives"]["eu_live_chat"]
    r = roi.loc["eu_live_chat"]
    assert within(t["true_effect_abs"], r["estimate"], r["std_error"])
    d = json.loads(r["details"])
    # parallel pre-trends are planted: neither check rejects them beyond chance
    assert d["event_study"]["pretrend_p_value"] > 1e-4 and d["placebo_p_value"] > 1e-4
    assert r["evidence_grade"] == ("B" if r["all_checks_passed"] else "C")
    tickets = next(x for x in json.loads(r["non_financial"]) if x["kpi"] == "support_tickets")
    # tickets per session fall 45 % in the EU after launch; the interval (widened to Z standard errors) holds that
    half = (tickets["ci_high"] - tickets["ci_low"]) / 2
    mid = (tickets["ci_high"] + tickets["ci_low"]) / 2
    true_change = t["non_financial"]["support_tickets"]["true_effect_rel"] * tickets["baseline"]
    assert abs(true_change - mid) <= half * Z / 1.96


def test_planted_matching_att_recovered(recovered):
    from support.marts_sample import within

    _, roi, truth = recovered
    t = truth["initiatives"]["slack_integration"]
    r = roi.loc["slack_integration"]
    assert within(t["true_att"], r["estimate"], r["std_error"])
    d = json.loads(r["details"])
    # selection on heavy use: the treated were more active before the start, and weighting closes the gap
    bal = {b["covariate"]: b for b in d["balance"]}
    assert bal["pre_events"]["smd_before"] > 0.1
    assert all(abs(b["smd_after"]) < abs(b["smd_before"]) for b in bal.values())
    # the naive comparison overstates, as planted (by ≈ 0.2, several of its standard errors)
    assert d["naive_effect"] > t["true_att"]


def test_planted_its_level_change_recovered(recovered):
    from support.marts_sample import within

    _, roi, truth = recovered
    t = truth["initiatives"]["new_pricing_page"]
    r = roi.loc["new_pricing_page"]
    assert r["method"] == "interrupted_time_series"
    assert within(t["true_level_change_per_day"], r["estimate"], r["std_error"])


def _nps_only(plan, key: str):
    """Initiative `key` with the NPS score as its one non-financial KPI, and its start."""
    ini = next(i for i in plan.metrics.initiatives if i.key == key).model_copy(
        update={"non_financial_kpis": ["nps_score"]}
    )
    return ini, pd.Timestamp(ini.start)


def survey(i: int, ts, score: float, **cols) -> dict:
    return ev(f"s{i}", "Survey Responded", ts, **{"prop:score": score}, **cols)


def test_non_financial_before_after_fallback(plan):
    ini, start = _nps_only(plan, "onboarding_checklist")
    # scores 5/7 before the start and 7/9 after: the mean moves by 2
    rows = [survey(i, start + (i - 10) * DAY, (5.0 if i < 10 else 7.0) + 2 * (i % 2)) for i in range(20)]
    out = non_financial_changes(pd.DataFrame(rows), plan, ini, None)
    assert out[0]["method"].startswith("before_after") and out[0]["change"] == pytest.approx(2.0)


def test_non_financial_did_without_a_before_period_is_an_error_not_a_number(plan):
    """Events that all come after the start (a history younger than the initiative) cannot give a
    difference in differences: the KPI's row says why, instead of an arbitrary estimate."""
    ini, start = _nps_only(plan, "eu_live_chat")
    rows = [survey(i, start + (1 + i % 5) * DAY, float(i % 11), region=("eu", "na")[i % 2]) for i in range(60)]
    out = non_financial_changes(pd.DataFrame(rows), plan, ini, None)
    assert out[0]["method"] == "diff_in_diff"
    assert "before" in out[0]["error"] and "change" not in out[0]


def test_paid_plan_trait_and_treatment_filter(plan, monkeypatch):
    """Annual subscribers from before the data (a paid `traits.plan`, never billed inside it) are not in
    the matching population; a `treatment_where` filter keeps only the named integration."""
    from models.marts import initiatives

    ini = next(i for i in plan.metrics.initiatives if i.key == "slack_integration")
    start = pd.Timestamp(ini.start)
    rows = [
        ev("free1", "User Identified", start - 5 * DAY, plan="free"),
        ev("free2", "User Identified", start - 5 * DAY, plan="free"),
        ev("annual", "User Identified", start - 5 * DAY, plan="business"),
        ev("free1", "Integration Connected", start + DAY, **{"where:integration": "slack"}),
        ev("free2", "Integration Connected", start + DAY, **{"where:integration": "github"}),
        ev("free1", "Page Viewed", start + 40 * DAY),
    ]
    df = normalize(pd.DataFrame(rows), plan)
    monkeypatch.setattr(initiatives, "treatment_where", lambda _ini: {"integration": "slack"})
    frame = matching_frame(df, plan, ini, df["timestamp"].max()).set_index("person_id")
    assert sorted(frame.index) == ["free1", "free2"]
    assert frame.loc["free1", "treated"] == 1 and frame.loc["free2", "treated"] == 0
