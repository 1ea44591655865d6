"""Incremental layers (issue 18, item 2): daily runs that recompute only what their day changed give
the tables (and the quality metrics and gate counts) one full run gives, on the same landing zone.

A generated landing zone (a few days, a few hundred persons) plus hand-made events that hit every
path of the incremental code: late events for earlier days (one joining an old session, one with a
client session id of an earlier day), a re-sent message, an identify that merges two persons first
seen on earlier days (a merge reaching back in time), and a day re-run with one more file (rows
removed and added in an old partition), and a row written into an old partition by another writer
(past the validator: it breaks an enum rule of the plan and the semver of plan_version). The runs use the assets' own functions (ingest, stitch,
sessions, every SQL and Python mart) without Dagster's per-asset overhead."""

from __future__ import annotations

import datetime as dt
import importlib
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from support.incremental import (
    SESSIONS,
    assert_equal,
    compared_tables,
    daily_run,
    full_build,
    gate_counts,
    kept_parts_difference,
    marts,
    rows,
    same,
)
from support.pipeline import anonymous_day, ev, iso, login_day, untyped_columns, write_lines

from models.catalog import load_python_models, set_plan_variables
from models.marts.aggregates import EventSource, latest_value_sql, matching_inputs_sql, person_days_sql
from models.staging.plan_tables import write_plan_tables
from pipelines.ingest.load import ingest_partitions, landed_partitions
from pipelines.model_assets import write_frame
from pipelines.quality.checks import gates
from pipelines.stitch import sessions as sessions_build
from pipelines.stitch.identity import build_identity
from pipelines.stitch.incremental import stitch
from pipelines.stitch.person_marts import PERSON_PARTS
from pipelines.stitch.person_parts import PersonParts
from pipelines.stitch.sessions import build_sessions
from pipelines.warehouse import connect
from quality_checks.metrics import build_daily_metrics
from quality_checks.rules import grain_duplicates
from tracking_plan.loader import default_plan_dir, load_plan

T = dt.timedelta


def _at(day: str, hour: float) -> dt.datetime:
    return dt.datetime.fromisoformat(day) + T(hours=hour)


SIGNUP = {"signup_method": "email", "plan": "free", "workspace_id": "ws_x1"}
ORDER = {"order_id": "ord_x1", "revenue": 120.0, "currency": "EUR", "plan": "team", "billing_period": "monthly"}
EARLY_DAY = "2026-11-06"  # a Friday: the week before the generated days (2026-11-10 ..)


def task(i: int) -> dict:
    return {"task_id": f"tsk_x{i}", "project_id": "prj_x1"}


def _landing(root: Path) -> tuple[Path, list[str]]:
    from trackplan.demo.generate import generate

    landing = root / "landing"
    generate(landing, days=6, users=120, seed=18, bug_rate=0.01)
    days = landed_partitions(landing)
    d0, d1, d2, d3, d4 = days[:5]
    assert dt.date.fromisoformat(EARLY_DAY) < dt.date.fromisoformat(d0) - T(days=dt.date.fromisoformat(d0).weekday())
    late = lambda day, hour, **kw: ev(received_at=_at(d3, 10), at=_at(day, hour), **kw)
    # two persons of earlier days: a device browsing anonymously (d0), a user on another device (d1)
    write_lines(
        landing,
        d0,
        "x-anon.jsonl",
        [ev("page", None, anon="x-dev-a", at=_at(d0, 9 + i / 10), props={"path": f"/p{i}"}) for i in range(4)],
    )
    write_lines(
        landing,
        d1,
        "x-user.jsonl",
        [
            ev("identify", None, user="x-user-b", anon="x-dev-b", at=_at(d1, 14), traits={"plan": "free"}),
            ev(user="x-user-b", anon="x-dev-b", at=_at(d1, 14.2)),
            ev("page", None, anon="x-dev-b", at=_at(d1, 20), props={"path": "/late-gap"}),
            # x-user-b signs up, activates and buys on d1: a signup cohort, an activation, a customer
            ev(event="Account Created", user="x-user-b", anon="x-dev-b", at=_at(d1, 14.1), props=SIGNUP),
            *(
                ev(event="Task Completed", user="x-user-b", anon="x-dev-b", at=_at(d1, 15 + i), props=task(i))
                for i in range(3)
            ),
            ev(event="Order Completed", user="x-user-b", anon="x-dev-b", at=_at(d1, 18.5), props=ORDER),
            ev(
                "page",
                None,
                anon="x-dev-c",
                user="x-user-c",
                at=_at(d1, 8),
                props={"path": "/c"},
                context={"library": {"name": "test"}, "sessionId": "x-client-1"},
            ),
        ],
    )
    resent = ev(user="x-user-b", anon="x-dev-b", at=_at(d2, 11), mid="x-resent")
    write_lines(landing, d2, "x-day2.jsonl", [resent])
    # d3: the merge (x-dev-a is x-user-b: both earlier persons become one) and late events for d1
    write_lines(
        landing,
        d3,
        "x-merge.jsonl",
        [
            ev("identify", None, user="x-user-b", anon="x-dev-a", at=_at(d3, 9), traits={"plan": "free"}),
            # the device had signed up, from a campaign, in the week before d0 (sent late): the merged
            # person moves to an earlier signup week, retention cohort and first-session channel
            late(
                EARLY_DAY,
                12,
                event="Account Created",
                anon="x-dev-a",
                props=SIGNUP,
                context={"library": {"name": "test"}, "campaign": {"source": "x-campaign", "medium": "email"}},
            ),
            late(d1, 14.4, user="x-user-b", anon="x-dev-b"),  # inside the old 14:00 session of d1
            late(d1, 17, event="Signed In", user="x-user-b", anon="x-dev-b"),  # between two old sessions
            late(
                d1,
                7,
                type="page",
                event=None,
                anon="x-dev-c",
                user="x-user-c",
                props={"path": "/c2"},
                context={"library": {"name": "test"}, "sessionId": "x-client-1"},
            ),
        ],
    )
    # d4: the message of d2 sent again (a duplicate within the lookback)
    write_lines(landing, d4, "x-resent.jsonl", [{**resent, "receivedAt": iso(_at(d4, 1))}])
    return landing, days


def _where(con, user: str) -> tuple:
    """The user's person in the kept parts: (signup week, weekly retention cohort, first-session channel)."""
    return con.execute(
        """
        with p as (select person_id from stitch.persons where identifier_kind = 'user_id' and identifier = ?)
        select (select max(cohort_week) from marts.activation_cohorts__persons where person_id in (from p)),
               (select max(cohort_start) from marts.retention__persons
                where period_type = 'week' and period = 0 and person_id in (from p)),
               (select max(channel) from marts.customer_value__persons where person_id in (from p))
        """,
        [user],
    ).fetchall()[0]


def bypass(con, day: str) -> None:
    """Copy x-user-b's order of `day` into ingest.events with another message id, currency XXX (a plan
    property's enum) and plan version 'one' (not semver: a rule on the table's own column)."""
    n = con.execute(
        """insert into ingest.events select * replace (message_id || '-bypass' as message_id,
        json_merge_patch(properties, '{"currency": "XXX"}') as properties, 'one' as plan_version)
        from ingest.events where partition_date = ?::date and event_name = 'Order Completed' and user_id = 'x-user-b'""",
        [day],
    ).fetchall()[0][0]
    assert n == 1


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("incremental")
    landing, days = _landing(root)
    plan, plan_dir = load_plan(), default_plan_dir()
    inc = connect(root / "inc.duckdb")
    write_plan_tables(inc, plan)
    modes, moves, kept = [], [], []

    def daily(day: str | None) -> None:
        run = daily_run(inc, plan, plan_dir, landing, day)
        modes.append((day, run["stitch"], run["sessions"], *run["sql"]))
        kept.append(run["python"])
        moves.append((day, *_where(inc, "x-user-b")))

    for day in days:
        daily(day)
    # a day run again with one more file: rows of an old partition removed and added
    d2 = days[2]
    write_lines(landing, d2, "x-again.jsonl", [ev(user="x-user-b", anon="x-dev-b", at=_at(d2, 11.2))])
    daily(d2)
    # another writer adds a row to an old partition (d1), past the validator: a currency not in the
    # plan's enum; the next run finds the partition changed
    bypass(inc, days[1])
    daily(None)

    full = full_build(root / "full.duckdb", plan, landing, after_ingest=lambda con: bypass(con, days[1]))
    yield inc, full, modes, days, landing, moves, kept
    inc.close()
    full.close()


def test_daily_runs_were_incremental(runs):
    _, _, modes, _, _, _, kept = runs
    assert len(modes[0]) == 3 + len(PERSON_PARTS)  # stitch, sessions, every mart with a kept part
    assert set(modes[0][1:]) == {"full"}  # an empty warehouse: nothing to build on
    assert all(set(m[1:]) == {"incremental"} for m in modes[1:]), modes
    # the Python marts' kept per-person parts (pipelines/stitch/person_parts.py) likewise
    parts = {t.split("__")[0] + "__" + t.split("__")[1].rsplit("_", 1)[0] for t in kept[0]}
    assert {
        "marts.initiative_roi__matching_inputs",
        "marts.initiative_roi__person_days",
        "marts.experiment_uplift__latest_value",
        "marts.channel_attribution__paths",
    } <= parts, parts
    assert set(kept[0].values()) == {"full"}
    assert all(k.keys() == kept[0].keys() and set(k.values()) == {"incremental"} for k in kept[1:]), kept


def test_python_marts_over_kept_parts_equal_their_build_without(runs):
    """A Python mart built over its kept per-person parts (full, or over the daily runs) is the mart its
    build gives without them, reading every event."""
    inc, full, _, _, _, _, kept = runs
    plan = load_plan()
    marts = {t.split("__")[0] for t in kept[0]}
    for m in load_python_models():
        if m.table in marts:
            write_frame(full, "_plain", importlib.import_module(m.module).build(full, plan))
            for con in (inc, full):
                got = con.execute(f"select * from {m.table} order by all").fetchall()
                want = full.execute("select * from _plain order by all").fetchall()
                assert len(got) == len(want), m.table
                for g, w in zip(got, want, strict=True):
                    assert all(same(x, y) for x, y in zip(g, w, strict=True)), f"{m.table}:\n  {g}\n  {w}"


def test_a_kept_query_reads_back_as_running_it(runs):
    """A per-person query kept (EventSource.per_person over PersonParts) hands its caller the frame
    running it gives: the same rows in the same order, with the same types (dates, timestamps, text,
    booleans, doubles)."""
    _, full, *_ = runs
    plan = load_plan()
    parts = PersonParts(full, "marts.kept_read_test")
    kept, plain = EventSource.warehouse(full, plan, keep=parts), EventSource.warehouse(full, plan)
    queries = {
        "person_days": lambda ev: person_days_sql(ev, "Task Completed"),
        "matching_inputs": lambda ev: matching_inputs_sql(
            ev,
            signup_event="Account Created",
            outcome_event="Order Completed",
            treatment_event="Integration Connected",
            start=dt.datetime(2026, 1, 1),
            window_days=30,
            where={},
            free_plans=("free",),
        ),
        "latest_value": lambda ev: latest_value_sql(ev, "company_size"),  # (no order: compared sorted)
    }
    full.execute("create table marts.kept_read_test__notes as select 1 as x")  # not a part: kept
    tables = lambda: {
        t
        for (t,) in full.execute(
            "select table_name from duckdb_tables() where starts_with(table_name, 'kept_read_test__')"
        ).fetchall()
    }
    try:
        for name, q in queries.items():
            got, want = kept.per_person(name, q), plain.df(q(plain.ev))
            assert len(want) > 0, name
            if name == "latest_value":
                got, want = (f.sort_values("person_id", ignore_index=True) for f in (got, want))
            pd.testing.assert_frame_equal(got, want)
        assert len(tables()) == 4
    finally:
        PersonParts(full, "marts.kept_read_test").finish()  # a build that used none: its parts dropped
        assert tables() == {"kept_read_test__notes"}
        full.execute("drop table marts.kept_read_test__notes")


def test_the_scenarios_reached_the_warehouse(runs):
    inc, _, _, _, _, _, _ = runs
    pid = lambda kind, v: inc.execute(
        "select person_id from stitch.persons where identifier_kind = ? and identifier = ?", [kind, v]
    ).fetchall()
    # the merge reached back: the d0 device's events carry the user's person_id
    assert pid("anonymous_id", "x-dev-a") == pid("user_id", "x-user-b") != []
    assert inc.execute(
        "select count(distinct person_id), count(*) from stitch.events where anonymous_id = 'x-dev-a'"
    ).fetchall()[0] == (1, 6)
    assert inc.execute("select count(*) from ingest.events where message_id = 'x-resent'").fetchall()[0][0] == 1
    # the late client-session event (7:00) opened the client session an hour earlier than it was
    assert (
        inc.execute("select started_at from staging.sessions where client_session_id = 'x-client-1'")
        .fetchall()[0][0]
        .hour
        == 7
    )


def test_a_merge_moved_the_person_between_cohorts(runs):
    """x-user-b signed up on d1; the merge on d3 brings the device's signup of the week before (sent
    late, from a campaign): the person leaves one signup week, retention cohort and channel for others."""
    inc, full, _, days, _, moves, _ = runs
    monday = lambda day: dt.date.fromisoformat(day) - T(days=dt.date.fromisoformat(day).weekday())
    before, after = monday(days[1]), monday(EARLY_DAY)
    by_day = {m[0]: m[1:] for m in moves[: len(days)]}  # the first run of each day (d2 runs again last)
    for day in days[1:3]:
        assert by_day[day][:2] == (before, before) and by_day[day][2] not in (None, "x-campaign"), by_day[day]
    for day in days[3:]:
        assert by_day[day] == (after, after, "x-campaign"), by_day[day]
    for con in (inc, full):  # the marts: the early week has the person (it has nobody else: no other data then)
        assert con.execute(
            "select signups, activated from marts.activation_cohorts where cohort_week = ?", [after]
        ).fetchall() == [(1, 1)]
        assert con.execute(
            "select cohort_size from marts.retention where period_type = 'week' and cohort_start = ? and period = 0",
            [after],
        ).fetchall() == [(1,)]
        assert con.execute("select customers from marts.customer_value where channel = 'x-campaign'").fetchall() == [
            (1,),
            (1,),
        ]


def test_incremental_equals_full(runs):
    inc, full, _, _, _, _, _ = runs
    tables = compared_tables(full)
    assert compared_tables(inc) == tables and len(tables) >= 15
    # every layer has rows to compare (a funnel nobody entered would compare nothing)
    for table in ("stitch.identity_graph", "staging.sessions", "marts.retention", "marts.activation_cohorts"):
        assert inc.execute(f"select count(*) from {table}").fetchall()[0][0] > 0, table
    assert inc.execute("select sum(persons) from marts.funnel_conversion").fetchall()[0][0] > 0
    assert_equal(inc, full, "ingest.events")  # the same input, or the comparison below would be moot
    layer = {"stitch": 0, "staging": 1, "marts": 2}
    for table in sorted(tables, key=lambda t: (layer[t.split(".")[0]], t)):  # upstream first: the first difference
        assert_equal(inc, full, table)
    # the kept parts (per person, per cohort), as a full build computes them
    assert kept_parts_difference(inc, full) is None, kept_parts_difference(inc, full)


def test_sessions_built_whole_in_slices_of_persons_equal_one_query(runs, monkeypatch):
    """A whole build of staging.sessions runs the model over hash slices of the persons (to keep its
    sorts in memory at 10M events): their union is the model's rows, ids and numbering included."""
    _, full, _, _, _, _, _ = runs
    events = full.execute("select count(*) from stitch.events").fetchall()[0][0]
    monkeypatch.setattr(sessions_build, "CHUNK_ROWS", events // 5)
    parts = sessions_build.full_sql(full, SESSIONS)
    assert len(parts) >= 5, len(parts)
    for k, part in enumerate(parts):
        full.execute(
            ("create or replace temp table _sliced as " if k == 0 else "insert into _sliced ") + part
        ).fetchall()
        assert full.execute(f"select count(*) from ({part})").fetchall()[0][0] > 0  # every slice has persons
    want = full.execute(f"select * from ({SESSIONS}) order by all").fetchall()
    assert full.execute("select * from _sliced order by all").fetchall() == want and len(want) > 100
    assert full.execute("select count(distinct session_id) from _sliced").fetchall()[0][0] == len(want)
    full.execute("drop table _sliced").fetchall()


def test_quality_metrics_and_gates_kept_per_partition_equal_a_full_build(runs):
    """quality.daily_metrics and the plan gates' counts on ingest.events, kept per partition over the
    daily runs (the merge, the late events, the day run again, the row of another writer), as a full
    build computes them from the same tables."""
    inc, full, _, _, _, _, _ = runs
    plan = load_plan()
    build_daily_metrics(full, plan)
    assert_equal(inc, full, "quality.daily_metrics")
    assert (
        inc.execute("describe quality.daily_metrics").fetchall()
        == full.execute("describe quality.daily_metrics").fetchall()
    )
    metrics = dict(inc.execute("select metric, count(*) from quality.daily_metrics group by all").fetchall())
    assert {"volume", "persons", "null_rate", "type_share", "enum_share", "lag_p95_seconds"} <= set(metrics)
    # the merge reached back: x-dev-a's d0 events are x-user-b's person in the persons metric too
    want = gate_counts(full, plan)
    assert gate_counts(inc, plan, by_partition=True) == want
    enum = next(w for w in want if w[0] == "enum")
    regex = next(w for w in want if w[0] == "regex")
    assert not enum[1] and enum[3] == 1 and "currency" in enum[4]  # the other writer's row
    assert not regex[1] and regex[3] == 1 and "plan_version" in regex[4]
    # a partition counted before and not changed since is not read again (its kept counts are)
    kept = inc.execute("select count(*) from quality.partition_state where layer = 'gates ingest.events'").fetchall()
    assert kept[0][0] == len(landed_partitions(runs[4]))
    # the grain of both event tables likewise (quality_checks.rules.grain_duplicates): stitch.events,
    # the view of every row of ingest.events, is counted as ingest.events, one kept state for both
    assert gate_counts(inc, plan, "stitch.events", by_partition=True) == gate_counts(full, plan, "stitch.events")
    kept = inc.execute("select layer, count(*) from quality.partition_state where layer like 'grain %' group by 1")
    assert dict(kept.fetchall()) == {"grain ingest.events": len(landed_partitions(runs[4]))}


def test_stitch_events_grain_counted_as_ingest_events_finds_their_duplicates(tmp_path):
    """stitch.events' messageId duplicates are ingest.events' (the view holds every row of it): a
    messageId loaded twice, across two partitions, fails the grain gate of both, counted per
    partition or over every row; once the second copy is gone, both pass."""
    from pipelines.stitch.identity import create_events_view

    plan = load_plan()
    con = connect(tmp_path / "w.duckdb")
    con.execute("create table stitch.persons (identifier_kind varchar, identifier varchar, person_id varchar)")
    create_events_view(con)

    def load(day: str, ids: list[str]) -> None:
        con.execute("delete from ingest.events where partition_date = ?::date", [day])
        for k, i in enumerate(ids):
            con.execute(
                "insert into ingest.events (message_id, type, event_name, anonymous_id, plan_version, "
                "partition_date, source_file, line_no, loaded_at) values (?, 'track', 'Signed In', 'a1', '1', "
                "?::date, 'f', ?, now()::timestamp)",
                [i, day, k],
            )

    def grain(table: str, **kw) -> int:
        o = next(o for o in gates(con, plan, table, **kw) if o.check == "grain_unique")
        return o.metadata["failing_count"]

    load("2026-01-01", ["m1", "m2"])
    load("2026-01-02", ["m3", "m1"])
    for table in ("ingest.events", "stitch.events"):
        assert grain(table, by_partition=True) == grain(table) == 1, table
    load("2026-01-02", ["m3"])
    for table in ("ingest.events", "stitch.events"):
        assert grain(table, by_partition=True) == grain(table) == 0, table
    # the count the stitch.events gate read is the ingest.events one (no second state of the same rows)
    layers = con.execute("select distinct layer from quality.partition_state where layer like 'grain %'").fetchall()
    assert layers == [("grain ingest.events",)]


def test_gates_counted_in_slices_of_partitions_equal_one_pass(runs, monkeypatch):
    """The plan gates of ingest.events counted per partition in slices of a few partitions (to keep
    their sorted copy of the payloads in memory at 10M events) equal one count over every row."""
    import quality_checks.partition_state as ps
    from quality_checks import rules

    _, full, _, _, _, _, _ = runs
    plan = load_plan()
    events = full.execute("select count(*) from ingest.events").fetchall()[0][0]
    monkeypatch.setattr(rules, "SLICE_ROWS", events // 4)
    made = []
    real = ps.slices
    monkeypatch.setattr(ps, "slices", lambda *a: made.append(real(*a)) or made[-1])
    got = gate_counts(full, plan, by_partition=True, full_refresh=True)
    days = sorted(r[0] for r in full.execute("select distinct partition_date from ingest.events").fetchall())
    # (two kept layers: the rules on the table's own columns, and the plan's property rules)
    assert len(made) == 2
    for slices in made:
        assert len(slices) >= 4 and sorted(p for part in slices for p in part) == days
    assert got == gate_counts(full, plan)
    assert any(not passed for _, passed, *_ in got)  # (the other writer's row fails two rules)


@pytest.mark.parametrize("hash_fn", ["hash", "length"])
def test_grain_duplicates_kept_per_partition_equal_counting_every_row(hash_fn, monkeypatch):
    """A duplicate across partitions (a partition added, one re-loaded), within one, a null: each count
    equals the distinct count of every row, and after one that found any, every row is counted again.
    With a hash that makes most values collide (`length`), the counts are still the values' own."""
    from quality_checks import rules

    monkeypatch.setattr(rules, "HASH", hash_fn)
    con = duckdb.connect()
    con.execute("create table t (partition_date date, loaded_at timestamp, message_id varchar)")

    def load(day: str, ids: list, at: int) -> None:  # a partition replaced whole, as the ingest does
        con.execute("delete from t where partition_date = ?::date", [day])
        for i in ids:
            con.execute("insert into t values (?::date, make_timestamp(2026, 1, 1, 0, 0, ?), ?)", [day, at, i])

    def check(want: int) -> None:
        every = con.execute("select count(*) - count(distinct message_id) from t").fetchall()[0][0]
        assert grain_duplicates(con, "t", ["message_id"]) == every == want

    load("2026-01-01", ["a", "b"], 1)
    load("2026-01-02", ["c"], 2)
    check(0)
    load("2026-01-03", ["d", "a"], 3)  # a: also in the first partition
    check(1)
    check(1)  # nothing kept after a count with duplicates: every row counted again
    load("2026-01-03", ["d", "e"], 4)  # the partition loaded again without it
    check(0)
    load("2026-01-04", ["f", "f"], 5)
    check(1)
    load("2026-01-04", ["f"], 6)
    check(0)
    load("2026-01-05", [None, "g"], 7)
    check(1)
    load("2026-01-05", ["g", "b", "c"], 8)  # two partitions' values at once
    check(2)


def test_a_changed_plan_a_full_refresh_or_a_missed_run_rebuild_whole(runs, tmp_path):
    _, _, _, days, landing, _, _ = runs
    plan = load_plan()
    plan_dir = tmp_path / "plan"
    shutil.copytree(default_plan_dir(), plan_dir)
    con = connect(tmp_path / "w.duckdb")

    def run(day=None, **kw):
        if day:
            ingest_partitions(con, plan, landing, [day])
        s = stitch(con, plan, plan_dir, **kw)
        set_plan_variables(con, plan)
        return s["mode"], build_sessions(con, SESSIONS, plan_dir, **kw)["mode"], s["why"]

    try:
        assert run(days[0])[:2] == ("full", "full")
        before = rows(con, "staging.sessions")
        assert run()[:2] == ("unchanged", "incremental") and rows(con, "staging.sessions") == before
        assert run(days[1])[:2] == ("incremental", "incremental")
        with (plan_dir / "identity.yaml").open("a") as f:
            f.write("# a comment is a change too\n")
        mode = run(days[2])
        assert mode[:2] == ("full", "full") and "plan" in mode[2]
        assert run(full_refresh=True)[:2] == ("full", "full")
        ingest_partitions(con, plan, landing, [days[3]])
        stitch(con, plan, plan_dir)  # a run whose sessions step did not happen (failed, or killed)
        assert run(days[4])[:2] == ("incremental", "full")
    finally:
        con.close()


def test_partition_where_selects_exactly_the_partitions():
    """quality_checks.partition_state.where (consecutive days as ranges) selects exactly the listed
    partitions, the NULL one when listed, over any subset of days."""
    import random

    from quality_checks import partition_state as ps

    con = duckdb.connect()
    con.execute(
        "create table p as select d::date as partition_date from generate_series(date '2026-02-20', "
        "date '2026-03-20', interval 1 day) t(d) union all select null"
    )
    days = [r[0] for r in con.execute("select partition_date from p where partition_date is not null").fetchall()]
    rng = random.Random(18)
    for _ in range(200):
        chosen = rng.sample(days, rng.randint(0, len(days))) + ([None] if rng.random() < 0.3 else [])
        got = con.execute(f"select partition_date from p where {ps.where(chosen)}").fetchall()
        assert sorted(got, key=str) == sorted([(d,) for d in chosen], key=str), chosen
    assert ps.where([]) == "(false)"


def test_run_has_full_refresh():
    from typer.testing import CliRunner

    from trackplan.cli import app

    out = CliRunner().invoke(app, ["run", "--help"])
    assert out.exit_code == 0 and "--full-refresh" in out.output and "--full" in out.output


def test_a_day_run_again_without_some_of_its_rows_equals_a_full_build(tmp_path):
    """The ingest keeps no earlier version of a partition it replaces: the stitch finds the persons of
    the rows that went away in stitch.partition_keys. Here a re-run day loses the identify that had
    merged a device into a user (the device's older events go back to a person of their own) and every
    event of a person seen only that day; the identity, every event's person and the sessions then
    equal a full build of the same landing zone."""
    plan, plan_dir = load_plan(), default_plan_dir()
    landing = tmp_path / "landing"
    d0, d1, d2 = "2026-11-10", "2026-11-11", "2026-11-12"
    write_lines(
        landing,
        d0,
        "a.jsonl",
        [ev(anon="y-dev-a", at=_at(d0, 9 + i / 10)) for i in range(3)]
        + [ev(user="y-user-b", anon="y-dev-b", at=_at(d0, 10 + i / 10)) for i in range(3)],
    )
    write_lines(landing, d1, "b.jsonl", [ev(user="y-user-b", anon="y-dev-b", at=_at(d1, 9 + i / 10)) for i in range(2)])
    link = write_lines(
        landing,
        d1,
        "link.jsonl",
        [
            ev("identify", None, user="y-user-b", anon="y-dev-a", at=_at(d1, 12), traits={"plan": "free"}),
            ev(user="y-user-b", anon="y-dev-a", at=_at(d1, 12.1)),
            ev(user="y-user-gone", anon="y-dev-gone", at=_at(d1, 13)),
        ],
    )
    write_lines(landing, d2, "c.jsonl", [ev(anon="y-dev-a", at=_at(d2, 9))])
    inc = connect(tmp_path / "inc.duckdb")
    modes = []
    for day in (d0, d1, d2, None):
        if day is None:  # d1 again, without the file of the merge
            link.unlink()
            day = d1
        ingest_partitions(inc, plan, landing, [day])
        modes.append(stitch(inc, plan, plan_dir)["mode"])
        set_plan_variables(inc, plan)
        build_sessions(inc, SESSIONS, plan_dir)
    assert modes == ["full", "incremental", "incremental", "incremental"]
    person = "select count(distinct person_id) from stitch.events where anonymous_id in ('y-dev-a', 'y-dev-b')"
    assert inc.execute(person).fetchall()[0][0] == 2  # the device is its own person again
    assert inc.execute("select count(*) from stitch.events where user_id = 'y-user-gone'").fetchall()[0][0] == 0
    full = connect(tmp_path / "full.duckdb")
    ingest_partitions(full, plan, landing, landed_partitions(landing))
    build_identity(full, plan)
    set_plan_variables(full, plan)
    full.execute(f"create or replace table staging.sessions as {SESSIONS}").fetchall()
    for table in ("stitch.persons", "stitch.identity_graph", "stitch.events", "staging.sessions"):
        assert_equal(inc, full, table)


def test_a_first_day_without_any_login_then_a_day_with_one(tmp_path):
    """A new deployment whose first day holds anonymous traffic only: the stitch built its tables from
    empty frames, with columns of DuckDB type NULL, and every later daily run failed (a login's rows
    cannot be cast to NULL) until --full-refresh. Now the next day runs incrementally and every table
    equals a full build of both days."""
    landing = tmp_path / "landing"
    d0, d1 = "2026-11-14", "2026-11-15"
    anonymous_day(landing, d0)
    plan, plan_dir = load_plan(), default_plan_dir()
    inc = connect(tmp_path / "inc.duckdb")
    write_plan_tables(inc, plan)

    def daily(day: str) -> None:
        ingest_partitions(inc, plan, landing, [day])
        stitch(inc, plan, plan_dir)
        set_plan_variables(inc, plan)
        build_sessions(inc, SESSIONS, plan_dir)
        marts(inc, plan, plan_dir)

    daily(d0)
    assert untyped_columns(inc) == []
    login_day(landing, d1)
    daily(d1)
    assert inc.execute("select count(distinct person_id) from stitch.events").fetchall() == [(1,)]
    full = full_build(tmp_path / "full.duckdb", plan, landing)
    for table in compared_tables(full):
        assert_equal(inc, full, table)
