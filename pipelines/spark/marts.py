"""From ingest.events to the SQL marts on Spark: stitch, the plan tables, staging.sessions and every
SQL mart, each written as a Parquet layer under one root (`<root>/<schema>/<table>/`).

The order is the DuckDB path's: stitch (pipelines/spark/stitch.py) → staging.plan_* and
staging.marketing_costs (the plan's own tables, written by models.staging.plan_tables into an
in-memory DuckDB, as the DuckDB path writes them, then handed to Spark: a few hundred rows) →
the SQL models in dependency order (pipelines/spark/models.py: staging.sessions, then the marts,
from the SQL models.dialects writes). marts.funnel_conversion__persons, which the DuckDB path keeps
per person (pipelines/stitch/person_marts.py), is written from the same cut of the model's SQL.

Every layer is rebuilt whole: the incremental bookkeeping of the DuckDB path (stitch.changes,
stitch.build_state) is not kept on Spark, where a full rebuild of a day's layers is the unit of
work. The Python marts follow (pipelines/spark/python_marts.py): their SQL aggregates run on Spark,
the statistics on the driver over the aggregated frames.
"""

from __future__ import annotations

from models.catalog import load_models, plan_variables
from models.dialects import transpile
from tracking_plan.model import Plan

from ..stitch.person_marts import PERSON_PARTS, cache_table, split
from .models import run_models, write_layer
from .python_marts import build_python_marts
from .stitch import stitch

PLAN_TABLES_SCHEMA = "staging"


def write_plan_tables(spark, plan: Plan, root: str) -> dict[str, int]:
    """staging.plan_* and staging.marketing_costs as Parquet layers under `root`; {table: rows}."""
    import duckdb

    from models.staging.plan_tables import write_plan_tables as write_duckdb
    from schemas.ddl import DDL

    con = duckdb.connect()
    try:
        con.execute(DDL)
        counts = write_duckdb(con, plan)
        out = {}
        for name in counts:
            table = f"{PLAN_TABLES_SCHEMA}.{name}"
            arrow = con.sql(f"select * from {table}").to_arrow_table()
            write_layer(spark, spark.createDataFrame(arrow), table, root)
            out[table] = arrow.num_rows
        return out
    finally:
        con.close()


def write_person_parts(spark, root: str, variables: dict) -> dict[str, int]:
    """The per-person tables the DuckDB path keeps (PERSON_PARTS), from the same cut of each mart's SQL."""
    models = {m.table: m for m in load_models()}
    out = {}
    for table, cte in PERSON_PARTS.items():
        model = models[table]
        person_sql, _ = split(model.sql, cte, str(model.path))
        cache = cache_table(table)
        write_layer(spark, spark.sql(transpile(person_sql, "spark", cache, variables, pretty=False)), cache, root)
        out[cache] = spark.table(cache).count()
    return out


def build(spark, plan: Plan, root: str, python_marts: bool = True) -> dict:
    """Every layer from `<root>/ingest/events/` to the SQL and Python marts; {"stitch": stats, "tables": {table: rows},
    "summaries": {Python mart: its summary(df)}}."""
    stats = stitch(spark, plan, root)
    variables = plan_variables(plan)
    tables = write_plan_tables(spark, plan, root)
    tables |= run_models(spark, root, variables)
    tables |= write_person_parts(spark, root, variables)
    summaries: dict = {}
    if python_marts:
        tables |= build_python_marts(spark, plan, root, summaries=summaries)
    return {"stitch": stats, "tables": tables, "summaries": summaries}
