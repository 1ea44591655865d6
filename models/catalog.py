"""What each warehouse table is: the models under models/<schema>/, read from their files.

A table `S.T` is `models/S/T.sql` (a SQL model) or `models/S/T.py` (a Python model: a plain
`build(con, plan) -> DataFrame`, optionally `summary(df) -> dict`; a `build` that also takes `keep`
gets the pipeline's kept per-person parts of the mart), always with `models/S/T.yml`
giving its description, grain and columns (and, for a Python model, the tables it reads:
`depends_on`). Plain data: pipelines/model_assets.py turns every model into a Dagster asset with
grain gates, schemas/ into Pandera specs, pipelines/lineage.py reads the SQL.
Tables the pipeline writes in Python code of its own (ingest, stitch, quality) have a YAML only,
whose `built_by` names that code.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import yaml

MODELS_DIR = Path(__file__).resolve().parent
LAYERS = ("staging", "marts")
# libyaml when present: the pure-Python loader took ~0.3 s of every Definitions load for 35 small files
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


_parsed: dict[str, dict] = {}


def _yaml(path: Path) -> dict:
    """A YAML file's mapping (a copy: callers may change it), parsed once per text: a run's Definitions,
    gates and Pandera specs read the same ~35 files ~500 times (0.09 of 0.15 CPU-s saved)."""
    text = path.read_text()
    if text not in _parsed:
        _parsed[text] = yaml.load(text, Loader=_Loader) or {}
    return copy.deepcopy(_parsed[text])


def split_grain(grain: str | None) -> list[str]:
    """'person_id, session_index' -> ['person_id', 'session_index'] (a YAML grain line)."""
    return [g.strip() for g in (grain or "").split(",") if g.strip()]


@dataclass
class _Model:
    schema: str
    name: str
    path: Path
    description: str
    grain: str
    columns: dict[str, str] = field(default_factory=dict)

    @property
    def table(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def grain_columns(self) -> list[str]:
        return split_grain(self.grain)


@dataclass
class SqlModel(_Model):
    sql: str = ""

    def upstream(self) -> list[tuple[str, str]]:
        """(schema, table) of every table the SQL reads."""
        import sqlglot
        from sqlglot import exp

        tree = sqlglot.parse_one(self.sql, read="duckdb")
        # only schema-qualified names are tables; a bare name is a CTE (e.g. `events`)
        out = {(t.db, t.name) for t in tree.find_all(exp.Table) if t.db}
        return sorted(out)


@dataclass
class PythonModel(_Model):
    depends_on: list[str] = field(default_factory=list)

    @property
    def module(self) -> str:
        return f"models.{self.schema}.{self.path.stem}"

    def upstream(self) -> list[tuple[str, str]]:
        return sorted(tuple(t.split(".", 1)) for t in self.depends_on)


def _meta(path: Path) -> dict:
    meta_path = path.with_suffix(".yml")
    if not meta_path.exists():
        raise FileNotFoundError(f"{path}: a model needs its {meta_path.name} (description, grain, columns)")
    return _yaml(meta_path)


def load_models(models_dir: Path = MODELS_DIR) -> list[SqlModel]:
    """Every SQL model with its YAML, layer by layer."""
    out = []
    for layer in LAYERS:
        for sql_path in sorted((models_dir / layer).glob("*.sql")):
            meta = _meta(sql_path)
            out.append(
                SqlModel(
                    schema=meta.get("schema", layer),
                    name=meta.get("name", sql_path.stem),
                    path=sql_path,
                    sql=sql_path.read_text(),
                    description=meta.get("description", ""),
                    grain=meta.get("grain", ""),
                    columns=meta.get("columns") or {},
                )
            )
    return out


def load_python_models(models_dir: Path = MODELS_DIR) -> list[PythonModel]:
    """Every Python model (a .py beside a .yml of the same name; other .py files are their helpers)."""
    out = []
    for layer in LAYERS:
        for py_path in sorted((models_dir / layer).glob("*.py")):
            if not py_path.with_suffix(".yml").exists():
                continue
            meta = _meta(py_path)
            out.append(
                PythonModel(
                    schema=meta.get("schema", layer),
                    name=meta.get("name", py_path.stem),
                    path=py_path,
                    description=meta.get("description", ""),
                    grain=meta.get("grain", ""),
                    columns=meta.get("columns") or {},
                    depends_on=list(meta.get("depends_on") or []),
                )
            )
    return out


def all_models(models_dir: Path = MODELS_DIR) -> list[SqlModel | PythonModel]:
    """SQL and Python models alike: every table the asset factory builds."""
    return [*load_models(models_dir), *load_python_models(models_dir)]


def table_doc(table: str, models_dir: Path = MODELS_DIR) -> dict:
    """The YAML of any warehouse table `schema.name` (models/<schema>/<name>.yml), grain as a list."""
    schema, name = table.split(".")
    doc = _yaml(models_dir / schema / f"{name}.yml")
    doc["grain"] = split_grain(doc.get("grain"))
    doc["columns"] = doc.get("columns") or {}
    return doc


def plan_variables(plan) -> dict[str, int]:
    """{name: value} of the variables SQL models read with getvariable() (models.dialects inlines them)."""
    d = plan.header.defaults
    return {"session_timeout_minutes": int(d.session_timeout_minutes), "max_session_days": int(d.max_session_days)}


def set_plan_variables(con, plan) -> None:
    """Plan settings SQL models read with getvariable(): no templating in the SQL itself."""
    for name, value in plan_variables(plan).items():
        con.execute(f"set variable {name} = {int(value)}")
