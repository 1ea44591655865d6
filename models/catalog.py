"""What each warehouse table is: the models under models/<schema>/, read from their files.

A table `S.T` is `models/S/T.sql` (a SQL model) or `models/S/T.py` (a Python model: plain
functions), always with `models/S/T.yml` giving its description, grain and columns. Plain data:
pipelines/ turns each model into a Dagster asset, schemas/ into Pandera specs, lineage reads the SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

MODELS_DIR = Path(__file__).resolve().parent
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

    def upstream(self) -> list[tuple[str, str]]:
        """(schema, table) of every table the SQL reads."""
        import sqlglot
        from sqlglot import exp

        tree = sqlglot.parse_one(self.sql, read="duckdb")
        # only schema-qualified names are tables; a bare name is a CTE (e.g. `events`)
        out = {(t.db, t.name) for t in tree.find_all(exp.Table) if t.db}
        return sorted(out)


def load_models(models_dir: Path = MODELS_DIR) -> list[SqlModel]:
    """Every SQL model with its YAML, layer by layer."""
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
