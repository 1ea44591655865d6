"""Pandera models of every curated table, generated (not written twice) from:

- the warehouse DDL (`schemas/ddl.py`): columns and NOT NULL of the ingest tables;
- the plan: the values `event_name` and `type` may take, the semver `plan_version`;
- the models' YAML (`models/<schema>/<name>.yml`): columns, their descriptions, the grain (unique,
  not null) of every table, SQL and Python models and the tables pipelines/ writes itself alike.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache


@dataclass
class ColumnSpec:
    description: str = ""
    nullable: bool = True
    isin: list | None = None
    pattern: str | None = None


@dataclass
class TableSpec:
    table: str
    description: str
    grain: list[str]
    columns: dict[str, ColumnSpec] = field(default_factory=dict)
    small: bool = False  # validated in full (marts) rather than on a sample


STITCH = ("stitch.persons", "stitch.events")  # built in Python: described by models/stitch/*.yml
INGEST = (
    "ingest.events",
    "ingest.quarantine",
    "ingest.ingestion_log",
)  # columns from the DDL, docs from models/ingest/*.yml


@lru_cache(maxsize=1)
def ddl_columns() -> dict[str, dict[str, tuple[str, bool]]]:
    """table -> column -> (DuckDB type, nullable) of the DDL (schemas.ddl.described)."""
    from schemas.ddl import described

    return described()


def table_specs(plan) -> dict[str, TableSpec]:
    """Every curated table's spec: ingest (DDL + plan), stitch, and every SQL model (YAML)."""
    from models.catalog import all_models, table_doc
    from tracking_plan.validate import ENVELOPE_TYPES, loadable_event_names

    specs: dict[str, TableSpec] = {}
    ddl = ddl_columns()
    for table in INGEST:
        doc = table_doc(table)
        grain, docs = doc["grain"], doc["columns"]
        cols = {
            c: ColumnSpec(str(docs.get(c, "")), nullable=nullable and c not in grain)
            for c, (_, nullable) in ddl.get(table, {}).items()
        }
        specs[table] = TableSpec(table, doc.get("description", ""), grain, cols)
    ev = specs["ingest.events"].columns
    ev["event_name"].isin = loadable_event_names(plan)  # the validator's own list (an alias call is "Alias")
    ev["type"].isin = list(ENVELOPE_TYPES)  # the validator's call types
    ev["plan_version"].pattern = r"^\d+\.\d+\.\d+$"
    for table in STITCH:
        doc = table_doc(table)
        grain = doc["grain"]
        specs[table] = TableSpec(
            table,
            doc.get("description", ""),
            grain,
            {c: ColumnSpec(str(d), nullable=c not in grain and c != "person_id") for c, d in doc["columns"].items()},
        )
    for m in all_models():
        grain = m.grain_columns
        cols = {c: ColumnSpec(str(d), nullable=c not in grain) for c, d in m.columns.items()}
        specs[m.table] = TableSpec(m.table, m.description, grain, cols, small=m.schema == "marts")
    return specs


def import_pandera():
    """`pandera.pandas`; with pyspark installed (the Spark path), pandera imports pyspark.pandas, which
    trackplan never uses: that import is refused (~0.1 CPU-s; quality_checks/gx_import.py), and were
    it made, the warning it gives on every run (no support for pandas 3) is silenced."""
    import warnings

    from quality_checks.gx_import import refuse_unused_backends

    refuse_unused_backends()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)
        import pandera.pandas as pa
    return pa


def pandera_schema(spec: TableSpec):
    """The pandera DataFrameSchema of a table spec (columns required; types are checked in SQL)."""
    pa = import_pandera()

    cols = {}
    for name, c in spec.columns.items():
        checks = []
        if c.isin is not None:
            checks.append(pa.Check.isin(c.isin))
        if c.pattern:
            checks.append(pa.Check.str_matches(c.pattern))
        cols[name] = pa.Column(None, checks=checks, nullable=c.nullable, required=True, description=c.description)
    return pa.DataFrameSchema(
        cols, name=spec.table, description=spec.description, unique=spec.grain or None, strict=False
    )
