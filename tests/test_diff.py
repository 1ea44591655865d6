"""`trackplan diff`: v1 -> v2 -> v3 fixtures cover every major/minor/patch rule; goldens; git refs."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tracking_plan.diff import (
    declared_bump,
    diff_plans,
    exit_code,
    load_base,
    render_diff,
)
from tracking_plan.loader import PlanError, load_plan
from tracking_plan.model import Property

HERE = Path(__file__).resolve().parent
PLANS = HERE / "fixtures" / "plans"
GOLDEN = HERE / "golden"


@pytest.fixture(scope="module")
def v1():
    return load_plan(PLANS / "v1")


@pytest.fixture(scope="module")
def v2():
    return load_plan(PLANS / "v2")


@pytest.fixture(scope="module")
def v3():
    return load_plan(PLANS / "v3")


# v1 -> v2: one fixture change per rule of issue 2 item 4 (and the metrics rules)
EXPECTED_V1_V2 = {
    # major
    ("major", "event_removed", "Banner Clicked"),
    ("major", "event_renamed", "Coupon Entered"),
    ("major", "required_property_removed", "Product Viewed"),
    ("major", "required_property_added", "Order Completed"),
    ("major", "made_required", "Signed Up"),
    ("major", "type_changed", "Product Viewed"),
    ("major", "enum_value_removed", "Order Completed"),
    ("major", "bound_tightened", "Order Completed"),  # max_length 64 -> 32 and nested items maximum
    ("major", "pattern_tightened", "Order Completed"),  # nested: products.items.product_id
    ("major", "additional_properties_closed", "Product Viewed"),
    ("major", "kpi_removed", None),
    ("major", "funnel_removed", None),
    # minor
    ("minor", "event_added", "Checkout Started"),
    ("minor", "property_added", "Signed Up"),
    ("minor", "enum_value_added", "Signed Up"),
    ("minor", "bound_loosened", "Product Viewed"),
    ("minor", "made_optional", "Order Completed"),
    ("minor", "event_deprecated", "Cart Viewed"),
    ("minor", "pii_changed", "Signed Up"),
    ("minor", "consent_changed", "Cart Viewed"),
    ("minor", "kpi_changed", None),
    # patch
    ("patch", "description_changed", "Order Completed"),
    ("patch", "owner_changed", "Product Viewed"),
    ("patch", "examples_changed", "Signed Up"),
    ("patch", "properties_reordered", "Cart Viewed"),
}


def test_v1_v2_classifies_every_rule(v1, v2):
    result = diff_plans(v1, v2)
    got = {(c.kind, c.code, c.event) for c in result.changes}
    assert got == EXPECTED_V1_V2
    paths = {c.path for c in result.changes if c.code in ("bound_tightened", "pattern_tightened")}
    # nested array items are diffed recursively
    assert "properties.products.items.properties.quantity.maximum" in paths
    assert "properties.products.items.properties.product_id.pattern" in paths
    assert result.required_bump == "major" and result.declared_bump == "major"
    assert result.ok and exit_code(result) == 0


def test_v2_v3_declared_patch_but_minor_required_fails(v2, v3):
    result = diff_plans(v2, v3)
    assert {(c.kind, c.code) for c in result.changes} == {
        ("minor", "property_added"),
        ("minor", "additional_properties_opened"),
        ("patch", "description_changed"),
    }
    assert (result.required_bump, result.declared_bump, result.ok) == ("minor", "patch", False)
    assert exit_code(result) == 1
    # both events changed without a new SchemaVer of their own
    assert [m.split(":")[0] for m in result.event_versions] == ["Checkout Started", "Product Viewed"]


def test_v1_v3_major_declared_covers_everything(v1, v3):
    result = diff_plans(v1, v3)
    assert (result.required_bump, result.declared_bump, result.ok) == ("major", "major", True)


def test_same_plan_has_no_changes(v1):
    result = diff_plans(v1, v1)
    assert result.changes == [] and result.required_bump == "none" and result.ok


@pytest.mark.parametrize(
    "base,head,bump",
    [
        ("1.0.0", "1.0.0", "none"),
        ("1.0.0", "1.0.1", "patch"),
        ("1.0.9", "1.1.0", "minor"),
        ("1.4.2", "2.0.0", "major"),
        ("2.0.0", "1.9.9", "invalid"),
        ("1.0", "1.0.1", "invalid"),
    ],
)
def test_declared_bump(base, head, bump):
    assert declared_bump(base, head) == bump


def _with_prop(plan, event, name, prop: Property | None, **event_update):
    ev = plan.events[event]
    props = dict(ev.properties)
    if prop is None:
        props.pop(name)
    else:
        props[name] = prop
    new_ev = ev.model_copy(update={"properties": props, **event_update})
    return plan.model_copy(update={"events": {**plan.events, event: new_ev}})


def _one(base, head):
    return [(c.kind, c.code) for c in diff_plans(base, head).changes]


def test_optional_property_removed_is_minor_unless_event_rejects(v1):
    assert _one(v1, _with_prop(v1, "Signed Up", "referrer", None)) == [("minor", "property_removed")]
    # User Identified rejects unexpected properties: old events carrying `name` would now fail
    assert _one(v1, _with_prop(v1, "User Identified", "name", None)) == [("major", "property_removed")]


def test_property_level_rules(v1):
    ref = v1.events["Signed Up"].properties["referrer"]
    cases = [
        (ref.model_copy(update={"nullable": True}), ("minor", "made_nullable")),
        (ref.model_copy(update={"enum": ["a", "b"]}), ("major", "enum_added")),
        (ref.model_copy(update={"pattern": "^https://"}), ("major", "pattern_tightened")),
        (ref.model_copy(update={"format": "uri"}), ("major", "format_tightened")),
        (ref.model_copy(update={"min_length": 3}), ("major", "bound_tightened")),
        (ref.model_copy(update={"description": "Where from."}), ("patch", "description_changed")),
    ]
    for new, expected in cases:
        assert _one(v1, _with_prop(v1, "Signed Up", "referrer", new)) == [expected], expected
        # and the reverse change is the opposite class
        back = _one(_with_prop(v1, "Signed Up", "referrer", new), v1)
        assert len(back) == 1 and (back[0][0] == "patch") == (expected[0] == "patch")
        if expected[0] == "major":
            assert back[0][0] == "minor"
    plan_enum = v1.events["Signed Up"].properties["plan"]
    reordered = plan_enum.model_copy(update={"enum": list(reversed(plan_enum.enum))})
    assert _one(v1, _with_prop(v1, "Signed Up", "plan", reordered)) == [("patch", "enum_reordered")]


def test_nested_object_closed_and_items_type(v1):
    products = v1.events["Order Completed"].properties["products"]
    closed_items = products.items.model_copy(update={"additional_properties": False})
    head = _with_prop(v1, "Order Completed", "products", products.model_copy(update={"items": closed_items}))
    changes = diff_plans(v1, head).changes
    assert [(c.kind, c.code, c.path) for c in changes] == [
        ("major", "additional_properties_closed", "properties.products.items")
    ]
    qty = closed_items.properties["quantity"].model_copy(update={"type": "number"})
    items2 = products.items.model_copy(update={"properties": {**products.items.properties, "quantity": qty}})
    head2 = _with_prop(v1, "Order Completed", "products", products.model_copy(update={"items": items2}))
    assert [(c.code, c.path) for c in diff_plans(v1, head2).changes] == [
        ("type_changed", "properties.products.items.properties.quantity")
    ]


def test_plan_level_rules(v1):
    consent = v1.consent.model_copy(
        update={"categories": {k: v for k, v in v1.consent.categories.items() if k != "marketing"}}
    )
    assert ("major", "consent_category_removed") in _one(v1, v1.model_copy(update={"consent": consent}))
    ident = v1.identity.model_copy(update={"identifiers": v1.identity.identifiers[:2]})
    assert _one(v1, v1.model_copy(update={"identity": ident})) == [("major", "identifier_removed")]
    ev = v1.events["Cart Viewed"].model_copy(update={"type": "page"})
    head = v1.model_copy(update={"events": {**v1.events, "Cart Viewed": ev}})
    assert _one(v1, head) == [("major", "event_type_changed")]


@pytest.mark.parametrize(
    "rel", ["diff/v1_v2.txt", "diff/v1_v2.json", "diff/v1_v2.md", "diff/v2_v3.md", "diff/v2_v3.json"]
)
def test_diff_golden(rel):
    spec = importlib.util.spec_from_file_location("regenerate", GOLDEN / "regenerate.py")
    regen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(regen)
    assert regen.GOLDENS[rel]() == (GOLDEN / rel).read_text(encoding="utf-8"), (
        f"run tests/golden/regenerate.py and review the diff of {rel}"
    )


def test_render_formats(v2, v3):
    result = diff_plans(v2, v3)
    data = json.loads(render_diff(result, "json"))
    assert {"required_bump", "declared_bump", "changes"} <= set(data)
    assert data["required_bump"] == "minor" and len(data["changes"]) == 3
    md = render_diff(result, "markdown")
    assert md.startswith("### ❌") and "| 2.0.0 | 2.0.1 | patch | minor |" in md
    assert "#### Minor (2)" in md and "#### Major" not in md
    with pytest.raises(ValueError):
        render_diff(result, "html")


def _git(repo: Path, *args: str) -> str:
    cmd = [
        "git",
        "-C",
        str(repo),
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "-c",
        "commit.gpgsign=false",
        *args,
    ]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed: load_base(GITREF) cannot be tested")
    repo = tmp_path / "repo"
    plan = repo / "analytics" / "plan"
    shutil.copytree(PLANS / "v1", plan)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "v1")
    _git(repo, "tag", "plan-v1")
    # the working tree moves on to v2, uncommitted, as in a pull request being checked
    shutil.rmtree(plan)
    shutil.copytree(PLANS / "v2", plan)
    return repo


def test_load_base_from_git_ref_equals_directory(repo, v1, v2):
    plan_dir = repo / "analytics" / "plan"
    for ref in ("plan-v1", "HEAD", _git(repo, "rev-parse", "HEAD").strip()):
        base = load_base(ref, plan_dir=plan_dir)
        assert base.root == f"{ref}:analytics/plan"
        assert base.model_dump(exclude={"root"}) == v1.model_dump(exclude={"root"})
        assert base.events["Signed Up"].source_file == f"{ref}:analytics/plan/events/signed_up.yaml"
        assert diff_plans(base, load_plan(plan_dir)).changes == diff_plans(v1, v2).changes


def test_load_base_from_directory(v1):
    assert load_base(PLANS / "v1").events == v1.events


def test_load_base_errors_are_clear(repo, tmp_path):
    with pytest.raises(PlanError) as exc:
        load_base("no-such-ref", plan_dir=repo / "analytics" / "plan")
    assert "no-such-ref" in str(exc.value) and "E001" in str(exc.value)
    outside = tmp_path / "plain"
    shutil.copytree(PLANS / "v1", outside)
    with pytest.raises(PlanError) as exc:
        load_base("main", plan_dir=outside)
    assert "not inside a git repository" in str(exc.value)
    # a ref at which the plan had errors reports them with the loader's codes
    (repo / "analytics" / "plan" / "events" / "bad.yaml").write_text("name: [unclosed\n")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "broken")
    with pytest.raises(PlanError) as exc:
        load_base("HEAD", plan_dir=repo / "analytics" / "plan")
    assert re.search(r"^HEAD:analytics/plan/events/bad\.yaml:\d+: E001 YAML syntax", str(exc.value))
    with pytest.raises(PlanError, match="neither a plan directory nor a git ref"):
        load_base("--output=/tmp/x", plan_dir=repo / "analytics" / "plan")


def test_load_base_plan_at_repo_root(tmp_path, v1):
    if shutil.which("git") is None:
        pytest.skip("git is not installed: load_base(GITREF) cannot be tested")
    repo = tmp_path / "flat"
    shutil.copytree(PLANS / "v1", repo)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "v1")
    base = load_base("HEAD", plan_dir=repo)
    assert base.model_dump(exclude={"root"}) == v1.model_dump(exclude={"root"})
    assert base.events["Signed Up"].source_file == "HEAD:events/signed_up.yaml"


def test_render_appends_replay(v2, v3):
    class Replay:  # the shape `trackplan diff --replay` hands over
        def to_dict(self):
            return {"newly_rejected": 3}

        def render(self, fmt):
            return f"replay ({fmt}): 3 events newly rejected"

    result = diff_plans(v2, v3)
    assert json.loads(render_diff(result, "json", replay=Replay()))["replay"] == {"newly_rejected": 3}
    md = render_diff(result, "markdown", replay=Replay())
    assert md.startswith(render_diff(result, "markdown").rstrip("\n"))
    assert md.rstrip().endswith("replay (markdown): 3 events newly rejected")
