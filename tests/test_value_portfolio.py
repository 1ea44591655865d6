"""Portfolio review: rule-driven recommendations and ranking by expected NPV."""

import pandas as pd
import pytest

from models.value import (
    DEFAULT_RULES,
    portfolio,
    recommend,
    recommend_with_reason,
    validate_rules,
)

ROWS = pd.DataFrame(
    [
        {
            "initiative": "onboarding",
            "npv_mean": 40_000,
            "prob_npv_positive": 0.93,
            "evidence_grade": "A",
            "kpi_on_track": True,
        },
        {
            "initiative": "loyalty",
            "npv_mean": -25_000,
            "prob_npv_positive": 0.05,
            "evidence_grade": "B",
            "kpi_on_track": False,
        },
        {
            "initiative": "chatbot",
            "npv_mean": -2_000,
            "prob_npv_positive": 0.40,
            "evidence_grade": "C",
            "kpi_on_track": False,
        },
        {
            "initiative": "banner",
            "npv_mean": 5_000,
            "prob_npv_positive": 0.90,
            "evidence_grade": "C",
            "kpi_on_track": True,
        },
    ]
)


def test_default_rules_give_each_action():
    got = {r["initiative"]: recommend(r) for r in ROWS.to_dict("records")}
    # banner looks profitable but only on before/after evidence (C): gather more, do not scale.
    assert got == {"onboarding": "scale", "loyalty": "stop", "chatbot": "pivot", "banner": "continue"}


def test_reason_names_the_conditions():
    action, reason = recommend_with_reason(ROWS.iloc[0].to_dict())
    assert action == "scale"
    assert "prob_npv_positive 0.93 >= 0.8" in reason and "evidence A at least B" in reason


def test_missing_figures_never_fire_a_rule():
    assert recommend({"prob_npv_positive": float("nan"), "evidence_grade": "A"}) == "continue"
    assert recommend({"evidence_grade": "A"}) == "continue"


def test_custom_rules_first_match_wins():
    rules = {
        "default": "stop",
        "rules": [
            {"then": "scale", "npv_mean_min": 0},
            {"then": "pivot", "npv_mean_min": -5_000},
        ],
    }
    got = [recommend(r, rules) for r in ROWS.to_dict("records")]
    assert got == ["scale", "stop", "pivot", "scale"]


@pytest.mark.parametrize(
    "bad",
    [
        {"rules": [{"then": "expand", "npv_min": 0}]},  # unknown action
        {"rules": [{"then": "scale", "npv_above": 0}]},  # unknown operator
        {"rules": [{"then": "scale", "evidence_min": "Z"}]},  # unknown grade
        {"rules": [{"then": "scale", "npv_min": "__import__('os')"}]},  # not a number
        {"default": "panic"},
    ],
)
def test_invalid_rules_are_rejected(bad):
    with pytest.raises(ValueError):
        validate_rules(bad)


def test_default_rules_are_valid():
    assert validate_rules(DEFAULT_RULES)["rules"] == DEFAULT_RULES["rules"]


def test_portfolio_ranks_by_expected_npv():
    out = portfolio(ROWS)
    assert out["initiative"].tolist() == ["onboarding", "banner", "chatbot", "loyalty"]
    assert out["rank"].tolist() == [1, 2, 3, 4]
    assert out.set_index("initiative")["recommendation"].to_dict()["loyalty"] == "stop"
    # Without a Monte Carlo mean the point NPV ranks.
    point = portfolio(ROWS.drop(columns="npv_mean").assign(npv=[1, 3, 2, 0]))
    assert point["initiative"].tolist() == ["loyalty", "chatbot", "onboarding", "banner"]
