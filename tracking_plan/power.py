"""Sample size and power of a two-sided test of two proportions, in closed form (standard library only).

The one implementation: `trackplan lint` sizes experiments with it, and `models.stats.sample_size` /
`achieved_power` use it for rates. Same conventions as statsmodels' `proportion_effectsize` +
`NormalIndPower` (Cohen's arcsine h, normal approximation, both tails of the two-sided test), which
tests/test_stats.py checks it against; importing statsmodels for one formula cost `lint` 2-7 s.
"""

from __future__ import annotations

import math
from statistics import NormalDist

_N = NormalDist()


def proportion_effectsize(p1: float, p2: float) -> float:
    """Cohen's h: 2 asin(sqrt p1) - 2 asin(sqrt p2)."""
    return 2 * math.asin(math.sqrt(p1)) - 2 * math.asin(math.sqrt(p2))


def normal_power(effect_size: float, nobs1: float, alpha: float = 0.05, ratio: float = 1.0) -> float:
    """Power of the two-sided z test with `nobs1` units in the first arm and `ratio * nobs1` in the second."""
    crit = _N.inv_cdf(1 - alpha / 2)
    d = abs(effect_size) * math.sqrt(1 / (1 / nobs1 + 1 / (nobs1 * ratio)))
    return (1 - _N.cdf(crit - d)) + _N.cdf(-crit - d)


def normal_sample_size(effect_size: float, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0) -> float:
    """Units in the first arm (not rounded) for `power`: the one-tail closed form, then bisection with
    both tails (the far tail moves it by far less than a unit, but the answer is the exact root)."""
    h = abs(effect_size)
    if h == 0:
        raise ValueError("effect size 0: no sample size detects it")
    n = ((_N.inv_cdf(1 - alpha / 2) + _N.inv_cdf(power)) / h) ** 2 * (1 + 1 / ratio)
    lo, hi = n / 2, n
    for _ in range(200):  # the far tail only adds power: the root is at or below the closed form
        mid = (lo + hi) / 2
        if normal_power(h, mid, alpha, ratio) < power:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-9 * hi:
            break
    return hi
