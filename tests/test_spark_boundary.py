"""pyspark (and its JVM) load only when the Spark engine is chosen: nothing on the DuckDB path's
import chain imports it (issue 20: start-up cost of every `trackplan` command and Dagster load)."""

import subprocess
import sys


def test_the_duckdb_path_does_not_import_pyspark():
    code = (
        "import sys, pipelines.definitions, trackplan.cli, pipelines.lineage, models.dialects, pipelines.spark; "
        "from pipelines.lineage import transpile_models; transpile_models('spark'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
