"""SQL models (models/<layer>/<name>.sql + .yml) as Dagster assets.

Each model's upstream tables are read from its SQL with sqlglot, so lineage in the UI is exactly
what the SQL selects from; the YAML's description, grain and column docs become asset metadata.
"""


import dagster as dg

from models.catalog import MODELS_DIR, SqlModel, load_models, set_plan_variables
from pipelines.lineage import dagster_metadata

from . import progress
from .resources import TrackingPlan, Warehouse


def model_key(model: SqlModel) -> dg.AssetKey:
    return dg.AssetKey([model.schema, model.name])


def model_asset(model: SqlModel, extra_deps: dict[tuple[str, str], dg.AssetKey] | None = None) -> dg.AssetsDefinition:
    deps = [dg.AssetKey([s, t]) for s, t in model.upstream()]
    column_schema = dg.TableSchema(columns=[dg.TableColumn(name=c, type="", description=str(d))
                                            for c, d in model.columns.items()])

    @dg.asset(key=model_key(model), deps=deps, group_name=model.schema, kinds={"duckdb", "sql"},
              description=model.description,
              metadata={"grain": model.grain, "sql": dg.MetadataValue.md(f"```sql\n{model.sql}\n```"),
                        "dagster/column_schema": column_schema, "path": str(model.path.relative_to(MODELS_DIR.parent))})
    def _materialize(context: dg.AssetExecutionContext, warehouse: Warehouse, tracking_plan: TrackingPlan):
        with warehouse.get_connection() as con:
            set_plan_variables(con, tracking_plan.load())
            con.execute(f"create or replace table {model.table} as {model.sql}").fetchall()
            rows = con.execute(f"select count(*) from {model.table}").fetchall()[0][0]
        progress.report(model.table, 1, 1)
        return dg.MaterializeResult(metadata={"dagster/row_count": rows, **dagster_metadata(model.table)})

    return _materialize


def sql_model_assets() -> list[dg.AssetsDefinition]:
    return [model_asset(m) for m in load_models()]
