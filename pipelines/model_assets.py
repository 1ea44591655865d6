"""The one asset factory: every model under models/ (SQL or Python, + its YAML) as a Dagster asset.

A SQL model's upstream tables are read from its SQL with sqlglot, so lineage in the UI is exactly
what the SQL selects from; a Python model's come from its YAML's `depends_on`. The YAML's
description, grain and column docs become asset metadata, and its grain becomes the blocking gates
of pipelines/quality/checks.py. A Python model's module (and the statistics it imports) loads when
the asset runs, not when the Definitions load.
"""

import importlib
import inspect

import dagster as dg

from models.catalog import (
    MODELS_DIR,
    PythonModel,
    SqlModel,
    load_models,
    load_python_models,
    set_plan_variables,
)
from pipelines.lineage import dagster_metadata
from tracking_plan.validate import ident

from . import progress
from .resources import TrackingPlan, Warehouse
from .stitch.person_marts import PERSON_PARTS


def model_key(model: SqlModel | PythonModel) -> dg.AssetKey:
    return dg.AssetKey([model.schema, model.name])


def _spec(model: SqlModel | PythonModel, kind: str) -> dict:
    column_schema = dg.TableSchema(
        columns=[dg.TableColumn(name=c, type="", description=str(d)) for c, d in model.columns.items()]
    )
    return {
        "key": model_key(model),
        "deps": [dg.AssetKey([s, t]) for s, t in model.upstream()],
        "group_name": model.schema,
        "kinds": {"duckdb", kind},
        "description": model.description,
        "metadata": {
            "grain": model.grain,
            "dagster/column_schema": column_schema,
            "path": str(model.path.relative_to(MODELS_DIR.parent)),
        },
    }


def model_asset(model: SqlModel) -> dg.AssetsDefinition:
    spec = _spec(model, "sql")
    spec["metadata"]["sql"] = dg.MetadataValue.md(f"```sql\n{model.sql}\n```")

    @dg.asset(**spec)
    def _materialize(context: dg.AssetExecutionContext, warehouse: Warehouse, tracking_plan: TrackingPlan):
        with warehouse.get_connection() as con:
            set_plan_variables(con, tracking_plan.load())
            if model.table == "staging.sessions":  # only the sessions the run's events can change
                from .stitch.sessions import build_sessions

                build_sessions(con, model.sql, tracking_plan.plan_dir, full_refresh=warehouse.full_refresh)
            elif model.table in PERSON_PARTS:  # its per-person part kept, for the persons with new events
                from .stitch.person_marts import build

                build(con, model.table, model.sql, str(model.path), tracking_plan.plan_dir, warehouse.full_refresh)
            else:
                con.execute(f"create or replace table {model.table} as {model.sql}").fetchall()
            rows = con.execute(f"select count(*) from {model.table}").fetchall()[0][0]
        progress.report(model.table, 1, 1)
        return dg.MaterializeResult(metadata={"dagster/row_count": rows, **dagster_metadata(model.table)})

    return _materialize


def write_frame(con, table: str, df) -> int:
    """Replace `table` with the DataFrame `df`; its row count."""
    con.register("_model_df", df)
    try:
        # a column pandas left without values and type (an empty mart: a first day, a small warehouse)
        # is text, not DuckDB's type NULL, which nothing can be cast to or compared with
        types = con.execute("describe select * from _model_df").fetchall()
        cols = ", ".join(
            f"{ident(c)}::varchar as {ident(c)}" if t.strip('"') == "NULL" else ident(c) for c, t, *_ in types
        )
        con.execute(f"create or replace table {table} as select {cols or '*'} from _model_df").fetchall()
    finally:
        con.unregister("_model_df")
    return len(df)


def _metadata_value(v):
    return v if isinstance(v, (bool, int, float, str)) else dg.MetadataValue.json(v)


def keeps_parts(module) -> bool:
    """Whether a Python mart's `build` takes `keep` (its kept per-person parts: python_model_frame)."""
    return "keep" in inspect.signature(module.build).parameters


def python_model_frame(con, model: PythonModel, plan, plan_dir=None, full_refresh: bool = False):
    """(the module, the frame its `build(con, plan)` returns, {kept part: full / incremental /
    unchanged}, or None for a mart that keeps none). A build that takes `keep` gets the mart's kept per-person parts
    (pipelines/stitch/person_parts.py): only the persons whose events changed are computed again."""
    module = importlib.import_module(model.module)  # the model's own file: a missing one fails the run
    if not keeps_parts(module):
        return module, module.build(con, plan), None
    from .stitch.person_parts import PersonParts

    parts = PersonParts(con, model.table, plan_dir, full_refresh)
    df = module.build(con, plan, keep=parts)
    parts.finish()
    return module, df, parts.modes


def python_model_asset(model: PythonModel) -> dg.AssetsDefinition:
    @dg.asset(**_spec(model, "python"))
    def _materialize(context: dg.AssetExecutionContext, warehouse: Warehouse, tracking_plan: TrackingPlan):
        plan = tracking_plan.load()
        with warehouse.get_connection() as con:
            module, df, kept = python_model_frame(con, model, plan, tracking_plan.plan_dir, warehouse.full_refresh)
            rows = write_frame(con, model.table, df)
        progress.report(model.table, 1, 1)
        extra = module.summary(df) if hasattr(module, "summary") else {}
        if kept is not None:  # (a mart that keeps parts says which, even none: the Spark engine's says none)
            extra["kept_parts"] = kept
        return dg.MaterializeResult(
            metadata={"dagster/row_count": rows, **{k: _metadata_value(v) for k, v in extra.items()}}
        )

    return _materialize


def model_assets() -> list[dg.AssetsDefinition]:
    """Every model's asset: SQL first, then Python (the order does not matter to Dagster)."""
    return [*(model_asset(m) for m in load_models()), *(python_model_asset(m) for m in load_python_models())]
