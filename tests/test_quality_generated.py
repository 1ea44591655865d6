"""The quality checks on the generator's data: a clean 60-day sample raises nothing, and each
planted incident is caught on its event and day, with nothing else flagged."""

from datetime import timedelta

import pytest
from support.warehouse import load_landing

from pipelines.quality.assets import anomaly_outcomes, build_anomalies
from pipelines.quality.checks import gates
from pipelines.warehouse import connect
from quality_checks.metrics import build_daily_metrics
from quality_checks.schema_checks import run_schema_check
from schemas.pandera_models import table_specs
from tracking_plan.loader import load_plan
from trackplan.demo.generate import DEFAULT_START, Incident, generate

DAYS, USERS = 60, 300  # ~28k events: enough people per day for the busy events to be scored
START = DEFAULT_START + timedelta(days=107 - DAYS)  # generate() ends on the same day whatever `days`


def day(k: int):
    return START + timedelta(days=k)


INCIDENTS = {  # event -> (incident, detectors that must fire on its first day)
    "Task Completed": (Incident.volume_drop("Task Completed", day(45)), {"volume"}),
    "Task Created": (
        Incident.type_change("Task Created", "has_due_date", day(48)),
        {"type_change", "quarantine_share"},
    ),
    "Task Complete": (Incident.new_event("Task Complete", day(50), like="Task Completed"), {"new_event"}),
    "Page Viewed": (Incident.null_spike("Page Viewed", "title", day(52)), {"null_rate"}),
    "Search Performed": (Incident.silence("Search Performed", day(55)), {"volume", "freshness"}),
}


def _warehouse(tmp, incidents):
    plan = load_plan()
    res = generate(tmp / "landing", days=DAYS, users=USERS, bug_rate=0, incidents=incidents)
    assert res.start == START
    con = connect(tmp / "w.duckdb")
    load_landing(con, plan, tmp / "landing")
    build_daily_metrics(con, plan)
    return con, plan


@pytest.fixture(scope="session")
def clean(tmp_path_factory):
    con, plan = _warehouse(tmp_path_factory.mktemp("clean"), [])
    yield con, plan, build_anomalies(con, plan)
    con.close()


@pytest.fixture(scope="session")
def incidents(tmp_path_factory):
    con, plan = _warehouse(tmp_path_factory.mktemp("incidents"), [i for i, _ in INCIDENTS.values()])
    yield con, plan, build_anomalies(con, plan)
    con.close()


def test_clean_sample_raises_no_anomaly(clean):
    con, _, found = clean
    assert len(found) == 0, found[["day", "event_name", "detector", "message"]].to_string()
    assert con.execute("select count(*) from quality.anomalies").fetchall() == [(0,)]
    # the metrics were really there to be scored: 60 days of the busy events
    n = con.execute("select count(distinct day) from quality.daily_metrics where metric = 'volume'").fetchall()[0][0]
    assert n == DAYS
    assert all(o.passed for o in anomaly_outcomes(found, str(day(0)), str(day(DAYS - 1))))


def test_clean_sample_passes_every_gate_and_schema(clean):
    con, plan, _ = clean
    outcomes = [o for t in ("ingest.events", "stitch.events", "stitch.persons") for o in gates(con, plan, t)]
    specs = table_specs(plan)
    outcomes += [
        run_schema_check(con, specs[t])
        for t in ("ingest.events", "ingest.quarantine", "stitch.events", "stitch.persons")
    ]
    failed = [
        (o.asset, o.check, o.metadata.get("failed_rules") or o.metadata.get("failed_checks"))
        for o in outcomes
        if not o.passed
    ]
    assert failed == []
    assert {o.check for o in outcomes} >= {
        "not_null",
        "enum",
        "range",
        "regex",
        "grain_unique",
        "referential_integrity",
        "schema",
    }
    assert all(o.metadata["rows"] > 0 for o in outcomes if o.asset != "ingest.quarantine")  # bug_rate=0: empty


def test_each_incident_caught_on_its_event_and_day(incidents):
    _, _, found = incidents
    for event, (inc, detectors) in INCIDENTS.items():
        mine = found[found["event_name"] == event]
        assert len(mine), f"{inc.kind} on {event} not caught"
        first = min(mine["day"])
        assert first == inc.day, f"{inc.kind} on {event}: first flagged {first}, planted {inc.day}"
        fired = set(mine[mine["day"] == inc.day]["detector"])
        assert detectors <= fired, f"{inc.kind} on {event}: {fired}"
    row = found[(found["event_name"] == "Page Viewed") & (found["detector"] == "null_rate")].iloc[0]
    assert row["property"] == "title" and row["observed"] > row["expected_high"]


def test_nothing_else_is_flagged(incidents):
    _, _, found = incidents
    stray = found[~found["event_name"].isin(list(INCIDENTS))]
    assert len(stray) == 0, stray[["day", "event_name", "detector", "message"]].to_string()
    # one-day incidents are flagged on their day only
    for event in ("Task Completed", "Page Viewed"):
        assert set(found[found["event_name"] == event]["day"]) == {INCIDENTS[event][0].day}


def test_type_change_fails_the_drift_check_for_that_day(incidents):
    _, _, found = incidents
    d = str(INCIDENTS["Task Created"][0].day)
    out = {o.check: o for o in anomaly_outcomes(found, d, d)}
    assert not out["drift_anomalies"].passed and out["drift_anomalies"].severity == "WARN"
    assert {s["event_name"] for s in out["drift_anomalies"].metadata["samples"]} == {"Task Created"}
    assert out["unknown_events"].passed  # the misspelled event starts two days later


def test_daily_metrics_object_keys_form_equals_json_each(incidents):
    # DuckDB builds the metrics with an object's keys zipped with its values; json_each (the form
    # Spark runs) is the oracle: the same rows on the incidents sample
    from quality_checks.metrics import daily_metrics_sql

    con = incidents[0]
    fast = con.execute(f"select * from ({daily_metrics_sql(True)}) order by all").fetchall()
    each = con.execute(f"select * from ({daily_metrics_sql(True, object_keys=False)}) order by all").fetchall()
    assert len(fast) > 1000
    assert fast == each


@pytest.mark.parametrize(
    "payload",
    ['{"a": 1, "a": "x"}', '{"a": {"b": [1, 2]}, "c": null, "d": true}', "{}", '{"k": [{"x": 1}], "z": 2.5}'],
)
def test_object_keys_zip_gives_json_each_pairs(payload):
    import duckdb

    con = duckdb.connect()
    zipped = con.execute(
        "select unnest(json_keys(p)) as k, unnest(p -> '$.*')::varchar as v from (select ?::json as p) order by all",
        [payload],
    ).fetchall()
    each = con.execute(
        "select j.key, j.value::varchar from (select ?::json as p) s, json_each(s.p) j order by all", [payload]
    ).fetchall()
    assert zipped == each
