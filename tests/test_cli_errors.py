"""Every CLI error is one line on stderr naming the file, line, option or lock holder, with a
non-zero exit and no traceback (issue 15, item 8): one case per command that used to end in one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from support.pipeline import DAY, ev, ingest, write_lines
from typer.testing import CliRunner

from tracking_plan.loader import DEFAULT_PLAN
from trackplan.cli import app

REPO = Path(__file__).resolve().parents[1]
TRACKPLAN = Path(sys.executable).parent / "trackplan"


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """A small warehouse, a plan with a YAML error, a file that is not DuckDB."""
    base = tmp_path_factory.mktemp("clierr")
    landing, wh = base / "landing", base / "w.duckdb"
    write_lines(landing, DAY, "a.jsonl", [ev(user="u1"), ev(user="u2")])
    ingest(wh, landing)
    bad = base / "badplan"
    shutil.copytree(DEFAULT_PLAN, bad)
    (bad / "plan.yaml").write_text((bad / "plan.yaml").read_text() + "owners: [unclosed\n")
    (base / "fake.duckdb").write_text("not a database\n")
    return base


def _invoke(args: list[str]):
    res = CliRunner().invoke(app, args)
    # an exception other than the exit means the command was not handled (CliRunner hides tracebacks)
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    return res


def _one_line(res, *words: str) -> str:
    assert res.exit_code != 0, res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 1, res.stderr
    assert "Traceback" not in res.output
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


CASES = {
    "sql --dialect oracle9": (["sql", "--dialect", "oracle9"], ["--dialect", "oracle9"]),
    "docs, plan YAML error": (["docs", "--plan", "{base}/badplan", "--out", "{base}/site"], ["plan.yaml:", "E001"]),
    "report, plan YAML error": (
        ["report", "--plan", "{base}/badplan", "--warehouse", "{base}/w.duckdb", "--out", "{base}/r.html"],
        ["plan.yaml:", "E001"],
    ),
    "review, plan YAML error": (
        ["review", "--plan", "{base}/badplan", "--warehouse", "{base}/w.duckdb"],
        ["plan.yaml:", "E001"],
    ),
    "generate --days 0": (["generate", "--out", "{base}/g", "--days", "0"], ["--days", "greater than or equal to 1"]),
    "generate --users -5": (
        ["generate", "--out", "{base}/g", "--users", "-5"],
        ["--users", "greater than or equal to 1"],
    ),
    "run --partition 2026-13-45": (
        ["run", "--partition", "2026-13-45", "--landing", "{base}/landing", "--warehouse", "{base}/w.duckdb"],
        ["--partition", "2026-13-45"],
    ),
    "lint --format xml": (["lint", "--format", "xml"], ["--format", "xml"]),
    "validate --format xml": (
        ["validate", "--format", "xml", "{base}/landing/date=" + DAY + "/a.jsonl"],
        ["--format", "xml"],
    ),
    "diff --format yaml": (["diff", "--base", str(DEFAULT_PLAN), "--format", "yaml"], ["--format", "yaml"]),
    "review --format pdf": (["review", "--warehouse", "{base}/w.duckdb", "--format", "pdf"], ["--format", "pdf"]),
    "lineage --format xml": (["lineage", "marts.retention", "--format", "xml"], ["--format", "xml"]),
    "report on a non-DuckDB file": (
        ["report", "--warehouse", "{base}/fake.duckdb", "--out", "{base}/r.html"],
        ["fake.duckdb", "not a DuckDB database"],
    ),
    "forget, empty id": (["forget", "--user-id", "", "--warehouse", "{base}/w.duckdb"], ["--user-id"]),
    "forget, missing warehouse": (
        ["forget", "--user-id", "u1", "--warehouse", "{base}/nope.duckdb"],
        ["nope.duckdb", "no such warehouse"],
    ),
    # found by feeding each command bad values (2026-12-05): these were taken, silently or not
    "generate --bug-rate 7 (was 'a defect: please report it')": (
        ["generate", "--out", "{base}/g", "--bug-rate", "7"],
        ["--bug-rate", "less than or equal to 0.5"],
    ),
    "serve --port 99999 (listened on 99999 mod 65536)": (
        ["serve", "--port", "99999", "--landing", "{base}/collected"],
        ["--port", "less than or equal to 65535"],
    ),
    "serve --landing on a file (the server started, then a traceback)": (
        ["serve", "--landing", "{base}/fake.duckdb", "--port", "0"],
        ["--landing", "fake.duckdb", "not a directory"],
    ),
    "validate --unexpected maybe (was ignored)": (
        ["validate", "--unexpected", "maybe", "{base}/landing/date=" + DAY + "/a.jsonl"],
        ["--unexpected", "maybe", "allow, warn, reject"],
    ),
    "validate --max-errors -1": (
        ["validate", "--max-errors", "-1", "{base}/landing/date=" + DAY + "/a.jsonl"],
        ["--max-errors", "greater than or equal to 0"],
    ),
    "diff --replay-sample -5": (
        ["diff", "--base", str(DEFAULT_PLAN), "--replay", "{base}/w.duckdb", "--replay-sample", "-5"],
        ["--replay-sample", "greater than or equal to 1"],
    ),
    "lint --warehouse, missing (was 'cannot write the warehouse')": (
        ["lint", "--warehouse", "{base}/nope.duckdb"],
        ["nope.duckdb", "no such warehouse"],
    ),
}


def test_the_collector_refuses_a_port_it_cannot_listen_on():
    from pipelines.collector import serve

    with pytest.raises(ValueError, match="port 99999 is not a TCP port"):
        serve(port=99999)


@pytest.mark.parametrize("case", list(CASES))
def test_former_traceback_is_one_line(env, case):
    args, words = CASES[case]
    res = _invoke([a.replace("{base}", str(env)) for a in args])
    _one_line(res, *words)


@pytest.fixture()
def locked(env):
    """Another process holds the warehouse's DuckDB lock (a notebook, the Dagster UI)."""
    code = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('ready', flush=True); time.sleep(120)"
    proc = subprocess.Popen([sys.executable, "-c", code, str(env / "w.duckdb")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    yield proc.pid
    proc.kill()
    proc.wait()


LOCKED = {
    "run": ["run", "--landing", "{base}/landing", "--warehouse", "{base}/w.duckdb"],
    "report": ["report", "--warehouse", "{base}/w.duckdb", "--out", "{base}/r.html"],
    "review": ["review", "--warehouse", "{base}/w.duckdb"],
    "lint --warehouse": ["lint", "--warehouse", "{base}/w.duckdb"],
    "forget": ["forget", "--user-id", "u1", "--warehouse", "{base}/w.duckdb"],
    "diff --replay": ["diff", "--base", str(DEFAULT_PLAN), "--replay", "{base}/w.duckdb"],
}


@pytest.mark.parametrize("command", list(LOCKED))
def test_locked_warehouse_names_the_holder(env, locked, command):
    res = _invoke([a.replace("{base}", str(env)) for a in LOCKED[command]])
    line = _one_line(res, "w.duckdb", f"(PID {locked})", "locked by")
    assert res.exit_code == 3, line


def _unshare_ro(folder: Path, argv: list[str]) -> subprocess.CompletedProcess:
    """Run argv with `folder` bind-mounted read-only (a private mount namespace: needs root)."""
    script = f'mount -o bind,ro "{folder}" "{folder}" && exec "$@"'
    return subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *argv],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        check=False,
    )


def _can_unshare(tmp: Path) -> bool:
    if not shutil.which("unshare") or os.geteuid() != 0:
        return False
    return _unshare_ro(tmp, ["true"]).returncode == 0


@pytest.mark.parametrize("command", ["run", "forget"])
def test_read_only_warehouse_is_one_line(env, tmp_path, command):
    if not _can_unshare(tmp_path):
        pytest.skip("needs root and unshare for a read-only bind mount")
    shutil.copy(env / "w.duckdb", tmp_path / "w.duckdb")
    args = {"run": ["run", "--landing", str(env / "landing")], "forget": ["forget", "--user-id", "u1"]}[command]
    proc = _unshare_ro(tmp_path, [str(TRACKPLAN), *args, "--warehouse", str(tmp_path / "w.duckdb")])
    assert proc.returncode == 3, proc.stderr
    expected = (
        f"trackplan: {tmp_path / 'w.duckdb'}: cannot be written (Read-only file system: {tmp_path / 'w.duckdb.lock'})"
    )
    assert proc.stderr.splitlines() == [expected]


def test_readers_read_a_read_only_warehouse(env, tmp_path):
    if not _can_unshare(tmp_path):
        pytest.skip("needs root and unshare for a read-only bind mount")
    shutil.copy(env / "w.duckdb", tmp_path / "w.duckdb")
    proc = _unshare_ro(tmp_path, [str(TRACKPLAN), "review", "--warehouse", str(tmp_path / "w.duckdb")])
    assert proc.returncode == 0, proc.stderr


def test_real_process_prints_no_traceback(env):
    """The installed entry point (not CliRunner): one line on stderr, exit 2."""
    proc = subprocess.run(
        [str(TRACKPLAN), "sql", "--dialect", "oracle9"], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    expected = "trackplan: --dialect: unknown dialect 'oracle9'; e.g. snowflake, bigquery, spark"
    assert proc.stderr.splitlines() == [expected]


def test_run_without_salt_refuses_in_one_line(env, monkeypatch):
    monkeypatch.delenv("TRACKPLAN_HASH_SALT")
    res = _invoke(["run", "--landing", str(env / "landing"), "--warehouse", str(env / "nosalt.duckdb")])
    _one_line(res, "TRACKPLAN_HASH_SALT is not set", "trackplan demo")
    assert not (env / "nosalt.duckdb").exists()


def test_forget_without_salt_refuses_in_one_line(env, monkeypatch):
    monkeypatch.delenv("TRACKPLAN_HASH_SALT")
    _one_line(
        _invoke(["forget", "--user-id", "u1", "--warehouse", str(env / "w.duckdb")]), "TRACKPLAN_HASH_SALT is not set"
    )


def test_demo_says_it_uses_the_public_demo_salt(tmp_path, monkeypatch):
    import pipelines.runner
    import trackplan.demo.generate
    import trackplan.report
    from pipelines.warehouse import DEMO_SALT

    monkeypatch.delenv("TRACKPLAN_HASH_SALT")
    seen = {}

    def fake_run(**kw):
        seen["salt"] = os.environ.get("TRACKPLAN_HASH_SALT")
        return True

    monkeypatch.setattr(pipelines.runner, "run_pipeline", fake_run)
    monkeypatch.setattr(
        trackplan.demo.generate, "generate", lambda out, seed: type("R", (), {"lines": 1, "persons": 1})()
    )
    monkeypatch.setattr(trackplan.report, "write_report", lambda *a, **k: None)
    res = _invoke(["demo", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert seen["salt"] == DEMO_SALT and "public demo salt" in res.stderr


def test_partition_without_files_says_so_and_rebuilds_nothing(env):
    """Nothing new: no table changes, the run is recorded (one run_log row carrying the status before)."""
    from pipelines.publish import last_run
    from pipelines.warehouse import connect

    def state():
        con = connect(env / "w.duckdb", read_only=True)
        try:
            tables = con.execute(
                "select schema_name, table_name, estimated_size from duckdb_tables() "
                "where table_name <> 'run_log' order by all"
            ).fetchall()
            return tables, last_run(con)
        finally:
            con.close()

    tables, run = state()
    res = _invoke(
        ["run", "--partition", "2026-01-01", "--landing", str(env / "landing"), "--warehouse", str(env / "w.duckdb")]
    )
    assert res.exit_code == 0
    expected = (
        f"no landing files for 2026-01-01 (nothing under {env / 'landing' / 'date=2026-01-01'}): "
        "nothing ingested, nothing rebuilt"
    )
    assert res.stderr.splitlines() == [expected]
    after, recorded = state()
    assert after == tables
    assert recorded["run_id"].startswith("nothing-new-") and recorded["run_id"] != (run or {}).get("run_id")
    assert str(recorded["first_day"]) == "2026-01-01" == str(recorded["last_day"])
    assert recorded["status"] == (run["status"] if run else "complete")
    assert recorded["not_built"] == ((run["not_built"] or []) if run else [])


def test_generate_plan_is_used_or_rejected(tmp_path):
    """`generate --plan` is not ignored: a plan without the events the generator sends is rejected in
    one line; one with them is used, and what it writes validates against it."""
    plans = REPO / "tests" / "fixtures" / "plans"
    _one_line(
        _invoke(["generate", "--out", str(tmp_path / "x"), "--plan", str(plans / "v2")]),
        "--plan",
        "lacks",
        "event(s) the generator sends",
    )
    assert not (tmp_path / "x").exists()
    mine = tmp_path / "plan"
    shutil.copytree(DEFAULT_PLAN, mine)
    res = _invoke(
        [
            "generate",
            "--out",
            str(tmp_path / "l"),
            "--plan",
            str(mine),
            "--days",
            "3",
            "--users",
            "30",
            "--bug-rate",
            "0",
        ]
    )
    assert res.exit_code == 0, res.output
    files = sorted(str(f) for f in (tmp_path / "l").glob("date=*/*"))
    assert _invoke(["validate", "--plan", str(mine), *files]).exit_code == 0


def test_bad_partition_date_is_refused_before_dagster_is_loaded():
    code = (
        "import sys\nfrom trackplan.cli import app\n"
        "code = app(['run', '--partition', '2026-13-45'], standalone_mode=False)\n"
        "print(code, 'dagster' in sys.modules)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO, check=False
    )
    assert proc.stdout.split() == ["2", "False"], proc.stderr
    expected = "trackplan: Invalid value for '--partition': '2026-13-45' is not a date (YYYY-MM-DD)"
    assert proc.stderr.splitlines() == [expected]
