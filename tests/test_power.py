"""tracking_plan.power (standard library) against statsmodels, the independent oracle it replaces in lint."""

import math

import pytest
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize as sm_effectsize

from tracking_plan.power import normal_power, normal_sample_size, proportion_effectsize


@pytest.mark.parametrize(
    "baseline, mde, ratio, alpha, power",
    [
        (0.10, 0.05, 1.0, 0.05, 0.8),
        (0.35, 0.10, 0.5, 0.05, 0.9),
        (0.02, 0.20, 2.0, 0.01, 0.8),
        (0.50, 0.01, 1.0, 0.10, 0.8),
        (0.90, 0.05, 1.0, 0.05, 0.8),
        (0.40, 1.00, 3.0, 0.05, 0.95),
    ],
)
def test_sample_size_and_power_agree_with_statsmodels(baseline, mde, ratio, alpha, power):
    treated = min(baseline * (1 + mde), 1.0)
    h = proportion_effectsize(treated, baseline)
    assert h == pytest.approx(sm_effectsize(treated, baseline), rel=1e-12)
    want = NormalIndPower().solve_power(effect_size=abs(h), alpha=alpha, power=power, ratio=ratio)
    got = normal_sample_size(h, alpha, power, ratio)
    assert got == pytest.approx(want, rel=1e-6) and math.ceil(got) == math.ceil(want)
    for n in (10, 100, 1234.5):
        assert normal_power(h, n, alpha, ratio) == pytest.approx(
            NormalIndPower().power(abs(h), n, alpha, ratio=ratio), rel=1e-9
        )


def test_no_effect_has_no_sample_size():
    with pytest.raises(ValueError):
        normal_sample_size(0.0)
