"""A plan's `pattern` means what JSON Schema says: an ECMA-262 regular expression. The validator runs
it in DuckDB (RE2) through `tracking_plan.patterns.re2_pattern`; the oracle is a real ECMA-262 engine,
Node's `RegExp` with the `u` flag (JSON Schema 2020-12 builds patterns with it), on the same
strings: white space beyond ASCII, line terminators, NUL, a BOM, letters beyond ASCII and a character
beyond the BMP."""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess

import duckdb
import pytest
import regex

from tracking_plan.patterns import pattern_error, python_pattern, re2_pattern, regex_pattern

NODE = shutil.which("node")

PATTERNS = [
    r"^\s+$",
    r"^\S+$",
    r"^a\sb$",
    r"\S\s\S",
    r"^[\s]*$",
    r"^[a\s]+$",
    r"^[^\s]+$",
    r"^.$",
    r"^a.b$",
    r"^.*$",
    r"^[.]$",
    r"^\.$",
    r"^\u00e9$",
    r"^\ud83d\ude00$",
    r"^\u{1F600}$",
    r"^[\u00e0-\u00ff]+$",
    r"^(?<word>[a-z]+)$",
    r"^\cJ$",
    r"^[^]$",
    r"^a\0$",
    r"^\d\w\b",
    r"^[a-z0-9_]+$",
    r"^o_[a-z0-9]+$",
    r"^prd_[a-z0-9_]+$",
    r"a$",
    r"^\t",
    r"^[a-z]+$",
    r"\bz\b",
    r"^\w+\d$",
    r"^\p{L}+$",
    r"^\p{Lu}",
    r"^\P{L}+$",
    r"^[\p{L}\d_]+$",
    r"^\p{N}\w?$",
    r"^[\[\]a]+$",
]
ALPHABET = ["a", "b", "z", "1", "_", "-", ".", " ", "\t", "\n", "\r", "\x0b", "\x00", "\x1c", "\x85", "\xa0"]
ALPHABET += ["\u2003", "\u2028", "\u2029", "\ufeff", "é", "ÿ", "😀", "o_x", "prd_", "٣", "K"]
FIXED = ["", "a", "ab", "a b", "a\xa0b", "a\u2003b", "a\x1cb", "a\x85b", "a\rb", "a\nb", "a\u2028b", "é", "😀", "\n"]


def _strings(seed: int, n: int) -> list[str]:
    rng = random.Random(seed)
    return FIXED + ["".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 4))) for _ in range(n)]


def _node(cases: list[tuple[str, str]]) -> list[bool]:
    script = (
        "const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "process.stdout.write(JSON.stringify(cases.map(([p, s]) => new RegExp(p, 'u').test(s))));"
    )
    out = subprocess.run([NODE, "-e", script], input=json.dumps(cases), capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


@pytest.mark.skipif(NODE is None, reason="no node on PATH (the Makefile installs it): no ECMA-262 oracle")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_patterns_match_what_ecma_262_matches(seed):
    cases = [(p, s) for p in PATTERNS for s in _strings(seed, 60)]
    expected = _node(cases)
    con = duckdb.connect()
    con.execute("create table c (i integer, p varchar, s varchar)")
    con.executemany("insert into c values (?, ?, ?)", [(i, re2_pattern(p), s) for i, (p, s) in enumerate(cases)])
    got = [r[0] for r in con.execute("select regexp_matches(s, p) from c order by i").fetchall()]
    wrong = [(p, s, g) for (p, s), g, e in zip(cases, got, expected, strict=True) if g != e]
    assert not wrong, f"{len(wrong)} of {len(cases)} differ from ECMA-262, e.g. {wrong[:5]}"
    # the generated Python module's forms (tracking_plan/codegen.py): Python's re, and the regex module
    # for a pattern with \p{...}, which re has no form of
    cases = [(p, s, e) for (p, s), e in zip(cases, expected, strict=True)]
    got = [regex.search(regex_pattern(p), s) is not None for p, s, _ in cases]
    wrong = [(p, s, g) for (p, s, e), g in zip(cases, got, strict=True) if g != e]
    assert not wrong, f"regex: {len(wrong)} of {len(cases)} differ from ECMA-262, e.g. {wrong[:5]}"
    cases = [(p, s, e) for p, s, e in cases if "\\p{" not in p and "\\P{" not in p]  # (no \p in re)
    got = [re.search(python_pattern(p), s, re.ASCII) is not None for p, s, _ in cases]
    wrong = [(p, s, g) for (p, s, e), g in zip(cases, got, strict=True) if g != e]
    assert not wrong, f"Python: {len(wrong)} of {len(cases)} differ from ECMA-262, e.g. {wrong[:5]}"


@pytest.mark.parametrize(
    ("pattern", "why"),
    [
        (r"^(?=a)", "lookaround"),
        (r"(?<!x)y", "lookaround"),
        (r"(a)\1", "back-reference"),
        (r"[\S]", r"\S inside a character class"),
        (r"[]", "empty character class"),
        (r"\ud800", "surrogate"),
        ("a\\", "backslash"),
        (r"[z-a]", "range"),
        (r"(?i)abc", "inline flags"),
        (r"(?P<n>a)", "inline flags and (?P"),
        (r"\Aabc\z", "not an ECMA-262 escape"),
        (r"\Qa.b\E", "not an ECMA-262 escape"),
        (r"\pL", "without {...}"),
        (r"(?<n>a)\k<n>", "back-reference"),
    ],
)
def test_a_pattern_re2_cannot_run_is_refused_with_its_reason(pattern, why):
    assert why in (pattern_error(pattern) or "")


def test_patterns_that_run_are_not_refused():
    assert [p for p in PATTERNS if pattern_error(p) is not None] == []


@pytest.mark.parametrize("pattern", [r"^(?=o_)o_[a-z]+$", r"^([a-z])\1$", r"^[\S]+$"])
def test_lint_refuses_a_pattern_python_takes_but_re2_cannot_run(tmp_path, pattern):
    from pathlib import Path

    import yaml

    from tracking_plan.lint import lint
    from tracking_plan.validate import Validator

    src = Path(__file__).parent / "fixtures" / "plans" / "differential"
    plan = tmp_path / "plan"
    shutil.copytree(src, plan)
    ev = plan / "events" / "order_completed.yaml"
    doc = yaml.safe_load(ev.read_text())
    doc["properties"]["order_id"]["pattern"] = pattern
    ev.write_text(yaml.safe_dump(doc, sort_keys=False))
    re.compile(pattern)  # (what lint checked before: Python's re takes all three)
    found = [p for p in lint(plan) if p.code == "L154"]
    assert len(found) == 1 and found[0].file.endswith("order_completed.yaml") and repr(pattern) in found[0].message
    # the validator refuses it in one line too (a user's error, not a defect), naming event and property
    from tracking_plan.loader import load_plan

    with pytest.raises(ValueError, match=r"event 'Order Completed': \$\.properties\.order_id: pattern") as exc:
        Validator(load_plan(plan))
    assert getattr(exc.value, "user_error", False) and "\n" not in str(exc.value)
