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
from .stitch.assets import stitch_identities


@cache  # built once per process (the models' SQL is parsed for lineage): `defs` and every run share them
def all_assets() -> list:
    return [ingest_events, stitch_identities, plan_definitions, *model_assets(), *quality_assets()]


@cache
def all_checks() -> list:
    return asset_checks()


defs = dg.Definitions(
    assets=all_assets(),
    asset_checks=all_checks(),
    jobs=[ingest_job],
    schedules=[daily_schedule],
    sensors=[landing_sensor],
    resources=resources_from_env(),
    executor=dg.in_process_executor,  # one DuckDB file: one writer at a time
)
