"""The narrow per-event frame the statistical marts work on, read once from stitch.events.

One row per stitched event with the few fields the experiment, initiative, attribution and KPI
logic need, JSON already unpacked, so that the pure ``compute_*`` functions take a plain DataFrame
(tests build one by hand) and never parse JSON per row in Python.

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


def _field_sql(path: str) -> str:
    """SQL for an event field path: a typed column when ingest already has one, else JSON."""
    if path in ("context.location.region", "region"):
        return "region"
    head, _, rest = path.partition(".")
    if head in ("context", "properties", "traits") and rest:
        return f"json_extract_string({head}, '$.{rest}')"
    return f"json_extract_string(properties, '$.{path}')"


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


def load_events(con, plan: Plan) -> pd.DataFrame:
    """Read the narrow event frame from ``stitch.events`` (events without a person are skipped)."""
    props = ", ".join(
        f"try_cast(json_extract_string(properties, '$.{p}') as double) as \"{prop_column(p)}\""
        for p in property_names(plan)
    )
    segs = "".join(f', {_field_sql(f)} as "{f}"' for f in segment_fields(plan) if _field_sql(f) != "region")
    segs += "".join(f", json_extract_string(properties, '$.{k}') as \"{where_column(k)}\"" for k in where_keys(plan))
    sql = f"""
select person_id, event_name, "timestamp", region, user_id is not null as has_user,
       json_extract_string(properties, '$.experiment_id') as experiment_id,
       coalesce(json_extract_string(properties, '$.variation_id'),
                json_extract_string(properties, '$.variant')) as variant,
       coalesce(json_extract_string(traits, '$.company_size'),
                json_extract_string(properties, '$.company_size')) as company_size,
       coalesce(try_cast(json_extract_string(properties, '$.seats') as double),
                try_cast(json_extract_string(traits, '$.seats') as double)) as seats,
       json_extract_string(traits, '$.plan') as plan,
       {props}{segs}
from stitch.events
where person_id is not null and "timestamp" is not null
order by person_id, "timestamp"
"""
    df = con.execute(sql).df()
    for f in segment_fields(plan):
        if f not in df:
            df[f] = df["region"]
    return df


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
