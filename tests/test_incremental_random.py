"""Incremental == full on random scenarios (issue 18, item 2): where tests/test_incremental.py holds
one hand-made scenario, each test here draws one from its seed (tests/support/scenarios.py: late
events at the session boundaries, merges and aliases reaching back, re-sends, client sessions across
days, late signups and orders, consent declined (and a dropped message sent again granted), a day whose folder arrives late, a person erased
after the middle run, a backfill of messages a later day loaded, a day run again with one more file
and one without a file) and runs it day by day as a
schedule would, then compares every table with a full build of the same landing zone (with the same
erasure register). The seeds are the first ones, shifted by `make test-seeds`;
`benchmarks/incremental_scenarios.py` runs many."""

from __future__ import annotations

import pytest
from support.scenarios import Scenario, daily_then_full

from pipelines.ingest.load import DISPLACED
from tracking_plan.loader import default_plan_dir, load_plan


@pytest.mark.parametrize("seed", [0, 1])
def test_daily_runs_equal_a_full_build_on_a_random_scenario(tmp_path, seed):
    scenario = Scenario(tmp_path, seed)
    diffs, modes = daily_then_full(tmp_path, scenario, load_plan(), default_plan_dir())
    assert not diffs, "\n".join([f"seed {seed}, scenario:", *scenario.log, "differences:", *diffs])
    # the runs after the first were incremental, and the backfill moved a message's first copy
    assert [(m["stitch"], m["sessions"]) for m in modes[1:-1]] == [("incremental", "incremental")] * (len(modes) - 2)
    assert any(DISPLACED in m["again"].values() for m in modes), [m["again"] for m in modes]
    assert scenario.erased > 0  # the erased person had rows (the full build never loads them)
