"""staging.sessions, incrementally: only the sessions the run's changed events can change.

stitch (pipelines/stitch/incremental.py) leaves in stitch.changes the persons whose events changed
in its run (`seq`). A person whose events moved to or from another person (`whole`) has every
session rebuilt. Otherwise the person's sessions are rebuilt from `cut`: the earliest changed event,
or the start of an earlier session without a client session id that ended within the session
timeout before it (a late event may join or split it), and every session of a client session id
that a changed event carries (a client session is one run, however long, capped by
max_session_days from its own start). The runs are computed by models/staging/sessions.sql itself,
over those events only; the person's sessions are then numbered again in the model's order, as the
kept ones all lie before `cut`.

Rebuilt whole when the stitch was (a full build, a changed plan or model SQL), when `--full-refresh`
asks, or when this table missed a stitch run (its seq in stitch.build_state is not the one before).
A whole build runs the model over the persons in hash slices of about CHUNK_ROWS events each
(`full_sql`): a person's sessions depend on that person's events alone, and the model's
windows sort every event they see, which beyond memory_limit spill to disk.
"""

from __future__ import annotations

import duckdb

from schemas.ddl import ID_COLUMN
from tracking_plan.validate import ident

from ..warehouse import transaction
from .state import follow, over, set_state

TABLE = "staging.sessions"
# events per slice of persons in a whole build. Measured at 10M events (2.2M sessions) under the
# run's memory_limit of 1.6 GB: one query 25.7 CPU-s (its sorts spilled), 3 slices 22.9, 4 22.9,
# 8 19.9, 16 23.1 (each slice scans the events again); identical rows. At 1M events one slice.
CHUNK_ROWS = 1_250_000
# the session's own id (a hash: one distinct value a row) and its first anonymous id (nearly one a
# session) find no repeats to share in DuckDB's dictionary/FSST encoding: stored uncompressed
# (schemas.ddl.ID_COLUMN). The 10M bench's 2.18M sessions written in 1.59-1.69 CPU-s instead of
# 2.22-2.29 (three each); a scan of both (their distinct counts) 0.51 instead of 0.55.
UNCOMPRESSED = ("session_id", "anonymous_id")


def full_sql(con: duckdb.DuckDBPyConnection, sql: str) -> list[str]:
    """The model as selects over disjoint slices of the persons (by a hash of person_id) whose union
    is the model's rows: one select when the events are few (see CHUNK_ROWS)."""
    events = con.execute("select count(*) from stitch.events").fetchall()[0][0]
    n = max(1, -(-events // CHUNK_ROWS))
    if n == 1:
        return [sql]
    path = "models/staging/sessions.sql"
    return [
        over(sql, f"(select * from stitch.events where hash(person_id) % {n} = {k}) as slice_events", path)
        for k in range(n)
    ]


def table_ddl(con: duckdb.DuckDBPyConnection, select: str) -> str:
    """`create or replace table` staging.sessions with the columns of the model's `select` (its
    names and types, as DuckDB describes the query without running it), the ids of UNCOMPRESSED
    stored uncompressed (schemas.ddl.ID_COLUMN). The model keeps its SQL and its columns; the
    incremental path inserts into the table as it is."""
    cols = con.execute(f"describe {select}").fetchall()
    return (
        f"create or replace table {TABLE} ("
        + ", ".join(
            f"{ident(name)} {ID_COLUMN if name in UNCOMPRESSED and kind == 'VARCHAR' else kind}"
            for name, kind, *_ in cols
        )
        + ")"
    )


def build_sessions(con: duckdb.DuckDBPyConnection, sql: str, plan_dir=None, full_refresh: bool = False) -> dict:
    """Bring staging.sessions up to stitch.events (plan variables already set); {mode, why, rows}."""
    why, seq, fp = follow(con, TABLE, plan_dir, full_refresh)
    if why == "":
        return {"mode": "unchanged", "why": "up to date with the stitch"}
    if why is not None:
        with transaction(con):  # the table and its state together
            parts = full_sql(con, sql)
            con.execute(table_ddl(con, parts[0])).fetchall()
            for part in parts:
                con.execute(f"insert into {TABLE} by name {part}").fetchall()
            set_state(con, TABLE, fp, seq, "full")
        return {"mode": "full", "why": why}
    n = _apply(con, sql, seq, lambda: set_state(con, TABLE, fp, seq, "incremental"))
    return {"mode": "incremental", "why": f"{n} persons", "persons": n}


def _apply(con: duckdb.DuckDBPyConnection, sql: str, seq: int, done) -> int:
    con.execute(
        """
        create or replace temp table _cut as
        select c.person_id, c.whole, coalesce(c.client_session_ids, []) as cids,
            case when not c.whole then least(c.since, (
                select min(s.started_at) from staging.sessions s
                where s.person_id = c.person_id and s.client_session_id is null
                  and s.ended_at >= c.since - to_minutes(coalesce(getvariable('session_timeout_minutes'), 30)::bigint)
            )) end as cut
        from stitch.changes c where c.seq = ?
        """,
        [seq],
    ).fetchall()
    n = con.execute("select count(*) from _cut").fetchall()[0][0]
    if not n:
        done()
        return 0
    # the model over these events only (a subquery: the scan reads just the columns the model uses)
    events = """(
        select e.* from stitch.events e join _cut c on e.person_id = c.person_id
        where c.whole
           or (e.session_id is null and e."timestamp" >= c.cut)
           or (e.session_id is not null and list_contains(c.cids, e.session_id))
    ) as changed_events"""
    con.execute(f"create or replace temp table _new as {over(sql, events, 'models/staging/sessions.sql')}").fetchall()
    con.execute("begin transaction")
    try:
        con.execute("""
            delete from staging.sessions s using _cut c
            where s.person_id = c.person_id
              and (c.whole or (s.client_session_id is null and s.started_at >= c.cut)
                   or list_contains(c.cids, s.client_session_id))
        """).fetchall()
        # number the person's sessions again in the model's order (started_at, ended_at, client id
        # nulls first: a total order, as a person has one run per client session id and runs without
        # one never share a start); the id is the model's hash of person and index
        con.execute("""
            create or replace temp table _renum as
            select * exclude (session_id, session_index),
                row_number() over (partition by person_id
                                   order by started_at, ended_at, client_session_id nulls first) as session_index
            from (select * from staging.sessions where person_id in (select person_id from _cut)
                  union all by name
                  select * from _new)
        """).fetchall()
        con.execute("delete from staging.sessions where person_id in (select person_id from _cut)").fetchall()
        con.execute("""
            insert into staging.sessions by name
            select 'sess_' || substr(sha256(person_id || '|' || session_index::varchar), 1, 16) as session_id, *
            from _renum
        """).fetchall()
        done()  # the state with the rows
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return n
