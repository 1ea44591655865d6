"""Snapshot of the Dagster asset graph: every asset key, its group and its upstream keys.

A change of lineage (a new table, a renamed asset, a new dependency) shows up in review as a diff
of tests/golden/asset_graph.txt. After an intended change, regenerate and review the diff:

    TRACKPLAN_REGENERATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_definitions.py
"""

import difflib
import os
from pathlib import Path

import dagster as dg

GOLDEN = Path(__file__).parent / "golden" / "asset_graph.txt"


def _graph() -> str:
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    lines = []
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        deps = ", ".join(sorted(p.to_user_string() for p in node.parent_keys)) or "-"
        lines.append(f"{key.to_user_string()}  group={node.group_name}  deps=[{deps}]")
    checks = sorted(f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys)
    return "\n".join(["# assets", *lines, "# checks", *checks]) + "\n"


def test_asset_graph_matches_golden():
    got = _graph()
    if os.environ.get("TRACKPLAN_REGENERATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(got)
    assert GOLDEN.exists(), "no golden file: run with TRACKPLAN_REGENERATE_GOLDEN=1 and review it"
    want = GOLDEN.read_text()
    diff = "".join(difflib.unified_diff(want.splitlines(True), got.splitlines(True), "golden", "defs"))
    assert got == want, f"asset graph changed: regenerate the golden file (see docstring) and review:\n{diff}"


def test_layers_are_groups_and_key_prefixes():
    from pipelines.definitions import defs

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if node.is_materializable:
            assert len(key.path) == 2 and key.path[0] == node.group_name, key


def test_definitions_load_with_jobs_schedule_and_sensor():
    from pipelines.definitions import defs

    assert isinstance(defs, dg.Definitions)
    schedules = [defs.resolve_schedule_def(s.name) for s in defs.schedules]
    minute, hour, *rest = schedules[0].cron_schedule.split()
    assert len(schedules) == 1 and minute.isdigit() and hour.isdigit() and rest == ["*", "*", "*"]  # daily
    assert [s.name for s in defs.sensors] == ["landing_sensor"]
    core = {dg.AssetKey(k) for k in (["ingest", "events"], ["stitch", "persons"], ["staging", "sessions"])}
    assert core <= set(defs.resolve_asset_graph().get_all_asset_keys())
