"""The quality tables and the one result type every check returns.

Every check (row-level gate, Pandera schema, GX suite, anomaly family) returns a `CheckOutcome`;
`append` writes it to `quality.check_results` and `pipelines.quality.results.to_dagster` turns it
into an asset-check result, so the warehouse history and the Dagster UI always say the same thing.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

DDL = """
create schema if not exists quality;
create table if not exists quality.check_results (
    check_name varchar not null, asset varchar not null, "partition" varchar, passed boolean not null,
    severity varchar not null, observed double, expected_low double, expected_high double,
    metadata json, run_at timestamp not null, run_id varchar
);
create table if not exists quality.anomalies (
    day date not null, event_name varchar, metric varchar not null, property varchar, dimension varchar,
    observed double, expected double, expected_low double, expected_high double, score double,
    direction varchar, detector varchar not null, severity varchar not null, message varchar
);
"""

ERROR, WARN = "ERROR", "WARN"


@dataclass
class CheckOutcome:
    """One check's verdict: what failed, how much, against which threshold, with samples."""

    check: str
    asset: str  # "schema.table"
    passed: bool
    severity: str = ERROR
    observed: float | None = None  # e.g. the failing share
    expected_low: float | None = None
    expected_high: float | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    partition: str | None = None

    @property
    def blocking(self) -> bool:
        return self.severity == ERROR


def ensure_tables(con) -> None:
    con.execute(DDL)


def _jsonable(v):
    if isinstance(v, (dt.date, dt.datetime)):
        return v.isoformat()
    if hasattr(v, "item"):  # numpy scalars
        return v.item()
    return str(v)


def append(con, outcomes: list[CheckOutcome], run_id: str | None = None) -> None:
    """Append results to quality.check_results (history: never replaced)."""
    if not outcomes:
        return
    ensure_tables(con)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = [
        (
            o.check,
            o.asset,
            o.partition,
            bool(o.passed),
            o.severity,
            _num(o.observed),
            _num(o.expected_low),
            _num(o.expected_high),
            json.dumps(o.metadata, default=_jsonable),
            now,
            run_id,
        )
        for o in outcomes
    ]
    con.executemany("insert into quality.check_results values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)


def _num(v):
    return None if v is None else float(v)
