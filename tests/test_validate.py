"""The one validation engine (tracking_plan/validate.py): every rule on a plan written for the test,
and `trackplan validate` (text/json output, exit codes) on the sample plan."""

import json
from pathlib import Path

import duckdb
import orjson
import pyarrow as pa
import pytest
import yaml
from support.pipeline import BASE, ev, iso
from typer.testing import CliRunner

from tracking_plan.loader import load_plan
from tracking_plan.validate import Validator
from trackplan.cli import app

RULE_EVENT = {
    "name": "Rule Tested",
    "type": "track",
    "consent": "necessary",
    "properties": {
        "req_str": {"type": "string", "required": True},
        "kind": {"type": "string", "enum": ["a", "b"]},
        "code": {"type": "string", "pattern": "^x[0-9]+$"},
        "mail": {"type": "string", "format": "email"},
        "n_int": {"type": "integer", "minimum": 1, "maximum": 10},
        "n_num": {"type": "number"},
        "flag": {"type": "boolean", "enum": [True]},
        "when": {"type": "timestamp"},
        "title": {"type": "string", "min_length": 2, "max_length": 5},
        "maybe": {"type": "string", "nullable": True, "required": True},
        "meta": {"type": "object", "properties": {"id": {"type": "integer", "required": True}}},
        "tags": {"type": "array", "items": {"type": "string"}},
        "lines": {
            "type": "array",
            "items": {"type": "object", "properties": {"sku": {"type": "string", "required": True}}},
        },
    },
}


@pytest.fixture(scope="module", params=[False, True], ids=["loading", "verdicts_only"])
def validator(tmp_path_factory, request) -> Validator:
    """Every rule test runs on both compiled variants: the one ingestion loads with and the one
    `trackplan validate` runs (no verbatim line, no context)."""
    root = tmp_path_factory.mktemp("plan")
    (root / "events").mkdir()
    (root / "plan.yaml").write_text(yaml.safe_dump({"name": "Rules", "version": "1.0.0"}))
    (root / "events" / "rule_tested.yaml").write_text(yaml.safe_dump(RULE_EVENT, sort_keys=False))
    (root / "events" / "old_thing_done.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "Old Thing Done",
                "type": "track",
                "status": "deprecated",
                "replaced_by": "Rule Tested",
                "properties": {},
            }
        )
    )
    (root / "events" / "strict_thing_done.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "Strict Thing Done",
                "type": "track",
                "unexpected_properties": "reject",
                "properties": {"a": {"type": "string"}},
            }
        )
    )
    return Validator(load_plan(root), verdicts_only=request.param)


def _check(validator: Validator, *messages) -> list[tuple[list[str], list[str], list[str]]]:
    """(rules, paths, warning rules) per message, in order."""
    raws = [m if isinstance(m, str) else orjson.dumps(m).decode() for m in messages]
    con = duckdb.connect()
    con.register(
        "inp",
        pa.table(
            {
                "source_file": ["t.jsonl"] * len(raws),
                "line_no": list(range(1, len(raws) + 1)),
                "raw": raws,
                "pre_reason": pa.nulls(len(raws), pa.string()),
            }
        ),
    )
    validator.run(con, "inp", "out")
    rows = con.execute("select reasons, warnings from out order by line_no").fetchall()
    return [
        (sorted(r["rule"] for r in rs), sorted(r["path"] for r in rs), sorted(w["rule"] for w in ws)) for rs, ws in rows
    ]


def _rule(**props) -> dict:
    return ev(event="Rule Tested", props={"req_str": "ok", "maybe": None, **props})


@pytest.mark.parametrize(
    "props, rule, path",
    [
        ({"req_str": None}, "type", "$.properties.req_str"),  # null is a value: allowed only where nullable
        ({"kind": "c"}, "enum", "$.properties.kind"),
        ({"code": "y1"}, "pattern", "$.properties.code"),
        ({"mail": "not-an-email"}, "format", "$.properties.mail"),
        ({"n_int": 0}, "minimum", "$.properties.n_int"),
        ({"n_int": 11}, "maximum", "$.properties.n_int"),
        ({"n_int": 2.5}, "type", "$.properties.n_int"),
        ({"n_int": "3"}, "type", "$.properties.n_int"),
        ({"n_num": "3.5"}, "type", "$.properties.n_num"),
        ({"flag": False}, "enum", "$.properties.flag"),
        ({"flag": "true"}, "type", "$.properties.flag"),
        ({"when": "yesterday"}, "format", "$.properties.when"),
        ({"title": "a"}, "min_length", "$.properties.title"),
        ({"title": "abcdef"}, "max_length", "$.properties.title"),
        ({"meta": {"id": "x"}}, "type", "$.properties.meta.id"),
        ({"meta": {}}, "required", "$.properties.meta.id"),
        ({"meta": [1]}, "type", "$.properties.meta"),
        ({"tags": ["a", 1]}, "type", "$.properties.tags[*]"),
        ({"lines": [{"sku": "a"}, {"qty": 1}]}, "required", "$.properties.lines[*].sku"),
    ],
)
def test_each_property_rule(validator, props, rule, path):
    [(rules, paths, _)] = _check(validator, _rule(**props))
    assert (rules, paths) == ([rule], [path])


def test_a_valid_event_passes_every_rule(validator):
    good = _rule(
        kind="a",
        code="x12",
        mail="a@b.co",
        n_int=3.0,
        n_num=2,
        flag=True,
        when=iso(BASE),
        title="abc",
        meta={"id": 1},
        tags=["a"],
        lines=[{"sku": "s"}],
    )
    assert _check(validator, good) == [([], [], [])]


def test_required_nullable_property_may_be_null_not_missing(validator):
    missing = ev(event="Rule Tested", props={"req_str": "ok"})
    assert _check(validator, missing)[0][:2] == (["required"], ["$.properties.maybe"])


def test_every_error_of_an_event_is_reported(validator):
    [(rules, _, _)] = _check(validator, _rule(kind="c", n_int=0, title="a"))
    assert rules == ["enum", "min_length", "minimum"]


@pytest.mark.parametrize(
    "message, rule",
    [
        (ev(event="Nope Happened"), "unknown_event"),
        (ev(type="track", event=None), "envelope"),  # and unknown_event: no name is in the plan
        (ev(type="teleport"), "envelope"),
        ({k: v for k, v in _rule().items() if k != "type"}, "envelope"),
        (_rule() | {"messageId": ""}, "envelope"),
        (_rule() | {"messageId": "undefined"}, "envelope"),
        (_rule(anon=None) | {"anonymousId": "null"}, "identity"),
        (_rule() | {"anonymousId": "", "userId": "  "}, "identity"),
        (ev(type="alias", anon=None, user="u1"), "identity"),  # alias without previousId
        (_rule() | {"timestamp": "3 o'clock"}, "timestamp"),
        (_rule() | {"timestamp": iso(BASE.replace(year=2031)), "receivedAt": iso(BASE)}, "timestamp_future"),
        (_rule() | {"timestamp": iso(BASE.replace(year=2020)), "receivedAt": iso(BASE)}, "timestamp_past"),
        ("{not json", "json"),
        ('"just a string"', "json"),
    ],
)
def test_envelope_rules(validator, message, rule):
    [(rules, _, _)] = _check(validator, message)
    assert rules == [rule] or (
        rule == "envelope" and rules == ["envelope", "unknown_event"] and not message.get("event")
    )


def test_unexpected_properties_and_deprecation(validator):
    warn, reject, old = _check(
        validator, _rule(extra=1), ev(event="Strict Thing Done", props={"b": 1}), ev(event="Old Thing Done", props={})
    )
    assert warn == ([], [], ["unexpected_property"])  # the plan default is warn
    assert reject[0] == ["unexpected_property"]
    assert old == ([], [], ["deprecated"])


def test_pre_reason_from_the_reader_is_kept(validator):
    con = duckdb.connect()
    con.register(
        "inp",
        pa.table({"source_file": ["t.jsonl"], "line_no": [1], "raw": ["{}"], "pre_reason": ["encoding: not UTF-8"]}),
    )
    validator.run(con, "inp", "out")
    assert con.execute("select reasons[1].rule, valid from out").fetchall() == [("encoding", False)]


def test_relation_and_table_names_are_checked(validator):
    with pytest.raises(ValueError):
        validator.sql("x; drop table y")
    with pytest.raises(ValueError):
        validator.run(duckdb.connect(), "inp", "out; drop table y")


# -- the CLI on the sample plan --------------------------------------------------------------------


def _file(tmp_path: Path, lines: list) -> Path:
    p = tmp_path / "events.jsonl"
    p.write_bytes(b"".join((orjson.dumps(x) if isinstance(x, dict) else x.encode()) + b"\n" for x in lines))
    return p


def test_cli_valid_file_exits_zero(tmp_path):
    f = _file(tmp_path, [ev(), ev(type="page")])
    res = CliRunner().invoke(app, ["validate", str(f)])
    assert res.exit_code == 0, res.output
    assert "2 events: 2 valid, 0 invalid" in res.output


def test_cli_text_lists_each_invalid_event(tmp_path):
    f = _file(tmp_path, [ev(), ev(mid="bad-1", event="Signed In", props={"method": "fax"}), "{oops"])
    res = CliRunner().invoke(app, ["validate", str(f)])
    assert res.exit_code == 1
    text = res.output.replace("\n", "")  # rich wraps long lines at the runner's 80 columns
    assert f"{f}:2: enum $.properties.method" in text and "messageId bad-1" in text
    assert f"{f}:3: json $" in text
    assert "3 events: 1 valid, 2 invalid" in res.output


def test_cli_json_output(tmp_path):
    f = _file(tmp_path, [ev(), ev(mid="bad-1", props={"method": "fax"}), ev(mid="bad-2", event="Made Up")])
    res = CliRunner().invoke(app, ["validate", str(f), "--format", "json"])
    assert res.exit_code == 1
    body = json.loads(res.stdout)
    assert (body["total"], body["valid"], body["invalid"]) == (3, 1, 2)
    assert [(e["line"], e["message_id"], e["rule"], e["path"]) for e in body["errors"]] == [
        (2, "bad-1", "enum", "$.properties.method"),
        (3, "bad-2", "unknown_event", "$.event"),
    ]


def test_cli_missing_file_exits_two(tmp_path):
    res = CliRunner().invoke(app, ["validate", str(tmp_path / "absent.jsonl")])
    assert res.exit_code == 2


def test_both_variants_agree_line_by_line_on_generated_traffic(tmp_path):
    """The CLI's variant and the loading variant give every line of generated traffic (with 5 %
    tracking bugs of every kind) the same verdict, reasons and warnings."""
    from tracking_plan.reader import read_files
    from trackplan.demo.generate import generate

    generate(tmp_path, days=10, users=200, seed=3, bug_rate=0.05)
    files = sorted(str(f) for f in tmp_path.glob("date=*/*.jsonl*"))
    plan = load_plan()
    con = duckdb.connect()
    out = {}
    # the CLI reads lines with their terminators (strip=False); loading strips them
    for slim in (False, True):
        con.register("inp", pa.concat_tables(list(read_files(files, strip=not slim))))
        Validator(plan, verdicts_only=slim).run(con, "inp", "out")
        out[slim] = con.execute(
            "select source_file, line_no, valid, event_name, type, message_id, "
            "[r.rule || ' ' || r.path || ' ' || r.message for r in reasons], "
            "[w.rule || ' ' || w.path for w in warnings] from out order by 1, 2"
        ).fetchall()
    assert len(out[True]) > 1000 and out[True] == out[False]
    invalid = [r for r in out[True] if not r[2]]
    assert len({rule.split()[0] for r in invalid for rule in r[6]}) >= 4  # several kinds of bug were judged


def test_without_the_line_copied_every_other_column_is_the_same(tmp_path):
    """`run(raw=False)` (what ingestion runs: it reads quarantined lines from its Arrow table) leaves
    the raw column NULL and every other column of every row as `run()` writes it."""
    from tracking_plan.reader import read_files
    from trackplan.demo.generate import generate

    generate(tmp_path, days=4, users=100, seed=5, bug_rate=0.25)
    files = sorted(str(f) for f in tmp_path.glob("date=*/*.jsonl*"))
    con = duckdb.connect()
    con.register("inp", pa.concat_tables(list(read_files(files, strip=False))))
    validator = Validator(load_plan())
    validator.run(con, "inp", "with_raw")
    validator.run(con, "inp", "without_raw", raw=False)
    cols = [c for c, *_ in con.execute("select * from with_raw limit 0").description if c != "raw"]
    assert cols == [c for c, *_ in con.execute("select * from without_raw limit 0").description if c != "raw"]
    sel = ", ".join(f'"{c}"::varchar' for c in cols)
    a = con.execute(f"select {sel} from with_raw order by source_file, line_no").fetchall()
    b = con.execute(f"select {sel} from without_raw order by source_file, line_no").fetchall()
    # (4 days of 100 users: 188-354 lines and 14-46 of them invalid over seeds 1-12 at a bug rate of
    # 0.25; at 0.05, 1-8 were, and seed shift 330000 drew none)
    assert len(a) > 50 and {r[cols.index("valid")] for r in a} == {"true", "false"}
    assert a == b
    assert con.execute("select count(*) from without_raw where raw is not null").fetchall() == [(0,)]
    # the lines are still there to read, by (source_file, line_no), for the rows that were rejected
    rejected = con.execute(
        "select count(*), count(i.raw) from without_raw o join inp i using (source_file, line_no) where not o.valid"
    ).fetchall()[0]
    assert rejected[0] > 0 and rejected[0] == rejected[1]


# -- issue 14: one meaning at every depth (the differential test compares verdicts; these pin the
# rule and path each case reports) ---------------------------------------------------------------

DIFF_PLAN = Path(__file__).parent / "fixtures" / "plans" / "differential"


def _order(**props) -> dict:
    base = {"order_id": "o_1", "revenue": 1, "must_null": None}
    return ev(event="Order Completed", props=base | props)


@pytest.fixture(scope="module")
def deep() -> Validator:
    return Validator(load_plan(DIFF_PLAN), verdicts_only=True)


@pytest.mark.parametrize(
    "message, rule, path",
    [
        (_order(tags=["red", "zz"]), "enum", "$.properties.tags[*]"),
        (_order(tags=[]), "min_length", "$.properties.tags"),
        (_order(tags=["red"] * 4), "max_length", "$.properties.tags"),
        (_order(matrix=[[1, "x"]]), "type", "$.properties.matrix[*][*]"),
        (_order(matrix=[[10]]), "maximum", "$.properties.matrix[*][*]"),
        (
            _order(products=[{"product_id": "prd_1", "label": None, "quantity": "42"}]),
            "type",
            "$.properties.products[*].quantity",
        ),
        (_order(products=[{"product_id": "prd_1"}]), "required", "$.properties.products[*].label"),
        (
            _order(products=[{"product_id": "prd_1", "label": None, "surprise": 1}]),
            "unexpected_property",
            "$.properties.products[*]",
        ),
        (
            _order(products=[{"product_id": "prd_1", "label": None, "opts": {"sizes": [1, 4]}}]),
            "enum",
            "$.properties.products[*].opts.sizes[*]",
        ),
        (_order(meta={"source": "web", "x": 1}), "unexpected_property", "$.properties.meta"),
        (_order(note=None, flag=None), "type", "$.properties.flag"),  # null only where nullable
        (_order(qty=9223372036854775808), "maximum", "$.properties.qty"),
        (_order(placed_at="2026-03-02 10:00:00"), "format", "$.properties.placed_at"),
        (_order(placed_at="2026-03-02T24:00:00Z"), "format", "$.properties.placed_at"),
        (_order(stamp="2026-03-02"), "format", "$.properties.stamp"),
        (_order(day="2023-02-29"), "format", "$.properties.day"),
        (_order(ip="01.2.3.4"), "format", "$.properties.ip"),
        (_order(level=4.0), "enum", "$.properties.level"),
        (_order() | {"userId": {"id": 1}}, "identity", "$.userId"),
        (_order() | {"anonymousId": True, "userId": "u"}, "identity", "$.anonymousId"),
        (
            (
                '{"type":"track","event":"Order Completed","messageId":"m","anonymousId":"a","properties":'
                '{"order_id":"o_1","revenue":10,"revenue":-99999,"must_null":null}}'
            ),
            "duplicate_key",
            "$.properties",
        ),
        (
            (
                '{"type":"track","event":"Order Completed","messageId":"m","anonymousId":"a","properties":'
                '{"order_id":"o_1","revenue":NaN,"must_null":null}}'
            ),
            "json",
            "$",
        ),
    ],
)
def test_each_rule_at_every_depth(deep, message, rule, path):
    [(rules, paths, _)] = _check(deep, message)
    assert (rules, paths) == ([rule], [path])


def test_a_number_past_the_double_range_is_no_number(deep):
    line = (
        '{"type":"track","event":"Order Completed","messageId":"m","anonymousId":"a","properties":'
        '{"order_id":"o_1","revenue":1e400,"must_null":null}}'
    )
    [(rules, _, _)] = _check(deep, line)
    assert "type" in rules


@pytest.mark.parametrize(
    "props",
    [
        {
            "qty": 9223372036854775807,
            "level": 1.0,
            "small": 3e0,
            "matrix": [[1.0, 9e0]],
        },  # integral floats are integers
        {"link": "mailto:a@example.com", "placed_at": "2026-03-02t10:00:00z", "stamp": "2024-02-29T23:59:59.5-23:59"},
        {
            "products": [{"product_id": "prd_1", "label": None, "opts": {"sizes": [1.0, 3]}}],
            "meta": {"source": "app", "depth": {"more": 1}},
        },
        {"tags": ["red"], "note": None, "free": {"anything": [1]}},
    ],
)
def test_valid_at_every_depth(deep, props):
    assert _check(deep, _order(**props)) == [([], [], [])]


def test_a_leading_byte_order_mark_is_no_part_of_the_line(deep):
    line = "\ufeff" + orjson.dumps(_order()).decode()
    assert _check(deep, line) == [([], [], [])]


# -- numbers past the double range and repeated keys anywhere in the payload ---------------------------
@pytest.fixture(scope="module", params=[False, True], ids=["loading", "verdicts_only"])
def deep_both(request) -> Validator:
    """The differential plan compiled as ingestion loads with it and as `trackplan validate` runs it."""
    return Validator(load_plan(DIFF_PLAN), verdicts_only=request.param)


_NESTED = '{"type":"track","event":"Order Completed","messageId":"m","anonymousId":"a","properties":{"order_id":"o_1","revenue":1,"must_null":null,"free":FREE}}'


@pytest.mark.parametrize(
    "free, rule, path",
    [
        ('{"n":1e400}', "json", "$.properties"),  # in an object the plan leaves free-form
        ('{"deep":[{"n":-2.5E+309}]}', "json", "$.properties"),
        ('{"n":' + "9" * 320 + "}", "json", "$.properties"),  # an integer too long for a double
        ('{"deep":{"list":[{"k":"x","k":"y"}]}}', "duplicate_key", "$.properties"),
        # the plan's own object says it at its path, once
        ('{"a":1,"a":2}', "duplicate_key", "$.properties.free"),
    ],
)
def test_undescribed_values_are_checked_too(deep_both, free, rule, path):
    """Reported once, at the payload's path, unless a rule of the plan's own objects says it."""
    [(rules, paths, _)] = _check(deep_both, _NESTED.replace("FREE", free))
    assert (rules, paths) == ([rule], [path])


@pytest.mark.parametrize(
    "free",
    [
        '{"s":"1e400","t":"'
        + "9" * 320
        + '","u":"x:{\\"a\\":1,\\"a\\":2}"}',  # inside strings: text, not numbers or keys
        '{"n":1e308,"m":1e-400,"a":{"k":1},"b":{"k":1},"c":[{"k":1},{"k":2}]}',  # large, tiny, and same keys in siblings
    ],
)
def test_strings_small_numbers_and_sibling_keys_pass(deep_both, free):
    assert _check(deep_both, _NESTED.replace("FREE", free)) == [([], [], [])]


def test_cli_finds_them_in_undescribed_properties(tmp_path):
    good = orjson.dumps(ev()).decode()
    lines = [
        good.replace('"properties":{', '"properties":{"extra":{"n":1e400},', 1),
        good.replace('"properties":{', '"properties":{"extra":{"k":1,"k":2},', 1),
    ]
    assert all(x != good for x in lines)
    f = _file(tmp_path, lines)
    res = CliRunner().invoke(app, ["validate", str(f)])
    assert res.exit_code == 1, res.output
    text = res.output.replace("\n", "")
    assert f"{f}:1: json $.properties" in text and f"{f}:2: duplicate_key $.properties" in text
    assert "2 events: 0 valid, 2 invalid" in res.output
