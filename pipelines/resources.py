"""Resources: where the plan, landing zone and warehouse are. One function maps the environment to them."""

from __future__ import annotations

import os
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import PrivateAttr

from tracking_plan.loader import default_plan_dir
from tracking_plan.model import Plan

from . import memtrace, plan_cache
from .warehouse import MEMORY_LIMIT, compact_row_groups, connect, cursor


class Warehouse(dg.ConfigurableResource):
    """The DuckDB file; every connection gets the schemas, UTC and the keyed-hash function.

    A run (in-process executor: one resource for the whole run) opens the database once: each asset
    and check gets a cursor of that connection (its own transaction, UTC, keyed hash) instead of
    reopening the file, re-running the DDL and checkpointing on every close (~0.1 s each, 70 times
    in a run).

    With `publish` (the default: a run the Dagster UI, a schedule or `dg.materialize` launches) the
    run gets the guarantee `trackplan run` gives (pipelines.publish): it takes the run lock, writes
    into a copy, records itself in `ingest.run_log` and publishes the copy whole when it ends, so a
    run killed midway leaves the warehouse as the last published run left it. `trackplan run` does
    that itself and passes `publish=False`."""

    database: str
    # rebuild stitch and sessions from all of ingest.events instead of from what changed (`--full-refresh`)
    full_refresh: bool = False
    publish: bool = True
    _held: Any = PrivateAttr(default=None)
    _build: Any = PrivateAttr(default=None)
    _stack: Any = PrivateAttr(default=None)
    _trace: Any = PrivateAttr(default=None)

    @property
    def path(self) -> str:
        """The file this run writes: the build's copy while a publishing run is under way."""
        return str(self._build.path) if self._build is not None else self.database

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        stack = ExitStack()
        try:
            if self.publish:
                from .publish import building

                self._build = stack.enter_context(building(self.database))
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._held = connect(self.path)
            self._trace = memtrace.start(self._held, MEMORY_LIMIT)  # (benchmarks only: TRACKPLAN_MEMORY_TRACE)
        except BaseException:
            held, self._held = self._held, None
            if held is not None:
                held.close()
            stack.close()
            self._build = None
            raise
        self._stack = stack

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        held, self._held = self._held, None
        stack, self._stack = self._stack, None
        build, self._build = self._build, None
        trace, self._trace = self._trace, None
        try:
            if trace is not None:
                trace.stop()
            if held is not None:
                try:
                    compact_row_groups(held)  # (the close checkpoints the rest without merging)
                finally:
                    held.close()
            if build is not None:
                from .publish import publish_dagster_run

                publish_dagster_run(build, context)
        finally:
            if stack is not None:
                stack.close()  # the copy is removed unless published; the lock released

    @contextmanager
    def get_connection(self):
        if self._held is not None:
            con = cursor(self._held)
        else:  # used outside a run (a direct call, a test): a connection of its own
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
        return plan_cache.load(self.plan_dir)  # the parse `trackplan run` made up front, if it did


def resources_from_env(
    plan_dir: str | Path | None = None,
    landing: str | Path | None = None,
    warehouse: str | Path | None = None,
    layout: str | None = None,
    full_refresh: bool = False,
    publish: bool = True,
) -> dict:
    return {
        "warehouse": Warehouse(
            database=str(warehouse or os.environ.get("TRACKPLAN_WAREHOUSE", "warehouse.duckdb")),
            full_refresh=full_refresh,
            publish=publish,
        ),
        "tracking_plan": TrackingPlan(
            plan_dir=str(plan_dir or default_plan_dir()),
            landing_dir=str(landing or os.environ.get("TRACKPLAN_LANDING", "landing")),
            layout=layout or os.environ.get("TRACKPLAN_LAYOUT", ""),
        ),
    }
