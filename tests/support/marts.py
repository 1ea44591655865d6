"""Shared by the mart tests: a warehouse from hand-built event rows, the plan tables, and one SQL model run."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import yaml

from models.staging.plan_tables import write_plan_tables
from pipelines.model_assets import load_models, set_plan_variables
from pipelines.stitch.identity import build_identity
from pipelines.warehouse import connect
from tracking_plan.loader import load_plan
from tracking_plan.model import Metrics

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "marts"
PEER_DATA = Path(__file__).resolve().parents[3] / "shared" / "peer-data"
MODELS = {m.table: m for m in load_models()}

_TYPE_OF = {"Page Viewed": "page", "User Identified": "identify", "Company Grouped": "group"}


def plan_with(metrics: dict | None = None, plan_dir: Path | None = None):
    """The sample plan, with metrics.yaml keys replaced by `metrics` (e.g. a test's own funnels)."""
    plan = load_plan(plan_dir) if plan_dir else load_plan()
    if metrics:
        merged = {**plan.metrics.model_dump(), **metrics}
        plan = plan.model_copy(update={"metrics": Metrics.model_validate(merged)})
    return plan


def warehouse(path: str | Path = ":memory:"):
    return connect(str(path))


def load_events(con, rows: list[dict], stitch: bool = False, plan=None) -> None:
    """Insert event rows into ingest.events; then stitch.events as is (person_id given) or via stitching.

    A row names `event` (the plan event name) and `timestamp` (ISO, UTC) and either `person_id`, or
    `user_id`/`anonymous_id` when `stitch=True` runs the real identity resolution.
    """
    con.execute("delete from ingest.events")
    for i, r in enumerate(rows):
        name = r["event"]
        typ = r.get("type") or _TYPE_OF.get(name, "track")
        ts = datetime.fromisoformat(str(r["timestamp"])).replace(tzinfo=None)
        con.execute(
            """insert into ingest.events (message_id, type, event_name, event, anonymous_id, user_id, "timestamp",
                   received_at, properties, utm_source, utm_medium, utm_campaign, page_path, partition_date,
                   plan_version, source_file, line_no, loaded_at)
               values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '1.0.0', 'test.jsonl', ?, ?)""",
            [
                r.get("message_id") or f"m{i:06d}",
                typ,
                name,
                name if typ == "track" else None,
                r.get("anonymous_id"),
                r.get("user_id") or r.get("person_id"),
                ts,
                ts,
                json.dumps(r.get("properties") or {}),
                r.get("utm_source"),
                r.get("utm_medium"),
                r.get("utm_campaign"),
                r.get("page_path"),
                ts.date(),
                i + 1,
                ts,
            ],
        )
    if stitch:
        build_identity(con, plan or load_plan())
    else:
        con.execute(
            "create or replace table stitch.events as select user_id as person_id, * exclude (person_id) from ingest.events"
        )


def run_model(con, table: str, plan=None) -> list[dict]:
    """Materialize one SQL model exactly as its Dagster asset does; return its rows as dicts."""
    model = MODELS[table]
    set_plan_variables(con, plan or load_plan())
    con.execute(f"create or replace table {table} as {model.sql}").fetchall()
    return rows_of(con, f"select * from {table}")


def rows_of(con, sql: str, params=None) -> list[dict]:
    cur = con.execute(sql, params or [])
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, row)) for row in cur.fetchall()]


def setup(con, events: list[dict], metrics: dict | None = None, costs: list[dict] | None = None, stitch=False):
    """Plan tables (sample plan with `metrics` overrides), events, and staging.sessions: the marts' inputs."""
    plan = plan_with(metrics)
    write_plan_tables(con, plan)
    con.execute("delete from staging.marketing_costs")  # only the test's own spend, not the sample file's
    if costs:
        con.executemany(
            "insert into staging.marketing_costs values (?, ?, ?)",
            [[c["month"], c["channel"], c["spend"]] for c in costs],
        )
    load_events(con, events, stitch=stitch, plan=plan)
    run_model(con, "staging.sessions", plan)
    return plan


def load_fixture(name: str) -> dict:
    return yaml.safe_load((FIXTURES / name).read_text())
