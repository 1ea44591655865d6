"""models/dialects.py's rules for the Python marts' aggregate SQL (models/marts/aggregates.py) on Spark.

DuckDB's arg_min/arg_max skip a row whose value is null; arg_min_null/arg_max_null keep it; Spark's
MIN_BY/MAX_BY keep it (checked against both engines in tests/test_spark_python_marts.py). Without
Spark: the SQL each rule writes, that anything left is refused in one line, and that every aggregate
query the marts run translates.
"""

from __future__ import annotations

import pandas as pd
import pytest

from models.dialects import UntranslatableSQL, transpile


def _spark(sql: str) -> str:
    return transpile(sql, "spark", "t", pretty=False)


def test_arg_min_skips_a_null_value_on_spark():
    assert _spark("select arg_min(v, t) as a from x") == "SELECT MIN_BY(v, t) FILTER(WHERE NOT v IS NULL) AS a FROM x"
    assert _spark("select arg_max(v, t) filter (where t > 1 or w) from x") == (
        "SELECT MAX_BY(v, t) FILTER(WHERE (t > 1 OR w) AND NOT v IS NULL) FROM x"
    )


def test_arg_min_null_keeps_it_as_min_by_does():
    assert _spark("select arg_min_null(v, t), arg_max_null(v + 1, t) from x") == (
        "SELECT MIN_BY(v, t), MAX_BY(v + 1, t) FROM x"
    )
    # the rules run twice over the tree: the result is not filtered a second time
    assert _spark("select arg_min(arg_min_null(v, t), t) from x").count("FILTER") == 1


def test_a_materialization_hint_is_duckdb_only():
    # models/marts/customer_value.sql inlines its events CTE (`as not materialized`); no target has the syntax
    for dialect in ("spark", "snowflake", "bigquery"):
        for hint in ("not materialized", "materialized"):
            out = transpile(f"with e as {hint} (select a + 1 as b from x) select b from e", dialect, "t", pretty=False)
            assert "MATERIALIZED" not in out.upper() and "WITH e AS (SELECT" in out, (dialect, out)


def test_a_field_of_a_json_path_list_is_that_one_path_elsewhere():
    # narrow_events_sql reads a payload's fields as one list of paths (one parse in DuckDB), each by index
    import duckdb

    sql = "select json_extract_string(p, ['$.a', '$.b'])[2] as x, json_extract_string(p, ['$.a', '$.b'])[1] as y from t"
    with duckdb.connect() as con:
        assert con.execute(sql.replace("from t", """from (select '{"a": "1", "b": 2}'::json as p)""")).fetchall() == [
            ("2", "1")
        ]
    expected = {
        "spark": "SELECT GET_JSON_OBJECT(p, '$.b') AS x, GET_JSON_OBJECT(p, '$.a') AS y FROM t",
        "bigquery": "SELECT JSON_EXTRACT_SCALAR(p, '$.b') AS x, JSON_EXTRACT_SCALAR(p, '$.a') AS y FROM t",
        "snowflake": "SELECT JSON_EXTRACT_PATH_TEXT(p, 'b') AS x, JSON_EXTRACT_PATH_TEXT(p, 'a') AS y FROM t",
    }
    for dialect, out in expected.items():
        assert transpile(sql, dialect, "t", pretty=False) == out
        single = sql.replace("['$.a', '$.b'])[2]", "'$.b')").replace("['$.a', '$.b'])[1]", "'$.a')")
        assert transpile(single, dialect, "t", pretty=False) == out  # what the one path gives


def test_a_list_position_counts_from_one_as_duckdb_does_and_is_null_safe():
    # sqlglot keeps a constant position counted from 0 and any other as written; the rules ran twice
    sql = "select l[1] as a, l[i] as b from x"
    assert _spark(sql) == "SELECT TRY_ELEMENT_AT(l, 1) AS a, TRY_ELEMENT_AT(l, i) AS b FROM x"
    assert (
        transpile(sql, "bigquery", "t", pretty=False)
        == "SELECT l[SAFE_ORDINAL(1)] AS a, l[SAFE_ORDINAL(i)] AS b FROM x"
    )
    assert transpile(sql, "snowflake", "t", pretty=False) == "SELECT GET(l, (1) - 1) AS a, GET(l, (i) - 1) AS b FROM x"


def test_what_cannot_keep_its_meaning_is_refused_in_one_line():
    with pytest.raises(UntranslatableSQL) as err:
        _spark("select arg_min(v, t) over (partition by g) from x")
    assert str(err.value).startswith("t: arg_min() has no spark translation") and "\n" not in str(err.value)
    for dialect in ("snowflake", "bigquery"):
        with pytest.raises(UntranslatableSQL, match=r"arg_min_null\(\) has no"):
            transpile("select arg_min_null(v, t) from x", dialect, "t")


def test_every_aggregate_query_of_the_python_marts_translates_to_spark():
    from models.marts import aggregates as A
    from tracking_plan.loader import load_plan

    plan = load_plan()
    ev = f"({A.narrow_events_sql(plan)})"
    t0 = pd.Timestamp("2026-03-01")
    x = A.first_exposures_sql(ev, "Experiment Viewed", "e", t0)
    queries = [
        A.span_sql(ev),
        x,
        A.exposure_outcomes_sql(ev, x, "Order Completed", "prop:revenue", 7, 14),
        A.exposure_outcomes_sql(ev, x, "Order Completed", None, 7.5, 14),
        A.latest_value_sql(ev, "company_size"),
        A.signup_outcomes_sql(ev, "Signed Up", "region", "Order Completed"),
        A.matching_inputs_sql(
            ev,
            signup_event="Signed Up",
            outcome_event="Order Completed",
            treatment_event="Integration Connected",
            start=t0,
            window_days=7,
            where={"integration": "slack"},
            free_plans=["free"],
        ),
        A.daily_counts_sql(ev, "Signed Up"),
        A.person_days_sql(ev, None),
        A.property_rows_sql(ev, "Survey Answered", "score"),
        A.kpi_windows_sql(ev, "revenue", "Order Completed", "revenue", [(0, t0, t0 + pd.Timedelta(days=7))]),
        A.cohort_hits_sql(ev, "Signed Up", "Order Completed", 7),
    ]
    for q in queries:
        out = _spark(q)
        assert "arg_min" not in out.lower() and "to_days" not in out.lower() and "json_extract" not in out.lower()


def test_inline_parameters_outside_strings_and_comments():
    from pipelines.spark.python_marts import inline_parameters, tables_read

    sql = "select '?' as q, ? as a -- ?\n from stitch.events e where event_name = ?"
    assert (
        inline_parameters(sql, ["it's", 2])
        == "select '?' as q, 'it''s' as a -- ?\n from stitch.events e where event_name = 2"
    )
    assert inline_parameters(sql, None) == sql
    with pytest.raises(ValueError):
        inline_parameters(sql, [1])
    assert tables_read("with k as (select 1 from stitch.events) select * from k join staging.sessions s on true") == {
        "stitch.events",
        "staging.sessions",
    }
