"""The ingest layer on Spark equals DuckDB's (issue 20, items 1 and 3): ingest.events (same columns,
mapped types, same rows after sorting), ingest.quarantine (the same (file, line, rule) set, with the
same raw lines and reasons) and the per-file ledger, on the generated sample and on an adversarial
landing zone (duplicates in a file, across files and days, within and beyond dedup_lookback_days and
across two runs; consent withheld with `drop` and with `strip_pii`; PII in properties, traits and
context; a fixed retry; invalid lines, an empty file, a gzip, a batch body, skipped files). The
DuckDB side is pipelines.ingest.load.ingest_partitions, as `trackplan run` runs it.

Same xdist group and session SparkSession as the other Spark tests (one JVM)."""

from __future__ import annotations

import datetime as dt
import math

import pytest

from pipelines.spark.session import unavailable

WHY = unavailable()
pytestmark = [pytest.mark.skipif(WHY is not None, reason=f"Spark ingest: {WHY}"), pytest.mark.xdist_group("spark")]

TIMINGS = {"loaded_at", "quarantined_at", "started_at", "finished_at", "seconds"}
TYPE_MAP = {
    "JSON": "string",
    "VARCHAR[]": "array<string>",
    'STRUCT("rule" VARCHAR, path VARCHAR, message VARCHAR)[]': "array<struct<rule:string,path:string,message:string>>",
}


def _norm(v):
    """A value as comparable from both sides: Spark Rows and DuckDB dicts of a struct list alike."""
    if isinstance(v, list):
        return tuple(_norm(x) for x in v)
    if isinstance(v, dict):
        return tuple(_norm(x) for x in v.values())
    if hasattr(v, "asDict"):
        return tuple(_norm(x) for x in v.asDict().values())
    return v


def _key(row):
    return tuple((v is None, "" if v is None else (round(v, 6) if isinstance(v, float) else str(v))) for v in row)


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    return a == b


def differences(con, spark, root, table: str) -> list[str]:
    from support.spark import TYPE_MAP as BASE_TYPES
    from support.spark import duckdb_types

    from pipelines.spark.ingest import read_layer

    want = {c: {**BASE_TYPES, **TYPE_MAP}.get(t, t) for c, t in duckdb_types(con, table).items() if c not in TIMINGS}
    sdf = read_layer(spark, root, table)
    got = {f.name: f.dataType.simpleString() for f in sdf.schema.fields if f.name not in TIMINGS}
    if list(want) != list(got):
        return [f"{table}: columns {list(got)} on Spark, {list(want)} on DuckDB"]
    out = [f"{table}.{c}: {got[c]} on Spark, {t} on DuckDB" for c, t in want.items() if got[c] != t.lower()]
    cols = list(want)
    ours = sorted(
        (
            tuple(_norm(v) for v in r)
            for r in con.execute(f"select {', '.join(chr(34) + c + chr(34) for c in cols)} from {table}").fetchall()
        ),
        key=_key,
    )
    theirs = sorted((tuple(_norm(v) for v in r) for r in sdf.select(*cols).collect()), key=_key)
    if len(ours) != len(theirs):
        return [*out, f"{table}: {len(theirs)} rows on Spark, {len(ours)} on DuckDB"]
    bad = [
        f"{table}.{c}: {y!r} on Spark, {x!r} on DuckDB (row {a[:4]})"
        for a, b in zip(ours, theirs, strict=True)
        for c, x, y in zip(cols, a, b, strict=True)
        if not _same(x, y)
    ]
    return out + bad[:8]


def _both(spark, plan, landing, tmp_path, runs):
    """Ingest `landing` run by run (each a list of days, or None for every day) on DuckDB and on Spark."""
    from pipelines.ingest.load import ingest_partitions, landed_partitions
    from pipelines.spark.ingest import ingest_landing
    from pipelines.warehouse import connect

    con = connect(str(tmp_path / "w.duckdb"))
    root = str(tmp_path / "layers")
    for days in runs:
        days = days or landed_partitions(landing)
        ingest_partitions(con, plan, landing, days)
        ingest_landing(spark, plan, str(landing), root, partitions=days)
    return con, root


def _assert_parity(con, spark, root):
    for table in ("ingest.events", "ingest.quarantine", "ingest.ingestion_log"):
        assert differences(con, spark, root, table) == [], table


def test_ingest_on_spark_equals_duckdb_on_the_sample(spark, tmp_path):
    from tracking_plan.loader import load_plan
    from trackplan.demo.generate import generate

    plan = load_plan()
    landing = tmp_path / "landing"
    generate(landing, users=8, seed=5, bug_rate=0.05, plan=plan)
    con, root = _both(spark, plan, landing, tmp_path, [None])
    n = dict(
        con.execute(
            "select 'e', count(*) from ingest.events union all select 'q', count(*) from ingest.quarantine"
        ).fetchall()
    )
    assert n["e"] > 500 and n["q"] > 10  # not trivial: events and planted bugs
    _assert_parity(con, spark, root)


def test_ingest_on_spark_equals_duckdb_on_an_adversarial_landing(spark, tmp_path):
    import gzip

    import orjson
    from support.pipeline import BASE, ev, write_lines

    from tracking_plan.loader import load_plan

    plan = load_plan()
    lookback = plan.header.defaults.dedup_lookback_days
    T = dt.timedelta
    day = lambda n: (BASE + T(days=n)).date().isoformat()
    at = lambda n: BASE + T(days=n)
    landing = tmp_path / "landing"
    consent = lambda cat, ok: {"ip": "203.0.113.9", "consent": {"categoryPreferences": {cat: ok}}}
    invite = {"workspace_id": "ws_a", "invitee_email": "pat@example.com", "role": "admin"}
    ad = {"ad_id": "ad1", "network": "google"}
    write_lines(
        landing,
        day(0),
        "a.jsonl",
        [
            ev(mid="dup-file", at=at(0)),
            ev(mid="dup-file", at=at(0)),  # a retry in the same file
            ev(mid="dup-days", at=at(0)),
            ev(mid="late", at=at(0)),
            ev(mid="ad-denied", event="Ad Clicked", props=ad, context=consent("marketing", False)),
            ev(mid="ad-granted", event="Ad Clicked", props=ad, context=consent("marketing", True)),
            ev(mid="inv-denied", event="Invite Sent", props=invite, context=consent("analytics", False)),
            ev(mid="inv-granted", event="Invite Sent", props=invite, context=consent("analytics", True)),
            ev(type="identify", mid="id1", user="u1", traits={"email": "kim@example.com", "name": "Kim Lee"}),
            ev(mid="traits", context={"ip": "2001:db8::7", "traits": {"email": "kim@example.com", "plan": "x"}}),
            ev(mid="escaped", context={"ip": 'odd"ip.5'}),
            {**ev(mid="fixed", at=at(0)), "event": "No Such Event"},  # rejected, then fixed in b.jsonl
            "not json at all",
            "",
        ],
    )
    write_lines(landing, day(0), "b.jsonl", [ev(mid="dup-file", at=at(0)), ev(mid="fixed", at=at(0))])
    write_lines(landing, day(0), "c.jsonl.gz", [ev(mid="gz", at=at(0)), ev(mid="dup-days", at=at(0))], gz=True)
    (landing / f"date={day(0)}" / "empty.jsonl").write_bytes(b"")
    (landing / f"date={day(0)}" / "notes.txt").write_text("not an event file")
    (landing / "stray.jsonl").write_bytes(orjson.dumps(ev()) + b"\n")  # outside any day
    batch = {"batch": [ev(mid="b1", at=at(1)), ev(mid="dup-days", at=at(1))], "sentAt": "2026-03-03T09:00:00.000Z"}
    (landing / f"date={day(1)}").mkdir()
    (landing / f"date={day(1)}" / "batch.json").write_bytes(orjson.dumps(batch))
    write_lines(landing, day(lookback), "a.jsonl", [ev(mid="dup-days", at=at(lookback)), ev(mid="n", at=at(lookback))])
    write_lines(landing, day(lookback + 3), "a.jsonl", [ev(mid="late", at=at(lookback + 3)), ev(mid="m")])
    (landing / f"date={day(lookback + 3)}" / "z.jsonl.gz").write_bytes(gzip.compress(b'{"a": 1}\n')[:-6])  # cut
    first = [day(0), day(1), day(lookback)]
    # two runs: the second's late re-send and duplicates meet the first's loads (the `prior` path)
    con, root = _both(spark, plan, landing, tmp_path, [first, [day(lookback + 3)], [day(0)]])
    rules = {r[0] for r in con.execute("select unnest(rules) from ingest.quarantine").fetchall()}
    assert "duplicate" in rules and len(rules) >= 3
    buckets = con.execute(
        "select sum(duplicates), sum(consent_dropped), count(*) filter (where status = 'skipped') from ingest.ingestion_log"
    ).fetchall()[0]
    assert buckets[0] >= 3 and buckets[1] == 1 and buckets[2] >= 2
    _assert_parity(con, spark, root)
    # a day's partition is replaced, the others kept: re-running day 0 alone changed nothing above
    days = {r[0] for r in spark.read.parquet(f"{root}/ingest/events").select("partition_date").distinct().collect()}
    assert {d.isoformat() for d in days} == {day(0), day(1), day(lookback), day(lookback + 3)}


def test_the_earliest_copy_is_the_event_on_spark_as_on_duckdb(spark, tmp_path):
    """The days a backfill or a removed file sends to run again (a message's first copy moved: see
    tests/test_ingest.py) are the same on Spark, with the same reasons, and the tables stay equal."""
    from support.pipeline import BASE, ev, write_lines

    from pipelines.ingest.load import DISPLACED, REPEATS_MOVED, ingest_partitions
    from pipelines.spark.ingest import ingest_landing
    from pipelines.warehouse import connect
    from tracking_plan.loader import load_plan

    plan = load_plan()
    T = dt.timedelta
    lookback = plan.header.defaults.dedup_lookback_days
    d0, d1, d2 = (BASE + T(days=k) for k in (0, 2, lookback + 4))
    day = lambda t: t.date().isoformat()
    landing = tmp_path / "landing"
    write_lines(landing, day(d1), "b.jsonl", [ev(mid="b1", at=d1), ev(mid="b2", at=d1), ev(mid="late", at=d1)])
    write_lines(landing, day(d2), "c.jsonl", [ev(mid="late", at=d2), ev(mid="c1", at=d2)])
    con, root = connect(str(tmp_path / "w.duckdb")), str(tmp_path / "layers")

    def run(*days) -> list:
        ours = ingest_partitions(con, plan, landing, list(days))
        theirs = ingest_landing(spark, plan, str(landing), root, partitions=list(days))
        got = [(r.partition, r.because, r.loaded, r.duplicates, r.quarantined) for r in theirs]
        assert got == [(r.partition, r.because, r.loaded, r.duplicates, r.quarantined) for r in ours]
        _assert_parity(con, spark, root)
        return [(r.partition, r.because) for r in theirs]

    assert run(day(d1), day(d2)) == [(day(d1), None), (day(d2), None)]
    backfill = write_lines(landing, day(d0), "a.jsonl", [ev(mid="b1", at=d0), ev(mid="late", at=d0)])
    assert run(day(d0)) == [(day(d0), None), (day(d1), DISPLACED), (day(d2), REPEATS_MOVED)]
    backfill.unlink()
    assert run(day(d0)) == [(day(d0), None), (day(d1), REPEATS_MOVED), (day(d2), REPEATS_MOVED)]
