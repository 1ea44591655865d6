"""`trackplan lint | diff | compile` through the Typer app: output formats and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from trackplan.cli import app

PLANS = Path(__file__).resolve().parent / "fixtures" / "plans"
runner = CliRunner()


def test_lint_sample_plan_passes():
    res = runner.invoke(app, ["lint"])
    assert res.exit_code == 0, res.output
    assert "0 error(s)" in res.output


def test_lint_errors_exit_1_with_json():
    res = runner.invoke(app, ["lint", "--plan", str(PLANS / "lint_bad"), "--format", "json"])
    assert res.exit_code == 1
    data = json.loads(res.stdout)
    assert data["errors"] > 0 and {"file", "line", "code", "message", "severity"} <= set(data["problems"][0])


def test_lint_broken_yaml_no_traceback():
    res = runner.invoke(app, ["lint", "--plan", str(PLANS / "broken" / "non_utf8")])
    assert res.exit_code == 1
    assert "signed_up.yaml:3: E001 not UTF-8" in res.output and "Traceback" not in res.output


def test_diff_exit_codes_and_markdown():
    ok = runner.invoke(app, ["diff", "--base", str(PLANS / "v1"), "--plan", str(PLANS / "v2"), "--format", "json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["required_bump"] == "major"
    bad = runner.invoke(app, ["diff", "--base", str(PLANS / "v2"), "--plan", str(PLANS / "v3"), "--format", "markdown"])
    assert bad.exit_code == 1
    assert bad.stdout.startswith("### ❌") and "| 2.0.0 | 2.0.1 | patch | minor |" in bad.stdout


def test_compile_writes_valid_schemas(tmp_path):
    res = runner.invoke(app, ["compile", "--plan", str(PLANS / "v2"), "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    index = json.loads((tmp_path / "index.json").read_text())
    assert len(index["schemas"]) == 7
    for entry in index["schemas"]:
        Draft202012Validator.check_schema(json.loads((tmp_path / entry["path"]).read_text()))
