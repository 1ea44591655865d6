"""Validation on Spark (issue 20, item 1): every landed file validated inside a Spark task by the one
DuckDB validator gives the CLI's verdicts: the same per-file counts and file errors, the same
(file, line, rule) quarantine set, on generated traffic with planted bugs, bad UTF-8, a truncated
gzip and a Segment batch file. Same Spark group (one JVM) as the parity tests."""

from __future__ import annotations

import gzip

import pytest

from pipelines.spark.session import unavailable

WHY = unavailable()
pytestmark = [pytest.mark.skipif(WHY is not None, reason=f"Spark ingest: {WHY}"), pytest.mark.xdist_group("spark")]


def test_validation_on_spark_gives_the_cli_verdicts(spark, tmp_path):
    from support.pipeline import ev, write_lines

    from pipelines.spark.ingest import validate_landing
    from tracking_plan.loader import load_plan
    from tracking_plan.reader import is_input_file
    from tracking_plan.validate import validate_files
    from trackplan.demo.generate import generate

    plan = load_plan()
    landing = tmp_path / "landing"
    generate(landing, users=8, seed=5, bug_rate=0.05, plan=plan)
    day = "2026-03-02"
    write_lines(landing, day, "utf8.jsonl", [ev(), b'{"type": "track", "event": "Signed In", "x": "\xff\xfe"}', ev()])
    whole = gzip.compress(b"\n".join(__import__("orjson").dumps(ev()) for _ in range(50)) + b"\n")
    (landing / f"date={day}" / "cut.jsonl.gz").write_bytes(whole[: len(whole) // 2])
    batch = {"batch": [ev(), {**ev(), "event": "No Such Event"}], "sentAt": "2026-03-02T09:00:00.000Z"}
    (landing / f"date={day}" / "batch.json").write_bytes(__import__("orjson").dumps(batch))

    files = sorted(str(p) for p in landing.rglob("*") if p.is_file() and is_input_file(p))
    cli = validate_files(plan, files)
    want_files = {(r.file, r.total, r.valid, r.invalid, r.warnings, r.file_error) for r in cli}
    want_errors = {(e["file"], e["line"], e["rule"], e["path"], e["message"]) for r in cli for e in r.errors}
    assert any(r.file_error for r in cli) and len(want_errors) > 20  # the fixture has every kind of trouble

    rows = validate_landing(spark, plan, str(landing)).collect()
    local = lambda p: p.removeprefix("file:")
    got_files = {
        (local(r.file), r.total, r.valid, r.invalid, r.warnings, r.file_error) for r in rows if r.kind == "file"
    }
    got_errors = {(local(r.file), r.line, r.rule, r.path, r.message) for r in rows if r.kind == "error"}
    assert got_files == want_files
    assert got_errors == want_errors
