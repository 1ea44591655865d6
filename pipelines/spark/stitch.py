"""Identity stitching on Spark: the same links, limits and priorities as pipelines/stitch/identity.py.

1. Links in Spark: the link SQL of `identity.links_sql` (the one text the DuckDB path runs),
   transpiled by models.dialects, aggregates ingest.events to distinct identifier pairs with their
   first/last time and event count. That is one row per pair, not per event.
2. Components in Spark: `connected_components` (large-star / small-star, Kiveris et al. 2014,
   "Connected Components in MapReduce and Beyond") labels every linked identifier with its
   component in O(log² n) rounds of DataFrame joins, each round checkpointed (no lineage growth).
   A component within every `max_per_person` limit merges whole, as `identity.resolve` merges it:
   its person_id is `identity._person_id` of its best identifier (lowest priority, then smallest
   value), computed in Spark by the same formula.
3. Only the components that need the rules on the driver: those over a `max_per_person` limit
   (resolved link by link in priority and recency order). A best identifier tied on priority and
   value (two kinds of equal priority with the same value) goes by kind, here as in `resolve`.
   Their links are collected and resolved by `identity.resolve` itself: the same function, so the
   same person_id by construction (`resolve` treats each component on its own, so resolving a
   subset of whole components gives what resolving all of them gives for those components).
4. Identifiers that never appear in a link (anonymous visitors who never identified: most of them)
   are each their own person, whose id is computed in Spark by the same formula.
5. stitch.persons and stitch.identity_graph are written as Parquet, and stitch.events (ingest.events
   with person_id, partitioned by day) is ingest.events joined with stitch.persons in Spark; AQE
   broadcasts stitch.persons when it is small and shuffles both sides otherwise.

Scale limit: the driver holds the links of the over-limit components only, plus
`resolve`'s working copy of them; `stitch()` reports their count and the collected frame's bytes
(`driver_links`, `driver_bytes`) and the rounds the components took (`cc_iterations`).
"""

from __future__ import annotations

from models.dialects import transpile
from tracking_plan.model import Plan
from tracking_plan.validate import lit

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
    """Spark SQL of identity._person_id(kind, value): the DuckDB path's own expression
    (identity.person_id_sql), transpiled."""
    return _spark(identity.person_id_sql(kind, value), "stitch.persons")


def _checkpoint(df):
    """`df` materialized and its lineage cut: a reliable checkpoint where the session has a checkpoint
    directory (a cluster: survives an executor's loss), a local one otherwise."""
    try:
        reliable = df.sparkSession.sparkContext.getCheckpointDir() is not None
    except (AttributeError, NotImplementedError):  # Spark Connect: no SparkContext on the client
        reliable = False
    return df.checkpoint(eager=True) if reliable else df.localCheckpoint(eager=True)


def connected_components(edges, max_rounds: int = 200):
    """The connected components of the undirected graph `edges` (columns a, b: bigint node ids) in
    Spark: (labels, rounds), labels a DataFrame (id, comp) with comp the smallest id of the
    component, for every node with an edge to another node (a node whose only edge is a loop is
    its own component: absent here).

    Large-star / small-star (Kiveris, Lattanzi, Mirrokni, Rastogi, Vassilvitskii 2014): the edges
    are kept oriented from the larger id to the smaller (u > v). Large-star connects every neighbour
    larger than a node to the smallest id of the node's neighbourhood; small-star connects a node
    and its smaller neighbours to the smallest of them. Both keep the components and shrink the
    distance to the minimum; the graph converges to one star per component around its minimum
    (every u with exactly one edge, to a v that has no smaller neighbour), O(log² n) rounds.
    """
    from pyspark.sql import functions as F

    col = F.col
    e = _checkpoint(
        edges.where(col("a") != col("b"))
        .select(F.greatest("a", "b").alias("u"), F.least("a", "b").alias("v"))
        .distinct()
    )
    for rounds in range(1, max_rounds + 1):
        # large-star: for each node x, m(x) = min(x, neighbours); every neighbour y > x gets (y, m(x))
        both = e.select("u", "v").unionByName(e.select(col("v").alias("u"), col("u").alias("v")))
        low = both.groupBy("u").agg(F.least(F.min("v"), col("u")).alias("m"))
        large = (
            both.where(col("v") > col("u")).join(low, "u").select(col("v").alias("u"), col("m").alias("v")).distinct()
        )
        # small-star: for each node x, m = its smallest (smaller) neighbour; x and its other smaller
        # neighbours get (y, m)
        small_min = large.groupBy("u").agg(F.min("v").alias("m"))
        small = (
            large.join(small_min, "u")
            .where(col("v") != col("m"))
            .select(col("v").alias("u"), col("m").alias("v"))
            .unionByName(small_min.select("u", col("m").alias("v")))
            .distinct()
        )
        e = _checkpoint(small)
        # a star forest? every u has one edge, and no v is some u
        out = e.groupBy("u").agg(F.count("*").alias("n"))
        centers = e.select(col("v").alias("c")).distinct()
        bad = (
            out.join(centers, out.u == centers.c, "full_outer")
            .agg(F.sum(F.when((col("n") > 1) | (col("u").isNotNull() & col("c").isNotNull()), 1).otherwise(0)))
            .collect()[0][0]
        )
        if not bad:
            labels = e.select(col("u").alias("id"), col("v").alias("comp")).unionByName(
                e.select(col("v").alias("id"), col("v").alias("comp")).distinct()
            )
            return labels, rounds
    raise RuntimeError(f"connected components did not converge in {max_rounds} rounds")


def _limits_sql(plan: Plan, column: str, what: str) -> str:
    """A CASE over the identifier kind `column`: each kind's max_per_person (`what`='limit') or priority."""
    whens = []
    for i in plan.identity.identifiers:
        value = i.max_per_person if what == "limit" else i.priority
        if value is not None:
            whens.append(f"when {lit(i.name)} then {int(value)}")
    default = "null" if what == "limit" else "100"  # resolve: priority.get(kind, 100)
    return f"case {column} {' '.join(whens)} else {default} end" if whens else default


def stitch(spark, plan: Plan, root: str, partition_by: str | None = "partition_date") -> dict:
    """Build stitch.identity_graph, stitch.persons and stitch.events under `root` from the
    ingest.events layer there; build_identity's statistics plus the driver's share (`driver_links`,
    `driver_bytes`, `driver_components`) and the components' rounds (`cc_iterations`)."""
    from pyspark.sql import functions as F

    register(spark, "ingest.events", layer_path(root, "ingest.events"))
    cols = identity.LINK_COLUMNS
    link_df = _checkpoint(links(spark, plan).toDF(*cols))  # read once: every step below reuses it
    link_df.createOrReplaceTempView("_stitch_links")
    # the linked identifiers, each with a node id (fixed by the checkpoint)
    nodes = _checkpoint(
        spark.sql(
            "select kind_a as kind, id_a as identifier from _stitch_links union "
            "select kind_b as kind, id_b as identifier from _stitch_links"
        ).withColumn("id", F.monotonically_increasing_id())
    )
    nodes.createOrReplaceTempView("_stitch_nodes")
    edges = spark.sql("""
        select na.id as a, nb.id as b from _stitch_links l
        join _stitch_nodes na on na.kind = l.kind_a and na.identifier = l.id_a
        join _stitch_nodes nb on nb.kind = l.kind_b and nb.identifier = l.id_b""")
    labels, rounds = connected_components(edges)
    labels.createOrReplaceTempView("_stitch_labels")
    node_comp = _checkpoint(
        spark.sql(f"""
        select n.kind, n.identifier, coalesce(c.comp, n.id) as comp, {_limits_sql(plan, "n.kind", "priority")} as prio
        from _stitch_nodes n left join _stitch_labels c on c.id = n.id""")
    )
    node_comp.createOrReplaceTempView("_stitch_node_comp")
    # the components the rules decide on the driver: over a limit
    spark.sql("""
        create or replace temp view _stitch_best as
        select comp, min(struct(prio, identifier, kind)) as best from _stitch_node_comp group by comp""")
    driver = _checkpoint(
        spark.sql(f"""
        select distinct comp from _stitch_node_comp group by comp, kind
        having count(*) > {_limits_sql(plan, "kind", "limit")}""")
    )
    driver.createOrReplaceTempView("_stitch_driver")
    spark.sql("""
        create or replace temp view _stitch_driver_nodes as
        select n.kind, n.identifier from _stitch_node_comp n left semi join _stitch_driver d on d.comp = n.comp""")
    # every link of a component has its first identifier in it: the side that decides
    hard = spark.sql("""
        select l.* from _stitch_links l left semi join _stitch_driver_nodes n
          on n.kind = l.kind_a and n.identifier = l.id_a""")
    pairs = hard.toPandas()
    pairs.columns = cols
    pairs = pairs.sort_values(cols, ignore_index=True)  # the DuckDB path's `order by all`
    driver_bytes = int(pairs.memory_usage(deep=True).sum()) if len(pairs) else 0
    empty = pairs.iloc[0:0][["kind_a", "id_a"]].set_axis(["kind", "identifier"], axis=1)
    linked, graph = identity.resolve(pairs, empty, plan)  # the DuckDB path's own resolution

    graph_cols = [c.split(" ")[0] for c in GRAPH_SCHEMA.split(", ")]
    spark.createDataFrame(graph[graph_cols], GRAPH_SCHEMA).createOrReplaceTempView("_stitch_graph_driver")
    spark.createDataFrame(linked, PERSONS_SCHEMA).createOrReplaceTempView("_stitch_linked_driver")
    graph_df = spark.sql(f"""
        select l.*, true as accepted, cast(null as string) as reason from _stitch_links l
        left anti join _stitch_driver_nodes n on n.kind = l.kind_a and n.identifier = l.id_a
        union all
        select {", ".join(graph_cols)} from _stitch_graph_driver""")
    write_layer(spark, graph_df, "stitch.identity_graph", root)
    # a component within every limit is one person: its best identifier's id
    linked_df = spark.sql(f"""
        select n.kind as identifier_kind, n.identifier, {person_id_sql("b.best.kind", "b.best.identifier")} as person_id
        from _stitch_node_comp n join _stitch_best b on b.comp = n.comp
        left anti join _stitch_driver d on d.comp = n.comp
        union all
        select identifier_kind, identifier, person_id from _stitch_linked_driver""")
    linked_df.createOrReplaceTempView("_stitch_linked")
    spark.sql(
        f"create or replace temp view _stitch_identifiers as {_spark(identity.identifiers_sql(plan), 'stitch.persons')}"
    )
    # unlinked identifiers: their own person each, the id computed where they are (not on the driver)
    persons = spark.sql(f"""
        select identifier_kind, identifier, person_id from _stitch_linked
        union all
        select i.kind as identifier_kind, i.identifier, {person_id_sql("i.kind", "i.identifier")} as person_id
        from _stitch_identifiers i left anti join _stitch_nodes l
          on l.kind = i.kind and l.identifier = i.identifier
    """)
    write_layer(spark, persons, "stitch.persons", root)
    events = spark.sql(_spark(identity.events_sql(plan), "stitch.events"))
    write_layer(spark, events, "stitch.events", root, partition_by=partition_by)
    stats = spark.sql("select count(distinct person_id), count(*) from stitch.persons").collect()[0]
    counts = spark.sql(
        "select (select count(*) from _stitch_links), (select count(*) from _stitch_nodes), "
        "(select count(*) from _stitch_driver)"
    ).collect()[0]
    rejected = int((~graph["accepted"]).sum()) if len(graph) else 0
    for view in (
        "_stitch_links",
        "_stitch_nodes",
        "_stitch_labels",
        "_stitch_node_comp",
        "_stitch_best",
        "_stitch_driver",
        "_stitch_driver_nodes",
        "_stitch_graph_driver",
        "_stitch_linked_driver",
        "_stitch_linked",
        "_stitch_identifiers",
    ):
        spark.catalog.dropTempView(view)
    # the checkpoints' blocks are freed by Spark's ContextCleaner once nothing refers to them
    return {
        "persons": stats[0],
        "identifiers": stats[1],
        "links": counts[0],
        "rejected_links": rejected,
        "linked_identifiers": counts[1],
        "cc_iterations": rounds,
        "driver_components": counts[2],
        "driver_links": len(pairs),
        "driver_bytes": driver_bytes,
    }
