"""`trackplan diff --replay`: what the proposed plan would newly reject, per event × library version."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pipelines.ingest.load import ingest_partition
from pipelines.warehouse import connect
from tracking_plan.diff import diff_plans, render_diff
from tracking_plan.loader import DEFAULT_PLAN, load_plan
from tracking_plan.replay import replay

DAY = "2026-11-02"


def _order(i: int, currency: str, lib: str, version: str, **over) -> dict:
    ts = f"{DAY}T10:{i // 60:02d}:{i % 60:02d}.000Z"
    props = {"order_id": f"o{i}", "revenue": 49.0, "currency": currency, "plan": "team", "billing_period": "monthly"}
    props.update(over)
    return {
        "type": "track",
        "event": "Order Completed",
        "messageId": f"m-{i}",
        "userId": f"u{i}",
        "timestamp": ts,
        "sentAt": ts,
        "receivedAt": ts,
        "properties": props,
        "context": {
            "library": {"name": lib, "version": version},
            "consent": {"categoryPreferences": {"analytics": True}},
        },
    }


def _events() -> list[dict]:
    # analytics.js 5.1.0: 10 orders, 3 in EUR; analytics-ios: 6 orders, all USD; one CHF order is
    # invalid today; one order misses order_id (invalid under both plans: not "newly" anything)
    ev = [_order(i, "EUR" if i < 3 else "USD", "analytics.js", "5.1.0") for i in range(10)]
    ev += [_order(10 + i, "USD", "analytics-ios", "4.1.8") for i in range(6)]
    ev.append(_order(20, "CHF", "analytics.js", "5.1.0"))
    bad = _order(21, "USD", "analytics.js", "5.1.0")
    del bad["properties"]["order_id"]
    return [*ev, bad]


@pytest.fixture(scope="module")
def plans(tmp_path_factory) -> tuple:
    head_dir = tmp_path_factory.mktemp("plan") / "plan"
    shutil.copytree(DEFAULT_PLAN, head_dir)
    commerce = head_dir / "properties" / "commerce.yaml"
    text = commerce.read_text()
    assert "  - EUR\n" in text
    commerce.write_text(text.replace("  - EUR\n", "  - CHF\n", 1))  # drop EUR, accept CHF
    return load_plan(DEFAULT_PLAN), load_plan(head_dir)


@pytest.fixture(scope="module")
def events_file(tmp_path_factory) -> Path:
    landing = tmp_path_factory.mktemp("landing")
    f = landing / f"date={DAY}" / "events-0.jsonl"
    f.parent.mkdir()
    f.write_text("".join(json.dumps(e) + "\n" for e in _events()))
    return f


def _check(result) -> None:
    rows = {(r.event, r.library): r for r in result.rows}
    js = rows[("Order Completed", "analytics.js 5.1.0")]
    assert (js.sampled, js.newly_rejected, js.newly_accepted) == (12, 3, 1)
    assert js.reasons == [
        {
            "rule": "enum",
            "path": "$.properties.currency",
            "message": "value EUR is not one of USD, CHF, GBP",
            "count": 3,
        }
    ]
    assert ("Order Completed", "analytics-ios 4.1.8") not in rows  # nothing changes for iOS
    assert (result.newly_rejected, result.newly_accepted) == (3, 1)
    assert (result.base_rejected, result.head_rejected) == (2, 4)  # CHF + missing id; EUR x3 + missing id


def test_replay_events_file(plans, events_file):
    base, head = plans
    result = replay(base, head, events_file)
    assert result.sampled == 18 and result.from_raw == 18
    _check(result)
    text = result.render("text")
    assert "would reject 25.0% of Order Completed from analytics.js 5.1.0 (enum: currency)" in text
    md = render_diff(diff_plans(base, head), "markdown", replay=result)
    assert "| Order Completed | analytics.js 5.1.0 | 12 | 3 (25.0%) | enum `currency` (3) | 1 |" in md
    data = json.loads(render_diff(diff_plans(base, head), "json", replay=result))
    assert data["required_bump"] == "major" and data["replay"]["newly_rejected"] == 3


def test_replay_sample_is_bounded_and_seeded(plans, events_file):
    base, head = plans
    a, b = replay(base, head, events_file, sample=8), replay(base, head, events_file, sample=8)
    assert a.sampled == 8 and a.to_dict() == b.to_dict()


def test_replay_warehouse_rebuilds_events_when_landing_files_are_gone(plans, events_file, tmp_path):
    base, head = plans
    landing = tmp_path / "landing"
    shutil.copytree(events_file.parent.parent, landing)
    wh = tmp_path / "w.duckdb"
    con = connect(wh)
    res = ingest_partition(con, base, landing, DAY)
    con.close()
    assert (res.loaded, res.quarantined) == (16, 2)
    from_lines = replay(base, head, wh)
    assert (from_lines.from_raw, from_lines.rebuilt) == (18, 0)  # loaded lines re-read, quarantined verbatim
    _check(from_lines)
    shutil.rmtree(landing)
    rebuilt = replay(base, head, wh)
    assert (rebuilt.from_raw, rebuilt.rebuilt) == (2, 16)  # only the quarantine still has its lines
    _check(rebuilt)  # messages rebuilt from the typed columns validate exactly like the originals


def test_replay_no_change_says_so(plans, events_file):
    base, _ = plans
    result = replay(base, base, events_file)
    assert result.rows == [] and result.newly_rejected == 0
    assert "No sampled event would be newly rejected" in result.render("markdown")
    with pytest.raises(FileNotFoundError):
        replay(base, base, events_file.parent / "nope.jsonl")
