"""Unit tests of the anomaly scoring and the row-level gates, on small hand-built inputs."""

import json

import duckdb
import numpy as np
import pytest

from pipelines.quality.results import to_dagster
from quality_checks.rules import evaluate, plan_rules, table_rules
from quality_checks.scoring import (
    FEW_LINES,
    NO_VALUE,
    NOT_SCORED,
    SHORT_HISTORY,
    _training_days,
    nan_quantiles,
    score_matrix,
)
from quality_checks.store import ERROR, CheckOutcome, append, ensure_tables
from tracking_plan.loader import load_plan

DAYS = np.arange(np.datetime64("2026-01-05"), np.datetime64("2026-02-04"))  # 30 days from a Monday


def test_flat_series_small_move_raises_nothing():
    # Elementary's defect: MAD ~1 on [100000, 99999, ...] made 99995 a "5-sigma" anomaly
    flat = np.array([100000, 99999, 100000, 100001, 99998] * 6, dtype=float)
    flat[-1] = 99995
    r = score_matrix(flat, DAYS, kind="count")
    assert not r.flagged.any()
    assert r.low[0, -1] < 99995 < r.high[0, -1]
    r = score_matrix(flat, DAYS, kind="level", min_relative_change=0.3)
    assert not r.flagged.any()


def test_zero_is_flagged_only_outside_the_count_models_range():
    rng = np.random.default_rng(7)
    steady = rng.poisson(40, 30).astype(float)  # ~40 a day: P(0) is e^-40
    steady[-1] = 0.0
    r = score_matrix(steady, DAYS, kind="count")
    assert r.flagged[0, -1] and r.low[0, -1] > 0
    # issue 22: a quiet event's zero inside its own expected range (0 to ~37) is not an anomaly
    quiet = rng.poisson(4, 30).astype(float)
    quiet[-1] = 0.0
    r = score_matrix(quiet, DAYS, kind="count")
    assert not r.flagged.any() and r.low[0, -1] == 0
    # nor on a volatile series whose own past swings from 10 to 900
    vol = rng.choice([20.0, 500.0, 50.0, 900.0, 10.0, 300.0], 30)
    vol[-1] = 0.0
    assert not score_matrix(vol, DAYS, kind="count").flagged[0, -1]


def test_training_excludes_detection_day_and_past_anomalies():
    base = np.full(30, 1000.0) + np.tile([0, 10, -10, 5, -5, 0, 0], 5)[:30]
    base[20] = 50.0  # an incident: it must not widen the band of the days after it
    base[24] = 400.0
    r = score_matrix(base, DAYS, kind="count")
    assert r.flagged[0, 20] and r.flagged[0, 24]
    assert r.expected[0, 24] > 900  # day 20 masked out of day 24's training
    assert r.flagged[0].sum() == 2


def test_min_history_and_direction():
    s = np.full(30, 100.0)
    s[3] = 1000.0  # before min_history_days clean points: not scored
    s[25] = 1000.0
    r = score_matrix(s, DAYS, kind="count", direction="down")
    assert not r.flagged.any()
    r = score_matrix(s, DAYS, kind="count", direction="both")
    assert list(np.flatnonzero(r.flagged[0])) == [25]


def test_weekly_seasonality_weekend_is_not_an_anomaly():
    week = np.array([100, 104, 98, 101, 97, 30, 28], dtype=float)  # Mon..Sun
    s = np.tile(week, 5)[:30]
    r = score_matrix(s, DAYS, kind="count")
    assert not r.flagged.any()
    assert (r.basis[0, 21:] == 3).all()  # same weekday once there are 3 of them
    s[26] = 90.0  # a Saturday at weekday level: double the usual Saturday
    assert score_matrix(s, DAYS, kind="count").flagged[0, 26]


def test_share_noise_floor_needs_lines():
    shares = np.full(30, 0.0)
    shares[-1] = 0.5
    few = score_matrix(shares, DAYS, kind="share", denominators=np.full(30, 2.0), min_count=20, min_absolute_change=0.1)
    many = score_matrix(
        shares, DAYS, kind="share", denominators=np.full(30, 400.0), min_count=20, min_absolute_change=0.1
    )
    assert not few.flagged.any() and many.flagged[0, -1]


def test_flags_do_not_shorten_the_training_window():
    """A day a flag takes out of training is replaced by the next older clean day (at most another
    training window back): a series goes on being scored after an incident, against clean days,
    rather than going blind until its flagged days leave the window."""
    s = np.full(30, 1000.0) + np.tile([0, 10, -10, 5, -5, 0, 0], 5)[:30]
    s[[14, 16, 18, 19]] = 5000.0  # four spikes, each flagged and taken out of training
    s[12] = np.nan
    r = score_matrix(s, DAYS, kind="count", direction="up")
    assert list(np.flatnonzero(r.flagged[0])) == [14, 16, 18, 19]
    # day 20's window (days 6-19) holds 9 clean days: day 5 makes up the 10 (before, the series was not
    # scored on days 20-26)
    scored = np.flatnonzero(r.basis[0] > 0)
    assert list(scored) == [d for d in range(10, 30) if d != 12]
    assert np.all(np.abs(r.expected[0, 20:] - 1000) < 50)  # trained on clean days only
    # a lasting 50% drop: flagged, then learned as the new level; every day scored on the way
    # (before, a week of flags left the window 9 clean days: 10 days unscored, then 10 more)
    days = np.arange(np.datetime64("2026-01-05"), np.datetime64("2026-01-05") + 90)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        v = np.r_[rng.poisson(1000, 30), rng.poisson(500, 60)].astype(float)
        r = score_matrix(v, days, kind="count", direction="down", run_days=3, run_sensitivity=3.5)
        assert (r.basis[0, 10:] > 0).all(), seed
        assert r.flagged[0, 30:33].any() and 400 < r.expected[0, -1] < 600, seed  # the new level, learned


def test_a_learned_level_is_the_expected_of_every_weekday():
    """A lasting 50% drop of a series with a weekly pattern: once most recent days are taken out of
    training, the new level is learned and the days before it are moved to it (_relevel), so the
    same weekday one to four weeks back expects the new level, not the old. Before, 99 of these 100
    draws were flagged again 7 or more days after the change (314 flags), as each weekday's old
    Mondays, Tuesdays... came up. (The trend is off here: its slope, fitted over two weeks and
    extrapolated four weeks back, adds noise of its own.)"""
    days = np.arange(np.datetime64("2026-01-05"), np.datetime64("2026-01-05") + 70)
    week = np.array([1.0, 1.15, 1.1, 1.05, 0.9, 0.55, 0.5])
    lam = 1000 * week[np.arange(70) % 7] * np.r_[np.ones(35), np.full(35, 0.5)]
    late = 0
    for seed in range(100):
        v = np.random.default_rng(seed).poisson(lam).astype(float)
        r = score_matrix(v, days, kind="count", direction="down", run_days=3, run_sensitivity=3.5, trend=False)
        flagged = np.flatnonzero(r.flagged[0])
        assert 35 in flagged, seed  # the change itself is seen at once (a clean day may be a false alert)
        late += int((flagged >= 42).sum())
        assert np.all(np.abs(r.expected[0, 49:] / lam[49:] - 1) < 0.15), seed  # the new level, weekday for weekday
    assert late == 0
    # the caller's array is not moved
    v = np.random.default_rng(0).poisson(lam).astype(float)
    kept = v.copy()
    score_matrix(v, days, kind="level", direction="down")
    assert np.array_equal(v, kept)


def test_training_days_stand_in_for_the_flagged_ones():
    usable = np.array([[True, True, True, True, False, True, False, True]])
    v = np.ones(usable.shape)
    train = np.zeros_like(usable)
    window = np.arange(8)
    # the window's last 4 days (from day 4), 2 of them flagged: 2 older days make up 4 clean ones
    _training_days(train, usable, v, window, 4, 4)
    assert train.tolist() == [[False, False, True, True, False, True, False, True]]
    _training_days(train, usable, v, window, 4, 3)  # 3 are needed: one older day
    assert train.tolist() == [[False, False, False, True, False, True, False, True]]
    _training_days(train, usable, v, window, 4, 2)  # enough clean days: the window as it is
    assert train.tolist() == [[False, False, False, False, False, True, False, True]]
    v[0, 4] = np.nan  # a day without a value was never trained on: nothing stands in for it
    _training_days(train, usable, v, window, 4, 4)
    assert train.tolist() == [[False, False, False, True, False, True, False, True]]
    usable[0, 3] = False  # a flagged older day is passed over
    _training_days(train, usable, v, window, 4, 4)
    assert train.tolist() == [[False, False, True, False, False, True, False, True]]


def test_every_point_not_scored_says_why():
    """Nothing skipped without a reason: each series-day the scoring leaves out carries one."""
    s = np.full(30, 1000.0)
    s[12] = np.nan
    r = score_matrix(s, DAYS, kind="count")
    assert (r.reason[0, :10] == SHORT_HISTORY).all()  # day 0-9: fewer than 10 days behind them
    assert r.reason[0, 12] == NO_VALUE and (r.basis[0, 13:] > 0).all()
    shares = np.full((1, 30), 0.1)
    few = score_matrix(shares, DAYS, kind="share", denominators=np.full((1, 30), 2.0), min_count=20)
    assert (few.reason[0, 10:] == FEW_LINES).all()
    # over random series of every kind: a point is scored (basis > 0) exactly when it has no reason
    rng = np.random.default_rng(11)
    for kind in ("count", "share", "level"):
        v = rng.poisson(50, (40, 30)).astype(float)
        v[rng.random(v.shape) < 0.1] = np.nan
        v[rng.random(v.shape) < 0.05] *= 20
        den = rng.integers(0, 60, v.shape).astype(float)
        if kind == "share":
            v = v / 1000
        r = score_matrix(v, DAYS, kind=kind, denominators=den if kind == "share" else None, min_count=20)
        assert ((r.basis > 0) == (r.reason == 0)).all()
        assert set(np.unique(r.reason)) <= {0, *NOT_SCORED}


def test_nan_quantiles_match_numpy():
    rng = np.random.default_rng(3)
    h = rng.normal(size=(50, 9))
    h[rng.random(h.shape) < 0.3] = np.nan
    h[0] = np.nan
    got = nan_quantiles(h, (0.25, 0.5, 0.75))
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        want = np.nanpercentile(h, [25, 50, 75], axis=1)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, equal_nan=True)


@pytest.fixture()
def con():
    c = duckdb.connect()
    c.execute("create schema ingest; create schema stitch")
    yield c
    c.close()


def _events(con, rows):
    con.execute(
        "create or replace table ingest.events (message_id varchar, type varchar, event_name varchar, "
        "properties json, partition_date date, received_at timestamp, plan_version varchar, "
        "consent_stripped boolean)"
    )
    con.executemany("insert into ingest.events values (?, ?, ?, ?, '2026-01-01', '2026-01-01 10:00', ?, false)", rows)


GOOD = [
    (
        "m1",
        "track",
        "Order Completed",
        ('{"order_id":"o1","revenue":10,"currency":"EUR","plan":"team","billing_period":"monthly","seats":3}'),
        "1.0.0",
    ),
    ("m2", "page", "Page Viewed", '{"path":"/home"}', "1.0.0"),
]


def test_plan_gates_pass_on_valid_rows(con):
    _events(con, GOOD)
    plan = load_plan()
    out = {
        o.check: o
        for o in evaluate(
            con, "ingest.events", table_rules("ingest.events", ["message_id"]) + plan_rules(plan), grain=["message_id"]
        )
    }
    assert set(out) == {"not_null", "enum", "range", "regex", "grain_unique"}
    assert all(o.passed and o.severity == ERROR for o in out.values())
    assert out["enum"].metadata["failing_count"] == 0 and "select" in out["enum"].metadata["sql"]


def test_plan_gates_fail_with_counts_samples_and_sql(con):
    bad = GOOD + [
        (
            "m1",
            "track",
            "Order Completed",
            ('{"order_id":"o2","revenue":5,"currency":"XXX","plan":"team","billing_period":"weekly","seats":0}'),
            "one",
        ),
        ("m3", "page", "Page Viewed", '{"path":"home"}', "1.0.0"),
    ]
    _events(con, bad)
    out = {
        o.check: o
        for o in evaluate(
            con,
            "ingest.events",
            table_rules("ingest.events", ["message_id"]) + plan_rules(load_plan()),
            grain=["message_id"],
        )
    }
    assert not out["grain_unique"].passed and out["grain_unique"].metadata["failing_count"] == 1
    assert out["grain_unique"].metadata["samples"][0]["message_id"] == "m1"
    enum = out["enum"]
    assert not enum.passed and enum.metadata["failing_count"] == 2  # currency and billing_period
    assert enum.metadata["failing_share"] == pytest.approx(1 / 4)
    assert len(enum.metadata["samples"]) == 1 and enum.metadata["threshold"] == 1.0
    assert not out["range"].passed  # seats 0 < minimum 1
    regex = out["regex"]  # plan_version "one" and path without its leading slash
    assert not regex.passed and regex.metadata["failing_count"] == 2
    assert out["not_null"].passed


def test_mostly_threshold_tolerates_a_share(con):
    _events(con, GOOD + [("m3", "page", "Page Viewed", '{"path":"home"}', "1.0.0")])
    rules = [r for r in plan_rules(load_plan(), mostly=0.5) if r.kind == "regex"]
    (o,) = evaluate(con, "ingest.events", rules)
    assert o.passed and o.metadata["failing_count"] == 1 and o.metadata["threshold"] == 0.5


def test_referential_integrity_and_identity(con):
    con.execute(
        "create table stitch.persons as select * from (values ('user_id', 'u1', 'p1')) "
        "t(identifier_kind, identifier, person_id)"
    )
    con.execute(
        "create table stitch.events as select * from (values ('m1', 'p1'), ('m2', 'p9'), ('m3', null)) "
        "t(message_id, person_id)"
    )
    ref = ("person_id", "stitch.persons", "person_id")
    out = {
        o.check: o
        for o in evaluate(
            con,
            "stitch.events",
            table_rules("stitch.events", ["message_id"], ["person_id"], references=ref),
            grain=["message_id"],
            references=ref,
        )
    }
    assert not out["referential_integrity"].passed
    assert out["referential_integrity"].metadata["samples"][0]["person_id"] == "p9"
    assert not out["not_null"].passed and out["not_null"].severity == ERROR
    assert out["grain_unique"].passed


def test_a_grain_of_several_columns_counts_each_repeated_combination(con):
    """A grain of two columns: every row whose combination came before fails (a combination with
    nulls, too), as counting the distinct lists of the values as text does."""
    con.execute(
        "create table stitch.persons as select * from (values ('user_id', 'u1', 'p1'), ('user_id', 'u1', 'p2'), "
        "('email', 'u1', 'p1'), (null, 'u2', 'p3'), (null, 'u2', 'p3'), (null, null, 'p4'), (null, null, 'p4')) "
        "t(identifier_kind, identifier, person_id)"
    )
    grain = ["identifier_kind", "identifier"]
    (o,) = evaluate(
        con,
        "stitch.persons",
        [r for r in table_rules("stitch.persons", grain) if r.kind == "grain_unique"],
        grain=grain,
    )
    text = con.execute(
        "select count(*) - count(distinct [identifier_kind::varchar, identifier::varchar]) from stitch.persons"
    ).fetchall()[0][0]
    assert not o.passed and o.metadata["failing_count"] == text == 3


def test_results_are_appended_and_converted(con):
    o = CheckOutcome(
        "enum",
        "ingest.events",
        passed=False,
        observed=0.25,
        expected_low=0,
        expected_high=0,
        metadata={"failing_count": 2, "sql": "select 1", "samples": [{"a": 1}]},
    )
    ensure_tables(con)
    append(con, [o])
    append(con, [o])
    assert con.execute("select count(*), bool_or(passed) from quality.check_results").fetchall() == [(2, False)]
    r = to_dagster(o, asset_key=None)
    assert not r.passed and r.severity.value == "ERROR" and r.metadata["failing_count"].value == 2


def test_dagster_gets_no_sample_row_of_a_persons_table(con):
    """Sample rows of a table holding people's rows stay in quality.check_results (where `forget`
    reaches them): Dagster's event log gets their count and the query that reads them; samples of
    the quality layer's own aggregates are shown as they are."""
    rows = [{"user_id": "u-secret", "anonymous_id": "dev-secret"}]
    personal = CheckOutcome("not_null", "ingest.events", passed=False, observed=0.1, metadata={"samples": rows})
    ensure_tables(con)
    append(con, [personal])
    meta = to_dagster(personal).metadata
    shown = json.dumps({k: str(getattr(v, "value", v)) for k, v in meta.items()})
    assert "secret" not in shown and meta["sample_rows"].value == 1
    assert json.loads(con.execute(meta["samples"].value.split(": ", 1)[1]).fetchall()[0][0]) == rows
    anomalies = [{"event_name": "Task Created", "metric": "volume"}]
    own = CheckOutcome("volume_anomalies", "quality.anomalies", passed=False, metadata={"samples": anomalies})
    assert to_dagster(own).metadata["samples"].value == anomalies
