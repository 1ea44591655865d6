"""Incremental stitching: a daily run re-resolves only the persons its new events can change.

Every event's person is a column of its own row (ingest.events.person_id, which the view stitch.events
shows first): the stitch writes it in place. What changed is found by comparing ingest.events with
what the last stitch saw of it, partition by partition (stitch.partition_keys: row count and the
earliest and latest loaded_at): the ingest replaces whole partitions, so a re-ingested, new or erased
partition shows as a changed one, whoever wrote it (a CLI run, the Dagster UI, `forget`). Then
1. the identifiers of the changed rows (as they are now, and the user and anonymous ids the last
   stitch saw there, kept in stitch.partition_keys since the ingest keeps no earlier version) are the
   seed; the persons to re-resolve are the connected components (over every link, accepted or
   rejected, old or new) that hold a seed identifier: a new link joining two persons of earlier days
   joins their components here;
2. only those components' links are aggregated again (from the ingest rows that hold their
   identifiers) and resolved by `identity.resolve`, the same code, limits and priorities as a full
   build: components never interact there, so resolving a union of whole components gives the
   rows a full build gives them;
3. stitch.persons and stitch.identity_graph get those components' rows replaced; the changed
   partitions' rows get their person_id, and every other row of an identifier whose person changed
   gets its person_id rewritten (a merge reaching back in time re-stitches the older events of both
   persons);
4. stitch.changes lists, for staging.sessions, the persons whose events changed: `whole` when
   events moved between persons or rows the stitch had seen were replaced or removed (all their
   sessions are rebuilt: those persons come from stitch.partition_keys), otherwise the earliest
   changed time and the client session ids touched (only the sessions around them are rebuilt).

A full rebuild happens on `--full-refresh` (or `--full`), on a warehouse without the stitch tables,
and when the plan, the model SQL or this code changed since the warehouse was built: the
fingerprint of those files is kept in stitch.build_state.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from models.frames import frame
from quality_checks.partition_state import signature_sql
from tracking_plan.model import Plan
from tracking_plan.validate import lit

from ..warehouse import transaction
from . import identity
from .identity import (
    _field_sql,
    build_links,
    id_combinations,
    id_kinds,
    identifiers_sql,
    person_sql,
    resolve,
    set_person_ids,
    write_partition_keys,
)
from .state import FULL_SHARE, STATE_DDL, exists, fingerprint, set_state, state, table_type


def stitch(con: duckdb.DuckDBPyConnection, plan: Plan, plan_dir=None, full_refresh: bool = False) -> dict:
    """Bring the stitch tables up to ingest.events: incrementally when the warehouse allows it.

    Returns build_identity's statistics plus `mode` (full | incremental | unchanged) and `why`."""
    con.execute(STATE_DDL)
    fp = fingerprint(plan_dir)
    prev = state(con, "stitch")
    seq = (prev["seq"] if prev else 0) + 1
    why = None
    if full_refresh:
        why = "--full-refresh"
    elif prev is None or not all(exists(con, t) for t in ("stitch.events", "stitch.persons", "stitch.identity_graph")):
        why = "no earlier stitch state"
    elif table_type(con, "stitch.events") != "VIEW":
        why = "stitch.events is a copy of the events (an earlier version): it becomes a view of ingest.events"
    elif prev["fingerprint"] != fp:
        why = "the plan, a model's SQL or the stitching code changed"
    if why is None:
        changed = changed_partitions(con)
        total = con.execute("select count(*) from ingest.events").fetchall()[0][0]
        touched = _changed_rows(con, changed)
        if touched > FULL_SHARE * max(total, 1) and touched > 1000:
            why = f"{touched:,} of {total:,} events changed"
    if why is not None:
        # mark the state first: a failure inside the rebuild leaves it unusable (the next run rebuilds
        # too) but keeps its seq counting up, so no other layer takes it for one it has seen
        con.execute(
            "update stitch.build_state set fingerprint = 'rebuilding', mode = 'full' where layer = 'stitch'"
        ).fetchall()
        stats = identity.build_identity(con, plan)  # (looked up when called: tests replace it)
        with transaction(con):
            con.execute("delete from stitch.changes").fetchall()
            set_state(con, "stitch", fp, seq, "full")
        return stats | {"mode": "full", "why": why}
    stats = _incremental(con, plan, changed, seq, fp)  # the tables and the state in one transaction
    return stats | {"mode": "incremental" if changed else "unchanged", "why": f"{len(changed)} partitions changed"}


def changed_partitions(con: duckdb.DuckDBPyConnection) -> list:
    """Partitions whose rows differ between ingest.events and what the last stitch saw of them
    (stitch.partition_keys): row count, or the earliest or latest loaded_at (quality_checks.partition_state's
    signature, which the quality layer's per-partition results are kept by too). The ingest replaces a
    partition whole and stamps every row it loads with the time of that load, so a re-ingested, new or
    erased partition (`forget` deletes rows) shows as changed; the two columns read are nearly constant
    per partition (DuckDB stores them compressed to a run), so this costs ~1 ms per 400k rows where
    hashing every message id cost ~12 ms and grew with the history."""
    rows = con.execute(f"""
        select coalesce(i.partition_date, s.partition_date)
        from ({signature_sql("ingest.events", "loaded_at")}) i
        full join (select distinct partition_date, signature from stitch.partition_keys) s
        on i.partition_date is not distinct from s.partition_date
        where i.signature is distinct from s.signature
    """).fetchall()
    return [r[0] for r in rows]


def _in_changed(changed: list, alias: str = "") -> str:
    col = f"{alias}partition_date"
    dates = [d for d in changed if d is not None]
    parts = [f"{col} in ({', '.join(lit(str(d)) + '::date' for d in dates)})"] if dates else []
    if any(d is None for d in changed):
        parts.append(f"{col} is null")
    return "(" + (" or ".join(parts) or "false") + ")"


def _changed_rows(con, changed: list) -> int:
    """The rows of the changed partitions: now (ingest.events) and as the last stitch saw them."""
    if not changed:
        return 0
    where = _in_changed(changed)
    now = con.execute(f"select count(*) from ingest.events where {where}").fetchall()[0][0]
    seen = con.execute(f"select coalesce(sum(events), 0) from stitch.partition_keys where {where}").fetchall()[0][0]
    return int(now + seen)


def _incremental(con: duckdb.DuckDBPyConnection, plan: Plan, changed: list, seq: int, fp: str) -> dict:
    idents = plan.identity.identifiers
    uid, aid = id_kinds(plan)
    if not changed:
        with transaction(con):
            con.execute("delete from stitch.changes").fetchall()
            set_state(con, "stitch", fp, seq, "incremental")
        return _stats(con, rejected=None)
    where_changed = _in_changed(changed)
    # the changed partitions' rows as they are now (one day's rows, usually), and what the last stitch
    # saw of them (their user and anonymous ids: ingest.events keeps no earlier version)
    fields = sorted({_field_sql(i.source) for i in idents} | {"user_id", "anonymous_id", "previous_id"})
    # only the columns the identifiers and links are read from (the rows are wide: properties, context)
    cols = {"type", "timestamp", "user_id", "anonymous_id", "previous_id"}
    cols |= {identity._SOURCE_SQL.get(i.source) or i.source.partition(".")[0] for i in idents}
    cols_sql = ", ".join(f'"{c}"' for c in sorted(cols))
    con.execute(f"create or replace temp table _delta as select {cols_sql} from ingest.events where {where_changed}")
    con.execute(f"create or replace temp table _gone as select * from stitch.partition_keys where {where_changed}")
    # seed: every identifier of a changed row, plus any known identifier with one of those values or
    # with the user or anonymous id of a row the last stitch saw there (a row's other identifiers are
    # linked to those in stitch.identity_graph: the closure below reaches them; and a previousId is a
    # user id once it is seen as one: the alias's kind may flip)
    with id_combinations(con, plan, "_delta") as ids:
        con.execute(f"""
            create or replace temp table _c as
            select distinct kind, identifier from ({identifiers_sql(plan, "_delta", ids)})
            union
            select identifier_kind, identifier from stitch.persons
            where identifier in (select unnest([{", ".join(fields)}]) from _delta
                                 union select unnest([user_id, anonymous_id]) from _gone)
        """)
        # the delta's own links (new ones are not in stitch.identity_graph yet)
        delta_links = build_links(con, plan, "_delta", ids)
    con.register("_dl", delta_links[["kind_a", "id_a", "kind_b", "id_b"]])
    try:
        for _ in range(1000):  # closure: whole components over old and new links (a few rounds)
            grown = con.execute("""
                insert into _c
                select distinct kind, identifier from (
                    select p2.identifier_kind as kind, p2.identifier from stitch.persons p1
                    join _c on p1.identifier_kind = _c.kind and p1.identifier = _c.identifier
                    join stitch.persons p2 on p2.person_id = p1.person_id
                    union all
                    select g.kind_b, g.id_b from (select * from stitch.identity_graph union all by name select * from _dl) g
                    join _c on g.kind_a = _c.kind and g.id_a = _c.identifier
                    union all
                    select g.kind_a, g.id_a from (select * from stitch.identity_graph union all by name select * from _dl) g
                    join _c on g.kind_b = _c.kind and g.id_b = _c.identifier
                ) x
                where (kind, identifier) not in (select (kind, identifier) from _c)
            """).fetchall()[0][0]
            if not grown:
                break
    finally:
        con.unregister("_dl")
    in_c = "(kind_{x}, id_{x}) in (select (kind, identifier) from _c)"
    added_only = con.execute("select count(*) = 0 from _gone").fetchall()[0][0]
    flips = (
        plan.identity.alias_merges
        and con.execute(
            f"""select count(*) > 0 from stitch.identity_graph where via = 'alias' and kind_a = {lit(aid)}
            and id_a in (select user_id from _delta)"""
        ).fetchall()[0][0]
    )
    if added_only and not flips:
        # new partitions only (the daily case): a link's first/last time and count are the old ones
        # merged with the new rows' (min, max, sum), and every identifier of the components is present
        con.register("_dlf", delta_links)
        try:
            links = frame(
                con,
                f"""
                select kind_a, id_a, kind_b, id_b, min(first_seen) as first_seen, max(last_seen) as last_seen,
                       via, sum(events)::bigint as events
                from (select kind_a, id_a, kind_b, id_b, first_seen, last_seen, via, events
                      from stitch.identity_graph where {in_c.format(x="a")}
                      union all by name select * from _dlf)
                group by kind_a, id_a, kind_b, id_b, via
                order by all
            """,
            )
        finally:
            con.unregister("_dlf")
        singles = frame(con, "select kind, identifier from _c")
    else:
        # rows removed (a day ingested again) or an alias's previousId now seen as a user id: the
        # components' links are aggregated again from the ingest rows holding their identifiers
        conds = []
        for ident in idents:
            f = _field_sql(ident.source)
            conds.append(f"{f} in (select identifier from _c where kind = {lit(ident.name)})")
        if plan.identity.alias_merges:
            conds.append("(type = 'alias' and previous_id in (select identifier from _c))")
        con.execute(f"create or replace temp table _rel as select * from ingest.events where {' or '.join(conds)}")
        with id_combinations(con, plan, "_rel") as ids:
            links = build_links(con, plan, "_rel", ids)
            singles = frame(
                con,
                f"select * from ({identifiers_sql(plan, '_rel', ids)}) "
                "where (kind, identifier) in (select (kind, identifier) from _c)",
            )
        cset = set(map(tuple, con.execute("select kind, identifier from _c").fetchall()))
        if len(links):
            mask = [
                (a, x) in cset and (b, y) in cset
                for a, x, b, y in zip(links.kind_a, links.id_a, links.kind_b, links.id_b, strict=True)
            ]
            links = links[mask].reset_index(drop=True)
    if len(links) or len(singles):
        persons, graph = resolve(links, singles, plan)
    else:
        persons = pd.DataFrame(columns=["identifier_kind", "identifier", "person_id"])
        graph = links.assign(accepted=pd.Series(dtype=bool), reason=pd.Series(dtype=object))
    # the persons the replaced or removed rows had (stitch.persons before this run changes it): their
    # sessions are rebuilt whole (which of their events went away is no longer known)
    con.execute(f"""
        create or replace temp table _gone_persons as
        select distinct coalesce(pu.person_id, pa.person_id) as person_id
        {person_sql(plan, "_gone")}
        where coalesce(pu.person_id, pa.person_id) is not null
    """).fetchall()
    con.register("_persons", persons)
    con.register("_graph", graph)
    try:
        with transaction(con):
            # identifiers whose person changes: their events are re-stitched (one that appears or vanishes
            # has rows in the changed partitions only, which are rewritten anyway)
            con.execute("""
                create or replace temp table _moved as
                select coalesce(n.identifier_kind, o.identifier_kind) as kind, coalesce(n.identifier, o.identifier) as identifier
                from (select * from stitch.persons where (identifier_kind, identifier) in (select (kind, identifier) from _c)) o
                full join _persons n on n.identifier_kind = o.identifier_kind and n.identifier = o.identifier
                where n.person_id <> o.person_id
            """).fetchall()
            con.execute(
                f"delete from stitch.identity_graph where {in_c.format(x='a')} or {in_c.format(x='b')}"
            ).fetchall()
            con.execute(
                "insert into stitch.identity_graph select kind_a, id_a, kind_b, id_b, first_seen, last_seen, via, "
                "events, accepted, reason from _graph"
            ).fetchall()
            con.execute(
                "delete from stitch.persons where (identifier_kind, identifier) in (select (kind, identifier) from _c)"
            ).fetchall()
            con.execute(
                "insert into stitch.persons select identifier_kind, identifier, person_id from _persons"
            ).fetchall()
            # the rows to stitch again, as disjoint parts whose filters the scan applies (an OR across
            # columns would read every column of every row): the changed partitions' rows, and the
            # older rows of an identifier whose person changed
            changed_part = _in_changed(changed, "e.")
            moved = {
                col: f"(select identifier from _moved where kind = {lit(kind)})"
                for kind, col in ((uid, "user_id"), (aid, "anonymous_id"))
                if con.execute("select count(*) > 0 from _moved where kind = ?", [kind]).fetchall()[0][0]
            }
            # (a semi-join on _moved, not a list of literals: the scan then fetches the other columns
            # of the matching rows only, ~2.5x less CPU)
            older = []
            if "user_id" in moved:
                older.append(f"e.user_id in {moved['user_id']} and not {changed_part}")
            if "anonymous_id" in moved:
                older.append(
                    f"e.anonymous_id in {moved['anonymous_id']} and not {changed_part}"
                    + (f" and (e.user_id is null or e.user_id not in {moved['user_id']})" if "user_id" in moved else "")
                )
            cols = 'message_id, person_id, "timestamp", session_id'
            # the older rows as they are (person_id: the one the last stitch wrote), and their new person
            rows = " union all ".join(
                f"select {cols}, false as changed, e.rowid as rid, e.user_id, e.anonymous_id "
                f"from ingest.events e where {part}"
                for part in older or ["false"]
            )
            con.execute(f"create or replace temp table _before as {rows}").fetchall()
            con.execute(
                "create or replace temp table _repid as select e.rid, coalesce(pu.person_id, pa.person_id) as person_id "
                f"{person_sql(plan, '_before')}"
            ).fetchall()
            # each row's person, written in place: the changed partitions' rows and the older ones
            set_person_ids(con, plan, changed_part)
            con.execute(
                "update ingest.events set person_id = _repid.person_id from _repid "
                "where ingest.events.rowid = _repid.rid and ingest.events.person_id is distinct from _repid.person_id"
            ).fetchall()
            # what staging.sessions must rebuild: a person whose events moved to or from another person
            # wholly; one with only new, changed or removed events from the earliest of them
            con.execute(f"""
                create or replace temp table _after as
                select {cols}, true as changed from ingest.events e where {changed_part}
                union all
                select b.message_id, r.person_id, b."timestamp", b.session_id, false
                from _before b join _repid r on r.rid = b.rid
            """).fetchall()
            con.execute("delete from stitch.changes").fetchall()
            con.execute(
                """
                insert into stitch.changes
                with pairs as (
                    select b.person_id as old_pid, a.person_id as new_pid,
                           coalesce(a.message_id, b.message_id) as message_id,
                           b."timestamp" as old_at, a."timestamp" as new_at,
                           b.session_id as old_sid, a.session_id as new_sid,
                           coalesce(a.changed, false) or coalesce(b.changed, false) as changed,
                           a.message_id is not null and b.message_id is not null
                               and a.person_id is distinct from b.person_id as moved
                    from _after a full join _before b on a.message_id = b.message_id
                ),
                whole as (
                    select old_pid as person_id from pairs where moved and old_pid is not null
                    union select new_pid from pairs where moved and new_pid is not null
                    -- the persons of rows the ingest replaced or removed, as the last stitch saw them
                    union select person_id from _gone_persons
                ),
                touched as (
                    select old_pid as person_id, old_at as t, old_sid as sid from pairs
                    where changed and not moved and old_pid is not null
                    union all
                    select new_pid, new_at, new_sid from pairs where changed and not moved and new_pid is not null
                )
                select ?, person_id, true, null, null from whole
                union all
                select ?, person_id, false, min(t), list(distinct sid) filter (where sid is not null)
                from touched where person_id not in (select person_id from whole)
                group by person_id
                """,
                [seq, seq],
            ).fetchall()
            write_partition_keys(con, where_changed)
            set_state(con, "stitch", fp, seq, "incremental")
    finally:
        con.unregister("_persons")
        con.unregister("_graph")
    return _stats(con, rejected=None)


def _stats(con, rejected) -> dict:
    p = con.execute("select count(distinct person_id), count(*) from stitch.persons").fetchall()[0]
    g = con.execute("select count(*), count(*) filter (where not accepted) from stitch.identity_graph").fetchall()[0]
    return {"persons": p[0], "identifiers": p[1], "links": g[0], "rejected_links": g[1]}
