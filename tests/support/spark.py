"""Shared by the Spark parity tests: the warehouse's SQL-model inputs as Parquet, the SQL models run
on Spark over them, and the comparison of every table with DuckDB's (columns, mapped types, rows)."""

from __future__ import annotations

import math
from pathlib import Path

from models.catalog import load_models
from pipelines.spark.models import layer_path, sql_inputs

# DuckDB's type of a column → the Spark SQL type the same column must have on Spark
TYPE_MAP = {
    "VARCHAR": "string",
    "BIGINT": "bigint",
    "INTEGER": "int",
    "DOUBLE": "double",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMP": "timestamp_ntz",
    "TIMESTAMP WITH TIME ZONE": "timestamp",
    "JSON": "string",
    '"NULL"': "void",  # a column of an empty Python mart frame (no values to type it by)
}

SQL_TABLES = [m.table for m in load_models()]


def export_inputs(con, root: Path) -> list[str]:
    """COPY every table the SQL models read (and no SQL model writes) to <root>/<schema>/<table>/."""
    tables = sql_inputs()
    for table in tables:
        path = Path(layer_path(str(root), table))
        path.mkdir(parents=True, exist_ok=True)
        con.execute(f"copy (select * from {table}) to '{path / 'part-0.parquet'}' (format parquet)")
    return tables


def export_events(con, root: Path) -> str:
    """COPY DuckDB's ingest.events to <root>/ingest/events/ as Parquet partitioned by day (the layer
    the Spark ingest writes): the input of the Spark stitch."""
    path = Path(layer_path(str(root), "ingest.events"))
    path.parent.mkdir(parents=True, exist_ok=True)
    con.execute(f"copy (select * from ingest.events) to '{path}' (format parquet, partition_by (partition_date))")
    return str(path)


def duckdb_types(con, table: str) -> dict[str, str]:
    schema, name = table.split(".")
    rows = con.execute(
        "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ? "
        "order by ordinal_position",
        [schema, name],
    ).fetchall()
    return dict(rows)


def _key(row: tuple) -> tuple:
    return tuple((v is None, "" if v is None else (round(v, 6) if isinstance(v, float) else v)) for v in row)


def _same(a, b, rel: float) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)
    return a == b


def differences(con, spark, table: str, rel: float = 1e-9) -> list[str]:
    """What differs between DuckDB's `table` and Spark's (empty when they are the same)."""
    out = []
    want_types = {c: TYPE_MAP.get(t, t) for c, t in duckdb_types(con, table).items()}
    sdf = spark.table(table)
    got_types = {f.name: f.dataType.simpleString() for f in sdf.schema.fields}
    if list(want_types) != list(got_types):
        return [f"{table}: columns {list(got_types)} on Spark, {list(want_types)} on DuckDB"]
    for c, want in want_types.items():
        if want != got_types[c]:
            out.append(f"{table}.{c}: {got_types[c]} on Spark, {want} on DuckDB")
    cols = list(want_types)
    ours = sorted(
        con.execute(f"select {', '.join(chr(34) + c + chr(34) for c in cols)} from {table}").fetchall(), key=_key
    )
    theirs = sorted((tuple(r) for r in sdf.collect()), key=_key)
    if len(ours) != len(theirs):
        out.append(f"{table}: {len(theirs)} rows on Spark, {len(ours)} on DuckDB")
        return out
    bad = 0
    for a, b in zip(ours, theirs, strict=True):
        for c, x, y in zip(cols, a, b, strict=True):
            if not _same(x, y, rel):
                bad += 1
                if bad <= 5:
                    out.append(f"{table}.{c}: {y!r} on Spark, {x!r} on DuckDB (row {a[:3]})")
    if bad > 5:
        out.append(f"{table}: {bad} differing values in all")
    return out


def build_sample(spark, tmp: Path) -> dict:
    """One generated sample (40 users) through both engines, for the sample-based parity tests of the
    stitch, the SQL models and the Python marts (built once per test session: see conftest's
    `spark_sample`). DuckDB: ingest → stitch → plan tables → SQL models (+ per-person parts) →
    every Python mart as its asset builds it. Spark, from DuckDB's ingest.events as day-partitioned
    Parquet: pipelines/spark/marts.py's build (stitch → plan tables → SQL models → per-person parts),
    then the Python marts through a SparkConnection that records every query and the size of every
    result the driver receives. Every table is compared here, while the Spark catalog still names
    this sample's layers; the tests read only the returned values (so they run in any order)."""
    import importlib

    from models.catalog import load_models, set_plan_variables
    from models.staging.plan_tables import write_plan_tables
    from pipelines.model_assets import write_frame
    from pipelines.spark.marts import build
    from pipelines.spark.models import ordered
    from pipelines.spark.python_marts import SparkConnection, build_python_marts, python_models
    from pipelines.stitch.person_marts import PERSON_PARTS, cache_table, split
    from pipelines.warehouse import connect
    from tracking_plan.loader import load_plan
    from trackplan.demo.generate import generate

    from .warehouse import load_landing

    plan = load_plan()
    generate(tmp / "landing", users=40, seed=5, bug_rate=0.0, plan=plan)
    root = tmp / "layers"
    con = connect(str(tmp / "w.duckdb"))
    try:
        duck_stitch = load_landing(con, plan, tmp / "landing")["stitch"]
        export_events(con, root)
        write_plan_tables(con, plan)
        set_plan_variables(con, plan)
        sql_tables = []
        for model in ordered(load_models()):
            con.execute(f"create or replace table {model.table} as {model.sql}")
            sql_tables.append(model.table)
            if model.table in PERSON_PARTS:
                person_sql, _ = split(model.sql, PERSON_PARTS[model.table], str(model.path))
                con.execute(f"create or replace table {cache_table(model.table)} as {person_sql}")
                sql_tables.append(cache_table(model.table))
        duck_python = {
            m.table: write_frame(con, m.table, importlib.import_module(m.module).build(con, plan))
            for m in python_models()
        }

        out = build(spark, plan, str(root), python_marts=False)
        sc = SparkConnection(spark)
        sizes: list[int] = []
        execute = sc.execute

        def counted(sql, parameters=None):  # the size of every result the driver receives from Spark
            before = len(sc.queries)
            rel = execute(sql, parameters)
            if len(sc.queries) > before:
                sizes.append(len(rel))
            return rel

        sc.execute = counted
        try:
            spark_python = build_python_marts(spark, plan, str(root), con=sc)
        finally:
            queries = list(sc.queries)
            sc.close()
        stitch_tables = ("stitch.identity_graph", "stitch.persons", "stitch.events")
        tables = [*stitch_tables, *sql_tables, *duck_python]
        return {
            "duck_stitch": duck_stitch,
            "spark_stitch": out["stitch"],
            "spark_tables": {**out["tables"], **spark_python},
            "sql_tables": sql_tables,
            "duck_python": duck_python,
            "spark_python": spark_python,
            "diffs": {t: differences(con, spark, t) for t in tables},
            "rows": {t: con.execute(f"select count(*) from {t}").fetchall()[0][0] for t in tables},
            "queries": queries,
            "sizes": sizes,
            "events": con.execute("select count(*) from stitch.events").fetchall()[0][0],
        }
    finally:
        con.close()
