"""The quality layer on Spark: quality.daily_metrics as aggregate SQL on Spark, the anomalies, the
Great Expectations suite and the anomaly families over it on the driver, by the DuckDB path's code.

quality.daily_metrics is one SQL (quality_checks/metrics.daily_metrics_sql), run by Spark through
models.dialects (sqlglot + the rewrite rules: its JSON functions become Spark's VARIANT functions)
over the ingest and stitch layers, with the plan's two small tables as temp views; only its rows
(day × event × metric: a few thousand a month) come back to the driver, as Arrow. The anomalies are
pipelines/quality/assets.build_anomalies itself, handed a SparkConnection whose driver-side DuckDB
holds those metrics: `last_seen`'s one aggregate over ingest.events runs on Spark. The GX suite and
the anomaly checks read the same small tables. Each table is written as the Parquet layer
`<root>/quality/<table>/` (rebuilt whole, as DuckDB's `create or replace`), with DuckDB's column types.
"""

from __future__ import annotations

from models.dialects import transpile
from quality_checks.metrics import TABLE as METRICS
from quality_checks.metrics import daily_metrics_sql, plan_properties, planned_events

from .models import layer_path, register, write_layer

INPUTS = ("ingest.events", "ingest.quarantine")


def _exists(spark, path: str) -> bool:
    from .ingest import _exists as exists

    return exists(spark, path)


def register_inputs(spark, root: str) -> bool:
    """Point ingest.events, ingest.quarantine (and stitch.events, when its layer is there) at their
    layers under `root`; an ingest layer with no day yet is an empty view of the warehouse's columns.
    True if stitch.events is there (the `persons` metric needs it)."""
    from .ingest import table_types

    for table in INPUTS:
        # a view over the files (a catalog table of a directory partitioned by day would list no
        # partition until they are recovered), with the warehouse's columns in its order
        path = layer_path(root, table)
        spark.sql(f"create database if not exists {table.split('.')[0]}")
        if spark.catalog.tableExists(table) and spark.catalog.getTable(table).tableType != "VIEW":
            spark.sql(f"drop table {table}")
        if _exists(spark, path):
            cols = ", ".join(f"`{c}`" for c, _ in table_types(table))
            spark.sql(f"create or replace view {table} as select {cols} from parquet.`{path}`")
        else:
            cols = ", ".join(f"cast(null as {t}) as `{c}`" for c, t in table_types(table))
            spark.sql(f"create or replace view {table} as select {cols} where false")
    stitch = layer_path(root, "stitch.events")
    if _exists(spark, stitch):
        register(spark, "stitch.events", stitch)
        return True
    return False


def metrics_sql(has_stitch: bool) -> str:
    """quality.daily_metrics's SQL as Spark runs it (raises models.dialects.UntranslatableSQL)."""
    return transpile(daily_metrics_sql(has_stitch, object_keys=False), "spark", table=METRICS, pretty=False)


def build_daily_metrics(spark, plan, root: str) -> int:
    """quality.daily_metrics computed on Spark and written as its layer under `root`; its row count."""
    has_stitch = register_inputs(spark, root)
    spark.createDataFrame(
        plan_properties(plan), "event_name string, property string, is_enum boolean"
    ).createOrReplaceTempView("_q_props")
    spark.createDataFrame([(e,) for e in planned_events(plan)], "event_name string").createOrReplaceTempView(
        "_q_planned"
    )
    try:
        write_layer(spark, spark.sql(metrics_sql(has_stitch)), METRICS, root)
    finally:
        spark.catalog.dropTempView("_q_props")
        spark.catalog.dropTempView("_q_planned")
    return spark.table(METRICS).count()


def read_metrics(spark, root: str, local) -> None:
    """quality.daily_metrics from its layer into the driver-side DuckDB `local` (a few thousand rows)."""
    arrow = spark.read.parquet(layer_path(root, METRICS)).select(*_metric_columns()).toArrow()
    local.execute("create schema if not exists quality")
    local.register("_metrics_arrow", arrow)
    try:
        local.execute(f"create or replace table {METRICS} as select * from _metrics_arrow")
    finally:
        local.unregister("_metrics_arrow")


def _metric_columns() -> list[str]:
    from quality_checks.metrics import COLUMNS

    return list(COLUMNS)


def metrics_frame(spark, root: str):
    """quality.daily_metrics as the pandas frame DuckDB's `.df()` gives (the GX suite's input)."""
    import duckdb

    con = duckdb.connect()
    try:
        read_metrics(spark, root, con)
        return con.execute(f"select * from {METRICS}").df()
    finally:
        con.close()


def build_anomalies(spark, plan, root: str, scored: list | None = None):
    """The anomalies of quality.daily_metrics, by the DuckDB path's build_anomalies, written as the
    quality.anomalies layer under `root`; the frame (`scored`: as the DuckDB path's)."""
    from quality_checks.store import ensure_tables

    from ..quality.assets import build_anomalies as detect_into
    from .python_marts import SparkConnection, spark_frame

    con = SparkConnection(spark)
    try:
        ensure_tables(con.local)  # the quality tables live on the driver: their statements run there
        read_metrics(spark, root, con.local)
        register_inputs(spark, root)  # last_seen's aggregate over ingest.events runs on Spark
        found = detect_into(con, plan, scored)
        arrow = con.local.sql("select * from quality.anomalies").to_arrow_table()
        write_layer(spark, spark_frame(spark, arrow), "quality.anomalies", root)
    finally:
        con.close()
    return found


def anomalies_frame(spark, root: str):
    """quality.anomalies from its layer, as the DuckDB anomaly checks read it (day as a date)."""
    import duckdb

    arrow = spark.read.parquet(layer_path(root, "quality.anomalies")).toArrow()
    con = duckdb.connect()
    try:
        df = con.from_arrow(arrow).df()
    finally:
        con.close()
    df["day"] = df["day"].dt.date if len(df) else df["day"]
    return df


def check_results_counts(spark, root: str) -> tuple[int, int]:
    """(rows, failed) of the quality.check_results layer under `root` (0, 0 before any check ran)."""
    from pyspark.sql import functions as F

    path = layer_path(root, "quality.check_results")
    if not _exists(spark, path):
        return 0, 0
    row = (
        spark.read.parquet(path).agg(F.count("*").alias("n"), F.count_if(~F.col("passed")).alias("failed")).collect()[0]
    )
    return int(row["n"]), int(row["failed"])
