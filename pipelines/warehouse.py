"""The embedded DuckDB warehouse: connections (each runs the DDL of schemas/ddl.py), PII hashing, transactions."""

from __future__ import annotations

import hashlib
import hmac
import os
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

from schemas.ddl import DDL
from tracking_plan.validate import ident

# public, in the source: only `trackplan demo` uses it (and says so); the pipeline has no built-in salt
DEMO_SALT = "trackplan-demo-salt-change-me"


class MissingSalt(RuntimeError):
    """PII cannot be hashed: TRACKPLAN_HASH_SALT is not set (there is no built-in salt)."""

    user_error = True  # the CLI prints the message as its one line

    def __init__(self) -> None:
        super().__init__(
            "TRACKPLAN_HASH_SALT is not set: PII is hashed with it (HMAC-SHA256) and there is no "
            "built-in salt; set a secret of your own (e.g. `export TRACKPLAN_HASH_SALT=$(openssl "
            "rand -hex 32)`), or try `trackplan demo`, which uses a public demo salt"
        )


def hash_salt() -> str:
    """The secret key of every PII hash; refuses (MissingSalt) when TRACKPLAN_HASH_SALT is unset."""
    salt = os.environ.get("TRACKPLAN_HASH_SALT")
    if not salt:
        raise MissingSalt()
    return salt


def keyed_hash(value: str | None, salt: str | None = None) -> str | None:
    """HMAC-SHA256 of a PII value: stable for joins, unreadable without the salt."""
    if value is None:
        return None
    key = (salt or hash_salt()).encode()
    return hmac.new(key, str(value).encode(), hashlib.sha256).hexdigest()[:32]


def _hmac_pads(salt: str) -> tuple[bytes, bytes]:
    """HMAC's inner and outer padded keys for `salt` (RFC 2104: a key longer than SHA-256's 64-byte
    block is hashed first, then zero-padded to the block)."""
    key = salt.encode()
    if len(key) > 64:
        key = hashlib.sha256(key).digest()
    key = key.ljust(64, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def register_udfs(con: duckdb.DuckDBPyConnection, salt: str | None = None) -> None:
    """pii_hash(varchar): the keyed hash (`keyed_hash`) in SQL.

    With the salt known (given, or TRACKPLAN_HASH_SALT set), it is a macro of DuckDB's own sha256 over
    HMAC's padded keys (held in this connection's variables, not in any SQL text): per value ~1 µs in
    C, where the Python function below cost a call per vector (the ingest's PII columns: ~0.5 CPU-s per
    1M events). Without a salt yet, the Python function reads it when it is first needed, so a reader
    (report, review) needs none; the pipeline checks it up front (`hash_salt()`) to fail in one line.
    tests/test_ingest.py checks both against Python's hmac."""
    salt = salt or os.environ.get("TRACKPLAN_HASH_SALT") or None
    if salt:
        inner, outer = _hmac_pads(salt)
        con.execute("set variable trackplan_hmac_inner = ?", [inner])
        con.execute("set variable trackplan_hmac_outer = ?", [outer])
        con.execute(
            "create or replace temp macro pii_hash(v) as left(sha256(getvariable('trackplan_hmac_outer') "
            "|| unhex(sha256(getvariable('trackplan_hmac_inner') || encode(v::varchar)))), 32)"
        )
        return
    keys: list = []
    seen: dict[str, str] = {}  # a person's identifiers recur on many events: each is hashed once

    def one(v: str) -> str:
        h = keys[0].copy()  # (the keyed state copied: 2x faster than hmac.new per value)
        h.update(v.encode())
        out = seen[v] = h.hexdigest()[:32]
        return out

    def pii_hash(values: pa.Array) -> pa.Array:
        if not keys:
            keys.append(hmac.new(hash_salt().encode(), digestmod=hashlib.sha256))
        if len(seen) > 200_000:
            seen.clear()
        out = [None if v is None else seen.get(v) or one(v) for v in values.to_pylist()]
        return pa.array(out, pa.string())

    try:
        con.create_function(
            "pii_hash", pii_hash, ["VARCHAR"], "VARCHAR", type="arrow", null_handling="special", side_effects=False
        )
    except (duckdb.CatalogException, duckdb.NotImplementedException):
        pass  # already registered on this connection


# DuckDB takes 80% of RAM by default; a bounded budget (spilling to disk past it) keeps a 10M-event
# run near its 3 GB target and leaves room for the Python side
MEMORY_LIMIT = os.environ.get("TRACKPLAN_DUCKDB_MEMORY", "1.6GB")

# Row groups are merged only when the tables hold many deleted rows (compact_row_groups), not at every
# checkpoint. DuckDB's checkpoint merges any run of adjacent row groups whose live rows fit in fewer,
# and every insert statement leaves part-filled ones behind: after a full load of 1M events it rewrote
# a third of ingest.events (4 row groups into 3) for 1.1 CPU-s, 3% of the run, and left the file 190 MB
# instead of 154 (the old blocks stay allocated); at 10M the run's last checkpoint cost 7.3 CPU-s, 1.3
# without merging. A part-filled row group costs a scan nothing per row; a deleted row is stored and
# skipped on every scan, and the incremental models delete the rows of the persons a day changed.
# (Merging off for one run only moved the work to the next run's checkpoint; merging whenever the
# tables held 25% more row groups than their rows needed made the first day after a full load pay it:
# one more day 1.37x -> 1.67x its day alone.)
_CONFIG = {"max_vacuum_tasks": 0}
# DuckDB's own setting (its default), while compact_row_groups merges
_VACUUM_TASKS = 100
# the share of the rows stored that may be deleted ones before a run merges: DuckDB merges a run of
# row groups when a third or more of their rows are deleted (three into two), not fewer
DELETED_LIMIT = 0.25


def open_file(path: Path | str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """The database file opened as `connect` opens it (same settings, so this process can share it),
    without the DDL, the upgrade or the keyed hash: for a checkpoint or a row of the run log (the
    DDL and the upgrade cost ~20 ms of CPU per open)."""
    return duckdb.connect(
        str(path),
        read_only=read_only,
        config={"memory_limit": MEMORY_LIMIT, "temp_directory": f"{path}.tmp", **_CONFIG},
    )


def stored_rows(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(the rows the database's tables store, the live ones): deleted rows stay stored until a
    checkpoint merges their row group. (DuckDB's `estimated_size` of a table is the rows it stores,
    deleted ones included.)"""
    tables = con.execute(
        "select schema_name, table_name, estimated_size from duckdb_tables() "
        "where database_name = current_database() and not temporary"
    ).fetchall()
    if not tables:
        return 0, 0
    live = " + ".join(f"(select count(*) from {ident(s)}.{ident(t)})" for s, t, _ in tables)
    return sum(n for *_, n in tables), con.execute(f"select {live}").fetchall()[0][0]


def compact_row_groups(con: duckdb.DuckDBPyConnection, limit: float = DELETED_LIMIT) -> bool:
    """Checkpoint with DuckDB's row-group merging on when more than `limit` of the rows the tables
    store are deleted ones; True if it did. (Connections open with the merging off.)"""
    stored, live = stored_rows(con)
    if stored - live <= limit * stored:
        return False
    con.execute(f"set max_vacuum_tasks = {_VACUUM_TASKS}")
    try:
        con.execute("checkpoint")
    finally:
        con.execute(f"set max_vacuum_tasks = {_CONFIG['max_vacuum_tasks']}")
    return True


def connect(path: Path | str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    con = open_file(path, read_only)
    con.execute("set TimeZone = 'UTC'")
    con.execute("set enable_progress_bar = false")  # (DuckDB's own bar, amid the CLI's output, after 2 s)
    if not read_only:
        # checkpoint after ~1 GB of WAL rather than 16 MB: a 10M-event ingest spent 26 s of 182 in
        # checkpoints after every partition group (a commit is as durable either way)
        con.execute("set checkpoint_threshold = '1GB'")
        con.execute(DDL)
        _upgrade(con)
    register_udfs(con)
    return con


def cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A second connection to the database `con` has open (its own transaction): no reopening of the
    file and no DDL (the first connection ran it), only the per-connection settings and the keyed hash."""
    cur = con.cursor()
    cur.execute("set TimeZone = 'UTC'")
    cur.execute("set enable_progress_bar = false")
    register_udfs(cur)
    return cur


def _upgrade(con: duckdb.DuckDBPyConnection) -> None:
    """Bring a warehouse made by an older version to the current DDL (only what changed)."""
    cols = dict(
        con.execute(
            "select column_name, is_nullable from information_schema.columns "
            "where table_schema = 'ingest' and table_name = 'ingestion_log'"
        ).fetchall()
    )
    if "status" not in cols:  # every landing file gets a row now, skipped ones too (and outside any partition)
        con.execute("alter table ingest.ingestion_log add column status varchar")
        con.execute("alter table ingest.ingestion_log add column skip_reason varchar")
        con.execute("update ingest.ingestion_log set status = 'read'")
    if cols.get("partition_date") == "NO":
        con.execute("alter table ingest.ingestion_log alter column partition_date drop not null")
    # the stitched person lives on the event row (stitch.events became a view of ingest.events)
    if not con.execute(
        "select count(*) from information_schema.columns where table_schema = 'ingest' and table_name = 'events' "
        "and column_name = 'person_id'"
    ).fetchall()[0][0]:
        con.execute("alter table ingest.events add column person_id varchar")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection):
    """All or nothing: a failure (or a kill) inside leaves the warehouse as it was."""
    con.execute("begin transaction")
    try:
        yield con
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
