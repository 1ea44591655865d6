"""Rewrite the golden files under tests/golden/ from the fixture plans.

    .venv/bin/python tests/golden/regenerate.py

Then REVIEW THE DIFF (`git diff tests/golden`) before committing: every changed line is a change
in what `trackplan compile`, `trackplan diff` or `trackplan lint` prints for users, and must be
intended. The tests compare against these files byte for byte, using the same GOLDENS table.
"""

from __future__ import annotations

import datetime as dt
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PLANS = ROOT / "tests" / "fixtures" / "plans"
sys.path.insert(0, str(ROOT))

from tracking_plan.compile import write_schemas
from tracking_plan.diff import diff_plans, render_diff
from tracking_plan.lint import lint, render_lint
from tracking_plan.loader import load_plan

# Lint output depends on the date (sunsets, deadlines) and on traffic: both fixed here.
LINT_TODAY = dt.date(2026, 6, 1)
LINT_TRAFFIC = {"Experiment Viewed": 200}


def _diff(a: str, b: str, fmt: str) -> str:
    return render_diff(diff_plans(load_plan(PLANS / a), load_plan(PLANS / b)), fmt)


def _lint(name: str, fmt: str) -> str:
    problems = lint(PLANS / name, traffic=LINT_TRAFFIC, today=LINT_TODAY)
    return render_lint(problems, fmt, relative_to=PLANS / name) + "\n"


# golden file (relative to tests/golden) -> what produces its text
GOLDENS = {
    "diff/v1_v2.txt": lambda: _diff("v1", "v2", "text") + "\n",
    "diff/v1_v2.json": lambda: _diff("v1", "v2", "json") + "\n",
    "diff/v1_v2.md": lambda: _diff("v1", "v2", "markdown"),
    "diff/v2_v3.md": lambda: _diff("v2", "v3", "markdown"),
    "diff/v2_v3.json": lambda: _diff("v2", "v3", "json") + "\n",
    "lint/lint_bad.txt": lambda: _lint("lint_bad", "text"),
    "lint/lint_bad.json": lambda: _lint("lint_bad", "json"),
}
COMPILED = {"compile/v1": "v1", "compile/v2": "v2"}  # golden folder -> plan compiled into it


def compile_to(plan_name: str, out: Path) -> list[Path]:
    return write_schemas(load_plan(PLANS / plan_name), out)


def main() -> None:
    for rel, make in GOLDENS.items():
        path = HERE / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(make(), encoding="utf-8")
        print("wrote", path.relative_to(ROOT))
    for rel, plan_name in COMPILED.items():
        target = HERE / rel
        with tempfile.TemporaryDirectory() as tmp:
            compile_to(plan_name, Path(tmp))
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(tmp, target)
        print("wrote", target.relative_to(ROOT))
    print("Now review: git diff --stat tests/golden && git diff tests/golden")


if __name__ == "__main__":
    main()
