"""Lineage, the one module: column-level lineage of the SQL models (sqlglot), table-level lineage
of Python assets from the Dagster graph, and the SQL models transpiled to other warehouses.

`model_lineage("marts.customer_value")` maps each output column to the `schema.table.column`s it
is computed from (the columns a filter or join only reads are not "feeding" it and are left out).
By default lineage stops at the tables a model reads; `deep=True` follows other SQL models down to
the tables the pipeline writes in Python (ingest, stitch, the plan tables).

sqlglot takes ~0.1 CPU-s per model (and ~0.25 s to describe the warehouse first), and every run
asked for it again for each SQL model's asset metadata: a model's lineage is kept on disk under
`$XDG_CACHE_HOME/trackplan/lineage/` (`~/.cache/...`), keyed by a hash of what it is computed from
(every file under models/, the warehouse DDL, this module and sqlglot's version), so it is computed
once per change of those. A cache that cannot be read or written is skipped, with a debug log line.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from functools import lru_cache
from pathlib import Path

import sqlglot
from sqlglot import exp
from sqlglot.lineage import Node, lineage

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[1]


def _models() -> dict:
    from models.catalog import load_models

    return {m.table: m for m in load_models()}


@lru_cache(maxsize=1)
def warehouse_schema() -> dict[str, dict[str, dict[str, str]]]:
    """{schema: {table: {column: type}}} of every table a model can read, from the DDL and the models' YAML."""
    from models.staging.plan_tables import SCHEMAS
    from pipelines.warehouse import connect

    con = connect(":memory:")
    try:
        rows = con.execute(
            "select table_schema, table_name, column_name, data_type from information_schema.columns "
            "where table_catalog = current_database() order by ordinal_position"
        ).fetchall()
    finally:
        con.close()
    out: dict[str, dict[str, dict[str, str]]] = {}
    for schema, table, column, typ in rows:
        out.setdefault(schema, {}).setdefault(table, {})[column] = typ
    ingest = out.get("ingest", {}).get("events", {})
    # stitch.events is ingest.events with the person in front (pipelines/stitch/identity.py)
    out.setdefault("stitch", {})["events"] = {"person_id": "varchar", **ingest}
    for table, cols in SCHEMAS.items():
        out.setdefault("staging", {})[table] = dict(cols)
    for model in _models().values():
        out.setdefault(model.schema, {})[model.name] = {c: "varchar" for c in model.columns}
    return out


def _source_column(node: Node) -> str | None:
    if not isinstance(node.expression, exp.Table):
        return None
    table = node.expression
    column = exp.to_column(node.name).name
    return f"{table.db}.{table.name}.{column}" if table.db else f"{table.name}.{column}"


def cache_dir() -> Path:
    """Where model lineage is kept between processes."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "trackplan" / "lineage"


@lru_cache(maxsize=1)
def _inputs_key() -> str:
    """sha256 over everything lineage is computed from: each file under models/ (SQL, YAML, the
    plan tables' schemas), the warehouse DDL and connection, this module, and sqlglot's version."""
    from models.catalog import MODELS_DIR

    h = hashlib.sha256(f"sqlglot {sqlglot.__version__}\0".encode())
    files = [p for p in MODELS_DIR.rglob("*") if p.suffix in (".sql", ".yml", ".yaml", ".py") and p.is_file()]
    files += [ROOT / "schemas" / "ddl.py", ROOT / "pipelines" / "warehouse.py", Path(__file__).resolve()]
    for path in sorted(files):
        h.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:32]


def model_lineage(table: str, deep: bool = False) -> dict[str, list[str]]:
    """{output column: sorted source `schema.table.column`s} of the SQL model `table` (e.g. marts.retention)."""
    path = None
    try:
        path = cache_dir() / f"{_inputs_key()}-{table}{'-deep' if deep else ''}.json"
        return json.loads(path.read_text())
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:  # unreadable or garbled: computed again
        log.debug("lineage cache %s not used: %s", path, exc)
    out = _model_lineage(table, deep)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(out))
            os.replace(tmp, path)  # whole or not at all, for a process reading it at the same time
        except OSError as exc:  # a read-only home, a full disk: lineage is computed each time
            log.debug("lineage cache %s not written: %s", path, exc)
    return out


def _model_lineage(table: str, deep: bool = False) -> dict[str, list[str]]:
    models = _models()
    if table not in models:
        raise KeyError(f"no SQL model {table}; models: {', '.join(sorted(models))}")
    sql = models[table].sql
    # deep: every other model the SQL reads is inlined, so lineage runs through it to its own sources
    sources = {t: m.sql for t, m in models.items() if t != table} if deep else None
    nodes = lineage(None, sql, schema=warehouse_schema(), sources=sources, dialect="duckdb")
    out = {}
    for column, root in nodes.items():
        found = {s for n in root.walk() if (s := _source_column(n))}
        out[column] = sorted(found)
    return out


def all_lineage(deep: bool = False) -> dict[str, dict[str, list[str]]]:
    """model_lineage of every SQL model."""
    return {t: model_lineage(t, deep=deep) for t in sorted(_models())}


def render_lineage(table: str, format: str = "text", deep: bool = False) -> str:
    """What `trackplan lineage TABLE [--format text|json]` prints."""
    lin = model_lineage(table, deep=deep)
    if format == "json":
        return json.dumps({"table": table, "deep": deep, "columns": lin}, indent=2)
    if format != "text":
        raise ValueError(f"unknown format {format!r}: text or json")
    width = max((len(c) for c in lin), default=0)
    lines = [table]
    for column, sources in lin.items():
        lines.append(f"  {column:<{width}}  <- {', '.join(sources) if sources else '(computed: no source column)'}")
    return "\n".join(lines)


def transpile_model(
    table: str, dialect: str, pretty: bool = True, variables: dict | None = None, unchecked: bool = False
) -> str:
    """One model's SQL in another dialect, by sqlglot plus models.dialects' rewrite rules; raises
    models.dialects.UntranslatableSQL (naming the model and the function) on what has no translation.
    `variables` are the getvariable() values inlined (the sample plan's defaults when None)."""
    from models.dialects import transpile

    if variables is None:
        variables = _default_variables()
    return transpile(_models()[table].sql, dialect, table, variables, pretty, unchecked)


@lru_cache(maxsize=1)
def _default_variables() -> dict:
    from models.catalog import plan_variables
    from tracking_plan.loader import PlanError, load_plan
    from tracking_plan.yamlio import YamlError

    try:
        return plan_variables(load_plan())
    except (PlanError, YamlError, OSError):  # no plan here: the models' own coalesce() defaults apply
        return {}


def transpile_models(
    dialect: str, pretty: bool = True, variables: dict | None = None, unchecked: bool = False
) -> dict[str, str]:
    """{table: SQL in `dialect`} for every model: what `trackplan sql --dialect D` prints (a dialect
    it does not check refused by the first model's transpile: models.dialects.require_dialect)."""
    return {t: transpile_model(t, dialect, pretty, variables, unchecked) for t in sorted(_models())}


def render_sql(dialect: str, variables: dict | None = None, unchecked: bool = False) -> str:
    """Every model transpiled, each under a comment naming its table."""
    models = transpile_models(dialect, variables=variables, unchecked=unchecked)
    return "\n\n".join(f"-- {t}\n{sql};" for t, sql in models.items())


def dagster_metadata(table: str) -> dict:
    """Asset metadata of a model's lineage: Dagster's column lineage (shown in the UI) plus the JSON map."""
    import dagster as dg

    lin = model_lineage(table)
    deps = {}
    for column, sources in lin.items():
        deps[column] = [
            dg.TableColumnDep(asset_key=dg.AssetKey(src.split(".")[:-1]), column_name=src.split(".")[-1])
            for src in sources
        ]
    return {"dagster/column_lineage": dg.TableColumnLineage(deps_by_column=deps), "lineage": dg.MetadataValue.json(lin)}


def table_lineage(table: str, defs) -> dict | None:
    """{"table", "upstream": [[direct parents], [their parents], ...]} or None if no such asset,
    read from the asset graph of `defs` (pipelines.definitions.defs): for assets whose SQL sqlglot cannot read."""
    import dagster as dg

    graph = defs.resolve_asset_graph()
    key = dg.AssetKey(table.split("."))
    if key not in graph.get_all_asset_keys():
        return None
    levels, seen, frontier = [], {key}, {key}
    while frontier:
        parents = {p for k in frontier for p in graph.get(k).parent_keys} - seen
        if not parents:
            break
        levels.append(sorted(".".join(p.path) for p in parents))
        seen |= parents
        frontier = parents
    return {"table": table, "upstream": levels}
