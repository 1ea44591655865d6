"""The Spark ingest as a Dagster Pipes process: what a Databricks job cluster runs when
pipelines/spark/databricks.py launches it (`spark_python_task.python_file`).

It reads the run's partitions from the Pipes context, runs pipelines.spark.ingest.ingest_landing on
the cluster's SparkSession (the active one: Databricks starts it), and reports the three ingest
assets' materializations with the metadata the local assets report, through DBFS (the transport
PipesDatabricksClient sets up). Arguments: --landing URI --root URI [--plan DIR] [--layout NAME].
"""

from __future__ import annotations

import argparse
import datetime as dt


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="trackplan-spark-pipes")
    p.add_argument("--landing", required=True, help="the landing zone: any Hadoop-compatible URI")
    p.add_argument("--root", required=True, help="where the Parquet layers are written")
    p.add_argument("--plan", default=None, help="the plan directory (default: the packaged sample plan)")
    p.add_argument("--layout", default=None)
    args, _ = p.parse_known_args(argv)  # Pipes may append its own bootstrap arguments
    return args


def days_of(start: str, end: str) -> list[str]:
    a, b = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    return [(a + dt.timedelta(days=i)).isoformat() for i in range((b - a).days + 1)]


def main(argv: list[str] | None = None) -> None:
    from dagster_pipes import PipesDbfsContextLoader, PipesDbfsMessageWriter, open_dagster_pipes

    from pipelines.spark.ingest import ingest_landing, read_layer
    from pipelines.spark.session import spark_session
    from tracking_plan.loader import default_plan_dir, load_plan

    args = parse_args(argv)
    with open_dagster_pipes(context_loader=PipesDbfsContextLoader(), message_writer=PipesDbfsMessageWriter()) as pipes:
        rng = pipes.partition_key_range
        days = days_of(rng.start, rng.end) if rng else None
        plan = load_plan(args.plan or default_plan_dir())
        spark = spark_session()
        results = ingest_landing(spark, plan, args.landing, args.root, partitions=days, layout=args.layout)
        totals = {
            k: sum(getattr(r, k) for r in results)
            for k in ("lines", "loaded", "quarantined", "duplicates", "consent_dropped", "suppressed", "skipped")
        }
        rows = {
            t: read_layer(spark, args.root, t).count()
            for t in ("ingest.events", "ingest.quarantine", "ingest.ingestion_log")
        }
        pipes.report_asset_materialization(
            asset_key="ingest/events",
            metadata={**totals, "plan_version": plan.version, "dagster/row_count": rows["ingest.events"]},
        )
        pipes.report_asset_materialization(
            asset_key="ingest/quarantine",
            metadata={"dagster/row_count": rows["ingest.quarantine"], "quarantined": totals["quarantined"]},
        )
        pipes.report_asset_materialization(
            asset_key="ingest/ingestion_log", metadata={"dagster/row_count": rows["ingest.ingestion_log"]}
        )


if __name__ == "__main__":
    main()
