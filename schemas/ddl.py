"""DDL of the tables the pipeline writes itself (ingest.*): the one definition, run by every connection."""

from functools import cache

from tracking_plan.validate import REASONS  # the validator writes the reasons: its type is the one type

# A column of identifiers with nearly one distinct value a row (messageIds, the stitch's identifiers
# and person ids) is stored uncompressed rather than in DuckDB's dictionary/FSST choice, which finds no
# repeats to share and spends its CPU encoding each value. The 10M bench's messageIds alone: written
# in 1.0 CPU-s instead of 4.9, every one scanned (the gates' count of distinct values) in 1.2 instead
# of 1.8, for 535 MB on disk instead of 283. Six days of that landing (1.42M events) ingested three
# times each way, alternated: the insert 7.38, 7.53, 7.84 -> 6.96, 7.74, 6.71 CPU-s. (A column read
# often, by equality or in full, stays compressed: ingest.events' anonymous_id and person_id write
# faster uncompressed, 2.0 -> 1.2 CPU-s, but every scan of them, sessions and stitch, reads slower.)
ID_COLUMN = "varchar using compression uncompressed"

DDL = f"""
create schema if not exists ingest;
create schema if not exists stitch;
create schema if not exists staging;
create schema if not exists marts;
create schema if not exists quality;
create table if not exists ingest.events (
    -- the messageId, nearly one distinct value a row: stored uncompressed (ID_COLUMN)
    message_id {ID_COLUMN} not null, type varchar not null, event_name varchar,
    event varchar, page_name varchar,
    anonymous_id varchar, user_id varchar, previous_id varchar, group_id varchar,
    "timestamp" timestamp, original_timestamp timestamp, sent_at timestamp, received_at timestamp,
    -- the context (~360 bytes of JSON a row, read by few) is compressed with zstd rather than DuckDB's
    -- dictionary/FSST choice: of the bench's 1.42M events, that column alone written in 1.0 CPU-s
    -- instead of 1.9 and stored in 22 MB instead of 113; their whole ingest 0.7 CPU-s less
    -- (benchmarks/ingest_cost.py phases, --days 6 of the 10M landing)
    context json using compression zstd, properties json, traits json,
    library_name varchar, library_version varchar,
    utm_source varchar, utm_medium varchar, utm_campaign varchar, utm_term varchar, utm_content varchar,
    page_url varchar, page_path varchar, page_referrer varchar, session_id varchar, region varchar,
    consent_category varchar, consent_stripped boolean,
    plan_version varchar not null, partition_date date not null, source_file varchar not null,
    line_no bigint not null, loaded_at timestamp not null,
    -- the stitched person, written by the stitch in place (NULL until a stitch has seen the row):
    -- stitch.events is this table seen with person_id first, not a copy of every event
    person_id varchar
);
create table if not exists ingest.quarantine (
    partition_date date not null, source_file varchar not null, line_no bigint not null, raw varchar,
    reasons {REASONS}, rules varchar[], message_id varchar, event_name varchar, received_at timestamp,
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


@cache
def described() -> dict[str, dict[str, tuple[str, bool]]]:
    """table (`schema.name`) -> column -> (DuckDB type, nullable), in the DDL's order: the DDL run in
    memory, once per process. The one reader of these tables' shape (Pandera specs, the Spark layers,
    stitch.events' columns); callers read it, never change it."""
    import duckdb

    with duckdb.connect() as con:
        con.execute(DDL)
        rows = con.execute(
            "select table_schema || '.' || table_name, column_name, data_type, is_nullable = 'YES' "
            "from information_schema.columns order by table_schema, table_name, ordinal_position"
        ).fetchall()
    out: dict[str, dict[str, tuple[str, bool]]] = {}
    for t, c, typ, nullable in rows:
        out.setdefault(t, {})[c] = (typ, nullable)
    return out


def columns(table: str) -> tuple[str, ...]:
    """The columns of one of these tables (`schema.name`), in order."""
    return tuple(described()[table])
