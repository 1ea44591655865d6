"""`trackplan review`: the portfolio table and KPI tree, as markdown and HTML."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from tracking_plan.loader import default_plan_dir, load_plan
from trackplan.review import (
    Review,
    kpi_tree,
    render_html,
    render_markdown,
    review,
    sparkline,
)


@pytest.fixture(scope="module")
def plan():
    return load_plan()


def _portfolio() -> pd.DataFrame:
    base = {
        "owner": "growth",
        "evidence_label": "",
        "unit": "x",
        "npv": 1.0,
        "npv_mean": 1.0,
        "irr": 0.2,
        "payback_months": 3.0,
        "kpi_direction": "increase",
        "kpi_gap": 0.0,
        "rules": "{}",
        "non_financial": "[]",
    }
    return pd.DataFrame(
        [
            {
                **base,
                "rank": 1,
                "initiative": "a",
                "name": "Checklist <b>",
                "method": "ab_test",
                "evidence_grade": "A",
                "estimate": 0.1,
                "ci_low": 0.05,
                "ci_high": 0.15,
                "npv_p10": 1e5,
                "npv_p50": 2e5,
                "npv_p90": 3e5,
                "expected_npv": 2e5,
                "prob_npv_positive": 0.99,
                "kpi": "activation_rate",
                "kpi_current": 0.36,
                "kpi_target": 0.35,
                "kpi_on_track": True,
                "recommendation": "scale",
                "reason": "p >= 0.8",
            },
            {
                **base,
                "rank": 2,
                "initiative": "b",
                "name": "Pricing",
                "method": "before_after",
                "evidence_grade": "D",
                "estimate": 1.0,
                "ci_low": -1.0,
                "ci_high": 3.0,
                "npv_p10": -5e4,
                "npv_p50": 1e4,
                "npv_p90": 6e4,
                "expected_npv": 1e4,
                "prob_npv_positive": 0.55,
                "kpi": "revenue",
                "kpi_current": 5e4,
                "kpi_target": 6e4,
                "kpi_on_track": False,
                "recommendation": "continue",
                "reason": "no rule matched",
            },
        ]
    )


def test_sparkline_scales_to_range():
    assert sparkline([1, 2, 3]) == "▁▄█"
    assert sparkline([]) == "" and sparkline([float("nan")]) == ""


def test_kpi_tree_groups_kpis_under_objectives(plan):
    kpis = pd.DataFrame(
        [
            {
                "kpi": "activation_rate",
                "current": 0.31,
                "previous": 0.3,
                "on_track": False,
                "trend": json.dumps([{"as_of": "2026-11-01", "value": 0.3}, {"as_of": "2026-11-08", "value": 0.31}]),
            }
        ]
    )
    tree = {o["objective"]: o for o in kpi_tree(plan, kpis)}
    assert set(tree) == {o.key for o in plan.metrics.objectives}
    act = next(k for k in tree["grow_activation"]["kpis"] if k["kpi"] == "activation_rate")
    assert act["events"] == [plan.metrics.signup.event, "Task Completed"]  # a rate: signup → KPI event
    assert act["current"] == 0.31 and act["trend"] == [0.3, 0.31] and act["target"] == 0.35
    tickets = next(k for k in tree["delight_customers"]["kpis"] if k["kpi"] == "support_tickets")
    assert tickets["events"] == ["Support Ticket Created"] and tickets["current"] is None


def test_markdown_and_html(plan):
    rv = Review(
        as_of="2026-11-15",
        portfolio=_portfolio(),
        histograms={"a": [0.1, 0.5, 0.4]},
        tree=kpi_tree(plan, pd.DataFrame()),
    )
    md = render_markdown(rv)
    lines = md.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("| # |"))
    assert "| 1 | Checklist <b> | ab_test | A randomized |" in lines[header + 2]
    assert "**scale**" in lines[header + 2] and "activation_rate: 0.36 vs 0.35 (on track)" in lines[header + 2]
    assert "D before/after, not causal" in lines[header + 3]
    assert "100,000 / 200,000 / 300,000" in md and "▁█▆" in md
    assert "### grow_activation" in md and "Support Ticket Created" in md
    page = render_html(rv)
    assert "Checklist &lt;b&gt;" in page and "<b>" not in page.replace("<body>", "")
    # the report's own portfolio component: the recommendation as a badge with its reason beneath
    assert 'data-component="portfolio"' in page and "<h3>delight_customers</h3>" in page
    assert re.search(
        r'<td class="rec scale" data-col="recommendation"><div class="main">scale</div>'
        r'<div class="sub">p &gt;= 0.8</div>',
        page,
    )
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", page)  # offline: nothing fetched


def test_review_on_the_generated_sample():
    from support.marts_sample import built_marts

    path, _ = built_marts()
    import duckdb

    md = review(default_plan_dir(), path, "markdown")

    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute("select rank, name, recommendation from marts.initiative_portfolio order by rank").fetchall()
    finally:
        con.close()
    table = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| #")]
    for (rank, name, rec), line in zip(rows, table):
        assert line.startswith(f"| {rank} | {name} |") and f"**{rec}**" in line
    assert "(data to 2026-11-15)" in md and md.count("### ") == 3  # three objectives in the sample plan
    assert review(default_plan_dir(), path, "html").startswith("<!doctype html>")
