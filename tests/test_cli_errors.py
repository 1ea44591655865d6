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
    # a dialect sqlglot writes but no rule checks: it would print DuckDB's ARG_MIN for Oracle, unnoticed
    "sql --dialect oracle": (["sql", "--dialect", "oracle"], ["--dialect", "'oracle'", "checked: snowflake"]),
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
    # (a blank line first: the progress bar's, drawn on a stderr that is no terminal)
    "generate --out under a file": (["generate", "--out", "{base}/fake.duckdb/g"], ["fake.duckdb/g"]),
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


# --------------------------------------------------------------------------------------------------
# found by fuzzing the CLI with bad plans and odd values (2026-12, /tmp/s18/fuzzcli): each was a
# traceback ("a defect: please report it"), a message over several lines, or a wrong line number


def _plan_with(tmp_path: Path, file: str, old: str, new: str) -> Path:
    """A copy of the sample plan with one edit (`old` -> `new` in `file`; old "" appends)."""
    plan = tmp_path / "plan"
    if not plan.exists():
        shutil.copytree(DEFAULT_PLAN, plan)
    path = plan / file
    text = path.read_text(encoding="utf-8")
    assert old in text, (file, old)
    path.write_text(text.replace(old, new, 1) if old else text + new, encoding="utf-8")
    return plan


def _line_of(plan: Path, file: str, needle: str) -> int:
    return next(i for i, line in enumerate((plan / file).read_text().splitlines(), 1) if needle in line)


def _nest(levels: int, leaf: str = "{type: string}") -> str:
    """A property `levels` objects deep (the outer one included), as one YAML flow mapping."""
    for _ in range(levels - 1):
        leaf = "{type: object, properties: {p: " + leaf + "}}"
    return leaf


def _compile_refuses(plan: Path, tmp_path: Path, *words: str) -> str:
    """`compile` on a bad plan: exit 2, one line naming file and line, nothing written."""
    res = _invoke(["compile", "--plan", str(plan), "--out", str(tmp_path / "schemas")])
    line = _one_line(res, *words)
    assert res.exit_code == 2 and "defect" not in line, line
    assert not (tmp_path / "schemas").exists()
    return line


YAML_TAGS = ["!!int abc", "!!bool maybe", "!!float x", "!!timestamp x", "!!python/name:os.system", "!!binary '@@'"]


@pytest.mark.parametrize("tag", YAML_TAGS)
def test_explicit_yaml_tag_is_an_error_at_its_line(tmp_path, tag):
    plan = _plan_with(tmp_path, "plan.yaml", "name: Acme Boards", f"name: {tag}")
    line = _compile_refuses(plan, tmp_path, f"{plan / 'plan.yaml'}:2: E001", tag.split()[0].split(":")[0])
    assert "not a valid" in line or "is not supported" in line, line


def test_yaml_merge_key_is_refused_at_its_line(tmp_path):
    plan = _plan_with(tmp_path, "identity.yaml", "", "\nx: &B {a: 1}\ny:\n  <<: *B\n")
    n = _line_of(plan, "identity.yaml", "<<: *B")
    _compile_refuses(plan, tmp_path, f"identity.yaml:{n}: E001 YAML merge keys are not supported")


@pytest.mark.parametrize(
    "shape,text",
    [
        ("1000 [ deep", "\nzz: " + "[" * 1000 + "]" * 1000 + "\n"),
        ("block mapping 1500 deep", "\nzz:\n" + "".join("  " * (k + 1) + "k:\n" for k in range(1500)) + "  v\n"),
    ],
    ids=["1000 [ deep", "block mapping 1500 deep"],
)
def test_yaml_nested_too_deep_is_one_line(tmp_path, shape, text):
    plan = _plan_with(tmp_path, "plan.yaml", "", text)
    first = _line_of(plan, "plan.yaml", "zz:")
    line = _compile_refuses(plan, tmp_path, "plan.yaml:", "E001 nested deeper than 64 levels", "at zz.")
    where = int(line.split("plan.yaml:")[1].split(":")[0])
    assert first <= where <= first + 65, line  # the line the 65th level opens on


def test_property_nested_deeper_than_the_limit_names_its_path(tmp_path):
    from tracking_plan.loader import MAX_PROPERTY_DEPTH

    ok = _plan_with(tmp_path / "ok", "events/task_completed.yaml", "", f"  zz_deep: {_nest(MAX_PROPERTY_DEPTH)}\n")
    assert _invoke(["compile", "--plan", str(ok), "--out", str(tmp_path / "ok" / "s")]).exit_code == 0
    plan = _plan_with(tmp_path, "events/task_completed.yaml", "", f"  zz_deep: {_nest(MAX_PROPERTY_DEPTH + 1)}\n")
    n = _line_of(plan, "events/task_completed.yaml", "zz_deep")
    _compile_refuses(
        plan,
        tmp_path,
        f"task_completed.yaml:{n}: E004 event 'Task Completed' property zz_deep.p.p.p ... p.p.p",
        f"deeper than {MAX_PROPERTY_DEPTH} levels",
    )


@pytest.mark.parametrize("command", ["lint", "compile", "validate", "codegen"])
def test_property_nested_400_deep_is_refused_by_every_command(tmp_path, command):
    plan = _plan_with(tmp_path, "events/order_completed.yaml", "", f"  zz_deep: {_nest(400)}\n")
    n = _line_of(plan, "events/order_completed.yaml", "zz_deep")
    where = f"order_completed.yaml:{n}: E001 nested deeper than 64 levels"
    args = {
        "lint": ["lint"],
        "compile": ["compile", "--out", str(tmp_path / "s")],
        "validate": ["validate", str(DEFAULT_PLAN / "plan.yaml")],
        "codegen": ["codegen", "--lang", "python", "--out", str(tmp_path / "g")],
    }[command]
    res = _invoke([*args, "--plan", str(plan)])
    if command == "lint":  # a finding (with those of the plan's references to the event it lost), exit 1
        assert res.exit_code == 1 and not res.stderr, res.output
        assert sum(x.startswith(f"{plan / 'events/order_completed.yaml'}:{n}: ") for x in res.stdout.splitlines()) == 1
        assert where in res.stdout, res.stdout
    else:
        assert res.exit_code == 2
        _one_line(res, where, "properties.zz_deep.properties")


def test_chain_of_1000_refs_names_the_ref(tmp_path):
    body = "".join(f"zz_{k}: {{ref: zz_{k + 1}}}\n" for k in range(1000)) + "zz_1000: {type: string}\n"
    plan = _plan_with(tmp_path, "properties/commerce.yaml", "", "\n" + body)
    _plan_with(tmp_path, "events/order_completed.yaml", "", "  zz_use: {ref: zz_0}\n")
    n = _line_of(plan, "properties/commerce.yaml", "zz_15: {ref: zz_16}")
    _compile_refuses(
        plan,
        tmp_path,
        f"commerce.yaml:{n}: E004 event 'Order Completed' property zz_use: reference 'zz_16'",
        "chain of more than 16 references",
    )


EXPERIMENT_VALUES = {
    "mde: 0": ("  mde: 0.1", "  mde: 0", "mde", "mde must be > 0"),
    "mde: -5": ("  mde: 0.1", "  mde: -5", "mde", "mde must be > 0"),
    "mde: .nan": ("  mde: 0.1", "  mde: .nan", "mde", "mde must be > 0"),
    "alpha: 0": ("  mde: 0.1", "  mde: 0.1\n  alpha: 0", "alpha", "alpha must be in (0, 1)"),
    "power: 1": ("  mde: 0.1", "  mde: 0.1\n  power: 1", "power", "power must be in (0, 1)"),
}


@pytest.mark.parametrize("case", list(EXPERIMENT_VALUES))
def test_experiment_value_out_of_range_is_a_finding(tmp_path, case):
    old, new, option, rule = EXPERIMENT_VALUES[case]
    plan = _plan_with(tmp_path, "metrics.yaml", old, new)
    n = _line_of(plan, "metrics.yaml", f"  {option}: ")
    where = f"{plan / 'metrics.yaml'}:{n}: E004 experiments.0.{option}: {rule}"
    res = _invoke(["lint", "--plan", str(plan)])
    assert res.exit_code == 1 and not res.stderr, res.output
    errors = [x for x in res.stdout.splitlines() if "(error)" in x]
    assert len(errors) == 1 and errors[0].startswith(where) and f"not {case.split()[1].lstrip('.')}" in errors[0], (
        errors
    )
    _compile_refuses(plan, tmp_path, where)


@pytest.mark.parametrize(
    "variants,allocation,rule",
    [
        ("  - control\n", "    control: 1\n", "an experiment needs at least two variants"),
        (
            "  - control\n  - checklist\n  - checklist\n",
            "    control: 0.5\n    checklist: 0.5\n",
            "variant 'checklist' is listed twice",
        ),
    ],
    ids=["one variant", "a variant twice"],
)
def test_experiment_variants_are_a_finding(tmp_path, variants, allocation, rule):
    plan = _plan_with(tmp_path, "metrics.yaml", "  variants:\n  - control\n  - checklist\n", "  variants:\n" + variants)
    _plan_with(tmp_path, "metrics.yaml", "    control: 0.5\n    checklist: 0.5\n", allocation)
    n = _line_of(plan, "metrics.yaml", "  variants:")
    res = _invoke(["lint", "--plan", str(plan)])
    assert res.exit_code == 1 and not res.stderr, res.output
    what = f"L192 experiment 'onboarding_checklist': {rule}"
    assert [x for x in res.stdout.splitlines() if "(error)" in x] == [f"{plan / 'metrics.yaml'}:{n}: {what} (error)"]


def test_experiment_mde_too_small_to_detect_is_a_finding(tmp_path):
    plan = _plan_with(tmp_path, "metrics.yaml", "  mde: 0.1", "  mde: 1.0e-300")
    n = _line_of(plan, "metrics.yaml", "  mde: ")
    res = _invoke(["lint", "--plan", str(plan)])
    assert res.exit_code == 1 and not res.stderr, res.output
    errors = [x for x in res.stdout.splitlines() if "(error)" in x]
    assert len(errors) == 1 and errors[0].startswith(f"{plan / 'metrics.yaml'}:{n}: L190 "), errors
    assert "mde 1e-300 on a baseline of 0.35" in errors[0] and "too small a change" in errors[0], errors


def test_two_events_one_schema_file_is_a_user_error(tmp_path):
    plan = _plan_with(tmp_path, "plan.yaml", "", "")
    twin = (plan / "events/order_completed.yaml").read_text().replace("name: Order Completed", "name: Order-Completed")
    (plan / "events/zz_twin.yaml").write_text(twin)
    _compile_refuses(
        plan,
        tmp_path,
        "zz_twin.yaml: events 'Order Completed' and 'Order-Completed' compile to the same file",
        "order-completed/1-0-0.json",
    )


@pytest.mark.parametrize(
    "char,where", [(b"\x00", b"name:"), (b"\x07", b"# end")], ids=["NUL before a key", "BEL in a last comment"]
)
def test_control_character_names_its_real_line_and_column(tmp_path, char, where):
    plan = _plan_with(tmp_path, "plan.yaml", "", "\n# end\n")
    raw = (plan / "plan.yaml").read_bytes()
    at = raw.index(where)
    (plan / "plan.yaml").write_bytes(raw[:at] + char + raw[at:])
    n = raw[:at].count(b"\n") + 1
    col = at - raw.rfind(b"\n", 0, at)
    _compile_refuses(
        plan, tmp_path, f"plan.yaml:{n}: E001 YAML syntax: unacceptable character #x{char[0]:04x} at column {col}"
    )


@pytest.mark.parametrize(
    "name", ["[/red]x.jsonl", "a\nb[bold].jsonl", "x" * 200 + "/e.jsonl"], ids=["markup", "newline", "long"]
)
def test_missing_file_is_named_literally_in_one_line(tmp_path, name):
    """Rich markup in a path is text, a newline is shown as \\n, a long path is not wrapped."""
    res = _invoke(["validate", str(tmp_path / name)])
    line = _one_line(res, f"{tmp_path / name.replace(chr(10), chr(92) + 'n')}: no such file")
    assert res.exit_code == 2 and line.startswith("trackplan: "), line


@pytest.mark.parametrize("command", ["compile", "docs"])
def test_out_path_with_markup_is_printed_as_given(tmp_path, command):
    out = tmp_path / "[/x]out"
    res = _invoke([command, "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert len(res.stderr.splitlines()) == 1 and str(out) in res.stderr, res.stderr
    assert out.is_dir()


def test_file_name_not_utf8_names_the_file(tmp_path):
    raw = os.fsencode(tmp_path) + b"/bad\xff.jsonl"
    with open(raw, "wb") as f:
        f.write(b'{"type":"track"}\n')
    res = _invoke(["validate", os.fsdecode(raw)])
    line = _one_line(res, f"{tmp_path}/bad\\xff.jsonl: the file name is not UTF-8")
    assert res.exit_code == 2 and "warehouse" not in line, line


def test_duckdb_error_blames_the_warehouse_only_where_one_is_open():
    import duckdb

    from trackplan.cli_errors import one_line

    exc = duckdb.InvalidInputException("Invalid Input Error: something odd")
    assert one_line(exc, "run") == ("warehouse: Invalid Input Error: something odd", 3)
    assert one_line(exc, "validate") == ("DuckDB: Invalid Input Error: something odd", 3)
    surrogate = duckdb.InvalidInputException(
        "Invalid Input Error: Python Conversion Failure: cannot encode str as UTF-8, surrogate '\\udcff' at position 3"
    )
    message, code = one_line(surrogate, "diff")
    assert code == 2 and "not UTF-8" in message and "warehouse" not in message


def test_diff_replay_missing_names_the_option(tmp_path):
    res = _invoke(["diff", "--base", str(DEFAULT_PLAN), "--replay", str(tmp_path / "nope.jsonl")])
    _one_line(res, "--replay", f"{tmp_path / 'nope.jsonl'}: no such file or directory")
    assert res.exit_code == 2


def test_replay_of_a_missing_source_is_a_file_error(tmp_path):
    """The library's own error carries the file name, so any caller's one line names it."""
    from tracking_plan.loader import load_plan
    from tracking_plan.replay import replay
    from trackplan.cli_errors import one_line

    plan = load_plan(DEFAULT_PLAN)
    with pytest.raises(FileNotFoundError) as exc:
        replay(plan, plan, tmp_path / "nope.jsonl")
    assert one_line(exc.value) == (f"{tmp_path / 'nope.jsonl'}: no such file or directory", 2)


def test_diff_base_empty_names_the_option():
    res = _invoke(["diff", "--base", ""])
    _one_line(res, "--base is empty")
    assert res.exit_code == 2


def test_costs_file_that_is_missing_or_a_directory_is_a_finding(tmp_path):
    plan = _plan_with(tmp_path, "metrics.yaml", "costs_file: costs.csv", "costs_file: nope.csv")
    n = _line_of(plan, "metrics.yaml", "costs_file:")
    res = _invoke(["lint", "--plan", str(plan)])
    assert res.exit_code == 0, res.output  # the pipeline reads a missing file as no spend: a warning
    assert any(
        x.startswith(f"{plan / 'metrics.yaml'}:{n}: E004 costs_file 'nope.csv' does not exist")
        and x.endswith("(warning)")
        for x in res.stdout.splitlines()
    ), res.stdout
    (plan / "nope.csv").mkdir()
    res = _invoke(["lint", "--plan", str(plan)])
    assert res.exit_code == 1, res.output
    assert [x for x in res.stdout.splitlines() if "(error)" in x] == [
        f"{plan / 'metrics.yaml'}:{n}: E004 costs_file 'nope.csv' is not a file ({plan / 'nope.csv'}) (error)"
    ]


@pytest.mark.parametrize(
    "old,new,line,rule",
    [
        (
            "field: context.consent.categoryPreferences",
            "field: properties.consent",
            "field: ",
            "E004 field: field 'properties.consent' must be a path of plain names under context",
        ),
        (
            "  analytics:\n",
            "  Marketing:\n    required: true\n  analytics:\n",
            "categories:",
            "E004 categories: categories 'Marketing' and 'marketing' differ only in case",
        ),
    ],
)
def test_consent_field_and_categories_are_findings(tmp_path, old, new, line, rule):
    """The preferences are read under context (with the context's one parse) and ignoring the key's
    case (OneTrust sends "Analytics"): a field elsewhere, or two categories one ignoring case, are a
    finding on their line, not a silent default."""
    plan = _plan_with(tmp_path, "consent.yaml", old, new)
    res = _invoke(["lint", "--plan", str(plan)])
    assert res.exit_code == 1 and not res.stderr, res.output
    where = f"{plan / 'consent.yaml'}:{_line_of(plan, 'consent.yaml', line)}: {rule}"
    errors = [x for x in res.stdout.splitlines() if "(error)" in x]
    assert len(errors) == 1 and errors[0].startswith(where), errors
    _compile_refuses(plan, tmp_path, where)


def test_a_pii_identifier_that_cannot_be_hashed_is_a_finding(tmp_path):
    """identity.yaml's pii identifiers are stored hashed (a top-level key of traits, properties or
    context.traits): a pii device id (the envelope's anonymousId) cannot be, and says so on its line
    rather than being stored as sent under a plan that says otherwise."""
    plan = _plan_with(
        tmp_path, "identity.yaml", "  description: Device/browser cookie id.", "  pii: true\n  description: x"
    )
    res = _invoke(["lint", "--plan", str(plan)])
    assert res.exit_code == 1 and not res.stderr, res.output
    errors = [x for x in res.stdout.splitlines() if "(error)" in x]
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"{plan / 'identity.yaml'}:") and (
        "identifier 'anonymous_id': pii with source 'anonymousId': only a top-level key of traits" in errors[0]
    ), errors
    _compile_refuses(plan, tmp_path, errors[0].split(" (error)")[0])
