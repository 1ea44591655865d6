"""The engine choice: a Dagster resource for Spark, and which assets and checks each engine builds.

`SparkEngine` says where Spark runs (`master`, extra `conf`) and where the layers live (`root`, any
Hadoop-compatible URI: a folder, file:, hdfs:, s3a:, abfss:, gs:). The Spark-backed assets have the
DuckDB assets' keys, partitions (daily), checks and metadata, so a Dagster deployment picks one
engine (`TRACKPLAN_ENGINE=duckdb|spark`, or `trackplan run --engine`) and nothing downstream changes.
Importing this module imports no pyspark: the session starts when an asset first asks for it.
"""

from __future__ import annotations

import os
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

ENGINES = ("duckdb", "spark")


class SparkEngine(dg.ConfigurableResource):
    """Spark for the pipeline: the master (`local[2]`, `spark://host:7077`, `yarn`; ignored when a
    session is already active, as on Databricks), extra Spark conf, and the root of the Parquet layers."""

    root: str = Field(description="Where the layers are written: <root>/<schema>/<table>/partition_date=…/")
    master: str = "local[2]"
    conf: dict[str, str] = Field(default_factory=dict)
    _lock: Any = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """A run (in-process executor: one resource for the whole run) holds the root's lock, so a
        forget of the same root is refused while it writes (swap.root_lock: a local root only)."""
        from .swap import root_lock

        lock = root_lock(self.root, "run --engine spark")
        lock.__enter__()
        self._lock = lock

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            lock.__exit__(None, None, None)

    def session(self):
        from .session import spark_session

        return spark_session(self.master, self.conf)

    def layer(self, table: str) -> str:
        from .models import layer_path

        return layer_path(self.root, table)


def engine_from_env() -> str:
    engine = os.environ.get("TRACKPLAN_ENGINE", "duckdb") or "duckdb"
    if engine not in ENGINES:
        raise ValueError(f"TRACKPLAN_ENGINE={engine}: expected one of {', '.join(ENGINES)}")
    return engine


def spark_engine_from_env(root: str | None = None, master: str | None = None) -> SparkEngine:
    """The resource from the environment: TRACKPLAN_SPARK_ROOT (default: `layers` in the working
    directory), TRACKPLAN_SPARK_MASTER (default local[2])."""
    return SparkEngine(
        root=str(root or os.environ.get("TRACKPLAN_SPARK_ROOT") or os.path.abspath("layers")),
        master=master or os.environ.get("TRACKPLAN_SPARK_MASTER") or "local[2]",
    )
