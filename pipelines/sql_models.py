"""SQL models (models/<layer>/<name>.sql + .yml) as Dagster assets.

Each model's upstream tables are read from its SQL with sqlglot, so lineage in the UI is exactly
what the SQL selects from; the YAML's description, grain and column docs become asset metadata.
"""


from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import sqlglot
import yaml
from sqlglot import exp

from pipelines.lineage import dagster_metadata

from . import progress
from .resources import TrackingPlan, Warehouse

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
LAYERS = ("staging", "marts")


@dataclass
class SqlModel:
    schema: str
    name: str
    path: Path
    sql: str
    description: str
    grain: str
    columns: dict[str, str] = field(default_factory=dict)

    @property
    def table(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def key(self) -> dg.AssetKey:
        return dg.AssetKey([self.schema, self.name])

    def upstream(self) -> list[tuple[str, str]]:
        """(schema, table) of every table the SQL reads."""
        tree = sqlglot.parse_one(self.sql, read="duckdb")
        # only schema-qualified names are tables; a bare name is a CTE (e.g. `events`)
        out = {(t.db, t.name) for t in tree.find_all(exp.Table) if t.db}
        return sorted(out)


def load_models(models_dir: Path = MODELS_DIR) -> list[SqlModel]:
    out = []
    for layer in LAYERS:
        for sql_path in sorted((models_dir / layer).glob("*.sql")):
            meta_path = sql_path.with_suffix(".yml")
            meta = yaml.safe_load(meta_path.read_text()) if meta_path.exists() else {}
            out.append(SqlModel(schema=meta.get("schema", layer), name=meta.get("name", sql_path.stem),
                                path=sql_path, sql=sql_path.read_text(), description=meta.get("description", ""),
                                grain=meta.get("grain", ""), columns=meta.get("columns") or {}))
    return out


def set_plan_variables(con, plan) -> None:
    """Plan settings SQL models read with getvariable(): no templating in the SQL itself."""
    d = plan.header.defaults
    con.execute(f"set variable session_timeout_minutes = {int(d.session_timeout_minutes)}")
    con.execute(f"set variable max_session_days = {int(d.max_session_days)}")
    con.execute(f"set variable activation_window_days = {int(d.activation_window_days)}")


def model_asset(model: SqlModel, extra_deps: dict[tuple[str, str], dg.AssetKey] | None = None) -> dg.AssetsDefinition:
    deps = [dg.AssetKey([s, t]) for s, t in model.upstream()]
    column_schema = dg.TableSchema(columns=[dg.TableColumn(name=c, type="", description=str(d))
                                            for c, d in model.columns.items()])

    @dg.asset(key=model.key, deps=deps, group_name=model.schema, kinds={"duckdb", "sql"},
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
