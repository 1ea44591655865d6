"""The import contract (tests/support/layers.py): imports flow one way, Dagster stays in pipelines/,
and the plan commands do not pay for the heavy libraries. `make lint` runs this file too."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from support.layers import ROOT, check, cycles


def test_the_tree_keeps_the_import_contract():
    assert [str(v) for v in check()] == []


def test_no_import_cycles_between_modules():
    assert [" -> ".join(c) for c in cycles()] == []


def _tree(tmp_path, files: dict[str, str]):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def test_a_wrong_way_import_is_caught_even_inside_a_function(tmp_path):
    root = _tree(
        tmp_path,
        {
            "tracking_plan/__init__.py": "",
            "tracking_plan/lint.py": "def f():\n    from pipelines.runner import run_pipeline\n",
            "tracking_plan/diff.py": "import pandas as pd\n\ndef g():\n    import statsmodels.api\n",
            "models/__init__.py": "",
            "models/stats.py": "def h():\n    import dagster as dg\n",
            "pipelines/__init__.py": "",
            "pipelines/quality/__init__.py": "from ...trackplan import cli\n",
            "quality_checks/__init__.py": "from models import stats\n",  # sideways in one layer: allowed
            "trackplan/__init__.py": "import pipelines, dagster\n",  # the shell may import everything
        },
    )
    got = sorted((v.path, v.line, v.module) for v in check(root))
    assert got == [
        ("models/stats.py", 2, "dagster"),
        ("pipelines/quality/__init__.py", 1, "trackplan.cli"),
        ("tracking_plan/diff.py", 1, "pandas"),  # at import time; statsmodels inside g() is fine
        ("tracking_plan/lint.py", 2, "pipelines.runner.run_pipeline"),
    ]


def test_an_import_cycle_is_caught(tmp_path):
    root = _tree(
        tmp_path,
        {
            "models/__init__.py": "from . import stats\n",  # a package re-exporting its module: not a cycle
            "models/stats.py": "from models.causal import uplift\n",
            "models/causal/__init__.py": "",
            "models/causal/uplift.py": "def f():\n    from models.stats import ArmStats\n",
        },
    )
    assert cycles(root) == [["models.causal.uplift", "models.stats", "models.causal.uplift"]]


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys, json\n{statement}\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_plan_commands_do_not_load_dagster_pandas_or_statsmodels():
    # what `trackplan lint` and `trackplan diff` import (the CLI module, then the command's module)
    loaded = _loaded_after("import trackplan.cli, tracking_plan.lint, tracking_plan.diff")
    assert loaded.isdisjoint({"dagster", "pandas", "statsmodels", "sklearn", "great_expectations", "pipelines"})


def test_the_definitions_do_not_load_the_estimators_or_gx_at_import():
    loaded = _loaded_after("import pipelines.definitions")
    assert loaded.isdisjoint({"statsmodels", "sklearn", "great_expectations", "altair"})
