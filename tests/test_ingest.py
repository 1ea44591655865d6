"""Ingestion: Dagster materialization against a DuckDB file, bad input, invariants, transactions,
de-duplication, clock skew, consent and PII hashing (issue 3, items 2, 3 and 6)."""

import datetime as dt
import gzip
import json
from pathlib import Path

import dagster as dg
import duckdb
import orjson
import pytest
from support.pipeline import BASE, DAY, ev, ingest, iso, plan, query, stitch_and_sessions, write_lines

from pipelines import resources as resources_mod
from pipelines.ingest.assets import ingest_events
from pipelines.ingest.load import DISPLACED, REPEATS_MOVED, ingest_partitions, landed_partitions
from pipelines.resources import resources_from_env
from pipelines.warehouse import connect, keyed_hash
from tracking_plan.loader import default_plan_dir

T = dt.timedelta
SQL_TEXT = "'; drop table ingest.events; --"
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _materialize(landing: Path, warehouse: Path, day: str = DAY, **kw):
    return dg.materialize(
        [ingest_events],
        resources=resources_from_env(default_plan_dir(), landing, warehouse),
        partition_key=day,
        run_config=QUIET,
        **kw,
    )


def _physical_lines(path: Path) -> int:
    """Lines as a person counts them: newline-terminated ones plus a non-empty last fragment."""
    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def _bad_landing(landing: Path) -> dict[str, Path]:
    """One partition holding every kind of bad input the issue lists, beside good events."""
    big = ev(mid="big", props={"method": "password", "pad": "x" * (10 << 20)})  # a 10 MB line
    files = {
        "good": write_lines(landing, DAY, "good.jsonl", [ev(mid=f"g{i}", at=BASE + T(minutes=i)) for i in range(5)]),
        "bad": write_lines(
            landing,
            DAY,
            "bad.jsonl",
            [
                '{"type": "track", "event": "Signed In", "messageId": "broken"',  # 1 broken JSON
                b'{"type":"track","event":"Sign\xff\xfeIn","messageId":"latin"}',  # 2 not UTF-8
                big,  # 3
                ev(mid="empty-anon", anon=""),  # 4
                ev(mid="null-anon", anon="null"),  # 5
                ev(mid="undef-anon", anon="undefined", user="undefined"),  # 6
                ev(type="screenshot", mid="odd-type"),  # 7 unknown type
                ev(mid="future", at=BASE + T(days=3 * 365), received_at=BASE),  # 8
                ev(mid="past", at=BASE - T(days=5 * 365), received_at=BASE),  # 9
                ev(event=SQL_TEXT, mid="sql-name"),  # 10 unknown event whose name is SQL
                ev(mid="sql-value", user=SQL_TEXT, props={"method": "password", "note": SQL_TEXT}),  # 11 valid
                ev(mid="null"),  # 12 a messageId that says null
                "[1, 2, 3]",  # 13 JSON but not an object
            ],
        ),
        "empty": write_lines(landing, DAY, "empty.jsonl", []),
        "sqlname": write_lines(landing, DAY, f"{SQL_TEXT}.jsonl", [ev(mid="in-sql-file")]),
    }
    folder = landing / f"date={DAY}"
    full = gzip.compress(b"".join(orjson.dumps(ev(mid=f"gz{i}")) + b"\n" for i in range(200)))
    files["truncated"] = folder / "cut.jsonl.gz"
    files["truncated"].write_bytes(full[: len(full) // 2])
    files["zero_batch"] = folder / "zero.json"
    files["zero_batch"].write_bytes(orjson.dumps({"batch": [], "sentAt": iso(BASE)}))
    files["batch"] = folder / "batch.json"
    bare = ev(mid="b1")
    del bare["context"]
    files["batch"].write_bytes(
        orjson.dumps({"batch": [bare, ev(mid="b2")], "context": {"library": {"name": "batch-lib"}}})
    )
    return files


def _snapshot(warehouse: Path) -> dict[str, list]:
    """Every ingest table without its wall-clock columns, in a stable order."""
    return {
        "events": query(warehouse, "select * exclude (loaded_at) from ingest.events order by all"),
        "quarantine": query(warehouse, "select * exclude (quarantined_at) from ingest.quarantine order by all"),
        "log": query(
            warehouse, "select * exclude (started_at, finished_at, seconds) from ingest.ingestion_log order by all"
        ),
    }


@pytest.fixture(scope="module")
def bad_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    landing, warehouse = root / "landing", root / "w.duckdb"
    files = _bad_landing(landing)
    first = _materialize(landing, warehouse)
    snap1 = _snapshot(warehouse)
    second = _materialize(landing, warehouse)
    return {
        "landing": landing,
        "warehouse": warehouse,
        "files": files,
        "results": (first, second),
        "snaps": (snap1, _snapshot(warehouse)),
    }


def test_materialize_succeeds_and_reports_counts(bad_run):
    first, second = bad_run["results"]
    assert first.success and second.success
    meta = first.asset_materializations_for_node("ingest_events")[0].metadata
    loaded = query(bad_run["warehouse"], "select count(*) from ingest.events")[0][0]
    assert meta["loaded"].value == loaded
    assert meta["dagster/row_count"].value == loaded


def test_every_line_lands_in_exactly_one_bucket_per_file(bad_run):
    rows = query(
        bad_run["warehouse"],
        "select source_file, lines, loaded, quarantined, duplicates, "
        "consent_dropped, suppressed from ingest.ingestion_log",
    )
    by_file = {Path(r[0]).name: r[1:] for r in rows}
    files = bad_run["files"]
    assert set(by_file) == {p.name for p in files.values()}
    for key, path in files.items():
        lines, *buckets = by_file[path.name]
        assert lines == sum(buckets), key
        if key == "batch":
            assert lines == 2
        elif key == "zero_batch":
            assert lines == 0
        elif key != "truncated":
            assert lines == _physical_lines(path), key
    # the truncated .gz: every line before the cut is loaded, the cut line is quarantined
    cut = by_file["cut.jsonl.gz"]
    assert 50 < cut[1] < 200 and cut[2] == 1 and cut[1] == cut[0] - 1
    err = query(
        bad_run["warehouse"], "select file_error from ingest.ingestion_log where source_file like '%cut.jsonl.gz'"
    )
    assert err[0][0].startswith("truncated")


def test_bad_lines_are_quarantined_verbatim_with_their_reason(bad_run):
    files = bad_run["files"]
    rows = query(
        bad_run["warehouse"],
        "select line_no, rules, raw from ingest.quarantine where source_file = ? order by line_no",
        [str(files["bad"])],
    )
    rules = {no: set(r) for no, r, _ in rows}
    assert rules == {
        1: {"json"},
        2: {"encoding"},
        3: {"too_large"},
        4: {"identity"},
        5: {"identity"},
        6: {"identity"},
        7: {"envelope"},
        8: {"timestamp_future"},
        9: {"timestamp_past"},
        10: {"unknown_event"},
        12: {"envelope"},
        13: {"json"},
    }
    raw = {no: r for no, _, r in rows}
    original = files["bad"].read_bytes().split(b"\n")
    assert raw[1].encode() == original[0]  # verbatim
    assert raw[2] == original[1].decode("utf-8", errors="backslashreplace")  # bytes kept visible, not dropped
    assert len(raw[3]) > 10 << 20  # the 10 MB line is kept whole
    assert orjson.loads(raw[10])["event"] == SQL_TEXT
    cut = query(bad_run["warehouse"], "select rules from ingest.quarantine where source_file like '%cut.jsonl.gz'")
    assert cut == [(["truncated"],)]


def test_sql_looking_text_is_data_never_sql(bad_run):
    w = bad_run["warehouse"]
    tables = {r[0] for r in query(w, "select table_name from information_schema.tables where table_schema = 'ingest'")}
    assert {"events", "quarantine", "ingestion_log"} <= tables
    row = query(w, "select user_id, properties ->> '$.note' from ingest.events where message_id = 'sql-value'")
    assert row == [(SQL_TEXT, SQL_TEXT)]
    from_file = query(w, "select source_file from ingest.events where message_id = 'in-sql-file'")
    assert from_file == [(str(bad_run["files"]["sqlname"]),)]


def test_batch_body_shares_its_context_with_messages_that_lack_one(bad_run):
    rows = query(
        bad_run["warehouse"],
        "select message_id, library_name from ingest.events where message_id in ('b1', 'b2') order by 1",
    )
    # b1 has no context and gets the batch's; b2 keeps its own, as Segment's batch API does
    assert rows == [("b1", "batch-lib"), ("b2", "test")]


def test_rerun_gives_identical_tables(bad_run):
    snap1, snap2 = bad_run["snaps"]
    assert snap1 == snap2
    assert len(snap1["events"]) == len({r[0] for r in snap1["events"]})  # no double counting


def test_run_killed_midway_leaves_warehouse_as_before(tmp_path, monkeypatch):
    landing, warehouse = tmp_path / "landing", tmp_path / "w.duckdb"
    write_lines(landing, DAY, "a.jsonl", [ev(mid="a1"), ev(mid="a2")])
    assert _materialize(landing, warehouse).success
    before = _snapshot(warehouse)
    write_lines(landing, DAY, "b.jsonl", [ev(mid="b1"), "{broken"])

    class Dies:
        """A connection that fails after the partition's rows were deleted and re-inserted."""

        def __init__(self, con):
            self._con = con

        def execute(self, sql, *args):
            # (the validator runs its statements parsed: a duckdb.Statement, whose text is .query)
            head = " ".join(getattr(sql, "query", sql).split())[:40]
            if head.startswith("insert into ingest.ingestion_log"):
                raise RuntimeError("killed")
            seen.append(head)
            return self._con.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self._con, name)

    seen: list[str] = []
    real, real_cursor = resources_mod.connect, resources_mod.cursor
    monkeypatch.setattr(resources_mod, "connect", lambda path, **kw: Dies(real(path, **kw)))
    # a run's assets get cursors of the run's one connection: those die too
    monkeypatch.setattr(resources_mod, "cursor", lambda con: Dies(real_cursor(con)))
    result = _materialize(landing, warehouse, raise_on_error=False)
    assert not result.success
    # it died late: after the partition's old rows were deleted and its new events inserted
    assert any(h.startswith("delete from ingest.events") for h in seen)
    assert any(h.startswith("insert into ingest.events") for h in seen)
    monkeypatch.setattr(resources_mod, "connect", real)
    monkeypatch.setattr(resources_mod, "cursor", real_cursor)
    assert _snapshot(warehouse) == before


def test_dedup_across_partitions_within_lookback_and_a_late_resend_quarantined(tmp_path):
    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"
    lookback = plan().header.defaults.dedup_lookback_days
    near = (BASE + T(days=lookback)).date().isoformat()
    far = (BASE + T(days=lookback + 1)).date().isoformat()
    write_lines(landing, DAY, "a.jsonl", [ev(mid="x"), ev(mid="y"), ev(mid="y")])
    write_lines(landing, near, "a.jsonl", [ev(mid="x", at=BASE + T(days=lookback)), ev(mid="n")])
    write_lines(landing, far, "a.jsonl", [ev(mid="x", at=BASE + T(days=lookback + 1))])
    first = ingest(w, landing, DAY)
    assert (first.loaded, first.duplicates) == (2, 1)  # within one file
    second = ingest(w, landing, near)
    assert (second.loaded, second.duplicates) == (1, 1)  # x seen `lookback` days earlier
    third = ingest(w, landing, far)
    # beyond the window it is a late re-send: not loaded again, quarantined with its reason
    assert (third.loaded, third.duplicates, third.quarantined) == (0, 0, 1)
    assert third.top_reasons == [("duplicate", 1)]
    again = ingest(w, landing, near)  # re-running a middle partition does not double count either
    assert (again.loaded, again.duplicates) == (1, 1)
    assert query(w, "select count(*) from ingest.events where message_id = 'x'") == [(1,)]


def test_the_earliest_copy_is_the_event_whichever_day_runs_first(tmp_path):
    """De-duplication does not depend on the order days are run in: a day run again with a message a
    later day had loaded (a backfill) loads it and runs that later day again, where it becomes a
    duplicate; a day run again without a message it had loaded (its file gone) runs again the later
    days that set a copy of it aside, duplicate or late re-send, and the next copy is loaded. Each time
    the tables equal a fresh build of the landing zone as it is, and the result says why a day ran
    that was not asked for."""
    lookback = plan().header.defaults.dedup_lookback_days
    d0, d1, d2 = (BASE + T(days=k) for k in (0, 2, lookback + 4))
    day = lambda t: t.date().isoformat()
    landing = tmp_path / "landing"
    write_lines(landing, day(d1), "b.jsonl", [ev(mid="b1", at=d1), ev(mid="b2", at=d1), ev(mid="late", at=d1)])
    write_lines(landing, day(d2), "c.jsonl", [ev(mid="late", at=d2), ev(mid="c1", at=d2)])
    w = tmp_path / "w.duckdb"

    def run(*days) -> list:
        con = connect(w)
        try:
            return ingest_partitions(con, plan(), landing, list(days))
        finally:
            con.close()

    def fresh() -> dict:
        f = tmp_path / f"fresh-{len(list(tmp_path.glob('fresh-*')))}.duckdb"
        con = connect(f)
        ingest_partitions(con, plan(), landing, landed_partitions(landing))
        con.close()
        return _ingest_tables(f)

    def where(mid: str) -> list:
        return query(w, f"select partition_date::varchar from ingest.events where message_id = '{mid}'")

    assert [r.because for r in run(day(d1), day(d2))] == [None, None]
    assert where("late") == [(day(d1),)]  # d2's copy is a late re-send (beyond the lookback): quarantined
    # a backfill: d0 arrives late with b1 (within the lookback of d1) and late (beyond it of d2)
    backfill = write_lines(landing, day(d0), "a.jsonl", [ev(mid="b1", at=d0), ev(mid="late", at=d0)])
    results = run(day(d0))
    assert [(r.partition, r.because) for r in results] == [
        (day(d0), None),
        (day(d1), DISPLACED),
        (day(d2), REPEATS_MOVED),  # its late re-send of `late` was judged against d1's copy
    ]
    assert (results[1].loaded, results[1].duplicates, results[1].quarantined) == (1, 2, 0)
    assert where("b1") == [(day(d0),)] and where("late") == [(day(d0),)] and where("b2") == [(day(d1),)]
    assert _ingest_tables(w) == fresh()
    # the backfill's file goes: d1's copies are the events again; its own runs again
    backfill.unlink()
    results = run(day(d0))
    why = REPEATS_MOVED
    assert [(r.partition, r.because) for r in results] == [(day(d0), None), (day(d1), why), (day(d2), why)]
    assert where("b1") == [(day(d1),)] and where("late") == [(day(d1),)]
    assert _ingest_tables(w) == fresh()
    # d1's file goes: d2's late copy (quarantined as a late re-send of d1's) is now the event
    (landing / f"date={day(d1)}" / "b.jsonl").unlink()
    results = run(day(d1))
    assert [(r.partition, r.because) for r in results] == [(day(d1), None), (day(d2), why)]
    assert where("late") == [(day(d2),)]
    assert query(w, "select count(*) from ingest.quarantine") == [(0,)]
    assert _ingest_tables(w) == fresh()


def test_a_copy_dropped_for_its_consent_is_never_the_event(tmp_path):
    """Copies of one messageId whose consent differs: the copy dropped for it is counted as dropped and
    the earliest copy that can load is the event, as a rejected copy is never the event. So days run
    one at a time, in either order, equal a build of the whole landing zone: a daily run remembers
    of other days only the copies they loaded."""
    ad = {"ad_id": "ad1", "network": "google"}
    d0, d1 = BASE, BASE + T(days=1)
    day = lambda t: t.date().isoformat()
    lines = {
        day(d0): [
            ev(mid="ad", event="Ad Clicked", props=ad, at=d0, context=_consent("marketing", False)),
            ev(mid="twice", event="Ad Clicked", props=ad, at=d0, context=_consent("marketing", False)),
            ev(mid="same-day", event="Ad Clicked", props=ad, at=d0, context=_consent("marketing", False)),
            ev(mid="same-day", event="Ad Clicked", props=ad, at=d0, context=_consent("marketing", True)),
        ],
        day(d1): [
            ev(mid="ad", event="Ad Clicked", props=ad, at=d1, context=_consent("marketing", True)),
            ev(mid="twice", event="Ad Clicked", props=ad, at=d1, context=_consent("marketing", False)),
        ],
    }
    landing = tmp_path / "landing"
    for d, rows in lines.items():
        write_lines(landing, d, "a.jsonl", rows)
    full = tmp_path / "full.duckdb"
    con = connect(full)
    try:
        ingest_partitions(con, plan(), landing, sorted(lines))
    finally:
        con.close()
    want = _ingest_tables(full)
    loaded = "select message_id, partition_date::varchar from ingest.events order by 1"
    assert query(full, loaded) == [("ad", day(d1)), ("same-day", day(d0))]
    counts = "select partition_date::varchar, loaded, duplicates, consent_dropped from ingest.ingestion_log order by 1"
    assert query(full, counts) == [(day(d0), 1, 0, 3), (day(d1), 1, 0, 1)]
    for order in (sorted(lines), sorted(lines, reverse=True)):
        w = tmp_path / f"{order[0]}.duckdb"
        for d in order:
            con = connect(w)
            try:
                assert [r.because for r in ingest_partitions(con, plan(), landing, [d])] == [None], order
            finally:
                con.close()
        assert _ingest_tables(w) == want, order


def _grain_gate(w: Path):
    from pipelines.quality.checks import gates

    con = connect(w, read_only=True)
    try:
        return next(o for o in gates(con, plan(), "ingest.events") if o.check == "grain_unique")
    finally:
        con.close()


def test_a_resend_beyond_the_lookback_is_quarantined_never_loaded_twice(tmp_path):
    """A messageId re-sent long after the first copy (here 40 days, the lookback is 7): whether the
    two partitions are ingested apart, together, in either order or again, the event is loaded once,
    from the earliest copy (the late day, run first, runs again when the first day arrives), the late
    copy is in the quarantine with rule `duplicate` naming the first copy's partition, every line is
    accounted for, and grain_unique on ingest.events passes."""
    lookback = plan().header.defaults.dedup_lookback_days
    late_at = BASE + T(days=40)
    late = late_at.date().isoformat()
    assert 40 > lookback
    ways = {
        "apart": [[DAY], [late]],
        "together": [[DAY, late]],
        "late first": [[late], [DAY]],
        "again": [[DAY], [late], [late], [DAY], [late]],
    }
    for way, runs in ways.items():
        landing, w = tmp_path / way / "landing", tmp_path / way / "w.duckdb"
        write_lines(landing, DAY, "a.jsonl", [ev(mid="r"), ev(mid="only-first")])
        write_lines(landing, late, "b.jsonl", [ev(mid="r", at=late_at), ev(mid="only-late", at=late_at)])
        for days in runs:
            con = connect(w)
            ingest_partitions(con, plan(), landing, days)
            con.close()
        assert query(w, "select count(*) from ingest.events where message_id = 'r'") == [(1,)], way
        kept = query(w, "select partition_date::varchar from ingest.events where message_id = 'r'")[0][0]
        other = late if kept == DAY else DAY
        assert kept == DAY, way  # the earliest copy, whichever day ran first
        (q,) = query(w, "select partition_date::varchar, rules, reasons[1].message from ingest.quarantine")
        assert q[0] == other and q[1] == ["duplicate"], (way, q)
        assert f"already loaded from partition {kept}, 40 days from this one" in q[2], q[2]
        assert f"dedup_lookback_days, {lookback}" in q[2]
        # every line in exactly one bucket, against the lines of the files
        log = query(w, "select sum(lines), sum(loaded), sum(quarantined), sum(duplicates) from ingest.ingestion_log")
        assert log == [(4, 3, 1, 0)], (way, log)
        g = _grain_gate(w)
        assert g.passed and g.metadata["failing_count"] == 0, way


def test_clock_skew_corrected_as_segment_does(tmp_path):
    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"
    # a device clock 2 h behind: it stamps the event 10 s before sending; the server gets it at 12:00
    device = BASE - T(hours=2)
    write_lines(
        landing,
        DAY,
        "a.jsonl",
        [
            ev(mid="skewed", at=device, sent_at=device + T(seconds=10), received_at=BASE + T(hours=3)),
            ev(mid="no-sent-at", at=device, received_at=BASE + T(hours=3)),
        ],
    )
    ingest(w, landing)
    rows = dict(query(w, 'select message_id, "timestamp" from ingest.events'))
    assert rows["skewed"] == BASE + T(hours=3) - T(seconds=10)
    assert rows["no-sent-at"] == device  # nothing to correct with


def _consent(cat: str, granted: bool) -> dict:
    return {"ip": "203.0.113.9", "consent": {"categoryPreferences": {cat: granted}}}


def test_consent_drop_and_strip_per_consent_yaml(tmp_path):
    p = plan()
    cats = p.consent.categories
    assert cats["marketing"].without_consent == "drop" and cats["analytics"].without_consent == "strip_pii"
    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"
    ad = {"ad_id": "ad1", "network": "google"}
    invite = {"workspace_id": "ws_a", "invitee_email": "pat@example.com", "role": "admin"}
    write_lines(
        landing,
        DAY,
        "a.jsonl",
        [
            ev(mid="ad-denied", event="Ad Clicked", props=ad, context=_consent("marketing", False)),
            ev(mid="ad-granted", event="Ad Clicked", props=ad, context=_consent("marketing", True)),
            ev(mid="ad-unsaid", event="Ad Clicked", props=ad),  # consent.yaml default: granted
            ev(mid="inv-denied", event="Invite Sent", props=invite, context=_consent("analytics", False)),
            ev(mid="inv-granted", event="Invite Sent", props=invite, context=_consent("analytics", True)),
            ev(mid="necessary", context=_consent("necessary", False)),  # required category: consent not needed
        ],
    )
    res = ingest(w, landing)
    assert (res.lines, res.loaded, res.consent_dropped) == (6, 5, 1)
    rows = {
        r[0]: r[1:]
        for r in query(
            w,
            "select message_id, consent_stripped, properties ->> '$.invitee_email', "
            "context ->> '$.ip', properties ->> '$.workspace_id' from ingest.events",
        )
    }
    assert "ad-denied" not in rows
    stripped, email, ip, ws = rows["inv-denied"]
    assert stripped and email is None and ip is None and ws == "ws_a"  # PII gone, the event kept
    stripped, email, ip, _ = rows["inv-granted"]
    # the IP is truncated to its /24 even with consent: geography stays, the person does not
    assert not stripped and ip == "203.0.113.0" and email == keyed_hash("pat@example.com")
    assert not rows["necessary"][0]
    assert query(w, "select consent_dropped from ingest.ingestion_log") == [(1,)]


def test_consent_preferences_read_ignoring_case_and_failing_closed(tmp_path):
    """OneTrust and Segment send "Marketing": false; a malformed answer ("denied", [], a non-object)
    is no grant (the category's without_consent applies), while an absent one takes consent.yaml's
    default (granted), as before: found by feeding odd preferences to a run (2026-12)."""
    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"
    ad = {"ad_id": "ad1", "network": "google"}

    def prefs(value) -> dict:
        return {"consent": {"categoryPreferences": value}}

    cases = {
        "capital-false": (prefs({"Marketing": False}), False),
        "capital-true": (prefs({"MARKETING": True}), True),
        "string-denied": (prefs({"marketing": "denied"}), False),
        "string-true": (prefs({"marketing": "true"}), True),
        "array-value": (prefs({"marketing": []}), False),
        "zero": (prefs({"marketing": 0}), False),
        "prefs-string": (prefs("denied"), False),
        "prefs-array": (prefs([]), False),
        "prefs-true": (prefs(True), False),
        "value-null": (prefs({"marketing": None}), True),  # no answer: the default
        "prefs-null": (prefs(None), True),
        "other-category-only": (prefs({"analytics": False}), True),
        "nothing": ({}, True),
    }
    write_lines(
        landing,
        DAY,
        "a.jsonl",
        [ev(mid=mid, event="Ad Clicked", props=ad, context=ctx) for mid, (ctx, _) in cases.items()],
    )
    res = ingest(w, landing)
    loaded = {m for (m,) in query(w, "select message_id from ingest.events")}
    assert loaded == {mid for mid, (_, granted) in cases.items() if granted}
    assert res.consent_dropped == sum(not g for _, g in cases.values()) and not res.quarantined


def _granted_oracle(prefs, category: str, default: bool = True) -> bool:
    """The consent rule as README states it, in Python: the preferences absent or null, or no answer
    for the category (its key in any case; null), take the default; preferences that are not an
    object grant nothing; an answer grants only when it is true ("true" in any case too)."""
    if prefs is None:
        return default
    if not isinstance(prefs, dict):
        return False
    keys = [k for k in prefs if k.lower() == category]
    if not keys or prefs[keys[0]] is None:
        return default
    v = prefs[keys[0]]
    return v is True or (isinstance(v, str) and v.lower() == "true")


def test_consent_rule_against_its_statement_on_random_preferences(tmp_path):
    """Random preference shapes (keys in random case, values of every JSON type, non-objects, absent
    and null) through the ingest, against the rule written out in Python (_granted_oracle): the
    marketing event is loaded exactly when granted, the analytics one always, stripped exactly when not."""
    import random

    rng = random.Random(20261205)
    values = [True, False, None, "true", "TRUE", "false", "denied", "yes", 1, 0, [], {}, [True], 0.5]
    shapes = []
    for _ in range(160):
        r = rng.random()
        if r < 0.1:
            prefs = rng.choice(["denied", [], True, 3, ["marketing"]])
        elif r < 0.2:
            prefs = None
        else:
            prefs = {}
            for cat in rng.sample(["marketing", "analytics", "necessary", "other"], rng.randint(0, 3)):
                key = "".join(c.upper() if rng.random() < 0.3 else c for c in cat)
                prefs[key] = rng.choice(values)
        shapes.append(("absent" if r >= 0.95 else "set", prefs))
    ad = {"ad_id": "ad1", "network": "google"}
    invite = {"workspace_id": "ws_a", "invitee_email": "pat@example.com", "role": "admin"}
    lines, expect = [], {}
    for i, (how, prefs) in enumerate(shapes):
        ctx = {} if how == "absent" else {"consent": {"categoryPreferences": prefs}}
        oracle = {"absent": None}.get(how, prefs)
        lines.append(ev(mid=f"ad-{i}", event="Ad Clicked", props=ad, context=ctx))
        lines.append(ev(mid=f"inv-{i}", event="Invite Sent", props=invite, context=ctx))
        expect[f"ad-{i}"] = _granted_oracle(oracle, "marketing")
        expect[f"inv-{i}"] = _granted_oracle(oracle, "analytics")
    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"
    write_lines(landing, DAY, "a.jsonl", lines)
    res = ingest(w, landing)
    rows = dict(query(w, "select message_id, consent_stripped from ingest.events"))
    assert {m for m in rows if m.startswith("ad-")} == {m for m, g in expect.items() if m.startswith("ad-") and g}
    assert {m: not rows[m] for m in expect if m.startswith("inv-")} == {
        m: g for m, g in expect.items() if m.startswith("inv-")
    }
    assert res.consent_dropped == sum(not g for m, g in expect.items() if m.startswith("ad-")) > 10
    assert sum(rows[m] for m in rows if m.startswith("inv-")) > 10  # (both verdicts drawn often)


def test_consent_field_is_the_plans(tmp_path):
    """consent.yaml's `field` is where the preferences are read (it was declared, and ignored)."""
    p = plan()
    p.consent.field = "context.privacy.choices"
    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"
    ad = {"ad_id": "ad1", "network": "google"}
    write_lines(
        landing,
        DAY,
        "a.jsonl",
        [
            ev(mid="there", event="Ad Clicked", props=ad, context={"privacy": {"choices": {"marketing": False}}}),
            ev(mid="segment-place", event="Ad Clicked", props=ad, context=_consent("marketing", False)),
        ],
    )
    ingest(w, landing, p=p)
    assert query(w, "select message_id from ingest.events") == [("segment-place",)]


def test_ip_truncation_on_every_path(tmp_path):
    """The fast textual path and the JSON-merge fallback give the same privacy: IPv4 to /24, IPv6 to
    /48, a nested "ip" of the same value truncated too, PII traits in context hashed, and no key added."""
    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"
    write_lines(
        landing,
        DAY,
        "a.jsonl",
        [
            ev(mid="v4", context={"ip": "198.51.100.77", "library": {"name": "analytics.js"}}),
            ev(mid="v6", context={"ip": "2001:db8:85a3:8d3:1319:8a2e:370:7348"}),
            ev(mid="nested", context={"ip": "198.51.100.77", "device": {"ip": "198.51.100.77"}}),
            ev(mid="escaped", context={"ip": 'odd"ip.5'}),  # serialized with an escape: the JSON-merge path
            ev(mid="traits", context={"ip": "198.51.100.77", "traits": {"email": "kim@example.com", "plan": "team"}}),
            ev(mid="no-ip", context={"library": {"name": "analytics.js"}}),
        ],
    )
    ingest(w, landing)
    rows = {r[0]: json.loads(r[1]) for r in query(w, "select message_id, context from ingest.events")}
    assert rows["v4"] == {"ip": "198.51.100.0", "library": {"name": "analytics.js"}}
    assert rows["v6"]["ip"] == "2001:db8:85a3::"
    assert rows["nested"] == {"ip": "198.51.100.0", "device": {"ip": "198.51.100.0"}}
    assert rows["escaped"]["ip"] == 'odd"ip.0'
    assert rows["traits"]["ip"] == "198.51.100.0"
    assert rows["traits"]["traits"] == {"email": keyed_hash("kim@example.com"), "plan": "team"}
    assert rows["no-ip"] == {"library": {"name": "analytics.js"}}  # nothing added, not even an empty traits
    assert "kim@example.com" not in json.dumps(rows) and "198.51.100.77" not in json.dumps(rows)


def test_pii_is_hashed_joinable_not_readable(tmp_path, monkeypatch):
    monkeypatch.setenv("TRACKPLAN_HASH_SALT", "salt-one")
    landing = tmp_path / "landing"
    write_lines(
        landing,
        DAY,
        "a.jsonl",
        [
            ev(type="identify", mid="id1", user="u1", traits={"email": "kim@example.com", "name": "Kim Lee"}),
            ev(
                mid="inv",
                event="Invite Sent",
                props={"workspace_id": "ws_a", "invitee_email": "kim@example.com", "role": "member"},
            ),
        ],
    )
    ingest(tmp_path / "one.duckdb", landing)
    one = query(
        tmp_path / "one.duckdb",
        "select traits ->> '$.email', traits ->> '$.name', "
        "(select properties ->> '$.invitee_email' from ingest.events where "
        "message_id = 'inv') from ingest.events where message_id = 'id1'",
    )[0]
    assert one[0] == one[2] == keyed_hash("kim@example.com", "salt-one")  # joinable across events
    assert one[1] == keyed_hash("Kim Lee", "salt-one")
    dump = str(query(tmp_path / "one.duckdb", "select * from ingest.events"))
    assert "kim@example.com" not in dump and "Kim Lee" not in dump  # not readable
    monkeypatch.setenv("TRACKPLAN_HASH_SALT", "salt-two")
    ingest(tmp_path / "two.duckdb", landing)
    two = query(tmp_path / "two.duckdb", "select traits ->> '$.email' from ingest.events where message_id = 'id1'")
    assert two[0][0] != one[0]  # keyed: without the salt the hash cannot be recomputed


def test_a_pii_identifier_is_hashed_on_every_event(tmp_path):
    """identity.yaml's `pii: true` on an identifier (and `hash_pii_identifiers`, the default) was
    declared and never read: the e-mail was hashed only because the identify event's own property said
    pii. An identifier's source is now stored hashed on every event whatever the event says (a group
    call's traits, a page's context.traits, an identify whose plan property is not marked pii), and
    stitched as the hash; `hash_pii_identifiers: false` stores it as sent."""
    p = plan()
    p.events["User Identified"].properties["email"].pii = False  # the event no longer says so
    landing = tmp_path / "landing"
    write_lines(
        landing,
        DAY,
        "a.jsonl",
        [
            ev(
                type="identify", mid="id1", user="u1", anon="d1", traits={"email": "kim@example.com", "name": "Kim Lee"}
            ),
            ev(type="page", mid="pg", anon="d1", context={"traits": {"email": "kim@example.com"}}),
        ],
    )
    w = tmp_path / "w.duckdb"
    ingest(w, landing, p=p)
    assert query(w, "select traits ->> '$.email' from ingest.events where message_id = 'id1'") == [
        (keyed_hash("kim@example.com"),)
    ]
    assert query(w, "select context -> '$.traits' ->> '$.email' from ingest.events where message_id = 'pg'") == [
        (keyed_hash("kim@example.com"),)
    ]
    assert "kim@example.com" not in str(query(w, "select * from ingest.events"))
    stitch_and_sessions(w, p)
    assert ("email", keyed_hash("kim@example.com")) in query(
        w, "select identifier_kind, identifier from stitch.persons"
    )

    p.identity.hash_pii_identifiers = False
    w2 = tmp_path / "w2.duckdb"
    ingest(w2, landing, p=p)
    assert query(w2, "select traits ->> '$.email' from ingest.events where message_id = 'id1'") == [
        ("kim@example.com",)
    ]


@pytest.mark.parametrize("own_phone", [False, True])
def test_an_identify_or_group_calls_properties_are_hashed_as_its_traits(tmp_path, own_phone):
    """The insert hashes an identify or group call's traits once and stores the result as its
    properties too (load.shared_pii_sql: its properties are its traits). Both columns are what a Python
    oracle makes of the call's traits: each PII key's keyed hash, or the key gone where consent is
    withheld and the category strips PII. With a PII identifier read from the properties as well
    (`own_phone`) the columns' keys differ, nothing is shared, and each column is hashed by its own."""
    from pipelines.ingest.load import shared_pii_sql
    from tracking_plan.model import Identifier

    p = plan()
    p.events["User Identified"].consent = "analytics"  # (necessary in the sample plan: never stripped)
    if own_phone:
        p.identity.identifiers.append(Identifier(name="phone", source="properties.phone", pii=True))
    assert (shared_pii_sql(p) is None) == own_phone
    person = {"email": "kim@example.com", "name": "Kim Lee", "phone": "+15550100", "plan": "team"}
    company = {"email": "ops@example.com", "name": "Acme", "employees": 12}
    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"
    write_lines(
        landing,
        DAY,
        "a.jsonl",
        [
            ev(type="identify", mid="id", user="u1", traits=person, context=_consent("analytics", True)),
            ev(type="identify", mid="id-denied", user="u2", traits=person, context=_consent("analytics", False)),
            ev(type="group", mid="grp", user="u1", groupId="g1", traits=company),
            ev(mid="track", event="Signed In", props={"method": "password", "email": "kim@example.com"}),
        ],
    )
    assert ingest(w, landing, p=p).loaded == 4
    rows = {
        m: (json.loads(a) if a else None, json.loads(b) if b else None, s)
        for m, a, b, s in query(w, "select message_id, properties, traits, consent_stripped from ingest.events")
    }

    def oracle(doc: dict, keys: set[str], strip: bool) -> dict:
        kept = {k: v for k, v in doc.items() if not (strip and k in keys)}
        return {k: keyed_hash(v) if k in keys else v for k, v in kept.items()}

    phone = {"phone"} if own_phone else set()
    # User Identified's own PII properties (email, name) and the identifiers' keys (traits.email, and
    # an identify call's properties are its traits: properties.phone too)
    for mid, strip in (("id", False), ("id-denied", True)):
        props, traits, stripped = rows[mid]
        assert stripped == strip
        assert traits == oracle(person, {"email", "name"}, strip)
        assert props == oracle(person, {"email", "name"} | phone, strip)
    props, traits, _ = rows["grp"]  # Company Grouped has no PII property: the identifiers' keys alone
    assert traits == oracle(company, {"email"}, False)
    assert props == oracle(company, {"email"} | phone, False)
    props, traits, _ = rows["track"]  # a track event: its properties are no traits (traits.email is not read)
    assert traits is None and props == {"method": "password", "email": "kim@example.com"}


@pytest.mark.parametrize("salt", ["salt-one", "k" * 64, "ключ-" * 20, "x"])
def test_pii_hash_in_sql_is_hmac_sha256(salt, monkeypatch):
    """pii_hash, in SQL both ways (the macro over DuckDB's sha256 when the salt is known; the Python
    function that reads it later otherwise), against Python's hmac: keys shorter than, equal to and
    longer than SHA-256's 64-byte block, text of any width, NULL."""
    import hashlib
    import hmac

    import duckdb

    from pipelines.warehouse import register_udfs

    values = ["kim@example.com", "", "Ærø ✓ 名前", "a" * 300, "1234", None]
    want = [None if v is None else hmac.new(salt.encode(), v.encode(), hashlib.sha256).hexdigest()[:32] for v in values]
    monkeypatch.delenv("TRACKPLAN_HASH_SALT", raising=False)
    given = duckdb.connect()
    register_udfs(given, salt)
    from_env = duckdb.connect()
    monkeypatch.setenv("TRACKPLAN_HASH_SALT", salt)
    register_udfs(from_env)
    later = duckdb.connect()
    monkeypatch.delenv("TRACKPLAN_HASH_SALT")
    register_udfs(later)  # no salt yet: read when first needed
    monkeypatch.setenv("TRACKPLAN_HASH_SALT", salt)
    for con in (given, from_env, later):
        got = [con.execute("select pii_hash(?)", [v]).fetchall()[0][0] for v in values]
        assert got == want
        # over a column, as the ingest calls it (and on a JSON value)
        got = con.execute(
            "select list(pii_hash(v) order by i) from (select unnest(?) as v, generate_subscripts(?, 1) as i)",
            [values, values],
        ).fetchall()[0][0]
        assert got == want
        assert (
            con.execute("select pii_hash('{\"a\": 1}'::json)").fetchall()[0][0]
            == hmac.new(salt.encode(), b'{"a": 1}', hashlib.sha256).hexdigest()[:32]
        )
    # the key is in no SQL text the connection shows (a one-letter salt is in any text)
    assert len(salt) == 1 or salt not in str(
        given.execute("select * from duckdb_functions() where function_name = 'pii_hash'").fetchall()
    )


def test_plan_version_recorded_on_every_row(tmp_path):
    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"
    write_lines(landing, DAY, "a.jsonl", [ev(), "{"])
    ingest(w, landing)
    version = plan().version
    for table in ("ingest.events", "ingest.quarantine", "ingest.ingestion_log"):
        assert query(w, f"select distinct plan_version from {table}") == [(version,)]


def test_validator_never_formats_data_into_sql(tmp_path):
    """A line whose content would break a formatted statement is just a row to the engine."""
    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"
    write_lines(
        landing,
        DAY,
        "a.jsonl",
        [ev(mid=SQL_TEXT, anon=SQL_TEXT, props={"method": "password"}, context={"page": {"path": SQL_TEXT}})],
    )
    assert ingest(w, landing).loaded == 1
    con = duckdb.connect(str(w), read_only=True)
    try:
        assert con.execute("select message_id, page_path from ingest.events").fetchall() == [(SQL_TEXT, SQL_TEXT)]
    finally:
        con.close()


def test_valid_retry_after_rejected_copy_is_loaded(tmp_path):
    """Regression: the rejected copy used to win the messageId and the valid retry was a 'duplicate'."""
    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"
    write_lines(landing, DAY, "a.jsonl", [ev(mid="X", props={"method": "fax"}), ev(mid="X"), ev(mid="X")])
    res = ingest(w, landing)
    assert (res.loaded, res.quarantined, res.duplicates) == (1, 1, 1)
    assert query(w, "select properties ->> '$.method' from ingest.events") == [("password",)]


def test_nullish_ids_beside_a_real_id_are_stored_as_null(tmp_path):
    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"
    write_lines(
        landing,
        DAY,
        "a.jsonl",
        [
            ev(mid="a", user="u1", anon="null"),
            ev(mid="b", user="undefined", anon="d1"),
            ev(mid="c", user=" ", anon="d2"),
        ],
    )
    assert ingest(w, landing).loaded == 3
    assert query(w, "select message_id, user_id, anonymous_id from ingest.events order by 1") == [
        ("a", "u1", None),
        ("b", None, "d1"),
        ("c", None, "d2"),
    ]


def test_pii_copied_into_context_traits_is_hashed(tmp_path):
    """SDKs copy identify traits into context.traits of later calls: the email must not stay readable."""
    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"
    write_lines(
        landing,
        DAY,
        "a.jsonl",
        [
            ev(
                mid="t1",
                context={
                    "traits": {"email": "kim@example.com", "plan": "team"},
                    "ip": "2001:db8:85a3:8d3:1319:8a2e:370:7348",
                },
            )
        ],
    )
    ingest(w, landing)
    email, plan_, ip = query(
        w, "select context ->> '$.traits.email', context ->> '$.traits.plan', context ->> '$.ip' from ingest.events"
    )[0]
    assert email == keyed_hash("kim@example.com") and plan_ == "team"
    assert ip == "2001:db8:85a3::"


def test_a_repeated_envelope_key_is_validated_and_stored_on_the_same_value(tmp_path):
    """The duplicate_key rule covers the payload (README); in the envelope an id written twice is read
    once, by the same JSON reading, for the validation and for the stored column, so the two cannot
    disagree: the first value is checked and kept, the second is neither."""
    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"

    def twice(mid: str, first: str, second: str) -> str:
        line = json.dumps(ev(mid=mid, user="placeholder"))
        return line.replace('"userId": "placeholder"', f'"userId": {first}, "userId": {second}')

    write_lines(
        landing,
        DAY,
        "a.jsonl",
        [
            twice("ok-then-bad", '"u-first"', '{"id": 1}'),  # the first is a valid id: loaded with it
            twice("bad-then-ok", '{"id": 1}', '"u-second"'),  # the first is not an id: quarantined
        ],
    )
    res = ingest(w, landing, DAY)
    assert (res.loaded, res.quarantined) == (1, 1)
    assert query(w, "select message_id, user_id from ingest.events") == [("ok-then-bad", "u-first")]
    [(reason,)] = query(w, "select cast(reasons as varchar) from ingest.quarantine")
    assert "identity" in reason and "userId" in reason


def _ingest_tables(w: Path) -> dict[str, list]:
    """ingest.events, ingest.quarantine and ingest.ingestion_log, without the columns that record when."""
    out = {}
    for table, drop in (
        ("ingest.events", "loaded_at"),
        ("ingest.quarantine", "quarantined_at"),
        ("ingest.ingestion_log", "started_at, finished_at, seconds"),
    ):
        out[table] = sorted(map(repr, query(w, f"select * exclude ({drop}) from {table}")))
    return out


def _fewest_then_flattest(sizes: list[int], cap: int) -> tuple[int, int]:
    """Oracle by exhaustive dynamic programming over every split of `sizes` into runs of consecutive
    items, each within `cap` unless it is one item: the fewest runs, then the smallest largest run."""
    import functools

    @functools.cache
    def best(i: int) -> tuple[int, int]:  # (runs, largest) for sizes[i:]
        if i == len(sizes):
            return (0, 0)
        out = None
        for j in range(i + 1, len(sizes) + 1):
            total = sum(sizes[i:j])
            if j - i > 1 and total > cap:
                break
            runs, largest = best(j)
            cand = (runs + 1, max(largest, total))
            out = cand if out is None else min(out, cand)
        return out

    return best(0)


def test_ingest_groups_are_as_few_as_filling_allows_and_about_equal():
    """partition_runs (the ingest's groups, the gates' slices) against an exhaustive oracle on 500 seeded draws (sizes from tiny to beyond the
    cap): consecutive, complete, each run within the cap unless it is one partition, as few runs as
    possible, and the largest run as small as that many runs allow. The greedy fill it replaced kept the
    count but could leave a small last run (e.g. 1M events: 121k rows after two of 440k)."""
    import random

    from quality_checks.partition_state import partition_runs

    assert partition_runs([], 256) == []
    # 26 days of 25 MB under 256 MB: not 10 + 10 + 6 days, as filling each run in turn gives, but 9 + 9 + 8
    assert [len(g) for g in partition_runs([25] * 26, 256)] == [9, 9, 8]
    for seed in range(500):
        rng = random.Random(seed)
        cap = rng.randint(1, 400)
        sizes = [
            rng.choice([0, rng.randint(1, 60), rng.randint(1, 300), rng.randint(300, 600)])
            for _ in range(rng.randint(1, 14))
        ]
        got = partition_runs(sizes, cap)
        assert [i for g in got for i in g] == list(range(len(sizes))), (seed, sizes, got)
        totals = [sum(sizes[i] for i in g) for g in got]
        assert all(len(g) == 1 or t <= cap for g, t in zip(got, totals, strict=True)), (seed, sizes, cap, got)
        assert (len(got), max(totals)) == _fewest_then_flattest(sizes, cap), (seed, sizes, cap, got)


def test_one_group_per_partition_builds_the_same_tables_as_one_group(tmp_path, monkeypatch):
    """De-duplication across groups reads only the partitions whose stored messageIds may repeat the
    group's (the `_seen` hashes): ingested one partition per group (as 10M events are), fresh and
    again over the warehouse it built, the tables are those of one group holding every partition,
    with re-sends within the lookback, beyond it (quarantined), in either direction, and within a day."""
    from pipelines.ingest import load

    lookback = plan().header.defaults.dedup_lookback_days
    days = [BASE + T(days=d) for d in (0, 1, 2, lookback + 3, lookback + 5)]
    landing = tmp_path / "landing"
    for i, day in enumerate(days):
        lines = [ev(mid=f"only-{i}-{j}", at=day + T(minutes=j)) for j in range(3)]
        lines += [ev(mid="everywhere", at=day), ev(mid=f"twice-{i}", at=day), ev(mid=f"twice-{i}", at=day)]
        if i:
            lines.append(ev(mid=f"only-{i - 1}-0", at=day))  # yesterday's, re-sent
            lines.append(ev(mid="only-0-1", at=day))  # the first day's, within or beyond the lookback
        lines.append("{not json")
        write_lines(landing, day.date().isoformat(), "a.jsonl", lines)
    keys = [d.date().isoformat() for d in days]

    def build(w: Path, group_bytes: int, times: int = 1) -> dict:
        monkeypatch.setattr(load, "GROUP_BYTES", group_bytes)
        for _ in range(times):
            con = connect(w)
            try:
                ingest_partitions(con, plan(), landing, keys)
                assert con.execute("select count(*) from duckdb_tables() where table_name = '_seen'").fetchall() == [
                    (0,)
                ]
            finally:
                con.close()
        return _ingest_tables(w)

    together = build(tmp_path / "together.duckdb", 1 << 30)
    apart = build(tmp_path / "apart.duckdb", 1)
    again = build(tmp_path / "again.duckdb", 1, times=2)
    assert together == apart == again
    assert query(tmp_path / "apart.duckdb", "select count(*) from ingest.events where message_id = 'everywhere'") == [
        (1,)
    ]
    # the re-sends were judged: duplicates within the lookback, late copies quarantined as `duplicate`
    (dups,) = query(tmp_path / "apart.duckdb", "select sum(duplicates) from ingest.ingestion_log")[0]
    late = query(tmp_path / "apart.duckdb", "select count(*) from ingest.quarantine where rules = ['duplicate']")
    assert dups >= len(days) * 2 and late[0][0] >= 2


def test_the_run_summary_names_the_days_run_again(tmp_path, monkeypatch):
    """`trackplan run --partition` of a backfilled day names, in its summary, the later day it ran again
    (not asked for) and why: a day rebuilt silently would surprise whoever reads that day's counts."""
    from typer.testing import CliRunner

    from trackplan.cli import app

    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    d0, d1 = BASE, BASE + T(days=1)
    write_lines(landing, d1.date().isoformat(), "b.jsonl", [ev(mid="b1", at=d1), ev(mid="b2", at=d1)])

    def run(*extra: str) -> str:
        out = CliRunner().invoke(app, ["run", "--landing", str(landing), "--warehouse", str(wh), *extra])
        text = " ".join(out.stderr.replace("│", " ").split())
        assert out.exit_code == 0, text[-2000:]
        return text

    assert "days run again" not in run()
    write_lines(landing, d0.date().isoformat(), "a.jsonl", [ev(mid="b1", at=d0)])
    text = run("--partition", d0.date().isoformat())
    assert f"days run again {d1.date().isoformat()} ({DISPLACED})" in text, text[-2000:]
    assert query(wh, "select partition_date from ingest.events where message_id = 'b1'") == [(d0.date(),)]
