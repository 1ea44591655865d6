"""The SQL models on Spark: each model's DuckDB SQL through models.dialects (sqlglot + the rewrite
rules), run by Spark SQL over Parquet layers laid out as `<root>/<schema>/<table>/`.

The layers are external Parquet tables in Spark's catalog under the warehouse's own names
(`stitch.events`, `staging.sessions`…), so the transpiled SQL runs unedited. Parquet rather than
Delta or Iceberg: every engine reads it (DuckDB, Spark, Trino, pandas) with no extra jar, a layer
is rebuilt whole per run (no MERGE needed), and the per-day partitions are replaced atomically by
writing a new directory; a table format would buy time travel and concurrent writers, which this
pipeline does not use.
"""

from __future__ import annotations

from collections.abc import Iterable

from models.catalog import SqlModel, load_models
from models.dialects import transpile


def layer_path(root: str, table: str) -> str:
    schema, name = table.split(".")
    return f"{root.rstrip('/')}/{schema}/{name}"


def column_order(table: str) -> tuple[str, ...] | None:
    """The DuckDB path's column order of the day-partitioned layers (Spark reads a partition column last)."""
    from schemas.ddl import columns as ddl_columns

    if table == "ingest.events":
        return ddl_columns(table)
    if table == "stitch.events":  # (ingest.events' own person_id is the one the DuckDB stitch writes)
        return ("person_id", *(c for c in ddl_columns("ingest.events") if c != "person_id"))
    return None


def register(spark, table: str, path: str, columns: Iterable[str] | None = None) -> None:
    """(Re)point the catalog name `schema.name` at the Parquet directory `path`: an external table,
    or a view with the columns in `columns`' order (default `column_order`) when the files' order
    differs, as a directory partitioned by day reads with the partition column last."""
    schema, _ = table.split(".")
    spark.sql(f"create database if not exists {schema}")
    if spark.catalog.tableExists(table):
        kind = "view" if spark.catalog.getTable(table).tableType == "VIEW" else "table"
        spark.sql(f"drop {kind} {table}")
    columns = list(columns or column_order(table) or [])
    if columns and spark.read.parquet(path).columns != columns:
        cols = ", ".join(f"`{c}`" for c in columns)
        spark.sql(f"create view {table} as select {cols} from parquet.`{path}`")
    else:
        spark.catalog.createTable(table, path=path, source="parquet")


def write_layer(spark, df, table: str, root: str, partition_by: str | None = None) -> str:
    """Write `df` as the Parquet layer of `table` under `root` (replacing it; by day when
    `partition_by` names the day column) and register it; the layer's path."""
    path = layer_path(root, table)
    writer = df.write.mode("overwrite")
    if partition_by:
        writer = writer.partitionBy(partition_by)
    writer.parquet(path)
    register(spark, table, path)
    return path


def sql_inputs(models: Iterable[SqlModel] | None = None) -> list[str]:
    """The tables the SQL models read that no SQL model writes (what must be in Parquet first)."""
    models = list(models or load_models())
    produced = {m.table for m in models}
    return sorted({f"{s}.{t}" for m in models for s, t in m.upstream()} - produced)


def ordered(models: Iterable[SqlModel]) -> list[SqlModel]:
    """The models with every model after the models it reads."""
    todo = {m.table: m for m in models}
    done: list[SqlModel] = []
    seen: set[str] = set()
    while todo:
        ready = [
            m
            for t, m in sorted(todo.items())
            if all(f"{s}.{n}" in seen or f"{s}.{n}" not in todo for s, n in m.upstream())
        ]
        if not ready:
            raise ValueError(f"SQL models read each other in a cycle: {', '.join(sorted(todo))}")
        for m in ready:
            done.append(m)
            seen.add(m.table)
            del todo[m.table]
    return done


def spark_sql(model: SqlModel, variables: dict) -> str:
    """The model's SQL as Spark runs it (raises models.dialects.UntranslatableSQL)."""
    return transpile(model.sql, "spark", table=model.table, variables=variables, pretty=False)


def run_model(spark, model: SqlModel, root: str, variables: dict) -> int:
    """Materialize one SQL model as Parquet under `root` and register it; its row count."""
    write_layer(spark, spark.sql(spark_sql(model, variables)), model.table, root)
    return spark.table(model.table).count()


def run_models(spark, root: str, variables: dict, tables: Iterable[str] | None = None) -> dict[str, int]:
    """Register the inputs found under `root`, then run the SQL models (all, or `tables`) in order;
    {table: row count}."""
    models = load_models()
    for table in sql_inputs(models):
        register(spark, table, layer_path(root, table))
    wanted = set(tables) if tables is not None else None
    counts = {}
    for model in ordered(models):
        if wanted is None or model.table in wanted:
            counts[model.table] = run_model(spark, model, root, variables)
    return counts
