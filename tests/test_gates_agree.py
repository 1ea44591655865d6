"""Gates and validator from one source (issue 15, items 4 and 7): a line the validator accepts can
never fail a row-level gate on ingest.events; every Segment call type passes end to end; a blocking
gate that crashes fails and blocks."""

from __future__ import annotations

import copy
import datetime as dt
import re
import shutil

import dagster as dg
import orjson
import pytest
import yaml
from support.pipeline import BASE, DAY, ev, iso, write_lines

from pipelines.ingest.load import ingest_partitions
from pipelines.quality.checks import gates
from pipelines.warehouse import connect, keyed_hash
from tracking_plan.loader import default_plan_dir, load_plan
from tracking_plan.validate import validate_files

T = dt.timedelta


def _times(msg: dict, at: dt.datetime) -> dict:
    return msg | {"timestamp": iso(at), "sentAt": iso(at + T(seconds=1)), "receivedAt": iso(at + T(seconds=2))}


# The example payloads of Segment's spec pages (segment.com/docs/connections/spec/<call>/, "Example"),
# kept whole. Changed only where the sample plan says so, each marked: times moved to the partition day
# (the spec's are from 2015, beyond max_age_days), unique messageIds (the pages share one), the track
# example's event named after a plan event, and the plan's required page path and plan enum.
SPEC = [
    {
        "anonymousId": "23adfd82-aa0f-45a7-a756-24f2a7a4c895",
        "context": {
            "library": {"name": "analytics.js", "version": "2.11.1"},
            "page": {
                "path": "/academy/",
                "referrer": "",
                "search": "",
                "title": "Analytics Academy",
                "url": "https://segment.com/academy/",
            },
            "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_10_5) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/46.0.2490.86 Safari/537.36",
            "ip": "108.0.78.21",
        },
        "event": "Signed In",  # changed: "Course Clicked" is not in the sample plan
        "integrations": {},
        "messageId": "ajs-f8ca1e4de5024d9430b3928bd8ac6b96",
        "properties": {"method": "password"},  # changed: the plan's required property
        "type": "track",
        "userId": "AiUGstSDIg",
        "originalTimestamp": "2015-12-12T19:11:01.152Z",
    },
    {
        "anonymousId": "507f191e810c19729de860ea",
        "channel": "browser",
        "context": {"ip": "8.8.8.8", "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_10_2) AppleWebKit/537.36"},
        "integrations": {"All": True, "Mixpanel": False, "Salesforce": False},
        "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093d1",
        "name": "Home",
        "properties": {"title": "Welcome | Initech", "url": "http://www.example.com", "path": "/"},  # changed: + path
        "type": "page",
        "userId": "97980cfea0067",
        "version": "1.1",
    },
    {
        "anonymousId": "3a12eab0-bca7-11e4-8dfc-aa07a5b093db",
        "channel": "mobile",
        "context": {"ip": "8.8.8.8"},
        "integrations": {"All": True, "Mixpanel": False, "Salesforce": False},
        "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093d2",
        "name": "Home",
        "properties": {"Feed Type": "private"},
        "type": "screen",
        "userId": "97980cfea0067",
        "version": "1.1",
    },
    {
        "anonymousId": "507f191e810c19729de860ea",
        "channel": "browser",
        "context": {"ip": "8.8.8.8", "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_10_2) AppleWebKit/537.36"},
        "integrations": {"All": False, "Mixpanel": True, "Salesforce": True},
        "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093d3",
        "traits": {
            "name": "Peter Gibbons",
            "email": "peter@example.com",
            "plan": "business",  # changed: "premium" is not in the plan's enum
            "logins": 5,
            "address": {
                "street": "6th St",
                "city": "San Francisco",
                "state": "CA",
                "postalCode": "94103",
                "country": "USA",
            },
        },
        "type": "identify",
        "userId": "97980cfea0067",
        "version": "1.1",
    },
    {
        "anonymousId": "507f191e810c19729de860ea",
        "channel": "browser",
        "context": {"ip": "8.8.8.8", "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_10_2) AppleWebKit/537.36"},
        "integrations": {"All": True, "Mixpanel": False, "Salesforce": False},
        "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093d4",
        "groupId": "0e8c78ea9d97a7b8185e8632",
        "traits": {
            "name": "Initech",
            "industry": "Technology",
            "employees": 329,
            "plan": "enterprise",
            "total billed": 830,
        },
        "type": "group",
        "userId": "97980cfea0067",
        "version": "1.1",
    },
    {
        "anonymousId": "507f191e810c19729de860ea",
        "channel": "browser",
        "context": {"ip": "8.8.8.8", "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_10_2) AppleWebKit/537.36"},
        "integrations": {"All": True, "Mixpanel": False, "Salesforce": False},
        "messageId": "022bb90c-bbac-11e4-8dfc-aa07a5b093d5",
        "previousId": "39239-239239-239239-23923",
        "type": "alias",
        "userId": "507f191e81",
        "version": "1.1",
    },
]


def _spec_lines(day: dt.datetime) -> list[dict]:
    return [_times(copy.deepcopy(m), day + T(hours=10, minutes=i)) for i, m in enumerate(SPEC)]


def _failed_gates(con, plan) -> list:
    return [
        (o.check, [r["rule"] for r in o.metadata.get("failed_rules", [])])
        for o in gates(con, plan, "ingest.events")
        if not o.passed
    ]


def test_every_segment_call_type_is_accepted_and_passes_the_gates(tmp_path):
    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    write_lines(landing, DAY, "spec.jsonl", _spec_lines(BASE.replace(hour=0)))
    plan = load_plan()
    (report,) = validate_files(plan, [str(landing / f"date={DAY}" / "spec.jsonl")])
    assert (report.total, report.invalid) == (6, 0), report.errors
    con = connect(wh)
    ingest_partitions(con, plan, landing, [DAY])
    types = dict(con.execute("select type, count(*) from ingest.events group by 1").fetchall())
    assert types == {t: 1 for t in ("track", "page", "screen", "identify", "group", "alias")}
    assert _failed_gates(con, plan) == []
    from quality_checks.schema_checks import run_schema_check
    from schemas.pandera_models import table_specs

    assert run_schema_check(con, table_specs(plan)["ingest.events"], 1000).passed
    con.close()


def test_a_property_named_with_a_dot_or_quote_is_one_key(tmp_path):
    """A plan property `a.b` (and one holding a quote) is read as one key by the validator and the
    gates alike: a required `a.b` present in the event passes both; absent, the validator rejects it."""
    plan_dir = tmp_path / "plan"
    shutil.copytree(default_plan_dir(), plan_dir)
    f = plan_dir / "events" / "signed_in.yaml"
    doc = yaml.safe_load(f.read_text())
    doc["properties"]["a.b"] = {"type": "string", "required": True, "description": "dotted", "enum": ["x", "y"]}
    doc["properties"]['say "hi"'] = {"type": "integer", "description": "quoted", "minimum": 1, "required": True}
    doc["properties"]['e"mail.x'] = {"type": "string", "description": "PII with a quote and a dot", "pii": True}
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    plan = load_plan(plan_dir)
    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    good = [
        ev(mid=f"d{i}", props={"method": "password", "a.b": "x", 'say "hi"': 2, 'e"mail.x': "p@x.io"}) for i in range(3)
    ]
    nested = ev(mid="nested", props={"method": "password", "a": {"b": "x"}, 'say "hi"': 2})  # not the same key
    write_lines(landing, DAY, "dots.jsonl", [*good, nested])
    con = connect(wh)
    (res,) = ingest_partitions(con, plan, landing, [DAY])
    assert (res.loaded, res.quarantined) == (3, 1)
    rules = con.execute("select rules from ingest.quarantine").fetchall()
    assert rules == [(["required"],)]
    assert _failed_gates(con, plan) == []
    # the PII property is hashed under its own name, not dropped
    stored = {orjson.loads(p)['e"mail.x'] for (p,) in con.execute("select properties from ingest.events").fetchall()}
    assert stored == {keyed_hash("p@x.io")}
    con.close()


def test_a_gate_rule_on_a_stored_row_still_fails_when_the_row_is_bad(tmp_path):
    """The gates are not vacuous: a row changed after loading (so the validator never saw it) fails."""
    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    write_lines(
        landing, DAY, "a.jsonl", [ev(mid="x1"), ev(type="alias", event=None, mid="x2", user="u", previousId="p")]
    )
    plan = load_plan()
    con = connect(wh)
    ingest_partitions(con, plan, landing, [DAY])
    assert _failed_gates(con, plan) == []
    con.execute("""update ingest.events set properties = json_object('method', 'carrier pigeon')
                   where message_id = 'x1'""")
    con.execute("update ingest.events set event_name = 'Made Up' where message_id = 'x2'")
    con.execute("update ingest.events set plan_version = 'one' where message_id = 'x2'")
    failed = dict(_failed_gates(con, plan))
    assert "Signed In.method in enum" in failed["enum"] and "event_name in plan" in failed["enum"]
    assert failed["regex"] == ["plan_version is semver"]

    # counted per partition (a run's way: the rules on a few columns of few values over their distinct
    # values), the same rules fail with the same counts
    def counts(**kw) -> list:
        return [
            (o.check, o.metadata["rows"], o.metadata["failing_count"]) for o in gates(con, plan, "ingest.events", **kw)
        ]

    assert counts(by_partition=True, full_refresh=True) == counts()
    con.close()


def test_a_crashing_blocking_gate_fails_and_blocks_downstream(tmp_path, monkeypatch):
    from pipelines import resources as resources_mod  # noqa: F401
    from pipelines.definitions import all_assets, all_checks
    from pipelines.quality import checks
    from pipelines.resources import resources_from_env

    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    write_lines(landing, DAY, "a.jsonl", [ev(mid=f"c{i}", at=BASE + T(minutes=i)) for i in range(5)])

    def broken(con, plan, table, **kw):
        if table == "ingest.events":
            raise RuntimeError("a defect in the gate")
        return original(con, plan, table, **kw)

    original = checks.gates
    monkeypatch.setattr(checks, "gates", broken)
    assets = [a for a in all_assets() if any(k.path[0] in ("ingest", "stitch") for k in a.keys)]
    chks = [c for c in all_checks() if any(k.asset_key.path[0] == "ingest" for k in c.check_keys)]
    result = dg.materialize(
        [*assets, *chks],
        resources=resources_from_env(default_plan_dir(), landing, wh),
        partition_key=DAY,
        raise_on_error=False,
        run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
    )
    evals = [e for e in result.get_asset_check_evaluations() if e.asset_key.path == ["ingest", "events"]]
    assert evals and all(not e.passed and e.severity == dg.AssetCheckSeverity.ERROR for e in evals)
    assert all(e.metadata["error"].value == "RuntimeError: a defect in the gate" for e in evals)
    done = {m.asset_key.path[0] for m in result.get_asset_materialization_events()}
    assert "ingest" in done and "stitch" not in done  # the blocking failure stopped the layer downstream


def test_sample_landing_plus_spec_calls_run_end_to_end(tmp_path):
    """`trackplan run` on generated traffic plus one of every Segment call type: no ingest or stitch gate
    fails and stitch and the marts are built."""
    from pipelines.runner import run_pipeline
    from trackplan.demo.generate import generate

    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    generate(landing, users=60, days=14, seed=5)
    last = max(landing.glob("date=*")).name[5:]
    write_lines(landing, last, "spec.jsonl", _spec_lines(dt.datetime.fromisoformat(last)))
    from rich.console import Console

    with open(tmp_path / "console.txt", "w") as sink:
        out = Console(record=True, width=300, file=sink)
        ok = run_pipeline(default_plan_dir(), landing, wh, console=out)
    text = out.export_text()
    failed = text.split("failed checks", 1)[1]
    # the generator's _truth.json and _costs.csv at the landing root are not traffic: logged, shown as skipped
    meta = len(list(landing.glob("_*")))
    skipped = next(line for line in text.splitlines() if "skipped files" in line)
    assert meta == 2 and re.search(rf"skipped files\W+{meta}\s+\(hidden or metadata file {meta};", skipped), skipped
    assert "ingest/events" not in failed and "ingest.events" not in failed
    assert "stitch" not in failed.split("\n")[0]
    con = connect(wh, read_only=True)
    types = {r[0] for r in con.execute("select distinct type from stitch.events").fetchall()}
    assert types == {"track", "page", "screen", "identify", "group", "alias"}
    assert con.execute("select count(*) from marts.retention").fetchall()[0][0] > 0
    con.close()
    assert ok, text


# -- one definition per rule: the differential generator's messages, the validator and the gates --


def _differential_landing(tmp_path, seed: int):
    from test_validate_differential import PLAN_DIR, T0, _generate

    lines, _ = _generate(seed)
    day = T0[:10]
    f = write_lines(tmp_path / "landing", day, "events.jsonl", lines)
    return load_plan(PLAN_DIR), tmp_path / "landing", day, f, lines


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_every_message_the_validator_accepts_passes_every_gate(seed, tmp_path):
    """Seeded generated and mutated messages of the plan that uses every constraint at every depth
    (tests/test_validate_differential.py): every message the validator accepts is loaded and passes
    every row-level gate; the same gates over the rows the validator rejected do fail, of every kind."""
    import duckdb

    from quality_checks.rules import evaluate, plan_rules
    from tracking_plan.reader import read_files
    from tracking_plan.validate import Validator

    plan, landing, day, f, lines = _differential_landing(tmp_path, seed)
    scratch = duckdb.connect()
    scratch.register("inp", next(read_files([str(f)])))
    Validator(plan).run(scratch, "inp", "out")
    accepted = {
        m for (m,) in scratch.execute("select distinct message_id from out where valid").fetchall()
    }  # (a mutated messageId may repeat: loaded once)
    # (a third of the messages on average: 0.29-0.35 over seeds 0-119, so this bound holds on any seed)
    assert len(accepted) > 0.2 * len(lines)

    con = connect(tmp_path / "w.duckdb")
    (res,) = ingest_partitions(con, plan, landing, [day])
    stored = {m for (m,) in con.execute("select message_id from ingest.events").fetchall()}
    assert stored == accepted and res.loaded == len(accepted)
    outcomes = gates(con, plan, "ingest.events")
    assert {o.check for o in outcomes} == {"grain_unique", "not_null", "enum", "range", "regex"}
    failed = [(o.check, o.metadata["failed_rules"]) for o in outcomes if not o.passed]
    assert failed == []
    # the rules count: far more than the envelope's, every kind of the plan's
    assert sum(o.metadata["rules"] for o in outcomes) > 60
    con.close()

    # not vacuous: over the rejected rows of the plan's events the same gates fail, of every kind
    scratch.execute(
        "create table rejected as select *, date '2026-03-02' as partition_date, '1.0.0' as plan_version "
        "from out where not valid and event_name in ('Order Completed', 'Page Viewed', 'User Identified')"
    )
    kinds = {o.check for o in evaluate(scratch, "rejected", plan_rules(plan)) if not o.passed}
    assert {"not_null", "enum", "range", "regex"} <= kinds


def _enum_landing(tmp_path, plan_dir):
    landing = tmp_path / "landing"
    write_lines(landing, DAY, "a.jsonl", [ev(mid="pigeon", props={"method": "carrier pigeon"}), ev(mid="ok")])
    return landing


def _method_enum_failures(con, plan) -> int:
    (o,) = [o for o in gates(con, plan, "ingest.events") if o.check == "enum"]
    return next((r["failing"] for r in o.metadata["failed_rules"] if r["rule"] == "Signed In.method in enum"), 0)


def test_editing_one_rule_changes_the_validator_and_the_gate_alike(tmp_path, monkeypatch):
    """The enum of Signed In.method, edited in the plan, moves the validator's verdict and the gate's
    together; and the enum's one SQL definition (Validator._enum_sql), changed in code, changes both:
    there is no second copy of the rule in the gates."""
    from tracking_plan.validate import Validator

    plan_dir = tmp_path / "plan"
    shutil.copytree(default_plan_dir(), plan_dir)
    f = plan_dir / "events" / "signed_in.yaml"
    doc = yaml.safe_load(f.read_text())
    assert "carrier pigeon" not in doc["properties"]["method"]["enum"]
    doc["properties"]["method"]["enum"].append("carrier pigeon")
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    edited, original = load_plan(plan_dir), load_plan()
    landing = _enum_landing(tmp_path, plan_dir)
    line = str(landing / f"date={DAY}" / "a.jsonl")

    # the edited plan: the validator accepts the line, it is loaded, and the gate passes on it
    (rep,) = validate_files(edited, [line])
    assert (rep.total, rep.invalid) == (2, 0)
    con = connect(tmp_path / "w.duckdb")
    ingest_partitions(con, edited, landing, [DAY])
    assert _method_enum_failures(con, edited) == 0
    # the original plan: the validator rejects the same line and the gate fails on the stored row
    (rep,) = validate_files(original, [line])
    assert rep.invalid == 1 and {e["rule"] for e in rep.errors} == {"enum"}
    assert _method_enum_failures(con, original) == 1

    # change the rule's one definition: both follow
    real = Validator._enum_sql

    def widened(x, t, v, members):
        return real(x, t, v, [*members, "carrier pigeon"])

    monkeypatch.setattr(Validator, "_enum_sql", staticmethod(widened))
    (rep,) = validate_files(original, [line])
    assert rep.invalid == 0
    assert _method_enum_failures(con, original) == 0
    monkeypatch.setattr(Validator, "_enum_sql", staticmethod(lambda x, t, v, members: "false"))
    (rep,) = validate_files(original, [line])
    assert rep.invalid == 2  # no value is in any enum now: both lines rejected...
    assert _method_enum_failures(con, original) == 2  # ...and both stored rows fail the gate
    con.close()


# JSON Schema keyword -> the gate kind that covers it (lengths and bounds are `range`, formats `regex`)
ORACLE_KIND = {
    "enum": "enum",
    "minimum": "range",
    "maximum": "range",
    "exclusiveMinimum": "range",
    "exclusiveMaximum": "range",
    "minLength": "range",
    "maxLength": "range",
    "minItems": "range",
    "maxItems": "range",
    "pattern": "regex",
    "format": "regex",
}


def _oracle_failures(msg: dict, ev: str, key: str, schema) -> set[tuple[str, str]]:
    """(value, gate kind) pairs the jsonschema oracle finds broken in the payload, named as the gates
    name their rules ("Order Completed.products[*].price"). An enum is judged, as trackplan judges
    it, only on a value of its type (a value of the wrong type breaks `type`, which no gate carries)."""

    def label(path) -> str:
        return ev + "".join("[*]" if isinstance(p, int) else "." + p for p in path)

    errors = [e for e in schema.iter_errors(msg) if list(e.absolute_path)[:1] == [key]]
    wrong_type = {tuple(e.absolute_path) for e in errors if e.validator == "type"}
    out = set()
    for e in errors:
        path = list(e.absolute_path)[1:]
        if e.validator == "required":
            out |= {(label([*path, n]), "not_null") for n in e.validator_value if n not in e.instance}
        elif e.validator == "type" and e.instance is None:
            out.add((label(path), "not_null"))
        elif e.validator in ORACLE_KIND and not (e.validator == "enum" and tuple(e.absolute_path) in wrong_type):
            out.add((label(path), ORACLE_KIND[e.validator]))
    return out


@pytest.mark.parametrize("seed", [5, 6])
def test_each_gate_rule_agrees_with_jsonschema_row_by_row(seed):
    """An independent oracle for the gates themselves: every generated message of the differential
    plan (accepted or not, as the validator stores its payload) is checked by every gate rule of its
    event, row by row, and by jsonschema (Draft 2020-12 with formats) on the compiled schema; the
    broken (value, kind) pairs must be the same. The one documented difference: RE2's `$` does not
    match before a final newline as Python's does, so a pattern or format value ending in a newline
    breaks a regex gate (and the validator) only."""
    import duckdb
    import pyarrow as pa
    from jsonschema import Draft202012Validator
    from test_validate_differential import FORMAT_CHECKER, PLAN_DIR, _generate, _strict_loads

    from quality_checks.rules import GATED, failing_rows_sql, plan_rules
    from tracking_plan.compile import compile_plan
    from tracking_plan.validate import Validator

    plan = load_plan(PLAN_DIR)
    schemas = {s["title"]: Draft202012Validator(s, format_checker=FORMAT_CHECKER) for s in compile_plan(plan).values()}
    by_type = {e.type: e.name for e in plan.events.values() if e.type != "track"}
    lines, tags = _generate(seed)
    con = duckdb.connect()
    n = len(lines)
    con.register(
        "inp",
        pa.table(
            {
                "source_file": ["f"] * n,
                "line_no": list(range(1, n + 1)),
                "raw": lines,
                "pre_reason": pa.nulls(n, pa.string()),
            }
        ),
    )
    Validator(plan).run(con, "inp", "out")
    suffixes = sorted({s for _, s in GATED.values()} | {"not null"}, key=len, reverse=True)
    gate: dict[int, set] = {}
    rules = [r for r in plan_rules(plan) if r.props]
    for r in rules:
        suffix = next(s for s in suffixes if r.name.endswith(" " + s))
        for (line_no,) in con.execute(failing_rows_sql("out", r, "line_no")).fetchall():
            gate.setdefault(line_no, set()).add((r.name[: -len(suffix) - 1], r.kind))

    compared, broken, kinds, unexplained = 0, 0, set(), []
    for i, line in enumerate(lines):
        try:
            msg = _strict_loads(line.removeprefix("\ufeff"))
        except ValueError:
            continue  # not RFC 8259 JSON (NaN, 1e400, a duplicate key): the validator's json rule alone
        t = msg.get("type") if isinstance(msg, dict) else None
        ev = msg.get("event") if t == "track" else by_type.get(t) if isinstance(t, str) else None
        key = "traits" if t in ("identify", "group") else "properties"
        if not isinstance(ev, str) or ev not in schemas or not isinstance(msg.get(key), dict):
            continue  # no plan event, or no payload object: nothing of it is stored for the gates
        compared += 1
        theirs, ours = _oracle_failures(msg, ev, key, schemas[ev]), gate.get(i + 1, set())
        broken += bool(theirs)
        kinds |= {k for _, k in theirs}
        extra = ours - theirs
        if "python_dollar" in tags[i]:
            extra = {(v, k) for v, k in extra if k != "regex"}
        if extra or theirs - ours:
            unexplained.append((i + 1, sorted(extra), sorted(theirs - ours), line[:200]))
    assert not unexplained, f"{len(unexplained)} rows where a gate and jsonschema disagree, e.g.:\n" + "\n".join(
        map(str, unexplained[:8])
    )
    # the comparison has teeth: most messages compared, many broken, every kind
    assert compared > 0.8 * n and broken > 0.2 * compared
    assert kinds == {"not_null", "enum", "range", "regex"}


def test_the_property_gates_count_again_only_what_the_ingest_did_not_check(tmp_path, monkeypatch):
    """The days the ingest has just loaded pass the plan's property rules (its validator ran the same
    Checks on every row it loaded), so the gates, counted per partition, take their counts as kept
    and read none of their payloads; they count a day again once its rows change (another writer, a
    `forget`), every day under an edited rule, and every day on `--full-refresh`: each time the
    counts a count of every row gives."""
    import quality_checks.partition_state as ps

    plan = load_plan()
    d1 = (dt.date.fromisoformat(DAY) + T(days=1)).isoformat()
    landing = tmp_path / "landing"
    write_lines(landing, DAY, "a.jsonl", [ev(mid="a1"), ev(mid="a2", props={"method": "sso"})])
    write_lines(landing, d1, "b.jsonl", [ev(mid="b1", at=BASE + T(days=1))])
    con = connect(tmp_path / "w.duckdb")
    ingest_partitions(con, plan, landing, [DAY, d1])
    counted = []
    real = ps.stale
    monkeypatch.setattr(
        ps, "stale", lambda c, layer, *a, **k: counted.append((layer, real(c, layer, *a, **k))) or counted[-1][1]
    )

    def by_partition(plan=plan, **kw) -> list:
        counted.clear()
        got = [
            (o.check, o.metadata["failing_count"]) for o in gates(con, plan, "ingest.events", by_partition=True, **kw)
        ]
        want = [(o.check, o.metadata["failing_count"]) for o in gates(con, plan, "ingest.events")]
        assert got == want
        return sorted(str(p) for layer, todo in counted if layer == "gates ingest.events properties" for p in todo)

    kept = con.execute(
        "select partition_date::varchar, counts from quality.partition_state "
        "where layer = 'gates ingest.events properties' order by 1"
    ).fetchall()
    assert [d for d, _ in kept] == [DAY, d1] and all(c and not any(c) for _, c in kept)
    assert by_partition() == []  # the ingest's days: nothing to count
    # another writer's row, which breaks a rule: its day is counted again, and fails
    con.execute(
        "insert into ingest.events by name select * replace ('x1' as message_id, "
        """'{"method": "carrier pigeon"}'::json as properties, now()::timestamp as loaded_at) """
        "from ingest.events where message_id = 'b1'"
    )
    assert by_partition() == [d1]
    assert dict(gates_failing(con, plan))["enum"] == 1
    assert by_partition() == []  # counted: kept
    # a rule edited (the enum of Signed In.method without 'sso'): every day is counted again
    plan_dir = tmp_path / "plan"
    shutil.copytree(default_plan_dir(), plan_dir)
    f = plan_dir / "events" / "signed_in.yaml"
    doc = yaml.safe_load(f.read_text())
    doc["properties"]["method"]["enum"].remove("sso")
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    edited = load_plan(plan_dir)
    assert by_partition(edited) == [DAY, d1]
    assert dict(gates_failing(con, edited))["enum"] == 2
    assert by_partition(plan) == [DAY, d1]  # (the kept counts are of the edited rule now)
    assert by_partition(plan, full_refresh=True) == [DAY, d1]
    con.close()


def gates_failing(con, plan) -> list[tuple[str, int]]:
    return [(o.check, o.metadata["failing_count"]) for o in gates(con, plan, "ingest.events", by_partition=True)]


def test_an_identifier_hashed_on_every_call_is_no_gate_rule_even_when_not_marked_pii(tmp_path):
    """identity.yaml's e-mail (`pii: true`) is hashed in every identify call's traits, whether or not
    the plan's `email` property says `pii: true`: its stored value is a hash, which its format rule
    would fail. So the gates carry no rule on it, and a valid identify passes them, counted over
    every row or kept from the ingest."""
    plan_dir = tmp_path / "plan"
    shutil.copytree(default_plan_dir(), plan_dir)
    f = next(p for p in (plan_dir / "properties").glob("*.yaml") if "\nemail:" in "\n" + p.read_text())
    doc = yaml.safe_load(f.read_text())
    doc["email"].pop("pii")
    f.write_text(yaml.safe_dump(doc, sort_keys=False))
    plan = load_plan(plan_dir)
    assert not plan.events["User Identified"].properties["email"].pii
    landing = tmp_path / "landing"
    call = ev("identify", None, user="u1", anon="a1", traits={"email": "pat@example.com", "plan": "free"})
    write_lines(landing, DAY, "a.jsonl", [call])
    con = connect(tmp_path / "w.duckdb")
    (res,) = ingest_partitions(con, plan, landing, [DAY])
    assert res.loaded == 1
    stored = con.execute("select traits ->> '$.email' from ingest.events").fetchall()
    assert stored == [(keyed_hash("pat@example.com"),)]
    failed = [(o.check, o.metadata["failed_rules"]) for o in gates(con, plan, "ingest.events") if not o.passed]
    assert failed == []
    assert gates_failing(con, plan) == [(o.check, 0) for o in gates(con, plan, "ingest.events")]
    con.close()
