"""A run publishes a consistent warehouse (issue 15, item 6).

`trackplan run` is SIGKILLed at several points (as it starts to ingest, when stitching starts, in
the middle of the quality checks, just before it publishes, and after a few seconds from outside):
each time the warehouse must be exactly what the last published run left (every table, the check
history and the run log), and the next run must finish the work. A run whose step fails is
published as `incomplete` and its summary says so instead of showing stale counts."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipelines.warehouse import connect
from trackplan.cli import app
from trackplan.demo.generate import generate

REPO = Path(__file__).resolve().parents[1]

# the launcher runs the real CLI in a child process, SIGKILLing itself when `point` is reached
LAUNCHER = r"""
import os, signal, sys
point, args = sys.argv[1], sys.argv[2:]

def die(*a, **k):
    os.kill(os.getpid(), signal.SIGKILL)

if point == "ingest":  # validated, about to write the ingest tables
    import pipelines.ingest.load as m; m._load_group = die
elif point == "stitch":  # ingest committed (in the copy), stitching starts
    import pipelines.stitch.incremental as m; m.stitch = die  # the asset imports it when it runs (full and daily paths)
elif point == "checks":  # some check results appended, others not yet
    import quality_checks.store as m
    real, calls = m.append, []
    def append(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            die()
        return real(*a, **k)
    m.append = append
elif point == "publish":  # every asset built and the run recorded in the copy; not yet swapped in
    import pipelines.publish as m; m.Build.publish = die
from trackplan.cli import app
app(args, prog_name="trackplan")
"""


def fingerprint(path: Path) -> dict[str, tuple[int, str]]:
    """{table: (rows, digest of its sorted rows)} of every table of the warehouse."""
    con = connect(path, read_only=True)
    try:
        out = {}
        for schema, table in con.execute("select schema_name, table_name from duckdb_tables() order by all").fetchall():
            rows = sorted(map(repr, con.execute(f'select * from "{schema}"."{table}"').fetchall()))
            out[f"{schema}.{table}"] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
        return out
    finally:
        con.close()


def _run_args(landing: Path, warehouse: Path) -> list[str]:
    return ["run", "--landing", str(landing), "--warehouse", str(warehouse)]


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """A warehouse after one complete run over 4 days; a landing zone with a 5th day for the next run."""
    base = tmp_path_factory.mktemp("consistency")
    res = generate(base / "landing", days=5, users=25, seed=7)
    last = max((base / "landing").glob("date=*"))
    last.rename(base / "held-back")
    wh = base / "w.duckdb"
    out = CliRunner().invoke(app, _run_args(base / "landing", wh))
    assert out.exit_code == 0, out.output
    (base / "held-back").rename(last)  # the next run has a new day to ingest
    assert res.files
    return base, wh, fingerprint(wh)


def _copy(published, tmp_path) -> Path:
    _, wh, _ = published
    mine = tmp_path / "w.duckdb"
    mine.write_bytes(wh.read_bytes())
    return mine


def _assert_as_published(wh: Path, expected: dict) -> None:
    assert fingerprint(wh) == expected  # every table, the check history and the run log: nothing of the killed run
    con = connect(wh, read_only=True)
    try:
        runs = {r for (r,) in con.execute("select run_id from ingest.run_log").fetchall()}
        checked = {r for (r,) in con.execute("select distinct run_id from quality.check_results").fetchall()}
        status = con.execute("select status from ingest.run_log").fetchall()
    finally:
        con.close()
    assert len(runs) == 1 and checked == runs and status == [("complete",)]


@pytest.mark.parametrize("point", ["ingest", "stitch", "checks", "publish"])
def test_kill_at_a_stage_leaves_the_last_published_run(published, tmp_path, point):
    base, _, expected = published
    wh = _copy(published, tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", LAUNCHER, point, *_run_args(base / "landing", wh)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    _assert_as_published(wh, expected)
    if point in ("ingest", "publish"):  # (the finishing run costs a full run: two points show it)
        _finish_and_check(base, wh)


@pytest.mark.parametrize("seconds", [6.0, 14.0])
def test_kill_after_n_seconds_leaves_the_last_published_run(published, tmp_path, seconds):
    """The real `trackplan` process, killed from outside (where it stands then varies with the machine)."""
    base, _, expected = published
    wh = _copy(published, tmp_path)
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "trackplan"), *_run_args(base / "landing", wh)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    if proc.returncode != -signal.SIGKILL:
        pytest.skip(f"the run finished within {seconds} s: nothing to kill on this machine")
    con = connect(wh, read_only=True)
    try:
        runs = con.execute("select count(*) from ingest.run_log").fetchall()[0][0]
    finally:
        con.close()
    if runs == 1:  # killed before it published: exactly the last published run
        _assert_as_published(wh, expected)
    else:  # killed after it published (the summary, the Dagster records): the new run, whole and complete
        _assert_last_run_complete(wh)


def _finish_and_check(base: Path, wh: Path) -> None:
    """The next run finishes the work: complete, every asset built by it, the 5th day ingested."""
    out = CliRunner().invoke(app, _run_args(base / "landing", wh))
    assert out.exit_code == 0, out.output
    _assert_last_run_complete(wh)


def _assert_last_run_complete(wh: Path) -> None:
    """The last run in the log is complete, built every asset, ingested the 5th day and wrote its checks."""
    assert not Path(f"{wh}.building").exists()
    con = connect(wh, read_only=True)
    try:
        last = con.execute(
            "select run_id, status, not_built, first_day, last_day from ingest.run_log "
            "order by finished_at desc limit 1"
        ).fetchall()[0]
        days = con.execute("select count(distinct partition_date) from ingest.ingestion_log").fetchall()[0][0]
        checked = con.execute("select count(*) from quality.check_results where run_id = ?", [last[0]]).fetchall()
    finally:
        con.close()
    assert last[1:3] == ("complete", []) and days == 5 and checked[0][0] > 0


def test_a_failed_step_is_published_incomplete_without_a_stale_summary(published, tmp_path, monkeypatch):
    base, _, _ = published
    wh = _copy(published, tmp_path)
    import pipelines.stitch.incremental as stitch  # the asset imports stitch() from here when it runs

    def broken(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(stitch, "stitch", broken)
    out = CliRunner().invoke(app, _run_args(base / "landing", wh))
    assert out.exit_code == 1
    assert "failed: stitch_identities: RuntimeError: disk on fire" in " ".join(out.stderr.split())
    text = " ".join(out.stderr.replace("│", " ").split())  # the summary table, unwrapped
    assert "INCOMPLETE" in text and "Traceback" not in text
    assert "failed steps: stitch_identities" in text and "persons not rebuilt" in text
    con = connect(wh, read_only=True)
    try:
        status, not_built, failed = con.execute(
            "select status, not_built, failed from ingest.run_log order by finished_at desc limit 1"
        ).fetchall()[0]
        lines = con.execute("select count(distinct partition_date) from ingest.ingestion_log").fetchall()[0][0]
    finally:
        con.close()
    assert status == "incomplete" and "stitch.persons" in not_built and "marts.retention" in not_built
    assert any("stitch" in f for f in failed) and lines == 5  # the ingest of this run is published
    from trackplan.report import render_report

    html = render_report(wh)
    assert "(incomplete," in html and "tables not rebuilt by it" in html
