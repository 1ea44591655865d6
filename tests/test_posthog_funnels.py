"""marts.funnel_conversion reproduces PostHog's ordered-funnel tests (peer-data/posthog-funnels).

Source: PostHog/posthog posthog/hogql_queries/insights/funnels/test/test_funnel.py
(test_funnel_conversion_window, test_funnel_conversion_window_seconds,
test_funnel_exclusion_no_end_event, test_funnel_exclusions_full_window,
test_advanced_funnel_exclusions_between_steps [0->1] and [1->2],
test_funnel_exclusion_multiple_possible_no_end_event1/2/3): all nine cases.
Mapping: each PostHog funnel becomes a metrics.yaml funnel (steps, window_hours from the conversion
window, exclusions with PostHog's 0-based from/to steps as our 1-based `between`). PostHog only
starts attempts inside [date_from, date_to]; every case's events lie inside it, which the test checks,
so our all-data mart sees the same attempts.
"""

from __future__ import annotations

import json
from datetime import datetime

import pytest
from support.marts import PEER_DATA, run_model, setup, warehouse

CASES_FILE = PEER_DATA / "posthog-funnels" / "funnel_cases.json"
if not CASES_FILE.exists():
    pytest.skip(f"PostHog funnel fixtures absent: {CASES_FILE}", allow_module_level=True)
CASES = json.loads(CASES_FILE.read_text())["cases"]

HOURS = {"second": 1 / 3600, "minute": 1 / 60, "hour": 1, "day": 24, "week": 168}


def _ts(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", ""))


def _reached_by(con, k: int) -> set[str]:
    """Persons reaching step k: the mart re-run on each person's events alone (persons are independent)."""
    con.execute("create or replace table _all_events as select * from stitch.events")
    out = set()
    for (person,) in con.execute("select distinct person_id from _all_events").fetchall():
        con.execute("create or replace table stitch.events as select * from _all_events where person_id = ?", [person])
        rows = run_model(con, "marts.funnel_conversion")
        if next(r["persons"] for r in rows if r["step_index"] == k) == 1:
            out.add(person)
    con.execute("create or replace table stitch.events as select * from _all_events")
    return out


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_posthog_funnel_case(case):
    lo, hi = _ts(case["date_from"]), _ts(case["date_to"])
    assert all(lo <= _ts(e["timestamp"]) <= hi for e in case["events"]), "date range would matter"
    con = warehouse()
    w = case["conversion_window"]
    funnel = {
        "key": "peer",
        "steps": case["steps"],
        "window_hours": w["interval"] * HOURS[w["unit"]],
        "exclusions": [
            {"event": x["event"], "between": [x["from_step"] + 1, x["to_step"] + 1]} for x in case["exclusions"]
        ],
    }
    events = [{"event": e["event"], "timestamp": e["timestamp"], "person_id": e["distinct_id"]} for e in case["events"]]
    setup(con, events, metrics={"funnels": [funnel]})
    rows = sorted(run_model(con, "marts.funnel_conversion"), key=lambda r: r["step_index"])
    counts = [r["persons"] for r in rows]
    if "expected_counts" in case:
        assert counts == case["expected_counts"]
    for step, n in case.get("expected_counts_partial", {}).items():
        assert counts[int(step)] == n
    # PostHog's actors at step k (1-based there): persons reaching it; check each person's own run
    for step, names in case.get("expected_actors_at_step", {}).items():
        assert _reached_by(con, int(step)) == set(names)
