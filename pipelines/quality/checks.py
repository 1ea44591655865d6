"""Asset checks: plan-compiled SQL gates, Pandera schemas, the GX suite and the anomaly families.

ERROR checks (identity, grain keys, the plan contract, schemas) are blocking: a failure stops the
assets downstream of the table (the marts). Anomalies are WARN. Every result is also appended to
quality.check_results.
"""

from pathlib import Path

import dagster as dg

from models.frames import frame
from pipelines.resources import TrackingPlan, Warehouse
from pipelines.stitch.identity import is_events_view
from quality_checks.rules import evaluate, plan_rules, table_rules
from quality_checks.store import ERROR, CheckOutcome, append
from tracking_plan.quality_settings import settings_for

from .assets import (
    ANOMALIES,
    DAILY_METRICS,
    anomaly_family_specs,
    anomaly_outcomes,
    run_id,
    run_range,
)
from .results import to_dagster

INGEST_EVENTS = dg.AssetKey(["ingest", "events"])
STITCH_EVENTS = dg.AssetKey(["stitch", "events"])
STITCH_PERSONS = dg.AssetKey(["stitch", "persons"])
PERSON_REF = ("person_id", "stitch.persons", "person_id")


def gates(con, plan, table: str, by_partition: bool = False, full_refresh: bool = False):
    """The SQL gates of one curated table (one pass), as CheckOutcomes. `by_partition`: the plan's
    property rules on ingest.events counted anew only in the partitions whose rows changed since the
    last count (quality_checks.rules.partition_counts; every partition on `full_refresh`), and the
    duplicates of the message_id of ingest.events and stitch.events likewise
    (quality_checks.rules.grain_duplicates)."""
    mostly = settings_for(plan).mostly
    if table == "ingest.events":
        own = table_rules(table, ["message_id"], mostly=mostly)
        # (the plan's envelope rules state message_id's not-null too: counted and reported once)
        names = {r.name for r in own}
        return evaluate(
            con,
            table,
            own + [r for r in plan_rules(plan, mostly) if r.name not in names],
            grain=["message_id"],
            by_partition=by_partition,
            full_refresh=full_refresh,
        )
    if table == "stitch.events":
        return evaluate(
            con,
            table,
            table_rules(table, ["message_id"], ["person_id"], mostly, PERSON_REF),
            grain=["message_id"],
            references=PERSON_REF,
            grain_by_partition=by_partition,
            full_refresh=full_refresh,
            # the view of every row of ingest.events (pipelines.stitch.identity.is_events_view): the
            # same messageIds, whose duplicates the ingest's gate has just counted (10M events: 1.6 CPU-s
            # each time)
            grain_of="ingest.events" if by_partition and is_events_view(con) else None,
        )
    if table == "stitch.persons":
        return evaluate(
            con,
            table,
            table_rules(table, ["identifier_kind", "identifier"], ["person_id"], mostly),
            grain=["identifier_kind", "identifier"],
        )
    from schemas.pandera_models import table_specs

    spec = table_specs(plan)[table]
    return evaluate(con, table, table_rules(table, spec.grain, mostly=mostly), grain=spec.grain)


def _partition(context) -> str | None:
    start, end = run_range(context)
    return f"{start}..{end}" if start else None


def _gate_check(key: dg.AssetKey, kinds: tuple[str, ...]):
    table = ".".join(key.path)
    specs = [
        dg.AssetCheckSpec(k, asset=key, blocking=True, description=f"{k} rules of {table} (one SQL pass)")
        for k in kinds
    ] + [dg.AssetCheckSpec("schema", asset=key, blocking=True, description=f"Pandera schema of {table}")]

    @dg.multi_asset_check(specs=specs, name=f"{key.path[0]}_{key.path[1]}_gates", can_subset=False)
    def _check(context: dg.AssetCheckExecutionContext, warehouse: Warehouse, tracking_plan: TrackingPlan):
        from quality_checks.schema_checks import run_schema_check
        from schemas.pandera_models import table_specs

        plan = tracking_plan.load()
        try:
            with warehouse.get_connection() as con:
                outcomes = {
                    o.check: o for o in gates(con, plan, table, by_partition=True, full_refresh=warehouse.full_refresh)
                }
                spec = table_specs(plan).get(table)
                if spec is not None:
                    outcomes["schema"] = run_schema_check(con, spec, settings_for(plan).pandera_sample_rows)
                part = _partition(context)
                for o in outcomes.values():
                    o.partition = part
                append(con, list(outcomes.values()), run_id=run_id(context))
        except Exception as exc:
            # a blocking gate that could not run has not shown the table is good: it fails, and blocks
            context.log.exception(f"checks of {table} could not run")
            outcomes = {
                k: CheckOutcome(
                    k,
                    table,
                    passed=False,
                    severity=ERROR,
                    metadata={"error": f"{type(exc).__name__}: {exc}", "crashed": True},
                )
                for k in [*kinds, "schema"]
            }
        for k in [*kinds, "schema"]:
            if k in outcomes:
                yield to_dagster(outcomes[k], asset_key=key)
            else:
                yield dg.AssetCheckResult(asset_key=key, check_name=k, passed=True, metadata={"rules": 0})

    return _check


@dg.asset_check(
    asset=DAILY_METRICS,
    name="gx_daily_metrics",
    blocking=False,
    description="Great Expectations suite on quality.daily_metrics (Data Docs beside the warehouse).",
)
def gx_daily_metrics(context: dg.AssetCheckExecutionContext, warehouse: Warehouse):
    from quality_checks.gx_suite import run_gx_suite

    docs = Path(warehouse.database).resolve().parent / "gx_docs"
    with warehouse.get_connection() as con:
        df = frame(con, "select * from quality.daily_metrics")
        o = run_gx_suite(df, docs)
        o.partition = _partition(context)
        append(con, [o], run_id=run_id(context))
    return to_dagster(o)


@dg.multi_asset_check(
    specs=anomaly_family_specs(),
    name="anomaly_families",
    can_subset=False,
)
def anomaly_checks(context: dg.AssetCheckExecutionContext, warehouse: Warehouse):
    with warehouse.get_connection() as con:
        found = frame(con, "select * from quality.anomalies")
    found["day"] = found["day"].dt.date if len(found) else found["day"]
    for o in anomaly_outcomes(found, *run_range(context)):
        yield to_dagster(o, asset_key=ANOMALIES)


def asset_checks() -> list:
    """Every quality check of the project, for pipelines.definitions."""
    from models.catalog import all_models

    out = [
        _gate_check(INGEST_EVENTS, ("grain_unique", "not_null", "enum", "range", "regex")),
        _gate_check(STITCH_EVENTS, ("grain_unique", "not_null", "referential_integrity")),
        _gate_check(STITCH_PERSONS, ("grain_unique", "not_null")),
    ]
    for m in all_models():  # SQL and Python models alike: the grain their YAML states
        if m.grain:
            out.append(_gate_check(dg.AssetKey([m.schema, m.name]), ("grain_unique", "not_null")))
    return [*out, gx_daily_metrics, anomaly_checks]
