"""ingest layer: landing files → ingest.events, ingest.quarantine, ingest.ingestion_log (daily)."""

from collections.abc import Callable

import dagster as dg

from tracking_plan.validate import Validator

from .. import progress
from ..partitions import daily
from ..resources import TrackingPlan, Warehouse
from ..warehouse import hash_salt
from .load import ingest_partitions

EVENTS = dg.AssetKey(["ingest", "events"])
QUARANTINE = dg.AssetKey(["ingest", "quarantine"])
INGESTION_LOG = dg.AssetKey(["ingest", "ingestion_log"])


def ingest_specs(kind: str = "duckdb") -> list[dg.AssetSpec]:
    """The three ingest tables' specs: the same keys, descriptions and group on every engine."""
    return [
        dg.AssetSpec(
            EVENTS,
            description="Valid, de-duplicated events from the landing zone: one row per event.",
            group_name="ingest",
            kinds={kind},
        ),
        dg.AssetSpec(
            QUARANTINE,
            description="Rejected input lines, verbatim with every reason: one row per line.",
            group_name="ingest",
            kinds={kind},
        ),
        dg.AssetSpec(
            INGESTION_LOG,
            description="What happened to each landing file: one row per file.",
            group_name="ingest",
            kinds={kind},
        ),
    ]


TOTALS = ("lines", "loaded", "quarantined", "duplicates", "consent_dropped", "suppressed", "skipped")


def ingest_tally(context: dg.AssetExecutionContext, keys) -> tuple[dict, Callable, list]:
    """The run's totals, the per-partition callback both engines' ingest assets report through (each
    partition's counts in the log, skipped files as a warning, the progress line) and the list it
    fills with the days run again that were not asked for, with why (see ingest_partitions)."""
    totals = dict.fromkeys(TOTALS, 0)
    done, again = [], []

    def on_done(res) -> None:
        done.append(res)
        for k in totals:
            totals[k] += getattr(res, k)
        if res.because:  # a day not asked for, run again as a full build would have it
            again.append(f"{res.partition} ({res.because})")
            context.log.warning(f"{res.partition}: run again, not asked for: {res.because}")
        if res.lines:
            context.log.info(
                f"{res.partition}: {res.lines} lines, {res.loaded} loaded, {res.quarantined} "
                f"quarantined, {res.duplicates} duplicates, {res.consent_dropped} consent-dropped"
            )
        if res.skipped:
            context.log.warning(f"{res.partition}: {res.skipped} files skipped (ingest.ingestion_log.skip_reason)")
        progress.report("ingest", sum(1 for r in done if not r.because), len(keys))

    return totals, on_done, again


def ingest_results(plan, totals: dict, rows: dict, again: list[str] = ()):
    """The three ingest assets' materializations, the same metadata on every engine (`run_again`: the
    days not asked for that the ingest ran again, with why; the run's summary shows them)."""
    meta = {k: dg.MetadataValue.int(v) for k, v in totals.items()} | {"plan_version": plan.version}
    if again:
        meta["run_again"] = dg.MetadataValue.text("; ".join(again))
    yield dg.MaterializeResult(asset_key=EVENTS, metadata=meta | {"dagster/row_count": rows["ingest.events"]})
    yield dg.MaterializeResult(
        asset_key=QUARANTINE,
        metadata={"dagster/row_count": rows["ingest.quarantine"], "quarantined": totals["quarantined"]},
    )
    yield dg.MaterializeResult(asset_key=INGESTION_LOG, metadata={"dagster/row_count": rows["ingest.ingestion_log"]})


@dg.multi_asset(
    specs=ingest_specs("duckdb"),
    partitions_def=daily,
    backfill_policy=dg.BackfillPolicy.single_run(),
    can_subset=False,
)
def ingest_events(context: dg.AssetExecutionContext, warehouse: Warehouse, tracking_plan: TrackingPlan):
    """Validate every landed line against the plan and load the partition in one transaction."""
    hash_salt()  # no salt, no ingest: PII is never hashed with a key written in the source
    plan = tracking_plan.load()
    validator = Validator(plan)
    keys = context.partition_keys
    totals, on_done, again = ingest_tally(context, keys)

    with warehouse.get_connection() as con:
        ingest_partitions(
            con,
            plan,
            tracking_plan.landing_dir,
            list(keys),
            validator=validator,
            on_done=on_done,
            layout=tracking_plan.layout or None,
        )
        rows = {
            t: con.execute(f"select count(*) from {t}").fetchall()[0][0]
            for t in ("ingest.events", "ingest.quarantine", "ingest.ingestion_log")
        }
    yield from ingest_results(plan, totals, rows, again)
