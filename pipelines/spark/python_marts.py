"""The Python marts on Spark: the same `build(con, plan)` of each models/marts/*.py, its SQL aggregates
run on Spark, the small aggregated frames computed on the driver, each mart written as a Parquet layer.

A Python mart reads its inputs through the DuckDB connection it is handed: the narrow events'
aggregates (models/marts/aggregates.py: per person, per day, per variant, per window), a few SQL
queries of its own (customer_clv's purchases per person-day, channel_attribution's sessions and
purchases), and the tables of earlier marts. `SparkConnection` is that connection on Spark: a query
reading a table that lives in the Spark layers (stitch.events, staging.sessions, the SQL marts) is
translated by models.dialects (sqlglot + the rewrite rules; anything untranslatable raises) and run
by Spark SQL, and only its result comes back to the driver, as Arrow, turned into pandas by DuckDB
(so the frame has the dtypes the DuckDB path's `.df()` gives); every other query (the Python marts
this step already wrote) runs in a driver-side in-memory DuckDB. No query's result is one row per
event of stitch.events, except where the DuckDB path reads the same rows (channel_attribution's
purchases, an average-property KPI's own events: `aggregates.property_rows_sql`).

Each mart's frame is stored in the driver's DuckDB by the DuckDB path's own `write_frame` (so a later
mart reads it back with the same types) and written from there, through Arrow, as the Parquet layer
`<root>/marts/<table>/` (pipelines/spark/models.py: write_layer).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

import sqlglot
from sqlglot import exp
from sqlglot.tokens import TokenType

from models.catalog import PythonModel, load_python_models
from models.dialects import transpile
from models.marts.aggregates import lit

from .models import ordered, write_layer


def inline_parameters(sql: str, parameters: Iterable | None) -> str:
    """`sql` with each `?` placeholder (outside strings and comments) replaced by its parameter as a
    SQL literal (aggregates.lit), so the text can be translated for another engine."""
    params = list(parameters or [])
    if not params:
        return sql
    marks = [t for t in sqlglot.Dialect.get_or_raise("duckdb").tokenize(sql) if t.token_type == TokenType.PLACEHOLDER]
    if len(marks) != len(params):
        raise ValueError(f"{len(marks)} placeholders, {len(params)} parameters")
    out, pos = [], 0
    for token, value in zip(marks, params):
        out += [sql[pos : token.start], lit(value)]
        pos = token.end + 1
    return "".join(out) + sql[pos:]


def tables_read(sql: str) -> set[str]:
    """The schema-qualified tables a DuckDB statement reads (a bare name is a CTE; `create schema s`
    names no table)."""
    return {
        f"{t.db}.{t.name}"
        for tree in sqlglot.parse(sql, read="duckdb")
        for t in tree.find_all(exp.Table)
        if t.db and t.name
    }


class SparkResult:
    """A Spark query's result on the driver (an Arrow table), read as a DuckDB result is."""

    def __init__(self, local, arrow):
        self.local, self.arrow = local, arrow

    def __len__(self) -> int:
        return self.arrow.num_rows

    def df(self):
        return self.local.from_arrow(self.arrow).df()  # DuckDB's pandas conversion, as on the DuckDB path

    def fetchall(self) -> list[tuple]:
        return self.local.from_arrow(self.arrow).fetchall()

    def fetchone(self) -> tuple | None:
        rows = self.local.from_arrow(self.arrow).limit(1).fetchall()
        return rows[0] if rows else None


class SparkConnection:
    """The connection a Python mart's `build(con, plan)` reads through, on Spark (see the module doc).

    `queries` keeps every Spark SQL text run (the tests check its functions against Spark's)."""

    def __init__(self, spark, local=None):
        import duckdb

        self.spark = spark
        self.local = local if local is not None else duckdb.connect()
        self.local.execute("set TimeZone = 'UTC'")
        self.queries: list[str] = []

    def _local_tables(self) -> set[str]:
        rows = self.local.execute("select schema_name, table_name from duckdb_tables()").fetchall()
        return {f"{s}.{t}" for s, t in rows}

    def execute(self, sql: str, parameters=None):
        """Run `sql` (DuckDB dialect): on Spark if it reads a table the driver does not hold, else locally.
        A DuckDB cursor or a SparkResult (`.df()`, `.fetchone()`, `.fetchall()`)."""
        if not tables_read(sql) - self._local_tables():
            return self.local.execute(sql, parameters) if parameters else self.local.execute(sql)
        text = transpile(inline_parameters(sql, parameters), "spark", table="a Python mart's input", pretty=False)
        self.queries.append(text)
        return SparkResult(self.local, self.spark.sql(text).toArrow())  # the aggregate only, through Arrow

    def register(self, name: str, df) -> None:
        """A frame the mart made (an experiment's first exposures) as a table of both sides: the
        driver's DuckDB and a Spark temporary view, so a query joining it to the events runs on Spark."""
        import pyarrow as pa

        self.local.register(name, df)
        spark_frame(self.spark, pa.Table.from_pandas(df, preserve_index=False)).createOrReplaceTempView(name)

    def unregister(self, name: str) -> None:
        self.local.unregister(name)
        self.spark.catalog.dropTempView(name)

    def close(self) -> None:
        self.local.close()


def spark_frame(spark, arrow):
    """A Spark DataFrame of an Arrow table with DuckDB's column types: a TIMESTAMP (no time zone) stays
    one (TIMESTAMP_NTZ; Spark would read it as a local-time TIMESTAMP)."""
    import pyarrow as pa
    from pyspark.sql import functions as F

    df = spark.createDataFrame(arrow)
    for field in arrow.schema:
        if pa.types.is_timestamp(field.type) and field.type.tz is None:
            df = df.withColumn(field.name, F.col(field.name).cast("timestamp_ntz"))
    return df


def python_models() -> list[PythonModel]:
    """The Python marts, each after the marts it reads (their YAML's depends_on)."""
    return ordered(load_python_models())


def build_python_marts(
    spark, plan, root: str, con: SparkConnection | None = None, summaries: dict | None = None
) -> dict[str, int]:
    """Every Python mart built on Spark's aggregates and written as a Parquet layer under `root`
    (after `marts.build`'s SQL layers); {table: rows}. `summaries` (when given) receives each mart's
    `summary(df)`, the metadata its DuckDB asset reports."""
    from ..model_assets import keeps_parts, write_frame

    own = con is None
    con = con or SparkConnection(spark)
    out = {}
    try:
        for model in python_models():
            module = importlib.import_module(model.module)
            df = module.build(con, plan)
            con.local.execute(f"create schema if not exists {model.schema}")
            out[model.table] = write_frame(con.local, model.table, df)
            if summaries is not None:
                extra = module.summary(df) if hasattr(module, "summary") else {}
                if keeps_parts(module):  # every mart is built whole on Spark: no part kept
                    extra["kept_parts"] = {}
                summaries[model.table] = extra
            arrow = con.local.sql(f"select * from {model.table}").to_arrow_table()
            write_layer(spark, spark_frame(spark, arrow), model.table, root)
    finally:
        if own:
            con.close()
    return out
