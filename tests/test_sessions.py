"""staging.sessions (issue 3, item 5): 30-minute inactivity, configurable, client session id honoured,
and the session's landing page, referrer and UTM from its first event."""

import datetime as dt

import pytest
from support.pipeline import (
    BASE,
    DAY,
    ev,
    ingest,
    plan,
    query,
    stitch_and_sessions,
    write_lines,
)

T = dt.timedelta


def _events() -> list[dict]:
    at = lambda minutes: BASE + T(minutes=minutes)
    campaign = {"source": "newsletter", "medium": "email", "name": "spring"}
    page = {"path": "/blog", "referrer": "https://news.example/", "url": "https://acme.example/blog"}
    return [
        # gaps of 30, 29.98 and 30.02 minutes: the session ends only when the gap exceeds the timeout
        ev(type="page", anon="gap", at=at(0), props={"path": "/"}, context={"campaign": campaign, "page": page}),
        ev(anon="gap", at=at(30)),
        ev(anon="gap", at=at(59.98)),
        ev(type="page", anon="gap", at=at(90), props={"path": "/pricing"}),
        # a client session id (Snowplow domain_sessionid, context.sessionId) ends a session when it changes
        ev(anon="client", at=at(0), context={"sessionId": "s1"}),
        ev(anon="client", at=at(1), context={"sessionId": "s1"}),
        ev(anon="client", at=at(2), context={"sessionId": "s2"}),
    ]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    root = tmp_path_factory.mktemp("sessions")
    landing, w = root / "landing", root / "w.duckdb"
    write_lines(landing, DAY, "a.jsonl", _events())
    assert ingest(w, landing).loaded == 7
    stitch_and_sessions(w)
    return w


def _sessions(w, anon: str) -> list[tuple]:
    return query(
        w,
        "select session_index, started_at, ended_at, duration_seconds, event_count, page_views, "
        "landing_page, referrer, utm_source, utm_medium, utm_campaign, client_session_id "
        "from staging.sessions where anonymous_id = ? order by session_index",
        [anon],
    )


def test_thirty_minutes_of_inactivity_ends_a_session(loaded):
    rows = _sessions(loaded, "gap")
    assert [(r[0], r[4], r[5]) for r in rows] == [(1, 3, 1), (2, 1, 1)]
    first = rows[0]
    assert first[1] == BASE and first[2] == BASE + T(minutes=59.98)
    assert first[3] == 3598  # 59.98 min = 3598.8 s: whole seconds elapsed
    assert first[6:11] == ("/blog", "https://news.example/", "newsletter", "email", "spring")
    assert rows[1][6] == "/pricing"


def test_timeout_is_configurable(loaded, tmp_path):
    import shutil

    copy = tmp_path / "w.duckdb"
    shutil.copy(loaded, copy)
    short = plan().model_copy(deep=True)
    short.header.defaults.session_timeout_minutes = 29  # every gap (30, 29.98, 30.02 min) now ends a session
    stitch_and_sessions(copy, short)
    assert [r[4] for r in _sessions(copy, "gap")] == [1, 1, 1, 1]
    assert [r[4] for r in _sessions(copy, "client")] == [2, 1]  # 1-minute gaps are unaffected


def test_client_session_id_is_honoured(loaded):
    rows = _sessions(loaded, "client")
    assert [(r[4], r[11]) for r in rows] == [(2, "s1"), (1, "s2")]


def test_session_ids_are_unique_and_stable(loaded, tmp_path):
    import shutil

    ids = query(loaded, "select session_id from staging.sessions order by 1")
    assert len(ids) == len(set(ids)) == 4
    copy = tmp_path / "w.duckdb"
    shutil.copy(loaded, copy)
    stitch_and_sessions(copy)
    assert query(copy, "select session_id from staging.sessions order by 1") == ids


def test_a_client_session_id_is_kept_whole_and_capped(tmp_path):
    """A client session id is the client's own session (its tracker already applied its timeout): a
    two-hour pause inside it does not split it. One that runs past max_session_days (3) is cut there,
    as Snowplow quarantines such sessions: its later events are in no session."""
    at = lambda hours: BASE + T(hours=hours)
    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"
    write_lines(
        landing,
        DAY,
        "a.jsonl",
        [
            ev(anon="paused", at=at(0), context={"sessionId": "p1"}),
            ev(anon="paused", at=at(2), context={"sessionId": "p1"}),  # 2 h later, same client session
            ev(anon="paused", at=at(4)),  # no client id: the 30-minute rule applies, a session of its own
            ev(anon="endless", at=at(0), context={"sessionId": "e1"}),
            ev(anon="endless", at=at(71), context={"sessionId": "e1"}),
            ev(anon="endless", at=at(73), context={"sessionId": "e1"}),  # 73 h after its start: cut
        ],
    )
    assert ingest(w, landing).loaded == 6
    stitch_and_sessions(w)
    assert [(r[4], r[11]) for r in _sessions(w, "paused")] == [(2, "p1"), (1, None)]
    endless = _sessions(w, "endless")
    assert [(r[4], r[11]) for r in endless] == [(2, "e1")] and endless[0][2] == at(71)


def test_events_at_the_same_instant_are_one_session_whatever_their_order(tmp_path):
    """Events at one instant (a batch flushed with one timestamp) have no order among themselves: a
    group of them after a gap starts one session together, and a client session's first instant is
    all in its session. (The model numbers runs over a RANGE frame of the timestamp, so the row that
    carries the gap, which is any one of the group, does not matter.) 40 groups of 5, 45 minutes
    apart, their messageIds in an order unrelated to the lines'."""
    at = lambda minutes: BASE + T(minutes=minutes)
    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"
    lines = [
        ev(anon="tied", at=at(45 * g), mid=f"m-{(g * 5 + k) * 7919 % 1000:03d}-{g}-{k}")
        for g in range(40)
        for k in range(5)
    ]
    lines += [ev(anon="tied-client", at=at(0), context={"sessionId": "c1"}, mid=f"c-{9 - k}") for k in range(4)]
    lines.append(ev(anon="tied-client", at=at(600), context={"sessionId": "c1"}))
    write_lines(landing, DAY, "a.jsonl", lines)
    assert ingest(w, landing).loaded == 205
    stitch_and_sessions(w)
    tied = _sessions(w, "tied")
    assert [r[4] for r in tied] == [5] * 40 and [r[1] for r in tied] == [at(45 * g) for g in range(40)]
    assert [(r[4], r[11]) for r in _sessions(w, "tied-client")] == [(5, "c1")]


def test_the_pipelines_whole_build_stores_the_models_rows_and_types_with_its_ids_uncompressed(loaded, tmp_path):
    """pipelines/stitch/sessions.py writes the table from its own DDL (the ids uncompressed): the
    same columns, types and rows as the model's SQL run as it is."""
    import shutil

    from models.catalog import load_models, set_plan_variables
    from pipelines.stitch import sessions as s
    from pipelines.warehouse import connect

    copy = tmp_path / "w.duckdb"
    shutil.copy(loaded, copy)
    con = connect(copy)
    try:
        set_plan_variables(con, plan())
        sql = next(m for m in load_models() if m.table == "staging.sessions").sql
        con.execute(f"create table main.as_model as {sql}")
        assert s.build_sessions(con, sql, full_refresh=True)["mode"] == "full"
        describe = lambda t: [r[:2] for r in con.execute(f"describe {t}").fetchall()]
        assert describe("staging.sessions") == describe("main.as_model")
        assert con.execute("select * from staging.sessions except all select * from main.as_model").fetchall() == []
        assert con.execute("select * from main.as_model except all select * from staging.sessions").fetchall() == []
        con.execute("checkpoint")
        stored = con.execute(
            "select column_name, list(distinct compression) from pragma_storage_info('staging.sessions') "
            "where segment_type = 'VARCHAR' group by all"
        ).fetchall()
        assert {c: kinds for c, kinds in stored if c in s.UNCOMPRESSED} == {c: ["Uncompressed"] for c in s.UNCOMPRESSED}
    finally:
        con.close()
