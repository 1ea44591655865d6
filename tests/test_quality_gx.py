"""The Great Expectations suite on quality.daily_metrics: passes on real metrics, fails on a broken
share, and writes Data Docs."""

import pandas as pd

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
