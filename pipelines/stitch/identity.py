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


def _kinds(plan: Plan, extra=()) -> list[str]:
    """The identifier kinds a resolution numbers (kind code = position): the plan's, then any other
    kind the links name (none in a warehouse: every link's kinds are the plan's)."""
    names = [i.name for i in plan.identity.identifiers]
    return names + sorted(set(extra) - set(names))


def resolve_nodes(
    plan: Plan,
    kinds: list[str],
    node_kind: np.ndarray,
    ia: np.ndarray,
    ib: np.ndarray,
    t: np.ndarray,
    t_null: np.ndarray,
) -> tuple[np.ndarray, dict[int, str]]:
    """The resolution rule, on numbers: nodes 0..n-1 are the distinct (kind, identifier) pairs
    numbered in order of (identifier, kind), node_kind their kind (a position in `kinds`); link j
    joins nodes ia[j] and ib[j], last (identity.yaml `anonymous_events: latest`) or first seen at
    t[j] (nanoseconds; t_null[j]: unknown). Returns (best, rejected): each node's person as the node
    of its best identifier (lowest priority, then smallest identifier, then kind), and the links
    refused, by position, with their reason.

    Both callers number the nodes that way (`resolve` from pandas frames, `build_identity` in SQL,
    where the identifiers stay), so no string reaches this function: at 10M events the full
    rebuild's 1.5M identifiers and 1.2M links are ~100 MB of numbers here, where pandas frames of
    their strings took ~800 MB."""
    n, m = len(node_kind), len(ia)
    if n == 0:
        return np.array([], dtype=np.int64), {}
    limits = {i.name: i.max_per_person for i in plan.identity.identifiers}
    prio_of = {i.name: i.priority for i in plan.identity.identifiers}
    kprio = np.array([prio_of.get(k, 100) for k in kinds], dtype=np.int64)
    graph = coo_matrix((np.ones(m), (ia, ib)), shape=(n, n))
    n_comp, comp = connected_components(graph, directed=False)
    # a component within every limit merges whole; only the others go link by link
    per_kind = np.bincount(comp.astype(np.int64) * len(kinds) + node_kind, minlength=n_comp * len(kinds)).reshape(
        n_comp, len(kinds)
    )
    over = np.zeros(n_comp, dtype=bool)
    for k, name in enumerate(kinds):
        if limits.get(name) is not None:
            over |= per_kind[:, k] > limits[name]
    del per_kind
    # union-find over the node numbers (`parent`); a set's root is always its smallest node (a union
    # hangs the larger root under the smaller). A component within every limit is one set whose root
    # is its smallest node: what taking its links one by one gives, without a Python step per link;
    # an over-limit one starts as singletons
    smallest = np.full(n_comp, n)
    np.minimum.at(smallest, comp, np.arange(n))
    parent = np.where(over[comp], np.arange(n), smallest[comp])

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    rejected: dict[int, str] = {}
    hard = np.flatnonzero(over[comp[ia]]) if m else np.array([], dtype=np.int64)
    if len(hard):
        latest = plan.identity.anonymous_events == "latest"
        prio = np.minimum(kprio[node_kind[ia[hard]]], kprio[node_kind[ib[hard]]])
        when = np.where(t_null[hard], 0, -t[hard] if latest else t[hard])
        # by the kinds' priority, then the newest (or oldest) first, an unknown time last, then by
        # identifier: a total order (the node numbers follow (identifier, kind))
        order = hard[np.lexsort((ib[hard], ia[hard], when, t_null[hard], prio))]
        counts: dict[int, dict[int, int]] = {}
        for pos in order.tolist():  # only over-limit components reach this loop: links, not events
            ra, rb = find(ia[pos]), find(ib[pos])
            if ra == rb:
                continue
            ca = counts.setdefault(ra, {int(node_kind[ra]): 1})
            cb = counts.setdefault(rb, {int(node_kind[rb]): 1})
            both = set(ca) | set(cb)
            bad = [
                kinds[k]
                for k in both
                if limits.get(kinds[k]) is not None and ca.get(k, 0) + cb.get(k, 0) > limits[kinds[k]]
            ]
            if bad:
                rejected[pos] = f"would exceed max_per_person for {', '.join(sorted(bad))}"
                continue
            root, child = min(ra, rb), max(ra, rb)
            parent[child] = root
            counts[root] = {k: ca.get(k, 0) + cb.get(k, 0) for k in both}
            counts.pop(child, None)
    roots = parent  # every node's root (find() of each, by pointer jumping)
    while True:
        up = roots[roots]
        if np.array_equal(up, roots):
            break
        roots = up
    # a person's id comes from its best identifier (lowest priority number, then smallest value, then
    # kind), so it stays the same across runs and does not depend on row order
    order = np.lexsort((np.arange(n), kprio[node_kind]))
    firsts = order[np.unique(roots[order], return_index=True)[1]]  # each root's best node
    best_of = np.empty(n, dtype=np.int64)
    best_of[roots[firsts]] = firsts
    return best_of[roots], rejected


def resolve(links: pd.DataFrame, singles: pd.DataFrame, plan: Plan) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(persons: kind, identifier, person_id; graph: links with accepted flag and reason), by
    `resolve_nodes` over the frames' identifiers numbered here (the incremental stitch's few
    components, the Spark engine's driver-side ones; the full rebuild numbers them in SQL)."""
    # the nodes: every distinct (kind, identifier), by one dictionary encoding of "kind<US>identifier"
    # (a kind is a plan name, without that separator), then numbered in order of (identifier, kind)
    kinds = pd.concat([links.kind_a, links.kind_b, singles.kind], ignore_index=True)
    idents = pd.concat([links.id_a, links.id_b, singles.identifier], ignore_index=True)
    keys = pc.binary_join_element_wise(
        pa.array(kinds, pa.string(), from_pandas=True), pa.array(idents, pa.string(), from_pandas=True), "\x1f"
    )
    if isinstance(keys, pa.ChunkedArray):  # (one dictionary for all: the chunks as one array)
        keys = keys.combine_chunks()
    codes = pc.dictionary_encode(keys).indices.to_numpy(zero_copy_only=False).astype(np.int64)
    first = np.unique(codes, return_index=True)[1]  # each distinct pair's first position
    node_kinds = pa.array(kinds.iloc[first], pa.string(), from_pandas=True)
    node_ids = pa.array(idents.iloc[first], pa.string(), from_pandas=True)
    order = pc.sort_indices(
        pa.table({"i": node_ids, "k": node_kinds}), sort_keys=[("i", "ascending"), ("k", "ascending")]
    ).to_numpy()
    number = np.empty(len(order), dtype=np.int64)
    number[order] = np.arange(len(order))
    codes = number[codes]
    node_kinds, node_ids = node_kinds.take(order).to_pylist(), node_ids.take(order).to_pylist()
    names = _kinds(plan, set(node_kinds))
    code_of = {k: j for j, k in enumerate(names)}
    m = len(links)
    latest = plan.identity.anonymous_events == "latest"
    seen = pd.to_datetime(links.last_seen if latest else links.first_seen)
    best, rejected = resolve_nodes(
        plan,
        names,
        np.array([code_of[k] for k in node_kinds], dtype=np.int64),
        codes[:m],
        codes[m : 2 * m],
        seen.to_numpy(dtype="datetime64[ns]").astype(np.int64),
        seen.isna().to_numpy(),
    )
    pid = {b: _person_id(node_kinds[b], node_ids[b]) for b in np.unique(best).tolist()}
    persons = pd.DataFrame(
        {"identifier_kind": node_kinds, "identifier": node_ids, "person_id": [pid[b] for b in best.tolist()]}
    )
    accepted = np.ones(m, dtype=bool)
    reasons = np.full(m, None, dtype=object)
    for pos, why in rejected.items():
        accepted[pos], reasons[pos] = False, why
    return persons, links.assign(accepted=accepted, reason=reasons)


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


def person_id_sql(kind: str, value: str) -> str:
    """DuckDB SQL of `_person_id(kind, value)` (sha256 of the UTF-8 text, as hashlib's)."""
    return f"'p_' || left(sha256({kind} || ':' || {value}), 16)"


# build_links' columns, no rows: the links of a plan without identifiers
_NO_LINKS = (
    "select null::varchar as kind_a, null::varchar as id_a, null::varchar as kind_b, null::varchar as id_b, "
    "null::timestamp as first_seen, null::timestamp as last_seen, null::varchar as via, null::bigint as events limit 0"
)


def build_identity(con: duckdb.DuckDBPyConnection, plan: Plan) -> dict:
    """Rebuild stitch.identity_graph, stitch.persons and every event's person (ingest.events.person_id,
    read through the view stitch.events) from ingest.events.

    The identifiers stay in DuckDB: they are numbered there (temp table _nodes, in order of
    (identifier, kind), as `resolve_nodes` wants them), and only numbers come to Python: each
    link's two nodes and time, each node's kind. What comes back is each node's best node and the
    refused links, which SQL joins to the identifiers again (the person id's hash included). At 10M
    events the stitch's peak over what DuckDB holds was ~800 MB of pandas frames of strings."""
    kinds = _kinds(plan)
    seen = "last_seen" if plan.identity.anonymous_events == "latest" else "first_seen"
    with id_combinations(con, plan) as ids:
        links = links_sql(plan, ids=ids) or _NO_LINKS
        con.execute(f"create or replace temp table _links as select row_number() over () - 1 as li, * from ({links})")
        con.execute(f"""
            create or replace temp table _nodes as
            select kind, identifier, row_number() over (order by identifier, kind) - 1 as node,
                   list_position([{", ".join(lit(k) for k in kinds) or "null"}], kind) - 1 as k
            from (select kind_a, id_a from _links union select kind_b, id_b from _links
                  union select kind, identifier from ({identifiers_sql(plan, ids=ids)})) as t(kind, identifier)
        """).fetchall()
    try:
        node_kind = con.execute("select k from _nodes order by node").fetchnumpy()["k"]
        got = con.execute(f"""
            select l.li, a.node as ia, b.node as ib, coalesce(epoch_ns(l.{seen}), 0) as t, l.{seen} is null as t_null
            from _links l join _nodes a on a.kind = l.kind_a and a.identifier = l.id_a
            join _nodes b on b.kind = l.kind_b and b.identifier = l.id_b
        """).fetchnumpy()
        best, refused = resolve_nodes(
            plan,
            kinds,
            np.asarray(node_kind, dtype=np.int64),
            np.asarray(got["ia"], dtype=np.int64),
            np.asarray(got["ib"], dtype=np.int64),
            np.asarray(got["t"], dtype=np.int64),
            np.asarray(got["t_null"], dtype=bool),
        )
        li = np.asarray(got["li"], dtype=np.int64)
        n_links = len(li)
        del got, node_kind
        con.register("_best", pa.table({"node": pa.array(np.arange(len(best))), "best": pa.array(best)}))
        con.register(
            "_refused",
            pa.table(
                {"li": pa.array(li[list(refused)], pa.int64()), "reason": pa.array(list(refused.values()), pa.string())}
            ),
        )
        with transaction(con):
            # typed as stitch/*.yml says (the identifiers and person ids, nearly one distinct value a
            # row, stored uncompressed: see ID_COLUMN)
            con.execute(
                f"create or replace table stitch.identity_graph (kind_a varchar, id_a {ID_COLUMN}, "
                f"kind_b varchar, id_b {ID_COLUMN}, first_seen timestamp, last_seen timestamp, via varchar, "
                "events bigint, accepted boolean, reason varchar)"
            ).fetchall()
            con.execute(
                "insert into stitch.identity_graph select l.kind_a, l.id_a, l.kind_b, l.id_b, l.first_seen, "
                "l.last_seen, l.via, l.events, r.li is null, r.reason from _links l left join _refused r on r.li = l.li"
            ).fetchall()
            con.execute(
                f"create or replace table stitch.persons (identifier_kind varchar, identifier {ID_COLUMN}, "
                f"person_id {ID_COLUMN})"
            ).fetchall()
            # (the person id hashed once per person, from its best identifier)
            con.execute(f"""
                insert into stitch.persons
                select n.kind, n.identifier, p.person_id from _nodes n join _best m on m.node = n.node
                join (select node, {person_id_sql("kind", "identifier")} as person_id from _nodes
                      where node in (select best from _best)) p on p.node = m.best
            """).fetchall()
            set_person_ids(con, plan)
            create_events_view(con)
            write_partition_keys(con)
    finally:
        for name in ("_best", "_refused"):
            try:
                con.unregister(name)
            except duckdb.Error:  # (not registered: the resolution failed before)
                pass
        con.execute("drop table if exists _links").fetchall()
        con.execute("drop table if exists _nodes").fetchall()
    stats = con.execute("select count(distinct person_id), count(*) from stitch.persons").fetchall()[0]
    return {"persons": stats[0], "identifiers": stats[1], "links": n_links, "rejected_links": len(refused)}
