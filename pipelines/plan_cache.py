"""The tracking plan, parsed once per process for as long as its files are unchanged.

Parsing the sample plan's YAML takes ~0.3-0.5 CPU-s; `trackplan run` reads the plan up front (a broken
plan stops it with file:line messages before Dagster starts) and every asset reads it again through
the TrackingPlan resource: both get the same parse here. Light on purpose (no Dagster)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from tracking_plan.loader import load_plan
from tracking_plan.model import Plan


def stamp(plan_dir: str | Path) -> tuple[int, int, int]:
    """What tells us the plan's files changed: their count, total size and latest mtime (ns)."""
    stats = [p.stat() for p in Path(plan_dir).rglob("*.y*ml")]
    return len(stats), sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)


def load(plan_dir: str | Path) -> Plan:
    """load_plan(plan_dir), parsed again only when the files changed (a PlanError is never kept)."""
    return _load(str(plan_dir), stamp(plan_dir))


@lru_cache(maxsize=8)
def _load(plan_dir: str, _stamp: tuple) -> Plan:
    return load_plan(plan_dir)
