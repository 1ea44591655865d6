"""stitch layer: identifier links → persons, and every event with its person_id."""

import dagster as dg

from .. import progress
from ..ingest.assets import EVENTS as INGEST_EVENTS
from ..resources import TrackingPlan, Warehouse

IDENTITY_GRAPH = dg.AssetKey(["stitch", "identity_graph"])
PERSONS = dg.AssetKey(["stitch", "persons"])
EVENTS = dg.AssetKey(["stitch", "events"])


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            IDENTITY_GRAPH,
            deps=[INGEST_EVENTS],
            group_name="stitch",
            kinds={"duckdb"},
            description="Identifier links seen together, accepted or rejected: one row per link.",
        ),
        dg.AssetSpec(
            PERSONS,
            deps=[INGEST_EVENTS],
            group_name="stitch",
            kinds={"duckdb"},
            description="Each identifier's person: one row per identifier.",
        ),
        dg.AssetSpec(
            EVENTS,
            deps=[INGEST_EVENTS],
            group_name="stitch",
            kinds={"duckdb"},
            description="ingest.events with person_id: one row per event.",
        ),
    ],
    can_subset=False,
)
def stitch_identities(context: dg.AssetExecutionContext, warehouse: Warehouse, tracking_plan: TrackingPlan):
    """Resolve identities per identity.yaml with connected components and max_per_person limits."""
    from .incremental import stitch  # pandas and scipy: loaded when stitching runs, not with the Definitions

    plan = tracking_plan.load()
    with warehouse.get_connection() as con:
        stats = stitch(con, plan, tracking_plan.plan_dir, full_refresh=warehouse.full_refresh)
        rows = con.execute("select count(*) from stitch.events").fetchall()[0][0]
    progress.report("stitch", 1, 1)
    context.log.info(
        f"{stats['persons']} persons from {stats['identifiers']} identifiers ({stats['mode']}: {stats['why']})"
    )
    yield dg.MaterializeResult(
        asset_key=IDENTITY_GRAPH,
        metadata={"dagster/row_count": stats["links"], "rejected_links": stats["rejected_links"]},
    )
    yield dg.MaterializeResult(
        asset_key=PERSONS, metadata={"dagster/row_count": stats["identifiers"], "persons": stats["persons"]}
    )
    yield dg.MaterializeResult(asset_key=EVENTS, metadata={"dagster/row_count": rows, "mode": stats["mode"]})
