"""The Dagster UI (`make dev`): the webserver loads every asset, check, schedule and sensor.

Starts `dagster-webserver -w workspace.yaml` on 127.0.0.1 and asks its GraphQL endpoint, the API the
UI itself uses, so a definition that imports but fails to load in the UI is caught here.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT = 90  # seconds: loading the code location imports Dagster, DuckDB, pandas, GX on 2 cores

QUERY = """
{
  assetNodes { assetKey { path } groupName description
    assetChecksOrError { ... on AssetChecks { checks { name } } } }
  repositoriesOrError { ... on RepositoryConnection { nodes { name
    schedules { name } sensors { name } } } }
  workspaceOrError { ... on Workspace { locationEntries { name
    locationOrLoadError { __typename ... on PythonError { message } } } } }
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, query: str) -> dict:
    req = urllib.request.Request(
        url, data=json.dumps({"query": query}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


@pytest.fixture(scope="module")
def graphql(tmp_path_factory):
    exe = Path(sys.executable).parent / "dagster-webserver"
    if not exe.exists() and not shutil.which("dagster-webserver"):
        pytest.skip("dagster-webserver is not installed")
    home = tmp_path_factory.mktemp("dagster_home")
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "TRACKPLAN_WAREHOUSE": str(home / "w.duckdb"),
        "TRACKPLAN_LANDING": str(home / "landing"),
    }
    log = open(home / "webserver.log", "w")  # noqa: SIM115 - closed in the teardown below
    proc = subprocess.Popen(
        [str(exe if exe.exists() else "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/graphql"
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while True:
            if proc.poll() is not None:
                pytest.skip(f"dagster-webserver exited early: {(home / 'webserver.log').read_text()[-500:]}")
            try:
                data = _post(url, QUERY)["data"]
                entries = data["workspaceOrError"]["locationEntries"]
                if entries and entries[0]["locationOrLoadError"]:  # None while the location still loads
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError, TypeError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"dagster-webserver did not answer within {START_TIMEOUT}s")
            time.sleep(1)
        yield data
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # the webserver and the code server it started
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def test_code_location_loads(graphql):
    entries = graphql["workspaceOrError"]["locationEntries"]
    assert [e["name"] for e in entries] == ["trackplan"]
    assert entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation", entries[0]["locationOrLoadError"]


def test_every_asset_and_check_is_in_the_ui(graphql):
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    want_assets = {tuple(k.path) for k in graph.get_all_asset_keys()}
    want_checks = {(tuple(c.asset_key.path), c.name) for c in graph.asset_check_keys}
    nodes = graphql["assetNodes"]
    got_assets = {tuple(n["assetKey"]["path"]) for n in nodes}
    got_checks = {
        (tuple(n["assetKey"]["path"]), c["name"])
        for n in nodes
        for c in (n["assetChecksOrError"] or {}).get("checks", [])
    }
    assert got_assets == want_assets
    assert got_checks == want_checks
    for n in nodes:  # lineage readable: grouped by layer, every asset described
        assert n["groupName"] == n["assetKey"]["path"][0], n["assetKey"]
        assert n["description"], n["assetKey"]


def test_schedules_and_sensors_are_in_the_ui(graphql):
    from pipelines.definitions import defs

    repo = graphql["repositoriesOrError"]["nodes"][0]
    assert {s["name"] for s in repo["schedules"]} == {s.name for s in defs.schedules or []}
    assert {s["name"] for s in repo["sensors"]} == {s.name for s in defs.sensors or []}
