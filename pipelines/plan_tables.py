"""staging.plan_* and staging.marketing_costs as one Dagster multi-asset (the tables: models/staging/plan_tables.py)."""

import dagster as dg

from models.staging.plan_tables import DESCRIPTIONS, SCHEMAS, write_plan_tables

from . import progress
from .resources import TrackingPlan, Warehouse

KEYS = {name: dg.AssetKey(["staging", name]) for name in SCHEMAS}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(key, group_name="staging", kinds={"duckdb"}, description=DESCRIPTIONS[name])
        for name, key in KEYS.items()
    ],
    can_subset=False,
)
def plan_definitions(context: dg.AssetExecutionContext, warehouse: Warehouse, tracking_plan: TrackingPlan):
    """The plan's metrics.yaml and costs file as staging tables the SQL marts join."""
    plan = tracking_plan.load()
    with warehouse.get_connection() as con:
        counts = write_plan_tables(con, plan)
    progress.report("plan definitions", 1, 1)
    for name, key in KEYS.items():
        yield dg.MaterializeResult(
            asset_key=key, metadata={"dagster/row_count": counts[name], "plan_version": plan.header.version}
        )


def assets() -> list[dg.AssetsDefinition]:
    return [plan_definitions]
