"""The engine choice (issue 20, items 1 and 4): `trackplan run --engine spark` materializes the Spark
ingest through Dagster with the DuckDB assets' keys, partitions, checks and metadata; the Dagster
Definitions pick the engine from TRACKPLAN_ENGINE without importing pyspark."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from pipelines.spark.session import unavailable

WHY = unavailable()


def materialized_keys(instance) -> dict[str, list[str]]:
    """{asset key: sorted metadata keys of its latest materialization} of every asset the instance saw."""
    out = {}
    for key in instance.get_asset_keys():
        recs = instance.fetch_materializations(key, limit=1).records
        if recs:
            out[key.to_user_string()] = sorted(recs[0].asset_materialization.metadata)
    return out


def evaluated_checks(instance) -> list[tuple[str, str, bool]]:
    """(asset, check, passed) of every check evaluation of the instance's one run."""
    (run,) = instance.get_runs()
    evs = [
        e.dagster_event.event_specific_data
        for e in instance.all_logs(run.run_id)
        if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    return sorted((ev.asset_key.to_user_string(), ev.check_name, ev.passed) for ev in evs)


@pytest.mark.skipif(WHY is not None, reason=f"Spark engine: {WHY}")
@pytest.mark.xdist_group("spark")
def test_the_spark_engine_materializes_through_dagster_like_duckdb(spark, tmp_path):
    import dagster as dg
    from rich.console import Console
    from support.pipeline import BASE, ev, write_lines

    from pipelines.ingest.assets import ingest_events
    from pipelines.spark.run import run_spark_pipeline
    from tracking_plan.loader import default_plan_dir

    landing, root = tmp_path / "landing", str(tmp_path / "layers")
    write_lines(landing, "2026-03-02", "a.jsonl", [ev(mid="a"), ev(mid="a"), ev(mid="b"), "not json"])
    write_lines(landing, "2026-03-03", "a.jsonl", [ev(mid="c", at=BASE.replace(day=3)), ev(mid="b")])
    out = io.StringIO()
    instance = dg.DagsterInstance.ephemeral()
    ok = run_spark_pipeline(
        default_plan_dir(), str(landing), root, console=Console(file=out, width=200), instance=instance
    )
    assert ok, out.getvalue()
    from pipelines.spark.assets import spark_downstream_assets

    assert "loaded" in out.getvalue()
    if not spark_downstream_assets():  # the hook: said, not silently skipped
        assert "stitching, sessions and marts" in out.getvalue()

    def materialized(inst) -> dict:
        got = {}
        for key in ingest_events.keys:
            recs = inst.fetch_materializations(key, limit=10).records
            assert recs, key
            m = recs[0].asset_materialization
            got[key.to_user_string()] = (m.partition, {k: v.value for k, v in m.metadata.items()})
        return got

    spark_meta = materialized(instance)
    run_id = instance.get_runs()[0].run_id
    evaluations = [
        e.dagster_event.event_specific_data
        for e in instance.all_logs(run_id)
        if e.dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    # every blocking check passed (a WARN check, an anomaly family on two days, may not: the DuckDB
    # run below must give the same verdicts)
    checks = {ev.check_name: ev.passed for ev in evaluations if ev.severity.value == "ERROR"}
    assert checks and all(checks.values()), checks

    # every check's result is in the quality.check_results layer, with the DuckDB table's columns and
    # types (its JSON as text), one row per evaluation Dagster reported, with the run id and its days
    import duckdb

    from quality_checks.store import DDL

    ref = duckdb.connect()
    ref.execute(DDL)
    want = ref.execute("describe quality.check_results").fetchall()
    layer = duckdb.connect()
    layer.execute(f"create view r as select * from read_parquet('{root}/quality/check_results/*.parquet')")
    got = layer.execute("describe r").fetchall()
    assert [(c[0], c[1]) for c in got] == [(c[0], "VARCHAR" if c[1] == "JSON" else c[1]) for c in want]
    stored = layer.execute('select asset, check_name, passed, severity, run_id, "partition" from r').fetchall()
    reported = [
        (".".join(ev.asset_key.path), ev.check_name, ev.passed, ev.severity.value, run_id, "2026-03-02..2026-03-03")
        for ev in evaluations
    ]
    assert sorted(stored) == sorted(reported) and len(stored) > len(checks)  # ingest's and the layers' after it
    assert layer.execute("select count(*) from r where json_valid(metadata) and run_at is not null").fetchall() == [
        (len(stored),)
    ]

    # the same run on DuckDB (`trackplan run`): the same keys, partitions and ingest metadata; for every
    # asset the same metadata keys (row counts, stitch statistics, plan version, lineage, summaries,
    # anomalies by detector, failed checks); the same checks evaluated
    from pipelines.runner import run_pipeline

    duck = dg.DagsterInstance.ephemeral()
    (tmp_path / "duckdb").mkdir()
    assert run_pipeline(
        default_plan_dir(),
        landing,
        tmp_path / "duckdb" / "w.duckdb",
        console=Console(file=io.StringIO()),
        instance=duck,
    )
    assert spark_meta == materialized(duck)
    assert spark_meta["ingest/events"][1]["duplicates"] == 2 and spark_meta["ingest/events"][1]["loaded"] == 3
    on_spark, on_duckdb = materialized_keys(instance), materialized_keys(duck)
    assert {"quality/daily_metrics", "quality/anomalies", "quality/check_results", "staging/plan_events"} <= set(
        on_spark
    )
    differing = {k: (on_duckdb.get(k), on_spark.get(k)) for k in set(on_spark) | set(on_duckdb)}
    assert not {k: v for k, v in differing.items() if v[0] != v[1]}
    assert evaluated_checks(instance) == evaluated_checks(duck)
    assert (tmp_path / "gx_docs").is_dir()  # GX Data Docs beside the layers, as beside the warehouse file


def test_definitions_pick_the_engine_without_importing_pyspark():
    code = (
        "import sys, pipelines.definitions as d; "
        "print(sorted(k.to_user_string() for a in d.all_assets() for k in a.keys)); "
        "print(sorted(d.defs.resources)); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pyspark', 'py4j')))"
    )
    env = {**__import__("os").environ, "TRACKPLAN_ENGINE": "spark", "TRACKPLAN_SPARK_ROOT": "/nonexistent/layers"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    keys, resources, spark_mods = out.stdout.strip().splitlines()[-3:]
    assert "'ingest/events'" in keys and "'ingest/quarantine'" in keys and "'ingest/ingestion_log'" in keys
    assert "'spark_engine'" in resources
    assert spark_mods == "[]"


def test_the_session_scratch_directory_goes_with_the_process():
    """The Spark session's warehouse directory (spark.sql.warehouse.dir, Derby's home) is a fresh
    temporary directory, removed when the process exits, files in it included: none is left in /tmp."""
    code = (
        "import pathlib, sys; from pipelines.spark.session import scratch_dir; d = pathlib.Path(scratch_dir()); "
        "(d / 'staging.db').mkdir(); (d / 'staging.db' / 'part-0.parquet').write_bytes(b'x'); print(d)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    made = __import__("pathlib").Path(out.stdout.strip())
    assert made.name.startswith("trackplan-spark-wh-")
    assert not made.exists()


def test_run_refuses_an_unknown_engine_in_one_line():
    from typer.testing import CliRunner

    from trackplan.cli import app

    res = CliRunner().invoke(app, ["run", "--engine", "flink"])
    assert res.exit_code == 2 and "flink: expected duckdb or spark" in res.output


def test_the_downstream_hook_gives_the_duckdb_keys():
    """Around a `build(spark, plan, root)` (pipelines/spark/marts.py), the hook's asset has the keys of
    the DuckDB stitch asset and of every SQL model asset, and loads with the ingest asset."""
    import dagster as dg

    from pipelines.model_assets import model_assets
    from pipelines.resources import TrackingPlan
    from pipelines.spark.assets import _build_asset, spark_ingest_checks, spark_ingest_events
    from pipelines.spark.engine import SparkEngine
    from pipelines.stitch.assets import stitch_identities
    from tracking_plan.loader import default_plan_dir

    hook = _build_asset(lambda spark, plan, root: {"tables": {}})
    keys = set(hook.keys)
    sql = {k for a in model_assets() for k in a.keys if "sql" in (a.specs_by_key[k].kinds or set())}
    assert set(stitch_identities.keys) <= keys and sql and sql <= keys
    dg.Definitions.validate_loadable(
        dg.Definitions(
            assets=[spark_ingest_events, hook],
            asset_checks=[spark_ingest_checks],
            resources={
                "spark_engine": SparkEngine(root="/nonexistent"),
                "tracking_plan": TrackingPlan(plan_dir=str(default_plan_dir()), landing_dir="/nonexistent"),
            },
        )
    )
