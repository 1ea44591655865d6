"""Resources: where the plan, landing zone and warehouse are. One function maps the environment to them."""

from __future__ import annotations

import os
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import dagster as dg

from tracking_plan.loader import default_plan_dir, load_plan
from tracking_plan.model import Plan

from .warehouse import connect


class Warehouse(dg.ConfigurableResource):
    """The DuckDB file; every connection gets the schemas, UTC and the keyed-hash function."""

    database: str
    # rebuild stitch and sessions from all of ingest.events instead of from what changed (`--full-refresh`)
    full_refresh: bool = False

    @contextmanager
    def get_connection(self):
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        con = connect(self.database)
        try:
            yield con
        finally:
            con.close()


class TrackingPlan(dg.ConfigurableResource):
    """The plan directory and the landing zone the ingestion reads."""

    plan_dir: str
    landing_dir: str  # a folder or an object-store URL (s3://bucket/prefix)
    layout: str = ""  # trackplan | segment-s3 | snowplow-enriched; empty: detected

    def load(self) -> Plan:
        return _load(self.plan_dir, _mtime(self.plan_dir))


def _mtime(plan_dir: str) -> float:
    return max((p.stat().st_mtime for p in Path(plan_dir).rglob("*.y*ml")), default=0.0)


@lru_cache(maxsize=8)
def _load(plan_dir: str, _stamp: float) -> Plan:
    return load_plan(plan_dir)


def resources_from_env(
    plan_dir: str | Path | None = None,
    landing: str | Path | None = None,
    warehouse: str | Path | None = None,
    layout: str | None = None,
    full_refresh: bool = False,
) -> dict:
    return {
        "warehouse": Warehouse(
            database=str(warehouse or os.environ.get("TRACKPLAN_WAREHOUSE", "warehouse.duckdb")),
            full_refresh=full_refresh,
        ),
        "tracking_plan": TrackingPlan(
            plan_dir=str(plan_dir or default_plan_dir()),
            landing_dir=str(landing or os.environ.get("TRACKPLAN_LANDING", "landing")),
            layout=layout or os.environ.get("TRACKPLAN_LAYOUT", ""),
        ),
    }
