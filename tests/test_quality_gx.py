"""The Great Expectations suite on quality.daily_metrics: passes on real metrics, fails on a broken
share, and writes Data Docs."""

import pandas as pd
from support import python_c_prints

from quality_checks.gx_suite import run_gx_suite


def _metrics() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "day": pd.to_datetime(["2026-01-01"] * 4),
            "event_name": ["A", "A", "A", "B"],
            "metric": ["volume", "null_rate", "type_share", "volume"],
            "property": ["", "x", "x", ""],
            "dimension": ["", "", "string", ""],
            "value": [10.0, 0.1, 1.0, 3.0],
            "denominator": [10, 10, 9, 3],
        }
    )


def test_gx_suite_passes_and_fails(tmp_path):
    ok = run_gx_suite(_metrics(), tmp_path / "gx_docs")
    assert ok.passed and ok.severity == "WARN" and ok.metadata["expectations"] >= 8
    assert ok.metadata["data_docs"].endswith("index.html") and (tmp_path / "gx_docs").exists()
    bad = _metrics()
    bad.loc[1, "value"] = 1.7  # a share above 1
    bad.loc[3, "metric"] = "volumes"
    out = run_gx_suite(bad)
    assert not out.passed and out.metadata["failed_expectations"] == 2
    kinds = {f["expectation"] for f in out.metadata["failures"]}
    assert kinds == {"expect_column_values_to_be_between", "expect_column_values_to_be_in_set"}
    assert any("1.7" in f["sample"] for f in out.metadata["failures"])


def test_gx_suite_runs_under_python_c_with_pyspark_installed():
    """`python -c` (like an xdist worker) has a __main__ without __spec__ or __file__: pyspark's connect
    module, which GX imports when pyspark is installed, took that for its doctest runner and called
    sys.exit(0) in the middle of a run's quality checks."""
    code = (
        "import sys; sys.path.insert(0, 'tests'); from test_quality_gx import _metrics;"
        "from quality_checks.gx_suite import run_gx_suite;"
        "print('gx passed', run_gx_suite(_metrics()).passed)"
    )
    python_c_prints(code, "gx passed True")


def test_gx_leaves_unused_sdks_unloaded_and_altair_unrun_but_importable(tmp_path):
    """GX's own imports of pyspark, Azure, Google Cloud, boto3 and SQLAlchemy are refused (trackplan gives GX a
    pandas frame only), and the altair it imports for its Data Docs charts is a module whose code has not
    run; the suite and its Data Docs still come out, and the same SDKs, altair included, import and work
    for anything else."""
    code = (
        "import sys; sys.path.insert(0, 'tests'); from test_quality_gx import _metrics;"
        "from quality_checks.gx_suite import run_gx_suite;"
        f"ok = run_gx_suite(_metrics(), {str(tmp_path)!r}).passed;"
        "loaded = sorted({k.split('.')[0] for k in sys.modules if k.startswith(('pyspark', 'azure', 'boto3', 'google', 'sqlalchemy'))});"
        "kind = type(sys.modules.get('altair')).__name__;"
        "import pyspark.sql, azure.storage.blob, sqlalchemy.orm, altair;"
        "mark = altair.Chart({'values': [{'a': 1}]}).mark_bar().to_dict()['mark'];"
        "print('gx passed', ok, 'loaded by gx', loaded, 'altair', kind, type(sys.modules['altair']).__name__, mark)"
    )
    python_c_prints(code, "gx passed True loaded by gx [] altair _LazyModule module")
    assert any(tmp_path.rglob("*.html"))  # the Data Docs were written
