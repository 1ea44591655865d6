"""The one sample-warehouse builder: a landing zone loaded as the daily runs would (tests and benchmarks).

Ingest every landed partition (validated in groups), stitch identities and, on request, build
staging.sessions from its SQL model: the assets' own functions, without the Dagster runner's
per-asset overhead. `timings` (a dict) receives each stage's seconds and counts, for benchmarks.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from models.catalog import load_models, set_plan_variables
from pipelines.ingest.load import ingest_partitions, landed_partitions
from pipelines.stitch.identity import build_identity
from pipelines.warehouse import DEMO_SALT

# what this builds from is generated sample data: PII is hashed with the public demo salt, as
# `trackplan demo` does, unless the caller set a salt of its own (the test suite's conftest does)
os.environ.setdefault("TRACKPLAN_HASH_SALT", DEMO_SALT)


def build_sessions(con, plan) -> int:
    """staging.sessions from models/staging/sessions.sql, as its asset runs it; its row count."""
    set_plan_variables(con, plan)
    model = next(m for m in load_models() if m.table == "staging.sessions")
    con.execute(f"create or replace table {model.table} as {model.sql}").fetchall()
    return con.execute("select count(*) from staging.sessions").fetchall()[0][0]


def load_landing(con, plan, landing: Path, sessions: bool = False, timings: dict | None = None) -> dict:
    """Ingest every landed partition, stitch identities, (sessions=True) build staging.sessions.

    Returns {"results": per-partition ingest results, "stitch": the stitch statistics}."""
    out = timings if timings is not None else {}
    landing = Path(landing)
    t = time.perf_counter()
    results = ingest_partitions(con, plan, landing, landed_partitions(landing))
    out["ingest_s"] = time.perf_counter() - t
    out["lines"] = sum(r.lines for r in results)
    out["loaded"] = sum(r.loaded for r in results)
    t = time.perf_counter()
    stitched = build_identity(con, plan)
    out["stitch_s"] = time.perf_counter() - t
    out["persons"] = stitched["persons"]
    if sessions:
        t = time.perf_counter()
        out["sessions"] = build_sessions(con, plan)
        out["sessions_s"] = time.perf_counter() - t
    return {"results": results, "stitch": stitched}
