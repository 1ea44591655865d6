"""Errors are one line, on any plan: the sample plan mutated at random (a value at a random path of a
random file replaced by a wrong type, a dangling reference, a deep structure, a huge or odd number; a
key deleted, wrapped or added; the text given a YAML tag, a merge key, a control character, a tab or a
byte-order mark) and `trackplan lint` and `trackplan compile` run on it in-process. Each ends with
exit code 0, 1 or 2, never a traceback or "a defect", and what it says on stderr is at most one line.

The port of the fuzzer that found the cases in tests/test_cli_errors.py (270 plans × 10 commands);
those name each case, this keeps new kinds from slipping back in."""

from __future__ import annotations

import random
import shutil

import pytest
import yaml
from typer.testing import CliRunner

from tracking_plan.loader import DEFAULT_PLAN
from trackplan.cli import app

SEEDS = range(40)
BAD = [
    None, True, 0, -1, 2**64, -(2**63) - 1, 10**400, 0.5, 1e308, float("nan"), float("inf"), "", " ", "x",
    "é\U0001f600\u202e", "\x00", "a" * 3000, "../../x", "2026-02-30", "[", "{{x}}", "Order Completed",
    "No Such Event", "no_such_kpi", "order_id", [], [None], [1, "a"], ["x", "x"], {}, {"x": 1}, {1: 2},
    {"type": "string"}, {"ref": "order_id"}, {"ref": "no_such_property"},
]  # fmt: skip
TEXT = ["!!int abc", "!!python/name:os.system", "!!binary aGk=", "<<: *A", "\x07", "\t", "\ufeff", "&A {a: 1}"]


def _paths(obj, prefix=()):
    yield prefix
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for k, v in items:
        yield from _paths(v, (*prefix, k))


def _deep(rng: random.Random):
    v = "x"
    for _ in range(rng.choice([20, 80, 400])):
        v = [v] if rng.random() < 0.5 else {"type": "object", "properties": {"p": v}}
    return v


def _mutate(rng: random.Random, plan) -> str:
    f = rng.choice(sorted(p for p in plan.rglob("*.yaml")))
    if rng.random() < 0.25:  # the text itself
        lines = f.read_text(encoding="utf-8").splitlines()
        i = rng.randrange(len(lines) + 1)
        line = lines[i - 1] if i else ""
        key = line.split(":", 1)[0] if ":" in line else "zz"
        lines.insert(i, f"{key}: {rng.choice(TEXT)}" if rng.random() < 0.7 else rng.choice(TEXT) + line)
        f.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return f"{f.name}: text at line {i + 1}"
    try:
        data = yaml.safe_load(f.read_text(encoding="utf-8"))
        path = rng.choice(list(_paths(data)))
    # (an earlier mutation's text: `!!int abc` raises ValueError, `!!bool x` KeyError...) mutate it as text
    except (yaml.YAMLError, RecursionError, ValueError, KeyError, TypeError, AttributeError):
        f.write_text(f.read_text(encoding="utf-8") + rng.choice(TEXT) + "\n", encoding="utf-8")
        return f"{f.name}: text appended"
    op = rng.choice(["replace", "replace", "replace", "deep", "delete", "wrap", "add"])
    if not path:
        data = rng.choice(BAD) if op != "add" else {"zzz_unknown": 1, "was": data}
    else:
        parent = data
        for k in path[:-1]:
            parent = parent[k]
        k = path[-1]
        if op == "replace":
            parent[k] = rng.choice(BAD)
        elif op == "deep":
            parent[k] = _deep(rng)
        elif op == "delete":
            del parent[k]
        elif op == "wrap":
            parent[k] = [parent[k]]
        elif isinstance(parent[k], dict):
            parent[k][rng.choice(["zzz_unknown", "requried", "ref", "1"])] = rng.choice(BAD)
        else:
            parent[k] = {"zzz_unknown": parent[k]}
    try:
        text = yaml.safe_dump(data, allow_unicode=True, sort_keys=False)
    except (yaml.YAMLError, RecursionError, ValueError):
        text = "[" * 2000
    f.write_text(text, encoding="utf-8")
    return f"{f.name}: {op} at {path!r:.80}"


@pytest.mark.parametrize("seed", SEEDS)
def test_lint_and_compile_end_in_one_line_on_a_mutated_plan(tmp_path, seed):
    rng = random.Random(seed)
    plan = tmp_path / "plan"
    shutil.copytree(DEFAULT_PLAN, plan)
    done = [_mutate(rng, plan) for _ in range(rng.choice([1, 1, 2, 3]))]
    for args in (["lint", "--plan", str(plan)], ["compile", "--plan", str(plan), "--out", str(tmp_path / "out")]):
        res = CliRunner().invoke(app, args)
        said = f"{args[0]} after {done}: exit {res.exit_code}, stderr {res.stderr[-400:]!r}"
        # an exception other than the exit means the command was not handled (CliRunner hides tracebacks)
        assert res.exception is None or isinstance(res.exception, SystemExit), said
        assert res.exit_code in (0, 1, 2), said
        assert "Traceback" not in res.output + res.stderr and "a defect" not in res.stderr, said
        assert len(res.stderr.strip().splitlines()) <= 1, said


@pytest.mark.parametrize("name", ["A" * 201, "É" * 101])  # 201 bytes, 202 bytes of UTF-8
def test_an_event_name_too_long_for_a_file_name_is_refused_in_one_line(tmp_path, name):
    """(`docs` wrote a page named after it: "File name too long", exit 3; `compile` likewise.)"""
    plan = tmp_path / "plan"
    shutil.copytree(DEFAULT_PLAN, plan)
    f = plan / "events" / "search_performed.yaml"
    data = yaml.safe_load(f.read_text(encoding="utf-8"))
    data["name"] = name
    f.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    for args in (["docs", "--out", str(tmp_path / "site")], ["compile", "--out", str(tmp_path / "out")]):
        res = CliRunner().invoke(app, [*args, "--plan", str(plan)])
        assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert "search_performed.yaml" in res.stderr and "at most 200 bytes" in res.stderr
