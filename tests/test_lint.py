"""`trackplan lint`: every rule on fixture plans, the sample plan clean, goldens, sample sizes."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import math
import shutil
from pathlib import Path

import pytest
import yaml

from tracking_plan.lint import (
    RULES,
    event_name_problem,
    exit_code,
    lint,
    near_duplicates,
    render_lint,
    sample_size_per_arm,
)
from tracking_plan.loader import DEFAULT_PLAN, load_plan

HERE = Path(__file__).resolve().parent
PLANS = HERE / "fixtures" / "plans"
GOLDEN = HERE / "golden"
TODAY = dt.date(2026, 6, 1)


def _regen():
    spec = importlib.util.spec_from_file_location("regenerate", GOLDEN / "regenerate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _codes(problems, file_suffix=None):
    return {(Path(p.file).name if file_suffix is None else p.file, p.line, p.code) for p in problems}


def test_sample_plan_has_no_errors():
    problems = lint(DEFAULT_PLAN)
    errors = [str(p) for p in problems if p.severity == "error"]
    assert errors == []
    assert exit_code(problems) == 0
    # the sample experiment's sample size is reported (its KPI target stands in for a baseline)
    assert any(p.code == "L191" for p in problems)


def test_fixture_plans_v1_v2_v3_lint_clean():
    for name in ("v1", "v2", "v3"):
        assert [p for p in lint(PLANS / name, today=TODAY) if p.severity != "info"] == [], name


# (file, line, code) each rule fires at in tests/fixtures/plans/lint_bad
EXPECTED_BAD = {
    ("cart_view.yaml", 1, "L100"),
    ("cart_view.yaml", 1, "L111"),
    ("cart_view.yaml", 3, "L160"),
    ("cart_view.yaml", 5, "L112"),
    ("cart_view.yaml", 10, "L151"),
    ("legacy_clicked.yaml", 5, "L140"),
    ("old_opened.yaml", 4, "L141"),
    ("old_opened.yaml", 5, "L130"),
    ("page_viewed.yaml", 1, "L161"),
    ("page_viewed.yaml", 4, "L142"),
    ("page_viewed.yaml", 10, "L156"),
    ("page_viewed.yaml", 15, "L157"),
    ("signed_up.yaml", 9, "L150"),
    ("signed_up.yaml", 10, "L101"),
    ("signed_up.yaml", 16, "L152"),
    ("signed_up.yaml", 21, "L154"),
    ("signed_up.yaml", 22, "L153"),
    ("signed_up_snake.yaml", 1, "L100"),
    ("signed_up_snake.yaml", 1, "L120"),
    ("signed_up_snake.yaml", 1, "L110"),
    ("signed_up_snake.yaml", 8, "L150"),
    ("signed_up_snake.yaml", 9, "L155"),
    ("signup_completed.yaml", 1, "L120"),
    ("signup_completed.yaml", 6, "L122"),
    ("signup_completed.yaml", 9, "L121"),
    ("identity.yaml", 5, "L171"),
    ("identity.yaml", 7, "L170"),
    ("metrics.yaml", 4, "L130"),
    ("metrics.yaml", 13, "L134"),
    ("metrics.yaml", 17, "L181"),
    ("metrics.yaml", 18, "L180"),
    ("metrics.yaml", 19, "L132"),
    ("metrics.yaml", 20, "L135"),
    ("metrics.yaml", 25, "L182"),
    ("metrics.yaml", 37, "L130"),
    ("metrics.yaml", 39, "L190"),
    ("metrics.yaml", 45, "L192"),
    ("metrics.yaml", 47, "L193"),
    ("metrics.yaml", 47, "L191"),
    ("metrics.yaml", 48, "L131"),
    ("metrics.yaml", 52, "L131"),
    ("metrics.yaml", 56, "L133"),
    ("metrics.yaml", 62, "L130"),
}


def test_every_rule_fires_at_its_line():
    problems = lint(PLANS / "lint_bad", traffic={"Experiment Viewed": 200}, today=TODAY)
    got = _codes(problems)
    assert EXPECTED_BAD <= got, EXPECTED_BAD - got
    assert all(p.code in RULES for p in problems)
    assert exit_code(problems) == 1
    # nothing flagged that the fixture does not break: the extra hits are the Experiment Viewed
    # references (the fixture has no such event) and the near-duplicate pair counted from both sides
    extra = got - EXPECTED_BAD
    assert {c for _, _, c in extra} <= {"L130", "L120"}, extra


def _plan_copy(tmp_path: Path, name: str = "v1") -> Path:
    dst = tmp_path / name
    shutil.copytree(PLANS / name, dst)
    return dst


def _edit(path: Path, fn) -> None:
    data = yaml.safe_load(path.read_text())
    fn(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_every_documented_code_is_produced_somewhere(tmp_path):
    seen = {p.code for p in lint(PLANS / "lint_bad", traffic={"Experiment Viewed": 200}, today=TODAY)}
    for d in (PLANS / "broken").iterdir():
        seen |= {p.code for p in lint(d)}
    # loader codes the fixtures do not cover: built here on a copy of v1
    plan = _plan_copy(tmp_path)
    _edit(plan / "events" / "cart_viewed.yaml", lambda d: d.pop("name"))  # E003
    _edit(plan / "events" / "banner_clicked.yaml", lambda d: d.update(status="retired"))  # E004
    shutil.copy(plan / "events" / "signed_up.yaml", plan / "events" / "signed_up_again.yaml")  # E011
    shutil.copy(plan / "properties" / "common.yaml", plan / "properties" / "common2.yaml")  # E010
    _edit(plan / "events" / "coupon_entered.yaml", lambda d: d["properties"].update(x={"ref": "nope"}))  # E020
    seen |= {p.code for p in lint(plan, today=TODAY)}
    assert set(RULES) - seen == set()


@pytest.mark.parametrize(
    "case,line,code,text",
    [
        ("malformed_yaml", 7, "E001", "YAML syntax"),
        ("unknown_key", 6, "E002", "requried"),
        ("ref_loop", 3, "E021", "plan_a -> plan_b -> plan_a"),
        ("anchor_loop", 3, "E001", "refers to itself"),
        ("non_utf8", 3, "E001", "not UTF-8"),
        ("missing_plan_yaml", 1, "E001", "plan.yaml is missing"),
    ],
)
def test_broken_plans_give_one_clear_error(case, line, code, text):
    problems = lint(PLANS / "broken" / case)
    errors = [p for p in problems if p.severity == "error"]
    assert len(errors) == 1
    (err,) = errors
    assert (err.line, err.code) == (line, code)
    assert text in err.message
    assert "Traceback" not in render_lint(problems)


@pytest.mark.parametrize(
    ("file", "old", "new", "line", "code", "says"),
    [
        (
            "plan.yaml",
            "version: 1.0.0",
            "version: 1.10",
            3,
            "E004",
            "version: YAML reads this value as the number 1.1, not text: quote it",
        ),
        ("plan.yaml", "version: 1.0.0", "version: on", 3, "E004", "version: YAML reads this value as the boolean true"),
        (
            "events/signed_up.yaml",
            "  referrer:\n",
            "  on:\n    type: boolean\n    description: Opted in.\n  referrer:\n",
            13,
            "E004",
            "properties: a key YAML reads as the boolean true, not text: quote it",
        ),
        (
            "events/signed_up.yaml",
            "enum: [free, pro]",
            "enum: [free, yes, 2]",
            12,
            "L150",
            "(YAML reads the boolean true, the number 2, not text: quote them)",
        ),
        (
            "events/signed_up.yaml",
            "enum: [free, pro]",
            "enum: [no, off]",
            12,
            "L151",
            "(YAML reads the boolean false, not text: quote them)",
        ),
    ],
)
def test_unquoted_yaml_words_are_named(tmp_path, file, old, new, line, code, says):
    """A value YAML turned into a number or a boolean where the plan wants text (`version: 1.10`, an
    enum of `yes` and `no`): the error says what YAML read and to quote it, not pydantic's "Input
    should be a valid string"."""
    plan = _plan_copy(tmp_path)
    path = plan / file
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))
    errors = [p for p in lint(plan) if p.severity == "error"]
    assert [(Path(p.file).name, p.line, p.code) for p in errors] == [(Path(file).name, line, code)]
    assert says in errors[0].message
    assert "Input should be" not in errors[0].message


def test_a_reference_to_an_event_whose_file_did_not_load_is_a_note_not_a_second_error(tmp_path):
    """An event file with an error does not load; what refers to its event (a KPI, a funnel step,
    an experiment's metric) is not a reference to a missing event: one error, at the file, and a note
    at each reference naming that file."""
    plan = _plan_copy(tmp_path)
    path = plan / "events" / "signed_up.yaml"
    path.write_text(path.read_text().replace("owner: growth\n", "owner: growth\nbogus: 1\n"))
    problems = lint(plan)
    assert [(Path(p.file).name, p.code) for p in problems if p.severity == "error"] == [("signed_up.yaml", "E002")]
    notes = [p for p in problems if p.code == "L130"]
    assert notes and all(p.severity == "info" and f"whose file {path} did not load" in p.message for p in notes)
    # the same reference to an event no file defines is still an error
    path.unlink()
    assert {p.severity for p in lint(plan) if p.code == "L130"} == {"error"}


@pytest.mark.parametrize(
    "name",
    [
        "Signed Up",
        "Order Completed",
        "Signed In",
        "User Signed Out",
        "Payment Info Entered",
        "Invite Sent",
        "API Key Created",
    ],
)
def test_good_event_names(name):
    assert event_name_problem(name) is None


@pytest.mark.parametrize(
    "name,why",
    [
        ("signed_up", "two words"),
        ("Signup", "two words"),
        ("Cart View", "past-tense"),
        ("order Completed", "capitalized"),
        ("Order  Completed", "two words"),
        ("Checkout Start", "past-tense"),
    ],
)
def test_bad_event_names(name, why):
    assert why in event_name_problem(name)


def test_near_duplicates_from_the_issue_and_synonyms():
    names = [
        "Signed Up",
        "Signup Completed",
        "signed_up",
        "Account Registered",
        "Account Created",
        "Prodcut Viewed",
        "Product Viewed",
        "User Logged In",
        "User Signed In",
    ]
    pairs = {frozenset((a, b)) for a, b, _ in near_duplicates(names)}
    for a, b in [
        ("Signed Up", "Signup Completed"),
        ("Signed Up", "signed_up"),
        ("Signup Completed", "signed_up"),
        ("Account Registered", "Account Created"),
        ("Prodcut Viewed", "Product Viewed"),
        ("User Logged In", "User Signed In"),
    ]:
        assert frozenset((a, b)) in pairs, (a, b)
    assert frozenset(("Signed Up", "Account Created")) not in pairs


def test_no_near_duplicates_among_sample_plan_events():
    names = list(load_plan(DEFAULT_PLAN).events)
    assert len(names) >= 25
    # Task Created / Task Completed, Page Viewed / Screen Viewed etc. are different things
    assert near_duplicates(names) == []


def test_sample_size_reproduces_cohen_table():
    """Cohen (1988), Statistical Power Analysis, Table 6.4.1 (difference of two proportions,
    two-sided a = .05, power .80): n per group 392 for h = .20 and 63 for h = .50."""
    for h, published in ((0.20, 392), (0.50, 63)):
        p1 = 0.5  # phi(0.5) = pi/2, so p2 with arcsine distance h is sin((pi/2 + h) / 2)^2
        p2 = math.sin((math.pi / 2 + h) / 2) ** 2
        n_c, n_t = sample_size_per_arm(p1, p2 / p1 - 1)
        # Cohen rounds to the nearest person, we round up: they may differ by one
        assert published <= n_c <= published + 1
        assert n_t == n_c


def test_sample_size_unequal_allocation():
    n_c, n_t = sample_size_per_arm(0.2, 0.1, ratio=0.25)
    # a 4:1 split needs more in total than 1:1 (same power): the small arm limits precision
    eq_c, eq_t = sample_size_per_arm(0.2, 0.1)
    assert n_t < n_c and n_c + n_t > eq_c + eq_t
    assert n_t == pytest.approx(n_c * 0.25, abs=1)


def _experiment_plan(tmp_path, planned_days=42, allocation=None):
    plan = _plan_copy(tmp_path)

    def add(d):
        x = {"key": "exp", "primary_metric": "conversion", "mde": 0.1, "planned_days": planned_days}
        if allocation:
            x |= {"variants": list(allocation), "allocation": allocation}
        d["experiments"] = [x]

    _edit(plan / "metrics.yaml", add)
    return plan


def test_experiment_horizon_against_traffic(tmp_path):
    plan = _experiment_plan(tmp_path)
    n_c, _ = sample_size_per_arm(0.1, 0.1)  # conversion KPI target 0.1 stands in for the baseline
    no_traffic = [p for p in lint(plan, today=TODAY) if p.code.startswith("L19")]
    assert [(p.code, p.severity) for p in no_traffic] == [("L191", "info")]
    assert f"{n_c:,}" in no_traffic[0].message
    # just enough daily persons to finish in 42 days with a 50/50 split, and half of it
    enough = math.ceil(2 * n_c / 42)
    ok = [p for p in lint(plan, traffic={"Experiment Viewed": enough}, today=TODAY) if p.code.startswith("L19")]
    assert [p.code for p in ok] == ["L191"]
    short = [p for p in lint(plan, traffic={"Experiment Viewed": enough / 2}, today=TODAY) if p.code.startswith("L19")]
    assert [(p.code, p.severity) for p in short] == [("L190", "warning")]
    days = math.ceil(n_c / (enough / 2 * 0.5))
    assert f"{days} days" in short[0].message
    # traffic given by experiment key wins over the exposure event's
    by_key = lint(plan, traffic={"exp": enough, "Experiment Viewed": 1}, today=TODAY)
    assert not any(p.code == "L190" for p in by_key)


def test_experiment_baseline_given(tmp_path):
    plan = _experiment_plan(tmp_path)
    n_c, _ = sample_size_per_arm(0.3, 0.1)
    msg = next(p.message for p in lint(plan, baselines={"conversion": 0.3}, today=TODAY) if p.code == "L191")
    assert f"{n_c:,}" in msg and "given baseline" in msg


def test_experiment_allocation_must_sum_to_one(tmp_path):
    plan = _experiment_plan(tmp_path, allocation={"control": 0.5, "b": 0.6})
    assert any(p.code == "L192" for p in lint(plan, today=TODAY))


def test_sunset_depends_on_today():
    before = lint(PLANS / "lint_bad", today=dt.date(2026, 1, 1))
    assert not any(p.code == "L140" for p in before)
    assert any(p.code == "L140" for p in lint(PLANS / "lint_bad", today=dt.date(2026, 2, 1)))


def test_replaced_by_pair_is_not_a_near_duplicate(tmp_path):
    plan = _plan_copy(tmp_path)
    (plan / "events" / "signup_completed.yaml").write_text(
        "name: Signup Completed\ndescription: Old name.\nowner: growth\nconsent: necessary\n"
        "status: deprecated\nsunset: '2030-01-01'\nreplaced_by: Signed Up\n"
    )
    assert not any(p.code == "L120" for p in lint(plan, today=TODAY))


def test_render_json_and_text_agree():
    problems = lint(PLANS / "lint_bad", traffic={"Experiment Viewed": 200}, today=TODAY)
    data = json.loads(render_lint(problems, "json"))
    assert data["errors"] == sum(p.severity == "error" for p in problems) > 0
    assert data["warnings"] == sum(p.severity == "warning" for p in problems) > 0
    assert len(data["problems"]) == len(problems)
    text = render_lint(problems, "text").splitlines()
    assert len(text) == len(problems) + 1
    first = problems[0]
    assert text[0] == f"{first.file}:{first.line}: {first.code} {first.message} ({first.severity})"
    with pytest.raises(ValueError):
        render_lint(problems, "xml")


@pytest.mark.parametrize("rel", ["lint/lint_bad.txt", "lint/lint_bad.json"])
def test_lint_golden(rel):
    regen = _regen()
    assert regen.GOLDENS[rel]() == (GOLDEN / rel).read_text(encoding="utf-8"), (
        f"run tests/golden/regenerate.py and review the diff of {rel}"
    )


def test_impossible_dates_are_errors_not_crashes(tmp_path):
    plan = _plan_copy(tmp_path)
    _edit(plan / "events" / "cart_viewed.yaml", lambda d: d.update(status="deprecated", sunset="2026-02-30"))
    _edit(plan / "metrics.yaml", lambda d: d["kpis"][0].update(deadline="2030-13-01"))
    bad = [(Path(p.file).name, p.code) for p in lint(plan, today=TODAY) if p.severity == "error"]
    assert bad == [("cart_viewed.yaml", "E004"), ("metrics.yaml", "E004")]
