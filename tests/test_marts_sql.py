"""SQL marts on hand-built events: golden given-rows → expected-rows, the plan tables, the assets."""

from __future__ import annotations

import math
from pathlib import Path

import dagster as dg
import pytest
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.tokens import TokenType
from support.marts import (
    FIXTURES,
    MODELS,
    load_fixture,
    rows_of,
    run_model,
    setup,
    warehouse,
)

from models.staging.plan_tables import (
    SCHEMAS,
    plan_rows,
    write_costs,
    write_plan_tables,
)
from models.value_clv import cac, payback_months_cac, simple_clv
from pipelines.plan_tables import plan_definitions
from pipelines.resources import resources_from_env
from tracking_plan.loader import load_plan

Tokenizer = DuckDB.Tokenizer
GOLDEN = sorted(p.name for p in FIXTURES.glob("*.yml"))
GRAIN = {
    "marts.activation_cohorts": ("cohort_week",),
    "marts.retention": ("period_type", "cohort_start", "period"),
    "marts.funnel_conversion": ("funnel", "step_index"),
    "marts.customer_value": ("channel", "plan"),
}
MARTS = tuple(GRAIN)


def _same(got, want) -> bool:
    if want is None or got is None:
        return got is None and want is None
    if isinstance(want, float) or isinstance(got, float):
        # the expectations are exact decimal arithmetic; 1e-12 allows the last bits of a double
        return math.isclose(float(got), float(want), rel_tol=1e-12, abs_tol=1e-12)
    return got == want


@pytest.mark.parametrize("name", GOLDEN)
def test_golden(name):
    fx = load_fixture(name)
    con = warehouse()
    setup(con, fx["events"], metrics=fx.get("metrics"), costs=fx.get("costs"))
    for table, spec in fx["expected"].items():
        got = run_model(con, table)
        if "row_count" in spec:
            assert len(got) == spec["row_count"], table
        keys = GRAIN[table]
        index = {tuple(r[k] for k in keys): r for r in got}
        for want in spec["rows"]:
            key = tuple(want[k] for k in keys)
            assert key in index, f"{table}: no row {key}"
            bad = {c: (index[key][c], v) for c, v in want.items() if not _same(index[key][c], v)}
            assert not bad, f"{table} {key}: (got, expected) {bad}"


def test_models_have_docs_for_every_column():
    """Each mart's YAML documents exactly the columns its SQL returns, and states its grain."""
    con = warehouse()
    setup(con, load_fixture("funnel_out_of_order.yml")["events"])
    for table in MARTS:
        model = MODELS[table]
        run_model(con, table)
        cols = [
            r["column_name"]
            for r in rows_of(
                con,
                "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
                "order by ordinal_position",
                table.split("."),
            )
        ]
        assert cols == list(model.columns), table
        assert model.grain and model.description.lower().startswith("one row per"), table
        # lowercase SQL: every token but string literals and quoted identifiers
        tokens = Tokenizer().tokenize(model.sql)
        raw = [
            model.sql[t.start : t.end + 1]
            for t in tokens
            if t.token_type not in (TokenType.STRING, TokenType.IDENTIFIER)
        ]
        upper = [w for w in raw if w != w.lower()]
        assert not upper, f"{table}: {upper[:5]}"


def test_customer_value_matches_the_value_module():
    """The SQL's CLV, CAC and payback agree with models.value_clv's formulas on every row."""
    fx = load_fixture("customer_value_channels.yml")
    con = warehouse()
    setup(con, fx["events"], costs=fx["costs"])
    rows = run_model(con, "marts.customer_value")
    assert rows
    for r in rows:
        assert _same(r["cac"], cac(r["spend"], r["customers"]))
        want_clv = simple_clv(r["arpu_monthly"], r["gross_margin"], r["monthly_churn"])
        assert (r["clv"] is None) == math.isnan(want_clv)
        if r["clv"] is not None:
            assert _same(r["clv"], want_clv)
        assert _same(r["payback_months"], payback_months_cac(r["cac"], r["arpu_monthly"], r["gross_margin"]))
    # the plan rows of a channel add up to its 'all' row
    for ch in {r["channel"] for r in rows}:
        parts = [r for r in rows if r["channel"] == ch and r["plan"] != "all"]
        total = next(r for r in rows if r["channel"] == ch and r["plan"] == "all")
        assert sum(r["customers"] for r in parts) == total["customers"]
        assert _same(sum(r["spend"] for r in parts), total["spend"])


def test_activation_settings_come_from_the_plan():
    """Changing metrics.yaml's activation (window 8 days, 2 events) changes the mart without SQL edits."""
    fx = load_fixture("activation_day7_vs_day8.yml")
    con = warehouse()
    setup(con, fx["events"], metrics={"activation": {"event": "Task Completed", "window_days": 8, "min_count": 3}})
    first = {r["cohort_week"].isoformat(): r for r in run_model(con, "marts.activation_cohorts")}["2026-09-07"]
    assert first["activated"] == 4  # bob's day-8 task now counts
    setup(con, fx["events"], metrics={"activation": {"event": "Task Completed", "window_days": 7, "min_count": 2}})
    first = {r["cohort_week"].isoformat(): r for r in run_model(con, "marts.activation_cohorts")}["2026-09-07"]
    # second qualifying task: ann 72 h, bob 96 h, cat 12 h, dan 26 h → median (26 + 72) / 2
    assert first["activated"] == 4 and first["median_hours_to_activate"] == pytest.approx(49.0)


def test_plan_tables_follow_the_plan():
    plan = load_plan()
    rows = plan_rows(plan)
    assert set(rows) | {"marketing_costs"} == set(SCHEMAS)
    steps = [(r["funnel"], r["step_index"], r["event_name"]) for r in rows["plan_funnel_steps"]]
    assert steps[:2] == [("onboarding", 1, "Account Created"), ("onboarding", 2, "Onboarding Completed")]
    # an exclusion without `between` spans the whole funnel
    assert rows["plan_funnel_exclusions"] == [
        {"funnel": "checkout", "event_name": "Subscription Cancelled", "from_step": 1, "to_step": 4}
    ]
    s = rows["plan_settings"][0]
    assert (s["signup_event"], s["activation_window_days"], s["activation_min_count"]) == ("Account Created", 7, 3)
    con = warehouse()
    counts = write_plan_tables(con, plan)
    assert counts["plan_events"] == len(plan.events)
    assert rows_of(con, "select variants from staging.plan_experiments")[0]["variants"] == ["control", "checklist"]


def test_costs_file(tmp_path: Path):
    con = warehouse()
    path = tmp_path / "costs.csv"
    path.write_text("month,channel,spend\n2026-09,Google,600.5\n2026-10-01,linkedin,300\n")
    assert write_costs(con, path) == 2
    got = rows_of(con, "select month::varchar as month, channel, spend from staging.marketing_costs order by month")
    assert got == [
        {"month": "2026-09-01", "channel": "google", "spend": 600.5},
        {"month": "2026-10-01", "channel": "linkedin", "spend": 300.0},
    ]
    path.write_text("month,channel,spend\n")  # header only: an empty table, still typed
    assert write_costs(con, path) == 0
    assert write_costs(con, tmp_path / "absent.csv") == 0
    assert [r["column_name"] for r in rows_of(con, "describe staging.marketing_costs")] == ["month", "channel", "spend"]


def test_plan_definitions_asset_and_mart_deps(tmp_path: Path):
    """The asset writes every plan table; each SQL mart depends on the plan tables it joins."""
    resources = resources_from_env(warehouse=tmp_path / "w.duckdb", landing=tmp_path / "landing")
    result = dg.materialize([plan_definitions], resources=resources)
    assert result.success
    mats = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert mats == set(SCHEMAS)
    deps = {m.table: set(m.upstream()) for m in MODELS.values()}
    assert ("staging", "plan_settings") in deps["marts.activation_cohorts"]
    assert {("staging", "plan_funnel_steps"), ("staging", "plan_funnel_exclusions")} <= deps["marts.funnel_conversion"]
    assert {("staging", "sessions"), ("staging", "marketing_costs")} <= deps["marts.customer_value"]
