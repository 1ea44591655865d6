"""Production on Databricks (issue 20, item 4): the Dagster Pipes configuration in
deploy/databricks/pipes.yaml cannot run here (no workspace), so it is loaded and checked: every ${VAR}
resolved, the task accepted field for field by the Databricks SDK's own SubmitTask, a Spark 4
runtime, the PII salt from a secret, the entry script's arguments parsed by the entry script, and the
orchestrating asset has the ingest asset's keys and partitions in a loadable Definitions."""

from __future__ import annotations

import pytest

pytest.importorskip("dagster_databricks", reason="the databricks extra is not installed")

ENV = {
    "DATABRICKS_HOST": "https://dbc-0000.cloud.databricks.com",
    "TRACKPLAN_WHEEL": "/Volumes/main/trackplan/dist/trackplan-0.1.0-py3-none-any.whl",
    "TRACKPLAN_ENTRY": "/Volumes/main/trackplan/dist/pipes_entry.py",
    "TRACKPLAN_LANDING": "s3a://acme-events/landing",
    "TRACKPLAN_SPARK_ROOT": "s3a://acme-lake/trackplan",
}


def test_the_databricks_pipes_config_loads_and_is_valid(tmp_path, monkeypatch):
    import dagster as dg
    from databricks.sdk.service.jobs import SubmitTask

    from pipelines.ingest.assets import ingest_events
    from pipelines.spark.databricks import DEFAULT_CONFIG, ENTRY, databricks_ingest_events, load_config
    from pipelines.spark.pipes_entry import days_of, parse_args

    cfg = load_config(DEFAULT_CONFIG, env=ENV)
    task = cfg.task
    assert isinstance(task, SubmitTask) and ENTRY.is_file()
    assert task.spark_python_task.python_file == ENV["TRACKPLAN_ENTRY"]
    args = parse_args(task.spark_python_task.parameters)
    assert (args.landing, args.root) == (ENV["TRACKPLAN_LANDING"], ENV["TRACKPLAN_SPARK_ROOT"])
    assert task.new_cluster.spark_env_vars["TRACKPLAN_HASH_SALT"].startswith("{{secrets/")
    assert any(lib.whl == ENV["TRACKPLAN_WHEEL"] for lib in task.libraries)
    assert cfg.submit_args["timeout_seconds"] > 0
    assert days_of("2026-03-01", "2026-03-03") == ["2026-03-01", "2026-03-02", "2026-03-03"]

    # the orchestrating asset: the DuckDB ingest asset's keys and partitions, loadable with its client
    monkeypatch.setenv("DATABRICKS_TOKEN", "dapi-not-a-real-token")
    defs = dg.Definitions(assets=[databricks_ingest_events], resources={"pipes_databricks": cfg.client()})
    dg.Definitions.validate_loadable(defs)
    assert set(databricks_ingest_events.keys) == set(ingest_events.keys)
    assert databricks_ingest_events.partitions_def == ingest_events.partitions_def


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (
            lambda t: t.replace("${TRACKPLAN_WHEEL}", "${NO_SUCH_VAR}"),
            "task.libraries[0].whl: ${NO_SUCH_VAR} is not set",
        ),
        (lambda t: t.replace("num_workers: 2", "num_workers: 2\n    num_wokers: 3"), "new_cluster.num_wokers"),
        (lambda t: t.replace("17.3.x-scala2.13", "15.4.x-scala2.12"), "Spark 4"),
        (lambda t: t.replace("      TRACKPLAN_HASH_SALT:", "      OTHER:"), "TRACKPLAN_HASH_SALT"),
    ],
)
def test_a_broken_databricks_config_fails_in_one_line_naming_the_key(tmp_path, edit, says):
    from pipelines.spark.databricks import DEFAULT_CONFIG, DatabricksConfigError, load_config

    path = tmp_path / "pipes.yaml"
    path.write_text(edit(DEFAULT_CONFIG.read_text()))
    with pytest.raises(DatabricksConfigError) as err:
        load_config(path, env=ENV)
    assert says in str(err.value) and "\n" not in str(err.value)
