"""pipelines/plan_cache.py: `trackplan run` and its assets share one parse of the plan, parsed again
when a file changes; a broken plan is never kept."""

from __future__ import annotations

import shutil

import pytest

from pipelines import plan_cache
from tracking_plan.loader import PlanError, default_plan_dir, load_plan


@pytest.fixture()
def plan_dir(tmp_path, monkeypatch):
    d = tmp_path / "plan"
    shutil.copytree(default_plan_dir(), d)
    calls = []
    monkeypatch.setattr(plan_cache, "load_plan", lambda p: calls.append(p) or load_plan(p))
    plan_cache._load.cache_clear()
    return d, calls


def test_one_parse_while_the_files_are_unchanged(plan_dir):
    plan_dir, calls = plan_dir
    first = plan_cache.load(plan_dir)
    assert plan_cache.load(str(plan_dir)) is first  # the resource passes the folder as a string
    assert len(calls) == 1
    oracle = load_plan(plan_dir)  # parsed on its own
    assert first.version == oracle.version and list(first.events) == list(oracle.events)


def test_a_changed_file_is_parsed_again(plan_dir):
    plan_dir, calls = plan_dir
    before = plan_cache.load(plan_dir)
    plan = plan_dir / "plan.yaml"
    plan.write_text(plan.read_text().replace(f"version: {before.version}", "version: 99.0.0", 1))
    after = plan_cache.load(plan_dir)
    assert len(calls) == 2 and after.version == "99.0.0"


def test_a_broken_plan_is_not_kept(plan_dir):
    plan_dir, _ = plan_dir
    plan = plan_dir / "plan.yaml"
    good = plan.read_text()
    plan.write_text(good + "\n  bad: [indent\n")
    with pytest.raises(PlanError):
        plan_cache.load(plan_dir)
    plan.write_text(good)
    assert plan_cache.load(plan_dir).version == load_plan(plan_dir).version
