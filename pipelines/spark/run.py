"""`trackplan run --engine spark`: the Spark-backed assets materialized through Dagster in-process,
with the run's days, progress and a summary read from the layers the run wrote."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table


class EngineUnavailable(RuntimeError):
    """The Spark engine cannot start here (no pyspark, no Java): the message says which."""

    user_error = True


def run_spark_pipeline(
    plan_dir: Path,
    landing: str,
    root: str,
    partition: str | None = None,
    master: str = "local[2]",
    conf: dict | None = None,
    console: Console | None = None,
    instance=None,
    dagster_home_of: Path | None = None,
    layout: str | None = None,
) -> bool:
    """Materialize the Spark engine's assets and checks for the landed days (or one); True if every
    asset built and no blocking check failed."""
    from tracking_plan.loader import PlanError, load_plan

    from ..warehouse import hash_salt
    from .session import unavailable

    console = console or Console(stderr=True)
    why = unavailable()
    if why:
        raise EngineUnavailable(f"--engine spark: {why}")
    try:
        load_plan(plan_dir)  # a broken plan stops here with file:line messages, not inside Dagster
    except PlanError as exc:
        for p in exc.problems:
            console.print(str(p), markup=False, highlight=False)
        return False
    hash_salt()

    from .. import progress
    from ..resources import TrackingPlan
    from ..runner import dagster_instance, materialize_days, refuse_held
    from . import swap
    from .assets import spark_assets, spark_checks
    from .engine import SparkEngine
    from .ingest import landing_entries, read_layer

    engine = SparkEngine(root=root, master=master, conf=conf or {})
    spark = engine.session()
    landed = sorted({e.partition for e in landing_entries(spark, landing, layout) if e.partition})
    if refuse_held(partition, console):
        return False
    days = [partition] if partition else landed
    if not days:
        console.print(f"no landing files under {landing}: nothing to ingest", markup=False, highlight=False)
        return False
    own = instance is None
    instance = instance or dagster_instance(dagster_home_of or Path("warehouse.duckdb"))
    assets, checks = spark_assets(), spark_checks()
    resources = {
        "spark_engine": engine,
        "tracking_plan": TrackingPlan(plan_dir=str(plan_dir), landing_dir=str(landing), layout=layout or ""),
    }
    progress.set_callback(None)
    try:
        # the engine resource holds the root's lock for the run (SparkEngine.setup_for_execution); a
        # forget holding it now is said here in one line, before Dagster starts
        with swap.root_lock(root, "run --engine spark"):
            pass
        result = materialize_days(assets, checks, resources, days, instance)
    finally:
        if own:
            instance.dispose()
    failed_checks = [
        (ev.asset_key.to_user_string(), ev.check_name, ev.severity.value)
        for ev in result.get_asset_check_evaluations()
        if not ev.passed
    ]
    for ev in result.all_events:
        if ev.event_type_value == "STEP_FAILURE":
            err = ev.event_specific_data.error
            while err is not None and err.cause is not None:
                err = err.cause
            msg = " ".join(err.message.split()) if err is not None and err.message.strip() else "failed"
            console.print(f"[red]failed: {ev.step_key}[/red]: {msg}", highlight=False)
    built = {ev.asset_key.to_user_string() for ev in result.get_asset_materialization_events()}
    if "ingest/events" in built:
        from pyspark.sql import functions as F

        log = read_layer(spark, root, "ingest.ingestion_log").filter(
            F.col("partition_date").isNull() | F.col("partition_date").between(days[0], days[-1])
        )
        sums = log.agg(
            *(F.coalesce(F.sum(c), F.lit(0)).alias(c) for c in ("lines", "loaded", "quarantined", "duplicates")),
            F.coalesce(F.sum("consent_dropped"), F.lit(0)).alias("consent_dropped"),
            F.count_if(F.col("status") == "skipped").alias("skipped"),
            F.count_if(F.col("status") == "read").alias("files"),
        ).collect()[0]
        t = Table(
            title=f"trackplan run on Spark {result.run_id[:8]}: {days[0]} .. {days[-1]} ({len(days)} days, "
            f"{sums['files']} files)",
            show_header=False,
        )
        for k in ("lines", "loaded", "quarantined", "duplicates", "consent_dropped", "skipped"):
            t.add_row(k.replace("_", " "), f"{sums[k]:,}")
        t.add_row("layers", root)
        t.add_row("built", ", ".join(sorted(built)))
        downstream = {"stitch/events", "staging/sessions"} - built
        if downstream:
            t.add_row("not built on Spark", "stitching, sessions and marts (pipelines/spark/stitch.py, marts.py)")
        t.add_row("failed checks", ", ".join(f"{a}:{c} ({s})" for a, c, s in failed_checks) or "none")
        console.print(t)
    blocking = [c for c in failed_checks if c[2] == "ERROR"]
    return bool(result.success) and not blocking
