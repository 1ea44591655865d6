"""The one Dagster Definitions of trackplan: `dagster dev -w workspace.yaml` opens it."""

from __future__ import annotations

import dagster as dg

from .ingest.assets import ingest_events
from .resources import resources_from_env
from .schedules import daily_schedule, ingest_job, landing_sensor
from .sql_models import sql_model_assets
from .stitch.assets import stitch_identities


def _optional(module: str, attr: str) -> list:
    """Layers being built in parallel plug in here once their module exists."""
    import importlib

    try:
        return list(getattr(importlib.import_module(module), attr)())
    except ModuleNotFoundError:
        return []


def all_assets() -> list:
    return [ingest_events, stitch_identities, *sql_model_assets(), *_optional("pipelines.marts", "mart_assets"),
            *_optional("pipelines.quality.assets", "quality_assets")]


def all_checks() -> list:
    return _optional("pipelines.quality.checks", "asset_checks")


defs = dg.Definitions(
    assets=all_assets(),
    asset_checks=all_checks(),
    jobs=[ingest_job],
    schedules=[daily_schedule],
    sensors=[landing_sensor],
    resources=resources_from_env(),
    executor=dg.in_process_executor,  # one DuckDB file: one writer at a time
)
