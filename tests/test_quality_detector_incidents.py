"""Issue 22: the anomaly detectors on generated traffic, through the pipeline's own metric and
detector functions (no Dagster run): the two false alerts the issue reported do not fire, and each
kind of planted incident is caught.

The rates behind these claims (false alerts per 10,000 series-days, recall per magnitude) are
measured over many seeds by benchmarks/detector_bench.py; here one fixed seed is enough because
the incidents are planted at the benchmark's "large" magnitude, where recall is ~100% on every
seed the benchmark runs (a fixed seed would prove nothing at a magnitude near the detection limit).
"""

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from support.warehouse import load_landing

from pipelines.warehouse import connect
from quality_checks.detectors import detect, series_bands
from quality_checks.metrics import build_daily_metrics, last_seen
from quality_checks.planted import DETECTORS, Planted, caught, choose, plant, restore, snapshot, sunset_plan
from tracking_plan.loader import load_plan
from tracking_plan.quality_settings import settings_for
from trackplan.demo.generate import generate

# the issue's command: trackplan generate --days 35 --users 1200 --seed 3 --bug-rate 0
DAYS, USERS, SEED = 35, 1200, 3
ISSUE_FALSE_ALERTS = [("User Identified", date(2026, 11, 9)), ("Onboarding Completed", date(2026, 11, 15))]


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("issue22")
    plan = load_plan()
    res = generate(tmp / "landing", days=DAYS, users=USERS, seed=SEED, bug_rate=0, plan=plan)
    con = connect(tmp / "w.duckdb")
    load_landing(con, plan, tmp / "landing")
    build_daily_metrics(con, plan)
    m = con.execute("select * from quality.daily_metrics").df()
    yield con, plan, m, last_seen(con), res
    con.close()


@pytest.mark.fixed_seed("the two false alerts of issue 22's own command (--seed 3)")
def test_the_issues_two_false_alerts_do_not_fire(warehouse):
    _, plan, m, seen, res = warehouse
    assert res.end == date(2026, 11, 15)
    s = settings_for(plan)
    found = detect(m, plan, s, last_seen=seen)
    bands = series_bands(m, s, seen)
    for event, day in ISSUE_FALSE_ALERTS:
        mine = found[(found["event_name"] == event) & (found["day"] == day)]
        assert mine.empty, mine[["detector", "message"]].to_string()
        for metric in ("volume", "persons"):
            # scored, not skipped: the day has a band and its count lies inside it
            b = bands[(bands["event_name"] == event) & (bands["day"] == day) & (bands["metric"] == metric)]
            assert len(b) == 1, f"{event} {metric} on {day} was not scored"
            row = b.iloc[0]
            assert row["expected_low"] <= row["observed"] <= row["expected_high"], row.to_dict()
    # the weekend zero of Onboarding Completed lies inside its range: the range reaches 0
    zero = bands[
        (bands["event_name"] == "Onboarding Completed")
        & (bands["day"] == date(2026, 11, 15))
        & (bands["metric"] == "volume")
    ].iloc[0]
    assert zero["observed"] == 0 and zero["expected_low"] == 0


def test_a_zero_outside_the_range_still_fires(warehouse):
    # the other side of the fix: a busy event at zero on a complete day is an incident
    _, plan, m, seen, _ = warehouse
    day = pd.Timestamp("2026-11-12")
    m2 = m.copy()
    sel = (
        (m2["event_name"] == "Task Created")
        & (pd.to_datetime(m2["day"]) == day)
        & m2["metric"].isin(["volume", "persons"])
    )
    m2.loc[sel, ["value", "denominator"]] = 0
    s = settings_for(plan)
    found = detect(m2, plan, s, last_seen=seen)
    hit = found[(found["event_name"] == "Task Created") & (found["day"] == day.date())]
    # every count series scored that day flags it. The volume series always is; the persons series
    # is unless earlier alerts took so many of its days out of training that fewer than
    # min_history_days remain (seed shift 77000: two false 3-day drop alerts before it, the day unscored)
    bands = series_bands(m2, s, seen)
    that_day = bands[(bands["event_name"] == "Task Created") & (bands["day"] == day.date())]
    scored = set(that_day["metric"]) & {"volume", "persons"}
    assert "volume" in scored
    assert set(hit["detector"]) == scored
    assert (hit["expected_low"] > 0).all()


def test_a_partial_last_day_is_not_scored_until_complete(warehouse):
    _, plan, m, seen, _ = warehouse
    s = settings_for(plan)
    last = pd.Timestamp(seen["last_received_at"].max())
    early = seen.assign(last_received_at=pd.Timestamp(last.date()) + pd.Timedelta(hours=13))
    counts = ["volume", "persons"]
    bands = series_bands(m, s, early)
    on_last = bands[bands["day"] == last.date()]
    assert not on_last["metric"].isin(counts).any()  # 13:00: the day's counts are not the day's yet
    assert on_last["metric"].isin(["null_rate"]).any()  # shares do not depend on completeness
    bands = series_bands(m, s, seen)
    assert set(bands[bands["day"] == last.date()]["metric"]) >= set(counts)


@pytest.mark.fixed_seed(
    "issue 22's sample (--seed 3) and its draw of events; recall per magnitude over seeds is benchmarks/detector_bench.py's (a large drop of a 10-100/day event: 83%)"
)
def test_each_planted_kind_is_caught_at_the_large_magnitude(warehouse):
    con, plan, m, _, _ = warehouse
    cal = sorted(pd.to_datetime(m["day"]).unique())
    start = (pd.Timestamp(cal[-1]) - timedelta(days=6)).date()
    incidents = choose(m, plan, "large", start, np.random.default_rng(SEED))
    assert {i.kind for i in incidents} == set(DETECTORS)  # every kind the detectors claim
    snapshot(con)
    try:
        for inc in incidents:
            plant(con, inc, plan)
        p = sunset_plan(plan, incidents)
        build_daily_metrics(con, p)
        found = detect(
            con.execute("select * from quality.daily_metrics").df(), p, settings_for(p), last_seen=last_seen(con)
        )
    finally:
        restore(con)
        build_daily_metrics(con, plan)
    missed = [(i.kind, i.event, i.property) for i in incidents if not caught(found, i)[0]]
    assert missed == []
    # within two days: a share needs enough lines that day (min_count), which a weekend may lack,
    # and late rows land in the following partitions
    delays = {i.kind: caught(found, i)[1] for i in incidents}
    assert max(delays.values()) <= 2, delays
    # planting leaks into no other event: what fired elsewhere fired on the clean data too
    touched = {i.event for i in incidents} | {i.name for i in incidents if i.kind == "new_event"}
    clean = detect(m, plan, settings_for(plan), last_seen=last_seen(con))
    key = ["day", "event_name", "detector", "property"]
    stray = found[~found["event_name"].isin(touched)][key].merge(clean[key], how="left", indicator=True)
    assert (stray["_merge"] == "both").all(), stray.to_string()


@pytest.mark.fixed_seed("issue 22's sample (--seed 3); over other samples the recall is benchmarks/detector_bench.py's")
def test_a_halving_of_a_busy_event_is_caught_on_every_draw(warehouse):
    # the recall target (issue 22): a 50% volume drop of an event of >= 100 a day. Every such event
    # of the sample is halved at once (each its own series), from a start day drawn 5 to 8 days
    # before the end, on three draws (not one picked draw); the benchmark measures the rate over
    # 24 runs. A halving sits ~3 sigmas below a usual day: the run test (2-3 days' total) sees it
    con, plan, m, _, _ = warehouse
    cal = sorted(pd.to_datetime(m["day"]).unique())
    end = pd.Timestamp(cal[-1])
    vol = m[(m["metric"] == "volume") & (pd.to_datetime(m["day"]) < end - timedelta(days=8))]
    med = vol.groupby("event_name")["value"].median()
    busy = sorted(e for e, v in med.items() if v >= 100 and e in plan.events)
    assert len(busy) >= 3
    s = settings_for(plan)
    outcomes = []
    snapshot(con)
    try:
        for draw in (1, 2, 3):
            rng = np.random.default_rng(draw)
            restore(con)
            drops = [
                Planted("volume_drop", e, (end - timedelta(days=int(rng.integers(5, 9)))).date(), 0.5) for e in busy
            ]
            for inc in drops:
                plant(con, inc, plan)
            build_daily_metrics(con, plan)
            found = detect(con.execute("select * from quality.daily_metrics").df(), plan, s, last_seen=last_seen(con))
            outcomes += [(draw, i.event, caught(found, i)[0], caught(found, i)[1]) for i in drops]
    finally:
        restore(con)
        build_daily_metrics(con, plan)
    missed = [o for o in outcomes if not o[2]]
    assert missed == [], outcomes
    assert max(o[3] for o in outcomes) <= 3, outcomes  # within the run test's 3 days
