"""`trackplan compile`: schemas valid against the 2020-12 meta-schema, goldens, real events."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from tracking_plan.compile import (
    DIALECT,
    compile_plan,
    event_schema,
    slug,
    write_schemas,
)
from tracking_plan.loader import DEFAULT_PLAN, load_plan

HERE = Path(__file__).resolve().parent
PLANS = HERE / "fixtures" / "plans"
GOLDEN = HERE / "golden"


@pytest.fixture(scope="module")
def v1():
    return load_plan(PLANS / "v1")


@pytest.mark.parametrize("plan_dir", [DEFAULT_PLAN, PLANS / "v1", PLANS / "v2", PLANS / "v3"])
def test_every_schema_is_valid_2020_12(plan_dir):
    plan = load_plan(plan_dir)
    schemas = compile_plan(plan)
    assert len(schemas) == len(plan.events)
    ids = set()
    for key, schema in schemas.items():
        Draft202012Validator.check_schema(schema)
        assert schema["$schema"] == DIALECT
        ev = plan.events[schema["title"]]
        assert schema["$id"] == f"trackplan://{slug(plan.header.name)}/{slug(ev.name)}/{ev.version}"
        assert key == f"{slug(ev.name)}/{ev.version}"
        ids.add(schema["$id"])
    assert len(ids) == len(schemas)


def test_slug():
    assert slug("Order Completed") == "order-completed"
    assert slug("Acme Boards") == "acme-boards"
    assert slug("A/B  Test--Viewed!") == "a-b-test-viewed"


@pytest.mark.parametrize("golden,plan_name", [("compile/v1", "v1"), ("compile/v2", "v2")])
def test_compile_golden(tmp_path, golden, plan_name):
    written = write_schemas(load_plan(PLANS / plan_name), tmp_path)
    got = {p.relative_to(tmp_path).as_posix(): p.read_text(encoding="utf-8") for p in written}
    want_dir = GOLDEN / golden
    want = {p.relative_to(want_dir).as_posix(): p.read_text(encoding="utf-8") for p in want_dir.rglob("*.json")}
    assert sorted(got) == sorted(want), "run tests/golden/regenerate.py and review the diff"
    for rel, text in want.items():
        assert got[rel] == text, f"{golden}/{rel} differs: run tests/golden/regenerate.py and review"


def test_index_lists_every_written_file(tmp_path, v1):
    write_schemas(v1, tmp_path)
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["version"] == "1.0.0"
    assert {e["event"] for e in index["schemas"]} == set(v1.events)
    for entry in index["schemas"]:
        schema = json.loads((tmp_path / entry["path"]).read_text())
        assert schema["$id"] == entry["id"] and schema["title"] == entry["event"]


def _validator(schema):
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


ORDER = {
    "type": "track",
    "event": "Order Completed",
    "messageId": "m-1",
    "userId": "u-1",
    "timestamp": "2026-05-01T10:00:00Z",
    "context": {"library": {"name": "analytics.js"}},
    "properties": {
        "order_id": "o-1",
        "revenue": 49.5,
        "currency": "EUR",
        "discount": 0,
        "products": [{"product_id": "p_1", "quantity": 2, "note": None}],
        "something_else": True,
    },
}


def _break(path: list, value=..., drop: bool = False) -> dict:
    msg = copy.deepcopy(ORDER)
    node = msg
    for k in path[:-1]:
        node = node[k]
    if drop:
        node.pop(path[-1])
    else:
        node[path[-1]] = value
    return msg


def test_valid_order_passes(v1):
    schema = event_schema(v1, v1.events["Order Completed"])
    # unexpected `something_else` is fine: the plan's policy is warn (the validator warns, not JSON Schema)
    assert list(_validator(schema).iter_errors(ORDER)) == []
    anon = _break(["userId"], drop=True) | {"anonymousId": "a-1"}
    assert list(_validator(schema).iter_errors(anon)) == []


@pytest.mark.parametrize(
    "msg,keyword",
    [
        (_break(["userId"], drop=True), "anyOf"),  # Segment: userId or anonymousId
        (_break(["event"], "Order Placed"), "const"),
        (_break(["type"], "identify"), "const"),
        (_break(["messageId"], drop=True), "required"),
        (_break(["properties", "revenue"], -1), "minimum"),
        (_break(["properties", "revenue"], "49.5"), "type"),
        (_break(["properties", "currency"], "JPY"), "enum"),
        (_break(["properties", "currency"], "eur"), "pattern"),  # format: currency -> ISO 4217 shape
        (_break(["properties", "order_id"], ""), "minLength"),
        (_break(["properties", "discount"], drop=True), "required"),
        (_break(["properties", "products"], []), "minItems"),  # min_length on an array
        (_break(["properties", "products", 0, "quantity"], 0), "minimum"),  # nested in array items
        (_break(["properties", "products", 0, "quantity"], 1.5), "type"),  # integer
        (_break(["properties", "products", 0, "product_id"], "x_1"), "pattern"),
        (_break(["properties", "products", 0], {"quantity": 1}), "required"),
        (_break(["properties"], drop=True), "required"),  # the event has required properties
    ],
)
def test_invalid_orders_fail_on_the_right_keyword(v1, msg, keyword):
    schema = event_schema(v1, v1.events["Order Completed"])
    errors = list(_validator(schema).iter_errors(msg))
    assert errors, msg
    assert keyword in {e.validator for e in errors}


def test_identify_traits_rejects_unexpected_and_checks_email(v1):
    schema = event_schema(v1, v1.events["User Identified"])
    assert "event" not in schema["properties"] and "traits" in schema["properties"]
    assert schema["properties"]["traits"]["additionalProperties"] is False  # unexpected_properties: reject
    assert schema["properties"]["traits"]["properties"]["email"]["x-pii"] is True
    ok = {"type": "identify", "messageId": "m", "userId": "u", "traits": {"email": "a@b.example"}}
    assert list(_validator(schema).iter_errors(ok)) == []
    extra = ok | {"traits": {"email": "a@b.example", "shoe_size": 44}}
    assert {e.validator for e in _validator(schema).iter_errors(extra)} == {"additionalProperties"}
    bad_email = ok | {"traits": {"email": "not-an-email"}}
    # our e-mail meaning is pinned by a pattern next to the format (validators read "email" differently)
    assert {e.validator for e in _validator(schema).iter_errors(bad_email)} == {"format", "pattern"}


def test_nullable_and_timestamp_mapping(v1):
    items = event_schema(v1, v1.events["Order Completed"])["properties"]["properties"]["properties"]["products"][
        "items"
    ]
    assert items["properties"]["note"]["type"] == ["string", "null"]
    plan = load_plan(DEFAULT_PLAN)
    created = event_schema(plan, plan.events["User Identified"])["properties"]["traits"]["properties"]["created_at"]
    assert created == {"description": "When the account was created.", "type": "string", "format": "date-time"}


def test_other_call_types(v1):
    page = event_schema(v1, v1.events["Cart Viewed"].model_copy(update={"type": "page"}))
    # name and category stay open, as the rest of the envelope: validate does not type them either
    assert page["properties"]["type"] == {"const": "page"} and "name" not in page["properties"]
    group = event_schema(v1, v1.events["Cart Viewed"].model_copy(update={"type": "group", "properties": {}}))
    assert "groupId" in group["required"] and "traits" in group["properties"]
    alias = event_schema(v1, v1.events["Cart Viewed"].model_copy(update={"type": "alias", "properties": {}}))
    assert {"previousId", "userId"} <= set(alias["required"])
    for schema in (page, group, alias):
        Draft202012Validator.check_schema(schema)


def test_deprecated_event_is_marked():
    plan = load_plan(PLANS / "v2")
    assert event_schema(plan, plan.events["Cart Viewed"])["deprecated"] is True
    assert "deprecated" not in event_schema(plan, plan.events["Signed Up"])
