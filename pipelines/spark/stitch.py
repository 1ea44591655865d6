"""Identity stitching on Spark: the same links, limits and priorities as pipelines/stitch/identity.py.

1. Links in Spark: the link SQL of `identity.links_sql` (the one text the DuckDB path runs),
   transpiled by models.dialects, aggregates ingest.events to distinct identifier pairs with their
   first/last time and event count. That is one row per pair, not per event.
2. Components on the driver: the pairs are collected and resolved by `identity.resolve` itself
   (scipy's connected components, then link by link for a component over a `max_per_person` limit,
   in priority and recency order): the same function, so the same person_id by construction.
3. Identifiers that never appear in a link (anonymous visitors who never identified: most of them)
   are not collected: each is its own person, whose id `identity._person_id` is computed in Spark
   by the same formula (sha256 of `kind:value`, first 16 hex digits), which the parity tests pin.
4. stitch.persons and stitch.identity_graph are written as Parquet, and stitch.events (ingest.events
   with person_id, partitioned by day) is ingest.events joined with stitch.persons in Spark; AQE
   broadcasts stitch.persons when it is small and shuffles both sides otherwise.

Scale limit: the driver holds the linked identifiers and their links (the pandas frames of
`resolve`, ~150 bytes a link measured by benchmarks/spark_bench.py), not the events and not the
unlinked identifiers. The README's sizing note works out the driver memory from that figure.
"""

from __future__ import annotations

from models.dialects import transpile
from tracking_plan.model import Plan

from ..stitch import identity
from .models import layer_path, register, write_layer

PERSONS_SCHEMA = "identifier_kind string, identifier string, person_id string"
GRAPH_SCHEMA = (
    "kind_a string, id_a string, kind_b string, id_b string, first_seen timestamp_ntz, last_seen timestamp_ntz, "
    "via string, events bigint, accepted boolean, reason string"
)
TABLES = ("stitch.identity_graph", "stitch.persons", "stitch.events")


def _spark(sql: str, table: str) -> str:
    return transpile(sql, "spark", table=table, pretty=False)


def links(spark, plan: Plan):
    """The identifier pairs seen together (identity.links_sql on Spark): a Spark DataFrame."""
    sql = identity.links_sql(plan)
    if sql is None:  # no identifiers declared: no links
        return spark.createDataFrame([], ", ".join(GRAPH_SCHEMA.split(", ")[:8]))
    return spark.sql(_spark(sql, "stitch.identity_graph"))


def collect_links(spark, plan: Plan):
    """The links as build_links returns them: a pandas frame in the same (total) order."""
    df = links(spark, plan).toPandas()
    cols = identity.LINK_COLUMNS
    df.columns = cols
    return df.sort_values(cols, ignore_index=True)  # DuckDB's `order by all` (no NULL in these columns)


def person_id_sql(kind: str, value: str) -> str:
    """Spark SQL of identity._person_id(kind, value)."""
    return f"concat('p_', substr(sha2(concat({kind}, ':', {value}), 256), 1, 16))"


def stitch(spark, plan: Plan, root: str, partition_by: str | None = "partition_date") -> dict:
    """Build stitch.identity_graph, stitch.persons and stitch.events under `root` from the
    ingest.events layer there; build_identity's statistics plus the driver's share."""
    register(spark, "ingest.events", layer_path(root, "ingest.events"))
    pairs = collect_links(spark, plan)
    empty = pairs.iloc[0:0][["kind_a", "id_a"]].set_axis(["kind", "identifier"], axis=1)
    linked, graph = identity.resolve(pairs, empty, plan)  # the DuckDB path's own resolution

    graph_cols = [c.split(" ")[0] for c in GRAPH_SCHEMA.split(", ")]
    write_layer(spark, spark.createDataFrame(graph[graph_cols], GRAPH_SCHEMA), "stitch.identity_graph", root)
    linked_df = spark.createDataFrame(linked, PERSONS_SCHEMA)
    linked_df.createOrReplaceTempView("_stitch_linked")
    spark.sql(
        f"create or replace temp view _stitch_identifiers as {_spark(identity.identifiers_sql(plan), 'stitch.persons')}"
    )
    # unlinked identifiers: their own person each, the id computed where they are (not on the driver)
    persons = spark.sql(f"""
        select identifier_kind, identifier, person_id from _stitch_linked
        union all
        select i.kind as identifier_kind, i.identifier, {person_id_sql("i.kind", "i.identifier")} as person_id
        from _stitch_identifiers i left anti join _stitch_linked l
          on l.identifier_kind = i.kind and l.identifier = i.identifier
    """)
    write_layer(spark, persons, "stitch.persons", root)
    events = spark.sql(_spark(identity.events_sql(plan), "stitch.events"))
    write_layer(spark, events, "stitch.events", root, partition_by=partition_by)
    stats = spark.sql("select count(distinct person_id), count(*) from stitch.persons").collect()[0]
    rejected = int((~graph["accepted"]).sum()) if len(graph) else 0
    for view in ("_stitch_linked", "_stitch_identifiers"):
        spark.catalog.dropTempView(view)
    return {
        "persons": stats[0],
        "identifiers": stats[1],
        "links": len(graph),
        "rejected_links": rejected,
        "linked_identifiers": len(linked),
    }
