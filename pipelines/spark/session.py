"""A SparkSession configured as the Spark engine expects: UTC, small shuffles on local masters.

`java_missing()` / `pyspark_missing()` say why Spark cannot start here (the tests skip with that
reason, the CLI refuses with it) rather than failing deep inside py4j.
"""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import sys
import tempfile

# what every Spark session of the pipeline sets: timestamps are UTC wall-clock as in DuckDB, and
# ANSI mode (Spark 4's default) so that an overflow or bad cast fails instead of turning NULL
BASE_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "true",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}

# a local master on a small machine: few shuffle partitions (the default 200 costs seconds per query)
LOCAL_CONF = {
    "spark.sql.shuffle.partitions": "4",
    "spark.default.parallelism": "2",
    "spark.driver.memory": "2g",
    "spark.sql.adaptive.enabled": "true",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


def pyspark_missing() -> str | None:
    """Why pyspark cannot be imported here, or None."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed (pip install 'trackplan[spark]')"
    return None


def java_missing() -> str | None:
    """Why no JVM can start here, or None."""
    home = os.environ.get("JAVA_HOME")
    if home and os.path.exists(os.path.join(home, "bin", "java")):
        return None
    if shutil.which("java"):
        return None
    return "no Java runtime (apt-get install openjdk-17-jre-headless, or set JAVA_HOME)"


def unavailable() -> str | None:
    """Why the Spark engine cannot run here (the first reason), or None."""
    return pyspark_missing() or java_missing()


def scratch_dir() -> str:
    """A temporary directory for the session's warehouse and Derby files, removed when this process
    exits (each session left one in /tmp before: a test suite's run, one more)."""
    path = tempfile.mkdtemp(prefix="trackplan-spark-wh-")
    atexit.register(shutil.rmtree, path, True)
    return path


def spark_session(master: str = "local[2]", conf: dict | None = None, app_name: str = "trackplan"):
    """The active SparkSession, or a new one on `master` with BASE_CONF (+ LOCAL_CONF on local masters)."""
    why = unavailable()
    if why:
        raise RuntimeError(f"Spark engine unavailable: {why}")
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    builder = SparkSession.builder.master(master).appName(app_name)
    local = master.startswith("local")
    settings = {**BASE_CONF, **(LOCAL_CONF if local else {}), **(conf or {})}
    if local:  # the Python workers are this interpreter (its venv has pyarrow, duckdb and trackplan)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if "spark.sql.warehouse.dir" not in settings:
        # no spark-warehouse/ or metastore_db/ in the working directory
        settings["spark.sql.warehouse.dir"] = scratch_dir()
    settings.setdefault("spark.driver.extraJavaOptions", f"-Dderby.system.home={settings['spark.sql.warehouse.dir']}")
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
