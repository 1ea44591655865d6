"""The embedded DuckDB warehouse: connections and the DDL of the tables the pipeline owns."""

from __future__ import annotations

import hashlib
import hmac
import os
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pyarrow as pa

# public, in the source: only `trackplan demo` uses it (and says so); the pipeline has no built-in salt
DEMO_SALT = "trackplan-demo-salt-change-me"
REASON = "struct(rule varchar, path varchar, message varchar)"

DDL = f"""
create schema if not exists ingest;
create schema if not exists stitch;
create schema if not exists staging;
create schema if not exists marts;
create schema if not exists quality;
create table if not exists ingest.events (
    message_id varchar not null, type varchar not null, event_name varchar, event varchar, page_name varchar,
    anonymous_id varchar, user_id varchar, previous_id varchar, group_id varchar,
    "timestamp" timestamp, original_timestamp timestamp, sent_at timestamp, received_at timestamp,
    context json, properties json, traits json,
    library_name varchar, library_version varchar,
    utm_source varchar, utm_medium varchar, utm_campaign varchar, utm_term varchar, utm_content varchar,
    page_url varchar, page_path varchar, page_referrer varchar, session_id varchar, region varchar,
    consent_category varchar, consent_stripped boolean,
    plan_version varchar not null, partition_date date not null, source_file varchar not null,
    line_no bigint not null, loaded_at timestamp not null
);
create table if not exists ingest.quarantine (
    partition_date date not null, source_file varchar not null, line_no bigint not null, raw varchar,
    reasons {REASON}[], rules varchar[], message_id varchar, event_name varchar, received_at timestamp,
    library_name varchar, library_version varchar, plan_version varchar, quarantined_at timestamp not null
);
create table if not exists ingest.ingestion_log (
    partition_date date, source_file varchar not null, lines bigint, loaded bigint, quarantined bigint,
    duplicates bigint, consent_dropped bigint, suppressed bigint, warnings bigint, bytes bigint,
    file_error varchar, plan_version varchar, started_at timestamp, finished_at timestamp, seconds double,
    status varchar, skip_reason varchar
);
create table if not exists ingest.landing_manifest (
    partition_date date not null, source_file varchar not null, etag varchar, size bigint, recorded_at timestamp
);
create table if not exists ingest.suppression (
    identifier_kind varchar not null, identifier_hash varchar not null, audit_id varchar, added_at timestamp
);
create table if not exists ingest.erasure_audit (
    audit_id varchar not null, requested_at timestamp not null, identifier_hash varchar not null,
    identifiers bigint, rows_deleted bigint, tables varchar[]
);
"""


class MissingSalt(RuntimeError):
    """PII cannot be hashed: TRACKPLAN_HASH_SALT is not set (there is no built-in salt)."""

    user_error = True  # the CLI prints the message as its one line

    def __init__(self) -> None:
        super().__init__("TRACKPLAN_HASH_SALT is not set: PII is hashed with it (HMAC-SHA256) and there is no "
                         "built-in salt; set a secret of your own (e.g. `export TRACKPLAN_HASH_SALT=$(openssl "
                         "rand -hex 32)`), or try `trackplan demo`, which uses a public demo salt")


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


def register_udfs(con: duckdb.DuckDBPyConnection, salt: str | None = None) -> None:
    """pii_hash(varchar): the keyed hash in SQL. The salt is read when it is first needed, so a reader
    (report, review) needs none; the pipeline checks it up front (`hash_salt()`) to fail in one line."""
    keys: list[bytes] = [salt.encode()] if salt else []

    def pii_hash(values: pa.Array) -> pa.Array:
        if not keys:
            keys.append(hash_salt().encode())
        key = keys[0]
        out = [None if v is None else hmac.new(key, v.encode(), hashlib.sha256).hexdigest()[:32]
               for v in values.to_pylist()]
        return pa.array(out, pa.string())

    try:
        con.create_function("pii_hash", pii_hash, ["VARCHAR"], "VARCHAR", type="arrow",
                            null_handling="special", side_effects=False)
    except (duckdb.CatalogException, duckdb.NotImplementedException):
        pass  # already registered on this connection


# DuckDB takes 80% of RAM by default; a bounded budget (spilling to disk past it) keeps a 10M-event
# run near its 3 GB target and leaves room for the Python side
MEMORY_LIMIT = os.environ.get("TRACKPLAN_DUCKDB_MEMORY", "1.6GB")


def connect(path: Path | str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path), read_only=read_only,
                         config={"memory_limit": MEMORY_LIMIT, "temp_directory": f"{path}.tmp"})
    con.execute("set TimeZone = 'UTC'")
    if not read_only:
        # checkpoint after ~1 GB of WAL rather than 16 MB: a 10M-event ingest spent 26 s of 182 in
        # checkpoints after every partition group (a commit is as durable either way)
        con.execute("set checkpoint_threshold = '1GB'")
        con.execute(DDL)
        _upgrade(con)
    register_udfs(con)
    return con


def _upgrade(con: duckdb.DuckDBPyConnection) -> None:
    """Bring a warehouse made by an older version to the current DDL (only what changed)."""
    cols = dict(con.execute("select column_name, is_nullable from information_schema.columns "
                            "where table_schema = 'ingest' and table_name = 'ingestion_log'").fetchall())
    if "status" not in cols:  # every landing file gets a row now, skipped ones too (and outside any partition)
        con.execute("alter table ingest.ingestion_log add column status varchar")
        con.execute("alter table ingest.ingestion_log add column skip_reason varchar")
        con.execute("update ingest.ingestion_log set status = 'read'")
    if cols.get("partition_date") == "NO":
        con.execute("alter table ingest.ingestion_log alter column partition_date drop not null")


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
