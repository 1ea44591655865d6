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


def layers_connection(root: str, tables=("ingest.events",)):
    """An in-memory DuckDB with the Parquet layers under `root` as views of the warehouse's names and
    column types (JSON columns as JSON), for the checks' SQL."""
    import duckdb

    from schemas.ddl import DDL

    from ..warehouse import register_udfs
    from .models import layer_path

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
        cols = ", ".join(f'"{c}"::{t} as "{c}"' for c, t in types)
        con.execute(f"drop table {table}")
        con.execute(
            f"create view {table} as select {cols} from read_parquet('{path}/*/*.parquet', hive_partitioning = true, "
            "hive_types = {'partition_date': date})"
        )
    return con


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
    """The DuckDB engine's gates of ingest.events (quality/checks.py), over the Spark layer."""
    from quality_checks.schema_checks import run_schema_check
    from quality_checks.store import ERROR, CheckOutcome
    from schemas.pandera_models import table_specs
    from tracking_plan.quality_settings import settings_for

    from ..quality.checks import gates
    from ..quality.results import to_dagster

    plan = tracking_plan.load()
    try:
        con = layers_connection(spark_engine.root)
        try:
            outcomes = {o.check: o for o in gates(con, plan, "ingest.events")}
            spec = table_specs(plan).get("ingest.events")
            if spec is not None:
                outcomes["schema"] = run_schema_check(con, spec, settings_for(plan).pandera_sample_rows)
        finally:
            con.close()
    except Exception as exc:  # a blocking gate that could not run has not shown the table is good
        context.log.exception("checks of ingest.events could not run")
        outcomes = {
            k: CheckOutcome(
                k,
                "ingest.events",
                passed=False,
                severity=ERROR,
                metadata={"error": f"{type(exc).__name__}: {exc}", "crashed": True},
            )
            for k in [*GATES, "schema"]
        }
    for k in [*GATES, "schema"]:
        if k in outcomes:
            yield to_dagster(outcomes[k], asset_key=EVENTS)
        else:
            yield dg.AssetCheckResult(asset_key=EVENTS, check_name=k, passed=True, metadata={"rules": 0})


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
    from models.catalog import load_models, load_python_models

    from ..model_assets import model_key

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
        for m in load_models()
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
        for m in load_python_models()
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
    return [spark_ingest_checks]
