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


# README "Measured operating point": the detectors' false alerts on clean generated traffic, 0.87 per
# 10,000 decisions (series-days), 95% upper bound 1.21. A 60-day sample makes ~25,000 of them, so a
# clean sample is expected to raise ~2 alerts, not none: seeds 40-79 of this sample raised 0-13
# (mean 2.2, 0.88 per 10,000; seed 42, the default, none), and they come in bunches (one day's
# signup burst fires on several events), variance 2.9x the mean. A sample is held to that: at most
# the count a negative binomial of the upper bound's mean and that dispersion exceeds with
# probability 1e-4 (~26 here); a detector gone wrong raises hundreds. benchmarks/detector_bench.py
# measures the rate itself.
FALSE_ALERTS_PER_10K = 1.21
DISPERSION = 2.9


def false_alert_limit(con, plan) -> int:
    from scipy.stats import nbinom

    from quality_checks.detectors import decisions
    from tracking_plan.quality_settings import settings_for

    m = con.execute("select * from quality.daily_metrics").df()
    days = sorted(m["day"].unique())
    n = sum(decisions(m, days[min(settings_for(plan).min_history_days, len(days) - 1)]).values())
    assert n > 10_000  # (the exposure is real: ~25,000 decisions)
    mean, p = FALSE_ALERTS_PER_10K * n / 10_000, 1 / DISPERSION
    return int(nbinom.ppf(1 - 1e-4, mean * p / (1 - p), p))


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


def test_clean_sample_raises_no_more_anomalies_than_the_measured_rate(clean):
    con, plan, found = clean
    assert len(found) <= false_alert_limit(con, plan), found[["day", "event_name", "detector", "message"]].to_string()
    assert con.execute("select count(*) from quality.anomalies").fetchall() == [(len(found),)]
    # the metrics were really there to be scored: 60 days of the busy events
    n = con.execute("select count(distinct day) from quality.daily_metrics where metric = 'volume'").fetchall()[0][0]
    assert n == DAYS
    # the asset checks fail exactly where an anomaly was found
    outcomes = anomaly_outcomes(found, str(day(0)), str(day(DAYS - 1)))
    assert all(o.passed for o in outcomes) == found.empty


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


ONE_DAY = ("Task Completed", "Page Viewed")  # the incidents that last one day (the others persist)


def _stray(found):
    """The alerts that are no incident's: on another event, or on an incident's event before its day
    (or after it, for a one-day incident). Clean traffic raises some (FALSE_ALERTS_PER_10K)."""
    theirs = found["event_name"] != found["event_name"]
    for event, (inc, _) in INCIDENTS.items():
        on = found["event_name"] == event
        theirs |= on & ((found["day"] == inc.day) if event in ONE_DAY else (found["day"] >= inc.day))
    return found[~theirs]


def test_each_incident_caught_on_its_event_and_day(incidents):
    _, _, found = incidents
    for event, (inc, detectors) in INCIDENTS.items():
        fired = set(found[(found["event_name"] == event) & (found["day"] == inc.day)]["detector"])
        assert detectors <= fired, f"{inc.kind} on {event} on {inc.day}: {fired or 'not caught'}"
    day_of = INCIDENTS["Page Viewed"][0].day
    rows = found[(found["event_name"] == "Page Viewed") & (found["detector"] == "null_rate") & (found["day"] == day_of)]
    # the planted property's alert, whatever else clean traffic raised that day (a draw of shift 600000
    # also flagged referrer's null rate there, at the measured false-alert rate)
    title = rows[rows["property"] == "title"]
    assert len(title) == 1 and title.iloc[0]["observed"] > title.iloc[0]["expected_high"], rows.to_string()


def test_nothing_else_is_flagged_beyond_the_measured_rate(incidents):
    # (one-day incidents flagged after their day, or any incident's event before it, count as stray)
    con, plan, found = incidents
    stray = _stray(found)
    assert len(stray) <= false_alert_limit(con, plan), stray[["day", "event_name", "detector", "message"]].to_string()


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


def test_daily_metrics_of_payloads_that_are_no_object_equal_json_each():
    # a payload sent as an array, a scalar, null, an empty object or with a key twice (quarantined,
    # or stored by an older version): the one scan's entries against json_each, the oracle
    import duckdb

    from quality_checks.metrics import daily_metrics_sql
    from schemas.ddl import DDL

    con = duckdb.connect()
    con.execute(DDL)
    sent = [
        ('{"plan":"pro","n":1}', "A"),
        ('[1,"pro",null,{"x":1}]', "A"),
        ('"scalar"', "A"),
        ("5", "B"),
        ('{"plan":"free","plan":"pro","n":"2"}', "A"),
        ("[]", "B"),
        ("{}", "B"),
        ("null", "A"),
    ]
    for i, (payload, event) in enumerate(sent):
        con.execute(
            "insert into ingest.quarantine (partition_date, source_file, line_no, raw, message_id, event_name, "
            "quarantined_at) values ('2026-01-01', 'f', ?, ?, ?, ?, now())",
            [i, f'{{"type":"track","event":"{event}","properties":{payload}}}', f"q{i}", event],
        )
        con.execute(
            "insert into ingest.events (message_id, type, event_name, properties, partition_date, source_file, "
            'line_no, loaded_at, plan_version, "timestamp", received_at) values '
            "(?, 'track', ?, ?::json, '2026-01-01', 'f', ?, now(), '1.0.0', now(), now())",
            [f"e{i}", event, payload, i],
        )
    con.execute("create temp table _q_props (event_name varchar, property varchar, is_enum boolean)")
    con.executemany(
        "insert into _q_props values (?, ?, ?)",
        [
            ("A", "plan", True),
            ("A", "n", False),
            ("A", "0", True),
            ("A", "1", True),
            ("A", "3", False),
            ("B", "x", False),
        ],
    )
    con.execute("create temp table _q_planned as select unnest(['A', 'B']) as event_name")
    fast = con.execute(f"select * from ({daily_metrics_sql(False, part='local')}) order by all").fetchall()
    each = con.execute(
        f"select * from ({daily_metrics_sql(False, object_keys=False, part='local')}) order by all"
    ).fetchall()
    assert fast == each
    got = {(r[2], r[3], r[4]): (r[5], r[6]) for r in fast}
    # an array's positions are its keys: '0' is a number in both arrays of A that have one
    assert got[("type_share", "0", "number")] == (1.0, 2)
    assert got[("enum_share", "plan", "pro")] == (2 / 3, 6)  # a key given twice counts twice, as json_each


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


def test_scoring_coverage_accounts_for_every_series_on_every_day(clean):
    """Nothing silent: on every day each series of the metrics table is either scored or not scored
    with a reason (quality_checks.detectors.scoring_coverage), and what it calls scored is what the
    bands hold."""
    from quality_checks.detectors import SERIES, UNSCORED, scoring_coverage, series_bands
    from quality_checks.metrics import last_seen
    from tracking_plan.quality_settings import settings_for

    con, plan, _ = clean
    m = con.execute("select * from quality.daily_metrics").df()
    s = settings_for(plan)
    cov = scoring_coverage(m, s, last_seen(con))
    # the series of each metric, counted from the table: its keys with any value
    keys = m[m["metric"].isin(list(SERIES)) & m["value"].notna()]
    series = keys.groupby("metric")[["event_name", "property", "dimension"]].apply(lambda g: len(g.drop_duplicates()))
    per_day = cov.groupby(["day", "metric"])["series"].sum()
    assert len(per_day) == DAYS * len(series)
    for (_, metric), n in per_day.items():
        assert n == series[metric]
    assert set(cov["status"]) <= {"scored", *UNSCORED.values()}
    # no score before min_history_days of history; the busy events' volume scored on the last day
    first = cov[cov["day"] < day(s.min_history_days)]
    assert first["status"].ne("scored").all() and len(first)
    last = cov[(cov["day"] == day(DAYS - 1)) & (cov["metric"] == "volume")]
    assert last.loc[last["status"] == "scored", "series"].sum() >= series["volume"] / 2
    bands = series_bands(m, s, last_seen(con))
    assert cov.loc[cov["status"] == "scored", "series"].sum() == len(bands)


def test_the_report_says_what_was_scored_beside_no_anomalies(clean):
    """The report's anomaly panel: an empty list is news only beside what was scored. A warehouse of
    five days has nothing scored, and says so with the reason."""
    from quality_checks.detectors import UNSCORED, scoring_coverage
    from quality_checks.metrics import last_seen
    from quality_checks.scoring import SHORT_HISTORY
    from tracking_plan.quality_settings import settings_for
    from trackplan.report import _scored_note

    con, plan, _ = clean

    class Warehouse:  # the report's read-only access, over the fixture's open connection
        def __init__(self):
            self.con = con

        def has(self, *names):
            return True

    m = con.execute("select * from quality.daily_metrics").df()
    cov = scoring_coverage(m, settings_for(plan), last_seen(con))
    last = cov[cov["day"] == day(DAYS - 1)]
    scored = last.loc[last["status"] == "scored", "series"].sum()
    note = _scored_note(Warehouse(), plan)
    assert note.startswith(
        f"on {day(DAYS - 1)} the series detectors scored {scored:,} of {last['series'].sum():,} series"
    )
    early = con.execute("select * from quality.daily_metrics where day < ?", [day(5)]).df()
    cov = scoring_coverage(early, settings_for(plan))
    assert cov["status"].ne("scored").all()
    assert cov.loc[cov["metric"] == "volume", "status"].eq(UNSCORED[SHORT_HISTORY]).all()
