"""The Spark-backed assets: the DuckDB assets' keys, partitions, checks and metadata, built on Spark.

`spark_ingest_events` materializes ingest.events, ingest.quarantine and ingest.ingestion_log
(pipelines/spark/ingest.py) as Parquet under the SparkEngine's root, for the run's daily partitions.
Its checks are the DuckDB asset's, by the same code: quality/checks.gates and the Pandera schema
check, run by DuckDB over the Parquet layer the asset wrote (a view named ingest.events), so a
check's rules, names and verdicts do not depend on the engine. After it: stitching, the plan tables,
sessions and the marts (one multi-asset around pipelines/spark/marts.build, with the DuckDB assets'
specs), then the quality layer (pipelines/spark/quality.py: daily_metrics, anomalies, check_results,
the GX suite and the anomaly families). What the DuckDB Definitions have and these do not is listed
in NOT_ON_SPARK with why (empty today); tests/test_spark_quality.py holds the two to that list.
"""

import importlib
import importlib.util

import dagster as dg

from models.staging.plan_tables import SCHEMAS

from ..ingest.assets import EVENTS, ingest_results, ingest_specs, ingest_tally
from ..model_assets import _metadata_value
from ..partitions import daily
from ..resources import TrackingPlan
from ..warehouse import hash_salt
from .engine import SparkEngine

PLAN_TABLES = set(SCHEMAS)
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
    totals, on_done, again = ingest_tally(context, keys)

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
    yield from ingest_results(plan, totals, rows, again)


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
    """One multi-asset around `build(spark, plan, root)`: the DuckDB stitch, plan-table and model assets'
    specs (keys, deps, descriptions, grain/column/SQL metadata; kind `spark`) and, per table, the
    metadata keys the DuckDB asset reports (row counts, stitch statistics, plan version, lineage, a
    Python mart's summary)."""
    from models.catalog import load_models

    from ..lineage import dagster_metadata
    from ..model_assets import model_asset, python_model_asset
    from ..plan_tables import plan_definitions
    from ..stitch.assets import stitch_identities
    from .models import ordered
    from .python_marts import python_models

    stitch_specs = [s.replace_attributes(skippable=True) for s in spark_specs(stitch_identities)]
    plan_specs = [s.replace_attributes(skippable=True) for s in spark_specs(plan_definitions)]
    sql = {m.table: m for m in load_models()}
    # in their dependency order: a multi-asset yields in that order
    models = [*ordered(sql.values()), *python_models()]
    model_specs = [
        s.replace_attributes(skippable=True)
        for m in models
        for s in spark_specs(model_asset(m) if m.table in sql else python_model_asset(m))
    ]
    specs = [*stitch_specs, *plan_specs, *model_specs]

    @dg.multi_asset(specs=specs, can_subset=False, name="spark_stitch_sessions_marts")
    def _downstream(context: dg.AssetExecutionContext, spark_engine: SparkEngine, tracking_plan: TrackingPlan):
        from .ingest import _exists

        spark = spark_engine.session()
        plan = tracking_plan.load()
        out = build(spark, plan, spark_engine.root)
        tables = dict(out.get("tables", {}))
        stats = out.get("stitch") or {}
        summaries = out.get("summaries") or {}
        for spec in specs:
            table = ".".join(spec.key.path)
            if table not in tables and _exists(spark, spark_engine.layer(table)):
                tables[table] = spark.read.parquet(spark_engine.layer(table)).count()
            if table not in tables:
                continue
            meta = {"dagster/row_count": int(tables[table])}
            if table == "stitch.identity_graph" and "rejected_links" in stats:
                meta["rejected_links"] = int(stats["rejected_links"])
            elif table == "stitch.persons" and "persons" in stats:
                meta["persons"] = int(stats["persons"])
            elif table == "stitch.events":
                meta["mode"] = "full"  # every layer is rebuilt whole on Spark (pipelines/spark/marts.py)
            elif spec.group_name == "staging" and table.split(".")[1] in PLAN_TABLES:
                meta["plan_version"] = plan.header.version
            elif table in sql:
                meta |= dagster_metadata(table)
            elif table in summaries:
                meta |= {k: _metadata_value(v) for k, v in summaries[table].items()}
            yield dg.MaterializeResult(asset_key=spec.key, metadata=meta)

    return _downstream


# ---------------------------------------------------------------- the quality layer on Spark


def spark_specs(duckdb_asset: dg.AssetsDefinition) -> list[dg.AssetSpec]:
    """The DuckDB asset's specs (key, deps, group, description, grain and column metadata) with the
    kind `spark` for `duckdb`: one description of each table, whichever engine builds it."""
    return [s.replace_attributes(kinds={"spark", *(s.kinds - {"duckdb"})}) for s in duckdb_asset.specs]


def _quality_assets() -> list[dg.AssetsDefinition]:
    from ..quality.assets import anomalies, check_results, daily_metrics

    @dg.multi_asset(specs=spark_specs(daily_metrics), name="spark_daily_metrics")
    def spark_daily_metrics(context: dg.AssetExecutionContext, spark_engine: SparkEngine, tracking_plan: TrackingPlan):
        """quality.daily_metrics as aggregate SQL on Spark (pipelines/spark/quality.py)."""
        from .quality import build_daily_metrics

        rows = build_daily_metrics(spark_engine.session(), tracking_plan.load(), spark_engine.root)
        return dg.MaterializeResult(metadata={"dagster/row_count": rows})

    @dg.multi_asset(specs=spark_specs(anomalies), name="spark_anomalies")
    def spark_anomalies(context: dg.AssetExecutionContext, spark_engine: SparkEngine, tracking_plan: TrackingPlan):
        """The DuckDB path's detectors over the metrics Spark computed; their outcomes appended."""
        from ..quality.assets import anomalies_metadata, anomaly_outcomes, run_id, run_range
        from .quality import build_anomalies

        spark = spark_engine.session()
        scored: list = []
        found = build_anomalies(spark, tracking_plan.load(), spark_engine.root, scored)
        append_check_results(spark, spark_engine.root, anomaly_outcomes(found, *run_range(context)), run_id(context))
        return dg.MaterializeResult(metadata=anomalies_metadata(found, scored))

    @dg.multi_asset(specs=spark_specs(check_results), name="spark_check_results")
    def spark_check_results(context: dg.AssetExecutionContext, spark_engine: SparkEngine):
        """The check history layer every Spark check appends to (append_check_results)."""
        from .quality import check_results_counts

        n, failed = check_results_counts(spark_engine.session(), spark_engine.root)
        return dg.MaterializeResult(metadata={"dagster/row_count": n, "failed_total": failed})

    return [spark_daily_metrics, spark_anomalies, spark_check_results]


def gx_docs_dir(root: str) -> str | None:
    """Where the GX Data Docs of a Spark run go: beside a local root's layers (`<root>/../gx_docs`, as
    DuckDB's beside the warehouse file); None (no Data Docs, said in the check's metadata) for a
    remote root, since GX's file context writes to a local folder."""
    import os
    from urllib.parse import urlparse

    parsed = urlparse(root)
    if parsed.scheme not in ("", "file"):
        return None
    local = parsed.path if parsed.scheme == "file" else root
    return os.path.join(os.path.dirname(os.path.abspath(local.rstrip("/"))), "gx_docs")


def _quality_checks() -> list:
    from ..quality.assets import ANOMALIES, DAILY_METRICS, anomaly_family_specs, anomaly_outcomes, run_id, run_range
    from ..quality.results import to_dagster

    @dg.asset_check(
        asset=DAILY_METRICS,
        name="gx_daily_metrics",
        blocking=False,
        description="Great Expectations suite on quality.daily_metrics (the per-day aggregates Spark computed).",
    )
    def spark_gx_daily_metrics(context: dg.AssetCheckExecutionContext, spark_engine: SparkEngine):
        from quality_checks.gx_suite import run_gx_suite

        from .quality import metrics_frame

        spark = spark_engine.session()
        docs = gx_docs_dir(spark_engine.root)
        o = run_gx_suite(metrics_frame(spark, spark_engine.root), docs)
        if docs is None:
            o.metadata["data_docs"] = f"not written: {spark_engine.root} is not a local folder"
        start, end = run_range(context)
        o.partition = f"{start}..{end}" if start else None
        append_check_results(spark, spark_engine.root, [o], run_id(context))
        return to_dagster(o)

    @dg.multi_asset_check(
        specs=anomaly_family_specs(),
        name="anomaly_families",
        can_subset=False,
    )
    def spark_anomaly_checks(context: dg.AssetCheckExecutionContext, spark_engine: SparkEngine):
        from .quality import anomalies_frame

        found = anomalies_frame(spark_engine.session(), spark_engine.root)
        for o in anomaly_outcomes(found, *run_range(context)):
            yield to_dagster(o, asset_key=ANOMALIES)

    return [spark_gx_daily_metrics, spark_anomaly_checks]


# what the DuckDB engine's Definitions have and the Spark engine's do not, each with why: empty, as
# every asset and check is built on Spark (tests/test_spark_quality.py asserts this is exactly the
# difference of the two Definitions' asset keys, partitions and check keys)
NOT_ON_SPARK: dict[str, str] = {}


def spark_assets() -> list:
    """The assets the Spark engine builds: ingest here; identity stitching, the plan tables, sessions and
    the marts from pipelines/spark/marts.py when it is present (the hook); the quality layer."""
    return [spark_ingest_events, *spark_downstream_assets(), *_quality_assets()]


def spark_checks() -> list:
    """The checks of the Spark assets: ingest's gates, the stitch and models' when they are built, the
    GX suite and the anomaly families."""
    downstream = [spark_downstream_checks()] if spark_downstream_assets() else []
    return [spark_ingest_checks, *downstream, *_quality_checks()]
