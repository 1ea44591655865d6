"""The narrow per-event columns the statistical marts' aggregates read, and a hand-built frame of them.

The marts never load these rows into pandas from a warehouse: ``aggregates.narrow_events_sql``
selects them from stitch.events inside each aggregate query. A hand-built frame with these columns
(tests, ``benchmarks/calibration.py``) is ``normalize``d and registered in DuckDB so the same SQL
reads it.

Columns: ``person_id, event_name, timestamp, region, has_user, experiment_id, variant,
company_size, seats, plan`` (``plan`` is the identify/group trait, Segment's ``traits.plan``) plus ``prop:<name>`` (numeric) for every KPI ``property`` and one column per
initiative ``segment_field`` (named by the field path, e.g. ``context.location.region``).
"""

from __future__ import annotations

import pandas as pd

from tracking_plan.model import Plan

BASE_COLUMNS = [
    "person_id",
    "event_name",
    "timestamp",
    "region",
    "has_user",
    "experiment_id",
    "variant",
    "company_size",
    "seats",
    "plan",
]


def prop_column(name: str) -> str:
    return f"prop:{name}"


def property_names(plan: Plan) -> list[str]:
    names = {k.property for k in plan.metrics.kpis if k.property}
    return sorted(names | {"revenue"})


def where_column(key: str) -> str:
    return f"where:{key}"


def treatment_where(initiative) -> dict:
    """The evaluation's property filter on its treatment event (``treatment_where``), if the plan has one."""
    return dict(getattr(initiative.evaluation, "treatment_where", None) or {})


def where_keys(plan: Plan) -> list[str]:
    return sorted({k for i in plan.metrics.initiatives for k in treatment_where(i)})


def segment_fields(plan: Plan) -> list[str]:
    return sorted({i.evaluation.segment_field for i in plan.metrics.initiatives if i.evaluation.segment_field})


def normalize(events: pd.DataFrame, plan: Plan | None = None) -> pd.DataFrame:
    """Fill optional columns a hand-built frame may omit, and sort by person and time."""
    out = events.copy()
    for c in BASE_COLUMNS:
        if c not in out:
            out[c] = True if c == "has_user" else None
    if plan is not None:
        for p in property_names(plan):
            if prop_column(p) not in out:
                out[prop_column(p)] = float("nan")
        for f in segment_fields(plan):
            if f not in out:
                out[f] = out["region"]
        for k in where_keys(plan):
            if where_column(k) not in out:
                out[where_column(k)] = None
    out["timestamp"] = pd.to_datetime(out["timestamp"])
    return out.sort_values(["person_id", "timestamp"], kind="stable", ignore_index=True)
