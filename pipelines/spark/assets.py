"""The Spark-backed assets: the DuckDB assets' keys, partitions, checks and metadata, built on Spark.

`spark_ingest_events` materializes ingest.events, ingest.quarantine and ingest.ingestion_log
(pipelines/spark/ingest.py) as Parquet under the SparkEngine's root, for the run's daily partitions.
Its checks are the DuckDB asset's, by the same code: quality/checks.gates and the Pandera schema
check, run by DuckDB over the Parquet layer the asset wrote (a view named ingest.events), so a
check's rules, names and verdicts do not depend on the engine.
"""

import importlib
import importlib.util

import dagster as dg

from ..ingest.assets import EVENTS, ingest_results, ingest_specs, ingest_tally
from ..partitions import daily
from ..resources import TrackingPlan
from ..warehouse import hash_salt
from .engine import SparkEngine

GATES = ("grain_unique", "not_null", "enum", "range", "regex")


@dg.multi_asset(
    specs=ingest_specs("spark"),
    partitions_def=daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=False,
)
def spark_ingest_events(context: dg.AssetExecutionContext, spark_engine: SparkEngine, tracking_plan: TrackingPlan):
    """Validate every landed file on Spark (the one validator, per file) and replace the run's days of
    the ingest layers under the engine's root."""
    from .ingest import ingest_landing, read_layer

    hash_salt()  # no salt, no ingest (as on DuckDB)
    plan = tracking_plan.load()
    spark = spark_engine.session()
    keys = list(context.partition_keys)
    totals, on_done = ingest_tally(context, keys)

    ingest_landing(
        spark,
        plan,
        tracking_plan.landing_dir,
        spark_engine.root,
        partitions=keys,
        layout=tracking_plan.layout or None,
        on_done=on_done,
    )
    rows = {
        t: read_layer(spark, spark_engine.root, t).count()
        for t in ("ingest.events", "ingest.quarantine", "ingest.ingestion_log")
    }
    yield from ingest_results(plan, totals, rows)


def _parquet_of(path: str) -> str:
    """DuckDB's read_parquet of a layer directory: by day (hive partitions) or flat."""
    import glob

    if glob.glob(f"{path}/partition_date=*"):
        return f"read_parquet('{path}/*/*.parquet', hive_partitioning = true, hive_types = {{'partition_date': date}})"
    return f"read_parquet('{path}/*.parquet')"


def layers_connection(root: str, tables=("ingest.events",)):
    """An in-memory DuckDB with the Parquet layers under `root` as views of the warehouse's names and
    column types (a table of schemas/ddl.py with its DDL types, JSON columns as JSON; any other in
    the DuckDB path's column order), for the checks' SQL."""
    import duckdb

    from schemas.ddl import DDL

    from ..warehouse import register_udfs
    from .models import column_order, layer_path

    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute(DDL)
    register_udfs(con)
    for table in tables:
        schema, name = table.split(".")
        types = con.execute(
            "select column_name, data_type from information_schema.columns where table_schema = ? and table_name = ? "
            "order by ordinal_position",
            [schema, name],
        ).fetchall()
        path = layer_path(root, table).removeprefix("file:")
        if types:
            cols = ", ".join(f'"{c}"::{t} as "{c}"' for c, t in types)
            con.execute(f"drop table {table}")
        else:
            con.execute(f"create schema if not exists {schema}")
            order = column_order(table)
            cols = ", ".join(f'"{c}"' for c in order) if order else "*"
        con.execute(f"create view {table} as select {cols} from {_parquet_of(path)}")
    return con


def append_check_results(spark, root: str, outcomes, run_id: str | None) -> int:
    """Append `outcomes` to the quality.check_results layer under `root` (history: never replaced), as
    rows of the DuckDB table: quality_checks.store.append writes them into an in-memory DuckDB first,
    so columns, types, the metadata JSON and run_at are the same code's on both engines."""
    import duckdb

    from quality_checks.store import append

    from .models import layer_path, register
    from .python_marts import spark_frame

    if not outcomes:
        return 0
    con = duckdb.connect()
    try:
        append(con, list(outcomes), run_id=run_id)
        arrow = con.sql("select * replace (metadata::varchar as metadata) from quality.check_results").to_arrow_table()
    finally:
        con.close()
    path = layer_path(root, "quality.check_results")
    spark_frame(spark, arrow).write.mode("append").parquet(path)
    register(spark, "quality.check_results", path)
    return arrow.num_rows


def _run_checks(context, spark_engine: SparkEngine, plan, table_kinds: dict, layers) -> dict:
    """Every gate and Pandera check of `table_kinds` ({table: gate kinds}) over the Spark layers, by the
    DuckDB path's code; the outcomes appended to quality.check_results; {table: {check: outcome}}."""
    from quality_checks.schema_checks import run_schema_check
    from quality_checks.store import ERROR, CheckOutcome
    from schemas.pandera_models import table_specs
    from tracking_plan.quality_settings import settings_for

    from ..quality.assets import run_id, run_range
    from ..quality.checks import gates

    start, end = run_range(context)
    part = f"{start}..{end}" if start else None
    out = {}
    try:
        con = layers_connection(spark_engine.root, layers)
        try:
            specs = table_specs(plan)
            for table in table_kinds:
                outcomes = {o.check: o for o in gates(con, plan, table)}
                if table in specs:
                    outcomes["schema"] = run_schema_check(con, specs[table], settings_for(plan).pandera_sample_rows)
                for o in outcomes.values():
                    o.partition = part
                out[table] = outcomes
        finally:
            con.close()
        append_check_results(
            spark_engine.session(), spark_engine.root, [o for v in out.values() for o in v.values()], run_id(context)
        )
    except Exception as exc:  # a blocking gate that could not run has not shown the table is good
        context.log.exception(f"checks of {', '.join(table_kinds)} could not run")
        out = {
            table: {
                k: CheckOutcome(
                    k,
                    table,
                    passed=False,
                    severity=ERROR,
                    metadata={"error": f"{type(exc).__name__}: {exc}", "crashed": True},
                )
                for k in [*kinds, "schema"]
            }
            for table, kinds in table_kinds.items()
        }
    return out


def _check_results(table_kinds: dict, out: dict):
    from ..quality.results import to_dagster

    for table, kinds in table_kinds.items():
        key = dg.AssetKey(table.split("."))
        for k in [*kinds, "schema"]:
            if k in out.get(table, {}):
                yield to_dagster(out[table][k], asset_key=key)
            else:
                yield dg.AssetCheckResult(asset_key=key, check_name=k, passed=True, metadata={"rules": 0})


@dg.multi_asset_check(
    specs=[
        *(
            dg.AssetCheckSpec(k, asset=EVENTS, blocking=True, description=f"{k} rules of ingest.events (one SQL pass)")
            for k in GATES
        ),
        dg.AssetCheckSpec("schema", asset=EVENTS, blocking=True, description="Pandera schema of ingest.events"),
    ],
    name="ingest_events_gates",
    can_subset=False,
)
def spark_ingest_checks(context: dg.AssetCheckExecutionContext, spark_engine: SparkEngine, tracking_plan: TrackingPlan):
    """The DuckDB engine's gates of ingest.events (quality/checks.py), over the Spark layer; the results
    appended to the quality.check_results layer."""
    kinds = {"ingest.events": GATES}
    yield from _check_results(kinds, _run_checks(context, spark_engine, tracking_plan.load(), kinds, list(kinds)))


def downstream_gate_kinds() -> dict[str, tuple[str, ...]]:
    """{table: gate kinds} of the tables after ingest, as pipelines/quality/checks.asset_checks has them:
    stitch.events and stitch.persons, and every model (SQL or Python) whose YAML states a grain."""
    from models.catalog import all_models

    out = {
        "stitch.events": ("grain_unique", "not_null", "referential_integrity"),
        "stitch.persons": ("grain_unique", "not_null"),
    }
    out |= {m.table: ("grain_unique", "not_null") for m in all_models() if m.grain}
    return out


def spark_downstream_checks() -> dg.AssetChecksDefinition:
    """The gates and Pandera checks of the stitch and model layers (the DuckDB path's checks, same keys),
    in one op after the downstream asset: one DuckDB over the layers, one append to check_results."""
    table_kinds = downstream_gate_kinds()
    specs = [
        dg.AssetCheckSpec(k, asset=dg.AssetKey(t.split(".")), blocking=True, description=f"{k} rules of {t}")
        for t, kinds in table_kinds.items()
        for k in kinds
    ] + [
        dg.AssetCheckSpec(
            "schema", asset=dg.AssetKey(t.split(".")), blocking=True, description=f"Pandera schema of {t}"
        )
        for t in table_kinds
    ]

    @dg.multi_asset_check(specs=specs, name="spark_downstream_gates", can_subset=False)
    def _checks(context: dg.AssetCheckExecutionContext, spark_engine: SparkEngine, tracking_plan: TrackingPlan):
        layers = sorted(set(table_kinds) | {"stitch.persons"})
        yield from _check_results(
            table_kinds, _run_checks(context, spark_engine, tracking_plan.load(), table_kinds, layers)
        )

    return _checks


def spark_downstream_assets() -> list:
    """Identity stitching, sessions and the SQL marts on Spark, from pipelines/spark/marts.py (another
    change builds it): its own `spark_assets()` when it defines them, else one multi-asset around its
    `build(spark, plan, root)` with the DuckDB assets' keys (stitch.*, the SQL models' tables); none when
    the module is not there, so `trackplan run --engine spark` runs ingest and says what it did not build."""
    name = f"{__package__}.marts"
    if importlib.util.find_spec(name) is None:
        return []
    module = importlib.import_module(name)
    if hasattr(module, "spark_assets"):
        return list(module.spark_assets())
    if hasattr(module, "build"):
        return [_build_asset(module.build)]
    return []


def _build_asset(build) -> dg.AssetsDefinition:
    from models.catalog import load_models

    from ..model_assets import model_key
    from .models import ordered
    from .python_marts import python_models

    stitch = ["stitch.identity_graph", "stitch.persons", "stitch.events"]
    specs = [
        dg.AssetSpec(dg.AssetKey(t.split(".")), deps=[EVENTS], group_name="stitch", kinds={"spark"}, skippable=True)
        for t in stitch
    ]
    specs += [
        dg.AssetSpec(
            model_key(m),
            deps=[dg.AssetKey([s, t]) for s, t in m.upstream()],
            group_name=m.schema,
            kinds={"spark", "sql"},
            description=m.description,
            skippable=True,
        )
        for m in ordered(load_models())
    ]
    specs += [
        dg.AssetSpec(
            model_key(m),
            deps=[dg.AssetKey([s, t]) for s, t in m.upstream()],
            group_name=m.schema,
            kinds={"spark", "python"},
            description=m.description,
            skippable=True,
        )
        for m in python_models()  # in their dependency order: a multi-asset yields in that order
    ]

    @dg.multi_asset(specs=specs, can_subset=False, name="spark_stitch_sessions_marts")
    def _downstream(context: dg.AssetExecutionContext, spark_engine: SparkEngine, tracking_plan: TrackingPlan):
        from .ingest import _exists

        spark = spark_engine.session()
        out = build(spark, tracking_plan.load(), spark_engine.root)
        tables = dict(out.get("tables", {}))
        for spec in specs:
            table = ".".join(spec.key.path)
            if table not in tables and _exists(spark, spark_engine.layer(table)):
                tables[table] = spark.read.parquet(spark_engine.layer(table)).count()
            if table in tables:
                yield dg.MaterializeResult(asset_key=spec.key, metadata={"dagster/row_count": int(tables[table])})

    return _downstream


def spark_assets() -> list:
    """The assets the Spark engine builds: ingest here; identity stitching, sessions and the SQL marts
    come from pipelines/spark/stitch.py and marts.py when those modules are present (the hook)."""
    return [spark_ingest_events, *spark_downstream_assets()]


def spark_checks() -> list:
    """The checks of the Spark assets: ingest's gates, and the stitch and models' when they are built."""
    return [spark_ingest_checks, *([spark_downstream_checks()] if spark_downstream_assets() else [])]
