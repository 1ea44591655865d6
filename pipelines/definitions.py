"""The one Dagster Definitions of trackplan: `dagster dev -w workspace.yaml` opens it."""

from __future__ import annotations

from functools import cache

import dagster as dg

from .ingest.assets import ingest_events
from .model_assets import model_assets
from .plan_tables import plan_definitions
from .quality.assets import quality_assets
from .quality.checks import asset_checks
from .resources import resources_from_env
from .schedules import daily_schedule, ingest_job, landing_sensor
from .spark.assets import spark_assets, spark_checks
from .spark.engine import engine_from_env, spark_engine_from_env
from .stitch.assets import stitch_identities

# TRACKPLAN_ENGINE=spark: the Spark-backed assets (the same keys, partitions and checks) instead
ENGINE = engine_from_env()


@cache  # built once per process (the models' SQL is parsed for lineage): `defs` and every run share them
def all_assets() -> list:
    if ENGINE == "spark":
        return spark_assets()
    return [ingest_events, stitch_identities, plan_definitions, *model_assets(), *quality_assets()]


@cache
def all_checks() -> list:
    if ENGINE == "spark":
        return spark_checks()
    return asset_checks()


defs = dg.Definitions(
    assets=all_assets(),
    asset_checks=all_checks(),
    jobs=[ingest_job],
    schedules=[daily_schedule],
    sensors=[landing_sensor],
    resources=resources_from_env() | ({"spark_engine": spark_engine_from_env()} if ENGINE == "spark" else {}),
    executor=dg.in_process_executor,  # one DuckDB file: one writer at a time
)
