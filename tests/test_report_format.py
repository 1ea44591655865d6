"""One formatter per column type: a column's cells share one kind and one number of decimals, decided
from the column's name and values, never from one cell."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from trackplan.report.format import column_format, column_kind, format_frame


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("roi", "percent"),
        ("irr", "irr"),
        ("prob_npv_positive", "percent"),
        ("activation_rate", "percent"),
        ("npv_p10", "currency"),
        ("cac", "currency"),
        ("signups", "count"),
        ("incremental_conversions", "count"),
        ("exposures_per_month", "count"),
        ("median_hours_from_start", "hours"),
        ("payback_months", "duration"),
        ("p_value", "p_value"),
        ("clv_cac_ratio", "number"),
        ("cohort_start", "date"),
        ("lift_abs", "number"),
    ],
)
def test_column_kinds(name, kind):
    assert column_kind(name) == kind


def test_the_issue_s_mixed_columns_get_one_format_each():
    # the values the old per-cell formatter showed as "90.97 / 3227.3% / 4308.4% / 121.12" and
    # "124.46 / 17,174,148 / 528.7% / 4,309,639,171"
    df = pd.DataFrame(
        {
            "incremental_conversions": [90.97, 32.273, 43.084, 121.12],
            "roi": [4.955, 63.22, 9.16, 2.41],
            "irr": [124.46, 17174148.0, 5.287, 0.42],
            "conversions": [8.0, 763.0, 121.0, 59.0],
        }
    )
    _, kinds, rows = format_frame(df)
    cols = list(zip(*rows, strict=True))
    assert cols[0] == ("91.0", "32.3", "43.1", "121.1")  # a count with fractions: one decimal, no %
    assert cols[1] == ("496%", "6,322%", "916%", "241%")
    assert cols[2] == ("> 1,000%", "> 1,000%", "529%", "42%")  # past 1,000% a year an IRR says so
    assert cols[3] == ("8", "763", "121", "59")  # 8 conversions, not "800.0%"
    assert kinds == ["count", "percent", "irr", "count"]


def test_missing_values_never_show_as_na():
    fmt = column_format("npv", [1.0, None, math.nan, pd.NA], currency="USD")
    assert [fmt(v) for v in (None, math.nan, pd.NA)] == ["–", "–", "–"]
    assert fmt.header("npv") == "npv (USD)" and fmt(-1234.5) == "−1,234"
