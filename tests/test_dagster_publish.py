"""A run launched through Dagster itself (the UI of `make dev`, a schedule) publishes a consistent
warehouse too (issue 18): the Warehouse resource builds into a copy, records the run in
ingest.run_log and publishes it whole; a run killed midway leaves the warehouse as it was.

The runs execute the real Definitions (`pipelines.definitions.defs`: their resources from the
environment, their in-process executor) the way the UI's "Materialize all" does: the implicit asset
job with every asset selected over the landed days (the partition range the UI's launch dialog sets),
in a child process (so it can be SIGKILLed)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from test_run_consistency import fingerprint  # (tests/ is on sys.path: rootdir import mode)

from pipelines.publish import building_path, last_run
from pipelines.warehouse import connect
from trackplan.demo.generate import generate

LAUNCHER = r"""
import os, signal, sys
if sys.argv[1] == "stitch":  # ingest written (into the copy), stitching starts
    import pipelines.stitch.incremental as m  # the asset imports stitch() from here when it runs
    m.stitch = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
import dagster as dg
from pipelines.definitions import defs
job = defs.resolve_implicit_global_asset_job_def()
keys = [k for a in job.asset_layer.asset_graph.assets_defs for k in a.keys]
days = sorted(p.name[5:] for p in __import__("pathlib").Path(os.environ["TRACKPLAN_LANDING"]).glob("date=*"))
tags = {"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]}
res = job.execute_in_process(
    instance=dg.DagsterInstance.ephemeral(), asset_selection=keys, tags=tags, raise_on_error=False
)
print("run", res.run_id, res.success)
"""


def _launch(point: str, landing: Path, wh: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "TRACKPLAN_LANDING": str(landing), "TRACKPLAN_WAREHOUSE": str(wh)}
    return subprocess.run(
        [sys.executable, "-c", LAUNCHER, point], capture_output=True, text=True, env=env, timeout=900, check=False
    )


@pytest.fixture(scope="module")
def ui_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("uirun")
    # (15 users: as few as 5 lines over seeds 11-50, and none at seed shift 360000; 40 users: 20 or more)
    generate(base / "landing", days=3, users=40, seed=11)
    wh = base / "w.duckdb"
    proc = _launch("none", base / "landing", wh)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return base, wh, proc.stdout.split()[1]


def test_a_dagster_run_is_recorded_and_published(ui_run):
    _, wh, run_id = ui_run
    assert not building_path(wh).exists()
    con = connect(wh, read_only=True)
    try:
        run = last_run(con)
        assert con.execute("select count(*) from ingest.events").fetchall()[0][0] > 0
        assert con.execute("select count(*) from staging.sessions").fetchall()[0][0] > 0
        built = set(con.execute("select unnest(built) from ingest.run_log").fetchall())
    finally:
        con.close()
    assert {("ingest.events",), ("stitch.persons",), ("staging.sessions",), ("marts.experiment_results",)} <= built
    assert run["run_id"] == run_id
    assert run["status"] in ("complete", "incomplete")
    assert run["status"] == "complete" or run["failed"]  # incomplete only with a reason recorded


def test_a_killed_dagster_run_leaves_the_last_published_warehouse(ui_run, tmp_path):
    base, published, _ = ui_run
    wh = tmp_path / "w.duckdb"
    wh.write_bytes(published.read_bytes())
    before = fingerprint(wh)
    proc = _launch("stitch", base / "landing", wh)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    assert fingerprint(wh) == before  # nothing of the killed run: not ingest, not the run log
    # the next run is not stopped by what the killed one left (its copy; the lock died with it)
    proc = _launch("none", base / "landing", wh)
    assert proc.returncode == 0, proc.stderr[-3000:]
    con = connect(wh, read_only=True)
    try:
        runs = con.execute("select count(*) from ingest.run_log").fetchall()[0][0]
    finally:
        con.close()
    assert runs == 2 and not building_path(wh).exists()
