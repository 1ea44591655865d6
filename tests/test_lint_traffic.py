"""`trackplan lint --warehouse`: the sample-size check reads current traffic from the warehouse."""

from support.marts_sample import sample

from tracking_plan.lint import lint, traffic_from_warehouse
from tracking_plan.loader import DEFAULT_PLAN


def test_experiment_traffic_comes_from_first_exposures():
    path, truth = sample()
    traffic = traffic_from_warehouse(path, DEFAULT_PLAN)
    daily = traffic["onboarding_checklist"]
    # the generator exposes every new account once: daily first exposures over the last 28 days
    assert 0 < daily < truth["population"]["signed_up_in_window"]
    problems = [p for p in lint(DEFAULT_PLAN, traffic=traffic) if p.code in ("L190", "L191")]
    assert len(problems) == 1 and "persons/day" in problems[0].message
    # this sample's traffic is far too small for a 10% relative MDE in 42 days: a warning
    assert problems[0].code == "L190" and problems[0].severity == "warning"
