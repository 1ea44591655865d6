"""Hand-built Segment events and shortcuts through the ingest → stitch → sessions engine.

Tests that check the engine's rules call the engine functions directly on a DuckDB file in
tmp_path (fast); the Dagster wiring itself is exercised with `dg.materialize` in test_ingest.py.
"""

from __future__ import annotations

import datetime as dt
import gzip
import itertools
from pathlib import Path

import orjson

from pipelines.ingest.load import PartitionResult, ingest_partition
from pipelines.stitch.identity import build_identity
from pipelines.warehouse import connect
from tracking_plan.loader import default_plan_dir, load_plan

from .warehouse import build_sessions

_ids = itertools.count(1)
BASE = dt.datetime(2026, 3, 2, 9, 0, 0)  # a Monday; every test day lies near it
DAY = BASE.date().isoformat()


def plan():
    return load_plan(default_plan_dir())


def iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def ev(
    type: str = "track",
    event: str | None = "Signed In",
    *,
    at: dt.datetime | None = None,
    user: str | None = None,
    anon: str | None = "anon-1",
    mid: str | None = None,
    props: dict | None = None,
    traits: dict | None = None,
    context: dict | None = None,
    sent_at: dt.datetime | None = None,
    received_at: dt.datetime | None = None,
    **extra,
) -> dict:
    """A valid event of the sample plan unless told otherwise (default: Signed In by password)."""
    at = at or BASE
    msg: dict = {
        "type": type,
        "messageId": mid or f"m-{next(_ids)}",
        "timestamp": iso(at),
        "receivedAt": iso(received_at or at),
        "context": context or {"library": {"name": "test"}},
    }
    if sent_at is not None:
        msg["sentAt"] = iso(sent_at)
    if type == "track":
        msg["event"] = event
        msg["properties"] = {"method": "password"} if props is None and event == "Signed In" else (props or {})
    elif type == "page":
        msg["properties"] = props if props is not None else {"path": "/"}
    elif type in ("identify", "group"):
        msg["traits"] = traits or {}
    if user is not None:
        msg["userId"] = user
    if anon is not None:
        msg["anonymousId"] = anon
    msg.update(extra)
    return msg


def write_lines(landing: Path, day: str, name: str, lines: list, gz: bool = False) -> Path:
    """Write events (dicts) or raw lines (str/bytes) as one file of partition `day`."""
    folder = Path(landing) / f"date={day}"
    folder.mkdir(parents=True, exist_ok=True)
    out = b""
    for line in lines:
        if isinstance(line, dict):
            line = orjson.dumps(line)
        elif isinstance(line, str):
            line = line.encode()
        out += line + b"\n"
    path = folder / name
    path.write_bytes(gzip.compress(out) if gz else out)
    return path


def ingest(warehouse: Path, landing: Path, day: str = DAY, p=None) -> PartitionResult:
    con = connect(warehouse)
    try:
        return ingest_partition(con, p or plan(), Path(landing), day)
    finally:
        con.close()


def stitch_and_sessions(warehouse: Path, p=None) -> dict:
    """Rebuild stitch.* and staging.sessions the way their assets do."""
    p = p or plan()
    con = connect(warehouse)
    try:
        stats = build_identity(con, p)
        build_sessions(con, p)
        return stats
    finally:
        con.close()


def query(warehouse: Path, sql: str, params=None) -> list[tuple]:
    con = connect(warehouse, read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def log_rows(warehouse: Path) -> list[tuple]:
    return query(
        warehouse,
        "select source_file, lines, loaded, quarantined, duplicates, consent_dropped, "
        "suppressed from ingest.ingestion_log order by all",
    )


def ingest_all(wh, landing: str, layout: str | None = None, only_changed: bool = False):
    """Ingest every partition of `landing` (a path or a bucket URL) into `wh`, or only those its
    manifest says changed; returns (days, results)."""
    from pipelines.ingest.load import changed_partitions, ingest_partitions
    from pipelines.warehouse import connect
    from tracking_plan.landing import scan

    con = connect(wh)
    try:
        entries = scan(landing, layout)
        days = (
            changed_partitions(con, entries) if only_changed else sorted({e.partition for e in entries if e.partition})
        )
        return days, ingest_partitions(con, plan(), landing, days, layout=layout, scan=entries)
    finally:
        con.close()


# A new deployment's first two days: anonymous traffic only, then that device's user logs in, signs up and buys
SIGNUP = {"signup_method": "email", "plan": "free", "workspace_id": "ws_x1"}
ORDER = {"order_id": "ord_x1", "revenue": 120.0, "currency": "EUR", "plan": "team", "billing_period": "monthly"}


def anonymous_day(landing: Path, day: str) -> None:
    at = dt.datetime.fromisoformat(day) + dt.timedelta(hours=9)
    write_lines(landing, day, "a.jsonl", [ev("page", None, anon="a-1", at=at, props={"path": "/"})])


def login_day(landing: Path, day: str) -> None:
    at = lambda h: dt.datetime.fromisoformat(day) + dt.timedelta(hours=h)
    write_lines(
        landing,
        day,
        "b.jsonl",
        [
            ev("identify", None, user="u-1", anon="a-1", at=at(9), traits={"plan": "free"}),
            ev(event="Account Created", user="u-1", anon="a-1", at=at(9.1), props=SIGNUP),
            ev(event="Order Completed", user="u-1", anon="a-1", at=at(10), props=ORDER),
        ],
    )


def untyped_columns(con) -> list[tuple]:
    """Columns of DuckDB type NULL (a table made from an empty frame): nothing can be cast to them."""
    return con.execute(
        "select table_schema || '.' || table_name || '.' || column_name from information_schema.columns "
        "where data_type in ('NULL', '\"NULL\"')"
    ).fetchall()
