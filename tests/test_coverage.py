"""`trackplan coverage SRC_DIR`: plan events called through generated functions or raw track calls,
unknown event names, dynamic calls, planned events nobody sends; text and JSON; exit 1 on unknown."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tracking_plan.codegen import write_code
from tracking_plan.coverage import scan, track_event_name
from tracking_plan.loader import DEFAULT_PLAN, load_plan
from trackplan.cli import app

PLAN = load_plan(DEFAULT_PLAN)

CHECKOUT_TS = """\
import { orderCompleted, taskExported } from './tracking/browser.js'
import * as srv from './tracking/node.js'

export async function pay(): Promise<void> {
  await orderCompleted({ order_id: 'o1', revenue: 10, currency: 'EUR', plan: 'team', billing_period: 'annual' })
  analytics.track('Signed In', { method: 'email' })
  analytics.track("Order Compelted", {})            // a typo: unknown
  // analytics.track('Commented Out', {})
  /* analytics.track('Block Commented', {}) */
  analytics.track(eventName, {})                    // dynamic
  node.track({ userId: 'u', event: 'Cart Viewed', properties: {} })
  srv.couponApplied({ userId: 'u', properties: { order_id: 'o', coupon: 'X' } })
  taskExported()
  const s = "analytics.track('In A String')"
}
"""

VIEW_TSX = """\
export const Button = () => <button onClick={() => window.analytics.track(`Product Added`, { product_id: 'prd_a' })} />
"""

SERVER_PY = """\
import re

import segment.analytics as analytics
from tracking.trackplan_events import order_completed, payment_failed

m = re.match("a", "a")
m.group(0)
analytics.track("u1", "Product Viewed", {"product_id": "prd_x"})
analytics.track(user_id="u1", event="Unknown Thing")
analytics.track(user_id, name)  # dynamic


def track(name):
    pass


track("Checkout Started")
order_completed({"order_id": "o"}, user_id="u")
payment_failed(
    {"order_id": "o", "reason": "card_declined"}, user_id="u")
# analytics.track("u1", "Commented Python")
"""


@pytest.fixture
def src(tmp_path):
    root = tmp_path / "app"
    (root / "src").mkdir(parents=True)
    write_code(PLAN, "typescript", root / "src" / "tracking")
    write_code(PLAN, "python", root / "src" / "tracking")
    (root / "src" / "checkout.ts").write_text(CHECKOUT_TS, encoding="utf-8")
    (root / "src" / "view.tsx").write_text(VIEW_TSX, encoding="utf-8")
    (root / "src" / "server.py").write_text(SERVER_PY, encoding="utf-8")
    (root / "src" / "types.d.ts").write_text("declare function track(name: 'Nope'): void\n", encoding="utf-8")
    (root / "node_modules" / "lib").mkdir(parents=True)
    (root / "node_modules" / "lib" / "index.js").write_text("analytics.track('Vendor Event')\n", encoding="utf-8")
    (root / "README.md").write_text("analytics.track('Docs Only')\n", encoding="utf-8")
    return root


def test_scan_finds_generated_and_raw_calls(src):
    res = scan(PLAN, src)
    sites = {name: [(s.file, s.line, s.call) for s in v] for name, v in res.called.items()}
    assert sites == {
        "Order Completed": [("src/checkout.ts", 5, "orderCompleted"), ("src/server.py", 18, "order_completed")],
        "Signed In": [("src/checkout.ts", 6, "track")],
        "Cart Viewed": [("src/checkout.ts", 11, "track")],
        "Coupon Applied": [("src/checkout.ts", 12, "couponApplied")],
        "Task Exported": [("src/checkout.ts", 13, "taskExported")],
        "Product Viewed": [("src/server.py", 8, "track")],
        "Checkout Started": [("src/server.py", 17, "track")],
        "Payment Failed": [("src/server.py", 19, "payment_failed")],
        "Product Added": [("src/view.tsx", 1, "track")],
    }
    assert {k: [(s.file, s.line) for s in v] for k, v in res.unknown.items()} == {
        "Order Compelted": [("src/checkout.ts", 7)],
        "Unknown Thing": [("src/server.py", 9)],
    }
    assert [(s.file, s.line) for s in res.dynamic] == [("src/checkout.ts", 10), ("src/server.py", 10)]
    assert res.deprecated_called == ["Task Exported"]
    active = {n for n, e in PLAN.events.items() if e.status == "active"}
    assert set(res.never_sent) == active - set(res.called)
    assert res.files_scanned == 3  # checkout.ts, view.tsx, server.py (not .d.ts, .md, generated, node_modules)
    skipped = {s["file"]: s["reason"] for s in res.skipped}
    assert skipped["node_modules"] == "dependency/build folder"
    assert {f for f, r in skipped.items() if r.startswith("generated")} == {
        "src/tracking/plan.ts",
        "src/tracking/browser.ts",
        "src/tracking/node.ts",
        "src/tracking/trackplan_events.py",
    }
    assert not res.ok


@pytest.mark.parametrize(
    ("args", "python", "expected"),
    [
        ("'Order Completed', {}", False, "Order Completed"),
        ('{ userId: "u", event: "Cart Viewed" }', False, "Cart Viewed"),
        ("name, {}", False, None),
        ('"u1", "Order Completed", {"a": 1}', True, "Order Completed"),
        ('"Order Completed", {"a": 1}', True, "Order Completed"),
        ('"Order Completed"', True, "Order Completed"),
        ('user_id, "Order Completed"', True, "Order Completed"),
        ('"u1", event_name', True, None),
        ('user_id="u", event="Signed In", properties={}', True, "Signed In"),
        ("'It\\'s Done'", False, "It's Done"),
    ],
)
def test_track_event_name(args, python, expected):
    assert track_event_name(args, python) == expected


def test_cli_text_json_and_exit_codes(src, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["coverage", str(src)])
    assert res.exit_code == 1
    assert "src/checkout.ts:7: unknown event 'Order Compelted' is not in the plan" in res.output
    assert "src/checkout.ts:10: dynamic track() call" in res.output
    assert "never sent  Account Created" in res.output
    assert "skipped     src/tracking/plan.ts: generated by trackplan codegen" in res.output
    res = runner.invoke(app, ["coverage", str(src), "--format", "json"])
    data = json.loads(res.output)
    assert res.exit_code == 1 and data["ok"] is False
    assert [u["event"] for u in data["unknown"]] == ["Order Compelted", "Unknown Thing"]
    assert {"event": "Signed In", "sites": [{"file": "src/checkout.ts", "line": 6, "call": "track"}]} in data["called"]
    # only known events: exit 0
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "a.js").write_text("analytics.track('Signed In')\n", encoding="utf-8")
    res = runner.invoke(app, ["coverage", str(clean)])
    assert res.exit_code == 0, res.output
    assert "1 plan events called" in res.output
    res = runner.invoke(app, ["coverage", str(tmp_path / "missing")])
    assert res.exit_code == 2 and "no such file or directory" in res.output
    # one file: scanned when it is source, else said why not (it used to be passed over in silence)
    res = runner.invoke(app, ["coverage", str(clean / "a.js")])
    assert res.exit_code == 0 and "1 source files scanned" in res.output and "1 plan events called" in res.output
    (tmp_path / "events.jsonl").write_text('{"event": "Signed In"}\n', encoding="utf-8")
    res = runner.invoke(app, ["coverage", str(tmp_path / "events.jsonl")])
    assert f"skipped     {tmp_path / 'events.jsonl'}: not a .ts/.tsx/.js/.py source file" in res.output


def test_cli_codegen(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["codegen", "--lang", "python", "--out", str(tmp_path / "py")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "py" / "trackplan_events.py").exists()
    res = runner.invoke(app, ["codegen", "--lang", "typescript", "--out", str(tmp_path / "ts")])
    assert sorted(p.name for p in (tmp_path / "ts").iterdir()) == ["browser.ts", "node.ts", "plan.ts"]
    res = runner.invoke(app, ["codegen", "--lang", "ruby", "--out", str(tmp_path / "rb")])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == ["--lang 'ruby': expected one of typescript, python"]


def test_pull_request_workflow_runs_coverage_beside_lint_and_diff(tmp_path):
    """The workflow's coverage step, run as CI runs it: exit recorded, the report appended to the PR
    comment, and a later step failing the job on unknown events."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    steps = yaml.safe_load((root / ".github/workflows/tracking-plan.yml").read_text())["jobs"]["plan"]["steps"]
    names = [s.get("name") for s in steps]
    assert (
        names.index("Lint the plan")
        < names.index("Diff against main, with replay")
        < names.index("Plan coverage of the source")
        < names.index("Comment on the pull request")
    )
    assert any("steps.coverage.outputs.exit != '0'" in str(s.get("if")) for s in steps)
    run = steps[names.index("Plan coverage of the source")]["run"]
    work = tmp_path / "repo"
    (work / ".venv" / "bin").mkdir(parents=True)
    trackplan = shutil.which("trackplan", path=str(Path(sys.executable).parent))
    (work / ".venv" / "bin" / "trackplan").symlink_to(trackplan)
    (work / "app").mkdir()
    (work / "app" / "a.js").write_text("analytics.track('Signed In')\nanalytics.track('Nope')\n", encoding="utf-8")
    for src, code in (("app", "1"), ("", "0")):
        out = tmp_path / f"out{code}"
        env = {
            **os.environ,
            "TRACKPLAN_SRC": src,
            "GITHUB_OUTPUT": str(out),
            "GITHUB_STEP_SUMMARY": str(tmp_path / "s"),
        }
        subprocess.run(["bash", "-e", "-c", run], cwd=work, env=env, check=True, timeout=120)
        assert out.read_text() == f"exit={code}\n"
    comment = (work / "plan-diff.md").read_text()
    assert "#### Plan coverage of `app`" in comment and "a.js:2: unknown event 'Nope' is not in the plan" in comment
    assert "Not run: set the repository variable `TRACKPLAN_SRC`" in comment
