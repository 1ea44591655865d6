"""The SQL models on Spark give DuckDB's result (issue 20, items 2 and 3).

One SparkSession (local[2]) for the whole module, which is one xdist group, so `make test` starts
one JVM. The models' inputs are exported to Parquet, the models run on Spark from the SQL
`models.dialects` writes (unedited), and every table is compared with DuckDB's: same columns, the
mapped types, the same rows after sorting, floats to 1e-9 relative. Two inputs: a small generated
sample, and an adversarial one (client session ids, sub-second and tied timestamps, the
max_session_days cap, funnel exclusions). Skipped, with the reason, without pyspark or Java.
"""

from __future__ import annotations

import datetime as dt
import re

import duckdb
import pytest
import sqlglot
from sqlglot import exp

from models.catalog import load_models, plan_variables
from models.dialects import transpile
from pipelines.spark.session import unavailable

WHY = unavailable()
pytestmark = [pytest.mark.skipif(WHY is not None, reason=f"Spark parity: {WHY}"), pytest.mark.xdist_group("spark")]

MODELS = {m.table: m for m in load_models()}


def _called(sql: str, dialect: str) -> set[str]:
    """Every function name the `dialect` statement calls, as the target reads it (CAST and operators aside)."""
    names = set()
    for stmt in sqlglot.parse(sql, read=dialect):
        for node in stmt.find_all(exp.Func):
            m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)\(", node.sql(dialect=dialect))
            if m and m.group(1).upper() not in {"CAST", "TRY_CAST"}:
                names.add(m.group(1).lower())
    return names


def _duckdb_functions() -> set[str]:
    con = duckdb.connect()
    try:
        return {r[0].lower() for r in con.execute("select distinct function_name from duckdb_functions()").fetchall()}
    finally:
        con.close()


def test_every_function_of_the_spark_sql_exists_in_spark(spark, sample_plan):
    have = {r[0].split(".")[-1].lower() for r in spark.sql("show functions").collect()}
    variables = plan_variables(sample_plan)
    for table, model in MODELS.items():
        missing = _called(transpile(model.sql, "spark", table, variables), "spark") - have
        assert not missing, f"{table}: {sorted(missing)} are not Spark functions"


@pytest.mark.parametrize("dialect", ["snowflake", "bigquery"])
def test_no_duckdb_only_function_left_in_snowflake_or_bigquery(spark, sample_plan, dialect):
    # sqlglot writes the functions it models in the target's own spelling (those it reads back in that
    # dialect as the same expression); a DuckDB function it does not model it writes verbatim, and
    # reads back as an unknown (Anonymous) call: none may be left, of DuckDB's function list
    from models.dialects import NATIVE, UntranslatableSQL, function_names

    duckdb_functions = _duckdb_functions()
    spark_has = {r[0].split(".")[-1].lower() for r in spark.sql("show functions").collect()}
    assert {"to_minutes", "getvariable", "list_position", "json_transform"} <= duckdb_functions - spark_has
    refused = 0
    for table, model in MODELS.items():
        try:
            out = transpile(model.sql, dialect, table, plan_variables(sample_plan))
        except UntranslatableSQL:
            refused += 1  # refused loudly instead (test_lineage pins which and why)
            continue
        left = (function_names(out, dialect) - {n.lower() for n in NATIVE[dialect]}) & duckdb_functions
        assert not left, f"{table} on {dialect} still calls {sorted(left)}"
    assert refused < len(MODELS)


# ---------------------------------------------------------------- parity


@pytest.fixture(scope="module")
def sample_plan():
    from tracking_plan.loader import load_plan

    return load_plan()


def _parity(spark, con, root, plan) -> dict[str, list[str]]:
    from support.spark import differences, export_inputs

    from pipelines.spark.models import run_models

    for model in load_models():  # DuckDB's result, as the assets build it
        con.execute(f"create or replace table {model.table} as {model.sql}")
    export_inputs(con, root)
    counts = run_models(spark, str(root), plan_variables(plan))
    assert set(counts) == set(MODELS)
    return {t: differences(con, spark, t) for t in MODELS}


def test_sql_models_on_spark_equal_duckdb_on_the_sample(spark_sample):
    # conftest's `spark_sample`: a generated sample built by both engines once per test session
    # (tests/support/spark.py: build_sample); on Spark the models read the Spark stitch's layers,
    # which tests/test_spark_stitch.py checks against DuckDB's
    tables = spark_sample["sql_tables"]
    assert set(MODELS) <= set(tables)
    assert spark_sample["events"] > 1000
    assert {t: spark_sample["diffs"][t] for t in tables} == {t: [] for t in tables}
    assert {t: spark_sample["spark_tables"][t] for t in tables} == {t: spark_sample["rows"][t] for t in tables}
    # the sample is not trivial: every table has rows
    assert all(spark_sample["rows"][t] > 0 for t in tables), spark_sample["rows"]


T0 = dt.datetime(2026, 3, 2, 9, 0, 0)


def _at(**kw) -> str:
    return (T0 + dt.timedelta(**kw)).isoformat()


def _adversarial() -> tuple[list[dict], dict[str, str]]:
    """(event rows, {message_id: client session id}) built to hit every rule the translation touches."""
    rows, sessions = [], {}

    def add(person, event, mid, session=None, **kw):
        rows.append({"person_id": person, "event": event, "message_id": mid, **kw})
        if session:
            sessions[mid] = session

    # a client session running past max_session_days (3): the events after day 3 leave the sessions;
    # a two-hour pause inside it does not split it; events without the id interleave in time
    add("p1", "Page Viewed", "a01", "s1", timestamp=_at(minutes=0), page_path="/", utm_source="google")
    add("p1", "Signed In", "a02", "s1", timestamp=_at(hours=2))
    add("p1", "Signed In", "a03", None, timestamp=_at(hours=2, seconds=1))
    add("p1", "Signed In", "a04", "s1", timestamp=_at(days=2, hours=23, minutes=59, seconds=59, microseconds=999999))
    add("p1", "Signed In", "a05", "s1", timestamp=_at(days=3, microseconds=1))
    add("p1", "Signed In", "a06", "s1", timestamp=_at(days=5))
    # sub-second timestamps across a second boundary (DuckDB counts 1 boundary, elapsed time is 2 ms)
    # and a 30-minute gap to the microsecond on either side of the timeout
    add("p2", "Account Created", "b01", timestamp=_at(seconds=0.999))
    add("p2", "Task Completed", "b02", timestamp=_at(seconds=1.001))
    add("p2", "Task Completed", "b03", timestamp=_at(minutes=30, seconds=1.001))
    add("p2", "Task Completed", "b04", timestamp=_at(minutes=60, seconds=1.001, microseconds=1))
    add(
        "p2",
        "Order Completed",
        "b05",
        timestamp=_at(days=1, seconds=0.5),
        properties={"plan": "pro", "revenue": 120, "billing_period": "annual"},
        utm_source="linkedin",
    )
    add("p2", "Subscription Cancelled", "b06", timestamp=_at(days=9, hours=1, seconds=0.25))
    # tied timestamps: three events in the same microsecond, ordered by message id; a funnel whose
    # steps share a timestamp, an exclusion between two steps, then a clean attempt
    add("p3", "Product Viewed", "c01", timestamp=_at(hours=1))
    add("p3", "Checkout Started", "c02", timestamp=_at(hours=1))
    add("p3", "Subscription Cancelled", "c03", timestamp=_at(hours=1, minutes=5))
    add("p3", "Payment Info Entered", "c04", timestamp=_at(hours=1, minutes=10))
    add("p3", "Product Viewed", "c05", timestamp=_at(days=1))
    add("p3", "Checkout Started", "c06", timestamp=_at(days=1, seconds=0.000001))
    add("p3", "Payment Info Entered", "c07", timestamp=_at(days=1, seconds=0.000001))
    add(
        "p3",
        "Order Completed",
        "c08",
        timestamp=_at(days=1, hours=71, minutes=59, seconds=59.999999),
        properties={"plan": "team", "revenue": 49.5, "billing_period": "monthly"},
    )
    add("p3", "Account Created", "c09", timestamp=_at(days=8))
    # a funnel attempt past the 72-hour window, and one exactly at its edge
    add("p4", "Product Viewed", "d01", timestamp=_at(days=2))
    add("p4", "Checkout Started", "d02", timestamp=_at(days=5, microseconds=1))
    add("p4", "Product Viewed", "d03", timestamp=_at(days=6))
    add("p4", "Checkout Started", "d04", timestamp=_at(days=9))
    add("p4", "Account Created", "d05", timestamp=_at(days=6, hours=5))
    for i in range(3):
        add("p4", "Task Completed", f"d1{i}", timestamp=_at(days=13, hours=i))
    return rows, sessions


def test_sql_models_on_spark_equal_duckdb_on_the_adversarial_fixture(spark, tmp_path):
    from support.marts import load_events, plan_with

    from models.catalog import set_plan_variables
    from models.staging.plan_tables import write_plan_tables
    from pipelines.warehouse import connect

    rows, sessions = _adversarial()
    # funnel exclusions of both kinds: between two steps, and to the end of the window
    plan = plan_with(
        {
            "funnels": [
                {
                    "key": "checkout",
                    "steps": ["Product Viewed", "Checkout Started", "Payment Info Entered", "Order Completed"],
                    "window_hours": 72,
                    "exclusions": [{"event": "Subscription Cancelled", "between": [2, 3]}],
                },
                {
                    "key": "short",
                    "steps": ["Product Viewed", "Checkout Started"],
                    "window_hours": 0.5,
                    "exclusions": [{"event": "Subscription Cancelled"}],
                },
            ]
        }
    )
    con = connect(str(tmp_path / "w.duckdb"))
    try:
        write_plan_tables(con, plan)
        con.execute("delete from staging.marketing_costs")
        con.execute("insert into staging.marketing_costs values (date '2026-03-01', 'linkedin', 300.0)")
        load_events(con, rows)
        con.executemany(
            "update stitch.events set session_id = ? where message_id = ?", [[s, m] for m, s in sessions.items()]
        )
        set_plan_variables(con, plan)
        diffs = _parity(spark, con, tmp_path / "layers", plan)
        # the fixture does hit the rules it was built for
        cut = con.execute("select count(*) from stitch.events where session_id = 's1'").fetchall()[0][0]
        kept = con.execute("select event_count from staging.sessions where client_session_id = 's1'").fetchall()
        assert cut == 5 and kept == [(3,)]  # the 3-day cap drops the two events of s1 after it
        # 09:00:00.999 → 09:30:01.001: 1801 second boundaries (1800.002 s elapsed); the next gap is
        # 30 minutes and 1 µs, so a second session starts
        durations = con.execute(
            "select duration_seconds from staging.sessions where person_id = 'p2' order by session_index"
        ).fetchall()
        assert durations[:2] == [(1801,), (0,)]
        steps = con.execute("select funnel, step_index, persons from marts.funnel_conversion order by 1, 2").fetchall()
        assert ("checkout", 4, 1) in steps  # p3's second attempt; the first is voided by the exclusion
    finally:
        con.close()
    assert diffs == {t: [] for t in MODELS}
