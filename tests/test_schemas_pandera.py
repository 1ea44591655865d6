"""Pandera models generated from the DDL, the plan and the models' YAML; the failure-case adapter."""

import duckdb
import pytest

from quality_checks.schema_checks import run_schema_check
from schemas.pandera_models import ddl_columns, pandera_schema, table_specs
from tracking_plan.loader import load_plan


@pytest.fixture(scope="module")
def specs():
    return table_specs(load_plan())


def test_every_curated_table_has_a_generated_spec(specs):
    assert {"ingest.events", "ingest.quarantine", "stitch.events", "stitch.persons", "staging.sessions"} <= set(specs)
    sessions = specs["staging.sessions"]
    assert sessions.grain == ["person_id", "session_index"]  # from sessions.yml
    assert sessions.columns["landing_page"].description.startswith("Path of the first page")
    ev = specs["ingest.events"]
    assert set(ev.columns) == set(ddl_columns()["ingest.events"])  # the DDL, not a second list
    assert "Order Completed" in ev.columns["event_name"].isin and not ev.columns["message_id"].nullable
    schema = pandera_schema(sessions)
    assert schema.unique == ["person_id", "session_index"] and not schema.columns["person_id"].nullable


def _sessions(con, rows):
    con.execute("create schema if not exists staging")
    con.execute(
        "create or replace table staging.sessions (session_id varchar, person_id varchar, session_index int, "
        "started_at timestamp, ended_at timestamp, duration_seconds double, event_count int, page_views int, "
        "landing_page varchar, referrer varchar, utm_source varchar, utm_medium varchar, "
        "utm_campaign varchar, anonymous_id varchar, client_session_id varchar)"
    )
    con.executemany("insert into staging.sessions (session_id, person_id, session_index) values (?, ?, ?)", rows)


def test_schema_check_passes(specs):
    con = duckdb.connect()
    _sessions(con, [("s1", "p1", 1), ("s2", "p1", 2), ("s3", "p2", 1)])
    o = run_schema_check(con, specs["staging.sessions"])
    assert o.passed and o.severity == "ERROR" and o.metadata["failing_count"] == 0
    assert o.metadata["rows"] == 3 and not o.metadata["sampled"]


def test_schema_check_failure_cases_become_metadata(specs):
    con = duckdb.connect()
    _sessions(con, [("s1", "p1", 1), ("s2", "p1", 1), ("s3", None, 1)])
    o = run_schema_check(con, specs["staging.sessions"])
    assert not o.passed and o.severity == "ERROR"
    assert o.metadata["failing_count"] >= 2 and 0 < o.metadata["failing_share"] <= 1
    assert any("person_id" in c for c in o.metadata["failed_checks"])
    assert 1 <= len(o.metadata["samples"]) <= 10 and "select" in o.metadata["sql"]


def test_missing_column_and_large_table_sampling(specs):
    con = duckdb.connect()
    _sessions(con, [(f"s{i}", f"p{i}", 1) for i in range(500)])
    con.execute("alter table staging.sessions drop column landing_page")
    o = run_schema_check(con, specs["staging.sessions"], sample_rows=100)
    assert not o.passed and o.metadata["missing_columns"] == ["landing_page"]
    assert o.metadata["sampled"] and o.metadata["checked_rows"] == 100


@pytest.mark.parametrize("layer", ["table", "view"])
def test_event_table_sample_is_the_reservoir_of_whole_rows(specs, layer):
    """The sample of an event table is drawn over its row id (a table) or its row key (a view: a Spark
    layer), then those rows read: the rows, and their order, of DuckDB's reservoir over whole rows (the
    oracle), so a failure's row numbers are the same."""
    from schemas.ddl import DDL

    con = duckdb.connect()
    con.execute(DDL)
    if layer == "view":  # the same rows behind a view (no row id)
        con.execute("create table ingest.events_rows as select * from ingest.events")
        con.execute("drop table ingest.events")
        con.execute("create view ingest.events as select * from ingest.events_rows")
    con.execute(
        f"insert into ingest.events{'_rows' if layer == 'view' else ''} (message_id, type, event_name, partition_date, source_file, line_no, "
        "received_at, plan_version, loaded_at) select 'm' || i, 'track', "
        "case when i % 37 = 0 then 'Not In The Plan' else 'Order Completed' end, date '2026-01-01' + (i % 3)::int, 'f' || (i % 5) || '.jsonl', i, "
        "timestamp '2026-01-01 00:00:00' + to_seconds(i), '1.0.0', timestamp '2026-01-04' from range(3000) t(i)"
    )
    o = run_schema_check(con, specs["ingest.events"], sample_rows=400)
    oracle = [
        r[0]
        for r in con.execute(
            "select event_name from ingest.events using sample reservoir(400 rows) repeatable (42)"
        ).fetchall()
    ]
    unknown = [i for i, e in enumerate(oracle) if e == "Not In The Plan"]
    assert o.metadata["sampled"] and o.metadata["checked_rows"] == 400 and len(unknown) > 3
    assert not o.passed and o.metadata["failing_count"] == len(unknown)
    shown = sorted(int(s["index"]) for s in o.metadata["samples"] if s.get("column") == "event_name")
    assert shown and shown == unknown[: len(shown)]


def test_only_the_checked_columns_are_read_and_the_outcome_is_the_whole_schemas(specs):
    """The check reads only the columns a check of theirs reads (not nullable, a set of values, a
    pattern, the grain): failing checks, counts and sample rows are those of the whole schema over
    every column of the same sample (a null key, a duplicate key, an unknown event, a version that is
    not semver, a missing column)."""
    from schemas.ddl import DDL
    from schemas.pandera_models import import_pandera

    con = duckdb.connect()
    con.execute(DDL)
    con.execute("alter table ingest.events alter column message_id drop not null")  # another writer's table
    con.execute(
        "insert into ingest.events (message_id, type, event_name, partition_date, source_file, line_no, "
        "received_at, plan_version, loaded_at, properties) select case when i % 101 = 0 then null "
        "when i % 53 = 0 then 'm1' else 'm' || i end, 'track', "
        "case when i % 37 = 0 then 'Not In The Plan' else 'Order Completed' end, date '2026-01-01', 'f.jsonl', i, "
        "timestamp '2026-01-01 00:00:00' + to_seconds(i), case when i % 41 = 0 then 'one' else '1.0.0' end, "
        "timestamp '2026-01-04', '{\"revenue\": 1}' from range(3000) t(i)"
    )
    con.execute("alter table ingest.events drop column page_name")
    spec = specs["ingest.events"]
    o = run_schema_check(con, spec, sample_rows=400)
    assert o.metadata["checked_rows"] == 400 and "properties" not in o.metadata["sql"]
    whole = con.execute("select * from ingest.events using sample reservoir(400 rows) repeatable (42)").df()
    try:
        pandera_schema(spec).validate(whole, lazy=True)
        want = []
    except import_pandera().errors.SchemaErrors as exc:
        want = exc.failure_cases.to_dict("records")
    kinds = {(f["column"], f["check"].split("(")[0]) for f in want}
    assert kinds == {
        ("ingest.events", "column_in_dataframe"),  # page_name
        ("message_id", "not_nullable"),
        ("message_id", "multiple_fields_uniqueness"),
        ("event_name", "isin"),
        ("plan_version", "str_matches"),
    }
    assert o.metadata["failed_checks"] == sorted({f"{f['column']}: {f['check']}" for f in want})[:50]
    rows = {f["index"] for f in want if f["index"] is not None}
    assert o.metadata["failing_count"] == len(rows) + 1  # + the missing column
    assert [(s["column"], s["check"], s["index"]) for s in o.metadata["samples"]] == [
        (f["column"], f["check"], f["index"]) for f in want[:10]
    ]


def test_pandera_leaves_pyspark_unloaded_but_importable():
    """Pandera's own import of pyspark.pandas (made when pyspark is installed, for pandas-on-Spark,
    which trackplan never uses) is refused; pandera still validates a frame, and pyspark still imports
    for anything else (the Spark engine)."""
    from support import python_c_prints

    pytest.importorskip("pyspark")
    code = (
        "import sys, pandas as pd; from schemas.pandera_models import import_pandera; pa = import_pandera();"
        "schema = pa.DataFrameSchema({'a': pa.Column(int, pa.Check.ge(0))});"
        "ok = len(schema.validate(pd.DataFrame({'a': [1, 2]})));"
        "bad = 0\n"
        "try:\n    schema.validate(pd.DataFrame({'a': [-1]}))\nexcept pa.errors.SchemaError:\n    bad = 1\n"
        "loaded = sorted(k for k in sys.modules if k.startswith('pyspark'));"
        "import pyspark.sql;"
        "print('validated', ok, bad, 'loaded by pandera', loaded)"
    )
    python_c_prints(code, "validated 2 1 loaded by pandera []")
