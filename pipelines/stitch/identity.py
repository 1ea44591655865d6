"""Identity stitching: identifier links → persons, under identity.yaml's limits.

Links come from events that carry two identifiers (identify, alias, any call with both an
anonymousId and a userId, traits.email). Components are found with scipy; only a component that
would hold more identifiers of a kind than `max_per_person` allows is resolved link by link:
links are taken in order of the kinds' priority, then by recency (identity.yaml
`anonymous_events: latest`, the default) or age (`first`), and a link that would break a limit is
kept in `stitch.identity_graph` as rejected instead of merging two people. So on a shared computer
where two users log in, each stays a person of their own, and the device's anonymous events go to
the user who used it last (the most recent link wins), as Snowplow's and Segment's "last
identified" rules do.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from models.frames import frame
from schemas.ddl import ID_COLUMN
from schemas.ddl import columns as ddl_columns
from tracking_plan.model import Plan
from tracking_plan.validate import NULLISH_RE, lit

from ..warehouse import transaction
from .state import STATE_DDL, table_type

_SOURCE_SQL = {
    "userId": "user_id",
    "anonymousId": "anonymous_id",
    "previousId": "previous_id",
    "groupId": "group_id",
}


def _field_sql(source: str) -> str:
    """SQL of an identifier's source field over ingest.events (traits.email → traits ->> '$.email')."""
    if source in _SOURCE_SQL:
        return _SOURCE_SQL[source]
    head, _, rest = source.partition(".")
    if head in ("traits", "properties", "context") and rest:
        return f"({head} ->> {lit('$.' + rest)})"
    raise ValueError(f"identifier source {source!r} is not an event field")


def _person_id(kind: str, value: str) -> str:
    return "p_" + hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()[:16]


def _real_id(sql: str) -> str:
    """SQL true when an identifier is present and not a placeholder ('null', 'undefined', ...): the
    validator's own list (tracking_plan.validate.NULLISH_IDS), so stitch and ingest agree."""
    return f"{sql} is not null and not coalesce(regexp_full_match({sql}, {lit(NULLISH_RE)}), false)"


LINK_COLUMNS = ["kind_a", "id_a", "kind_b", "id_b", "first_seen", "last_seen", "via", "events"]


def build_links(
    con: duckdb.DuckDBPyConnection, plan: Plan, source: str = "ingest.events", ids: str | None = None
) -> pd.DataFrame:
    """Distinct identifier pairs seen together, with first/last time and how they were linked.

    `source` is ingest.events or a view of some of its rows (an incremental run reads the rows that
    hold the identifiers it re-resolves); whether an alias's previousId is a user id is always
    decided against all of ingest.events. `ids`: a table of ids_sql(plan, source) already made."""
    sql = links_sql(plan, source, ids)
    if sql is None:
        return pd.DataFrame(columns=LINK_COLUMNS)
    return frame(con, f"select * from ({sql}) order by all")


def ids_sql(plan: Plan, source: str = "ingest.events") -> str:
    """Each combination of the plan's identifiers that rows of `source` carry (column i<k>: the k-th
    identifier of identity.yaml, NULL where absent or a placeholder), with its rows' first and last
    time and count: one scan of `source` that the links and the identifiers are both aggregated
    from, where each read every event once per identifier pair or kind (10M events: links and
    identifiers 8.7 CPU-s that way, 6.2 from this scan; the same rows). The placeholder test runs
    on the distinct values, after the grouping."""
    idents = plan.identity.identifiers
    raw = ", ".join(f"{_field_sql(i.source)} as i{k}" for k, i in enumerate(idents))
    real = ", ".join(f"case when {_real_id(f'i{k}')} then i{k} end as i{k}" for k in range(len(idents)))
    return f"""
select {real}, first_seen, last_seen, events from (
    select {raw}, min("timestamp") as first_seen, max("timestamp") as last_seen, count(*) as events
    from {source} group by all)"""


@contextmanager
def id_combinations(con: duckdb.DuckDBPyConnection, plan: Plan, source: str = "ingest.events"):
    """ids_sql(plan, source) kept in a temp table while the block runs: build_links and identifiers_sql
    given its name (`ids`) both read it, so `source` is scanned once. Yields None when the plan
    declares no identifiers (nothing to keep: both then return no rows)."""
    if not plan.identity.identifiers:
        yield None
        return
    con.execute(f"create or replace temp table _ids as {ids_sql(plan, source)}").fetchall()
    try:
        yield "_ids"
    finally:
        con.execute("drop table if exists _ids").fetchall()


def links_sql(plan: Plan, source: str = "ingest.events", ids: str | None = None) -> str | None:
    """build_links' SQL (DuckDB dialect, unordered; the Spark engine transpiles the same text), or
    None when the plan declares no identifiers. The pairs are aggregated from ids_sql's
    combinations: `ids` names a table of them, else the text computes them (a CTE)."""
    idents = plan.identity.identifiers
    if not idents:
        return None
    rel = ids or "_ids"
    parts = []
    for i, a in enumerate(idents):
        for j in range(i + 1, len(idents)):
            b = idents[j]
            parts.append(f"""
select {lit(a.name)} as kind_a, i{i} as id_a, {lit(b.name)} as kind_b, i{j} as id_b,
       min(first_seen) as first_seen, max(last_seen) as last_seen, 'event' as via, sum(events)::bigint as events
from {rel}
where i{i} is not null and i{j} is not null
group by i{i}, i{j}""")
    if plan.identity.alias_merges:
        uid = next((x.name for x in idents if x.source == "userId"), None)
        aid = next((x.name for x in idents if x.source == "anonymousId"), None)
        if uid:
            # previousId is the old id: a user id if it was ever one, otherwise a device id
            parts.append(f"""
select case when previous_id in (select user_id from ingest.events where user_id is not null
                                 and user_id in (select previous_id from {source}))
            then {lit(uid)} else {lit(aid or uid)} end as kind_a, previous_id as id_a,
       {lit(uid)} as kind_b, user_id as id_b, min("timestamp"), max("timestamp"), 'alias', count(*)
from {source} where type = 'alias' and previous_id is not null and user_id is not null
group by all""")
    body = " union all ".join(parts)
    return body if ids else f"with _ids as ({ids_sql(plan, source)}) {body}"


def resolve(links: pd.DataFrame, singles: pd.DataFrame, plan: Plan) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(persons: kind, identifier, person_id; graph: links with accepted flag and reason)."""
    limits = {i.name: i.max_per_person for i in plan.identity.identifiers}
    priority = {i.name: i.priority for i in plan.identity.identifiers}
    latest = plan.identity.anonymous_events == "latest"

    # the nodes: every distinct (kind, identifier), numbered in order of first appearance (the links'
    # a sides, their b sides, the singles), by one dictionary encoding of "kind<US>identifier" (a kind
    # is a plan name, without that separator): 10M events' 6.3M endpoints in ~1 s, where a pandas
    # MultiIndex, its drop_duplicates and get_indexer took ~5 s factorizing the strings
    kinds = pd.concat([links.kind_a, links.kind_b, singles.kind], ignore_index=True)
    idents = pd.concat([links.id_a, links.id_b, singles.identifier], ignore_index=True)
    keys = pc.binary_join_element_wise(
        pa.array(kinds, pa.string(), from_pandas=True), pa.array(idents, pa.string(), from_pandas=True), "\x1f"
    )
    if isinstance(keys, pa.ChunkedArray):  # (one dictionary for all: the chunks as one array)
        keys = keys.combine_chunks()
    codes = pc.dictionary_encode(keys).indices.to_numpy(zero_copy_only=False).astype(np.int64)
    n = int(codes.max()) + 1 if len(codes) else 0
    first = np.unique(codes, return_index=True)[1]  # each node's first position (codes count up from 0)
    nodes = pd.DataFrame(
        {"kind": kinds.iloc[first].reset_index(drop=True), "identifier": idents.iloc[first].reset_index(drop=True)}
    )
    ia, ib = codes[: len(links)], codes[len(links) : 2 * len(links)]
    graph = coo_matrix((np.ones(len(links)), (ia, ib)), shape=(n, n))
    n_comp, comp = connected_components(graph, directed=False)

    # union-find over the node numbers (`parent`, set below); a set's root is always its smallest node
    # (a union hangs the larger root under the smaller)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    accepted = np.ones(len(links), dtype=bool)
    reasons = np.array([None] * len(links), dtype=object)
    kinds = nodes["kind"].to_numpy()
    # a component within every limit merges whole; only the others go link by link
    # (value_counts, not crosstab: crosstab aggregates each component in Python)
    comp_counts = pd.DataFrame({"comp": comp, "kind": kinds}).value_counts().unstack(fill_value=0)
    over = set()
    for kind, lim in limits.items():
        if lim is not None and kind in comp_counts.columns:
            over |= set(comp_counts.index[comp_counts[kind] > lim])
    link_comp = comp[ia] if len(links) else np.array([], dtype=int)
    simple = ~np.isin(link_comp, list(over))
    # a component within every limit is one set whose root is its smallest node: what taking its links
    # one by one gives, without a Python step per link; an over-limit one starts as singletons
    smallest = np.full(n_comp, n)
    np.minimum.at(smallest, comp, np.arange(n))
    parent = np.where(np.isin(comp, list(over)), np.arange(n), smallest[comp])
    if over:
        hard = np.flatnonzero(~simple)
        sub = links.iloc[hard].assign(
            _prio=lambda d: [min(priority.get(x, 100), priority.get(y, 100)) for x, y in zip(d.kind_a, d.kind_b)],
            _t=lambda d: d.last_seen if latest else d.first_seen,
        )
        order = sub.sort_values(["_prio", "_t", "id_a", "id_b"], ascending=[True, not latest, True, True]).index
        counts: dict[int, dict[str, int]] = {}
        for j in order:  # only over-limit components reach this loop: links, not events
            pos = links.index.get_loc(j)
            a, b = ia[pos], ib[pos]
            ra, rb = find(a), find(b)
            if ra == rb:
                continue
            ca = counts.setdefault(ra, {kinds[ra]: 1})
            cb = counts.setdefault(rb, {kinds[rb]: 1})
            bad = [
                k for k in set(ca) | set(cb) if limits.get(k) is not None and ca.get(k, 0) + cb.get(k, 0) > limits[k]
            ]
            if bad:
                accepted[pos] = False
                reasons[pos] = f"would exceed max_per_person for {', '.join(sorted(bad))}"
                continue
            root, child = min(ra, rb), max(ra, rb)
            parent[child] = root
            merged = {k: ca.get(k, 0) + cb.get(k, 0) for k in set(ca) | set(cb)}
            counts[root] = merged
            counts.pop(child, None)
    roots = parent.copy()  # every node's root (find() of each, by pointer jumping)
    while True:
        up = roots[roots]
        if np.array_equal(up, roots):
            break
        roots = up
    nodes["root"] = roots
    # a person's id comes from its best identifier (lowest priority number, then smallest value),
    # so it stays the same across runs and does not depend on row order
    # (plain lists and arrays: iterating Arrow-backed pandas strings costs ~3 µs a value)
    # (the nodes ordered by Arrow's sort of (priority, identifier), each root's first one taken:
    # pandas' sort_values and drop_duplicates took ~1.6 s of 10M events' ~8 s here)
    prio = pa.array(nodes["kind"].map(priority).fillna(100).to_numpy(dtype=np.int64))
    order = pc.sort_indices(
        pa.table({"p": prio, "i": pa.array(nodes["identifier"], pa.string(), from_pandas=True)}),
        sort_keys=[("p", "ascending"), ("i", "ascending")],
    ).to_numpy()
    firsts = order[np.unique(roots[order], return_index=True)[1]]  # each root's best node
    pid = np.empty(n, dtype=object)  # a root's person id, at the root's node number
    pid[roots[firsts]] = [
        _person_id(k, v) for k, v in zip(nodes["kind"].iloc[firsts].tolist(), nodes["identifier"].iloc[firsts].tolist())
    ]
    persons = pd.DataFrame({"identifier_kind": nodes.kind, "identifier": nodes.identifier, "person_id": pid[roots]})
    graph_df = links.assign(accepted=accepted, reason=reasons)
    return persons, graph_df


def identifiers_sql(plan: Plan, source: str = "ingest.events", ids: str | None = None) -> str:
    """SQL of every identifier (kind, identifier) present in `source`, one row each: from ids_sql's
    combinations (`ids`: a table of them, else computed in the text)."""
    idents = plan.identity.identifiers
    if not idents:
        return "select null::varchar as kind, null::varchar as identifier limit 0"
    rel = ids or "_ids"
    body = " union ".join(
        f"select distinct {lit(ident.name)} as kind, i{k} as identifier from {rel} where i{k} is not null"
        for k, ident in enumerate(idents)
    )
    return body if ids else f"with _ids as ({ids_sql(plan, source)}) {body}"


def id_kinds(plan: Plan) -> tuple[str, str]:
    """The kinds whose identifiers stitch.events joins on: (userId's, anonymousId's)."""
    uid = next((x.name for x in plan.identity.identifiers if x.source == "userId"), "user_id")
    aid = next((x.name for x in plan.identity.identifiers if x.source == "anonymousId"), "anonymous_id")
    return uid, aid


def person_sql(plan: Plan, table: str = "ingest.events") -> str:
    """`from {table} e` joined to stitch.persons: `coalesce(pu.person_id, pa.person_id)` is the row's person."""
    uid, aid = id_kinds(plan)
    return f"""from {table} e
    left join stitch.persons pu on pu.identifier_kind = {lit(uid)} and pu.identifier = e.user_id
    left join stitch.persons pa on pa.identifier_kind = {lit(aid)} and pa.identifier = e.anonymous_id"""


def _unstitched_columns() -> list[str]:
    """ingest.events' columns but person_id (the one the stitch writes), in the DDL's order."""
    return [c for c in ddl_columns("ingest.events") if c != "person_id"]


def events_sql(plan: Plan, where: str = "true") -> str:
    """ingest.events rows (those matching `where`, over alias e) with their person_id from stitch.persons:
    stitch.events as the Spark engine writes it (the DuckDB warehouse keeps person_id on the row)."""
    cols = ", ".join(f'e."{c}"' for c in _unstitched_columns())
    return f"""
    select coalesce(pu.person_id, pa.person_id) as person_id, {cols}
    {person_sql(plan)}
    where {where}
    """


def create_events_view(con: duckdb.DuckDBPyConnection) -> None:
    """stitch.events: ingest.events with person_id first. A view, not a copy: the stitch writes each
    event's person on its row (`set_person_ids`), so the layers above read the events once, as stored.
    (A copy of every event cost more than the rest of the stitch: 3.7 of 5.1 CPU-s at 1M events.)"""
    if table_type(con, "stitch.events") == "BASE TABLE":  # a warehouse of an earlier version: a copy
        con.execute("drop table stitch.events").fetchall()
    cols = ", ".join(f'"{c}"' for c in _unstitched_columns())
    con.execute(f"create or replace view stitch.events as select person_id, {cols} from ingest.events").fetchall()


def is_events_view(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether stitch.events is the view `create_events_view` makes, of every row of ingest.events
    (not the copy of an earlier version, nor the Spark engine's layer): the two then hold the same
    messageIds, and the quality gates count their duplicates once."""
    rows = con.execute(
        "select sql from duckdb_views() where database_name = current_database() "
        "and schema_name = 'stitch' and view_name = 'events'"
    ).fetchall()
    return bool(rows) and " ".join(rows[0][0].lower().split()).rstrip(";").endswith(" from ingest.events")


def set_person_ids(con: duckdb.DuckDBPyConnection, plan: Plan, where: str = "true") -> int:
    """Write each row's person from stitch.persons into ingest.events.person_id, for the rows matching
    `where` (alias e): an update of one narrow column, in place. Returns the rows written.
    (Correlated lookups, which DuckDB joins to the table's own scan: 3.0 CPU-s at 10M events, where
    an update from a joined select of the same rows, matched back by row id, took 7.2.)"""
    uid, aid = id_kinds(plan)
    return con.execute(f"""
        update ingest.events e set person_id = coalesce(
            (select pu.person_id from stitch.persons pu where pu.identifier_kind = {lit(uid)} and pu.identifier = e.user_id),
            (select pa.person_id from stitch.persons pa
             where pa.identifier_kind = {lit(aid)} and pa.identifier = e.anonymous_id))
        where {where}
    """).fetchall()[0][0]


def write_partition_keys(con: duckdb.DuckDBPyConnection, where: str | None = None) -> None:
    """stitch.partition_keys: what the next incremental stitch needs to know of the rows it has seen,
    once the ingest has replaced or removed them (ingest.events keeps no earlier version): each
    partition's signature (quality_checks.partition_state) and its (user id, anonymous id) pairs with
    their events. Every partition, or those matching `where` (over partition_date).
    (Each pair's earliest time and client sessions, to rebuild the sessions of a person whose rows
    went away from there only, cost 2.8x as much at 10M events: 7.5 CPU-s; those persons' sessions
    are rebuilt whole instead, on the rare run that replaces a partition the stitch has seen.)"""
    from quality_checks.partition_state import signature_sql

    scope = "" if where is None else f"where {where}"
    if where is None:  # (replaced whole: a table of an earlier shape goes too)
        con.execute("drop table if exists stitch.partition_keys").fetchall()
    con.execute(STATE_DDL)
    if where is not None:
        con.execute(f"delete from stitch.partition_keys {scope}").fetchall()
    con.execute(f"""
        insert into stitch.partition_keys
        select k.partition_date, s.signature, k.user_id, k.anonymous_id, k.events
        from (select partition_date, user_id, anonymous_id, count(*) as events
              from ingest.events {scope} group by all) k
        join (select * from ({signature_sql("ingest.events", "loaded_at")}) {scope}) s using (partition_date)
    """).fetchall()


def build_identity(con: duckdb.DuckDBPyConnection, plan: Plan) -> dict:
    """Rebuild stitch.identity_graph, stitch.persons and every event's person (ingest.events.person_id,
    read through the view stitch.events) from ingest.events."""
    with id_combinations(con, plan) as ids:
        links, singles = build_links(con, plan, ids=ids), frame(con, identifiers_sql(plan, ids=ids))
    persons, graph = resolve(links, singles, plan)
    del links, singles
    n_links = len(graph)
    rejected = int((~graph["accepted"]).sum()) if n_links else 0
    with transaction(con):
        con.register("_persons", persons)
        con.register("_graph", graph)
        try:
            # typed as stitch/*.yml says: from an empty frame (a first day without any link or
            # identifier) DuckDB would make columns of type NULL, which no later day's rows could join
            # (the identifiers and person ids, nearly one distinct value a row, stored uncompressed: see
            # ID_COLUMN)
            con.execute(
                f"create or replace table stitch.identity_graph (kind_a varchar, id_a {ID_COLUMN}, "
                f"kind_b varchar, id_b {ID_COLUMN}, first_seen timestamp, last_seen timestamp, via varchar, "
                "events bigint, accepted boolean, reason varchar)"
            ).fetchall()
            con.execute(
                "insert into stitch.identity_graph select kind_a, id_a, kind_b, id_b, first_seen, last_seen, "
                "via, events, accepted, reason from _graph"
            ).fetchall()
            con.execute(
                f"create or replace table stitch.persons (identifier_kind varchar, identifier {ID_COLUMN}, "
                f"person_id {ID_COLUMN})"
            ).fetchall()
            con.execute(
                "insert into stitch.persons select identifier_kind, identifier, person_id from _persons"
            ).fetchall()
        finally:
            con.unregister("_persons")
            con.unregister("_graph")
        del persons, graph
        set_person_ids(con, plan)
        create_events_view(con)
        write_partition_keys(con)
    stats = con.execute("select count(distinct person_id), count(*) from stitch.persons").fetchall()[0]
    return {"persons": stats[0], "identifiers": stats[1], "links": n_links, "rejected_links": rejected}
