"""Initiative finance: monthly cash flows, NPV / IRR / payback, scenarios, tornado and Monte Carlo.

Conventions (the plan states money per month and the discount rate per year):
- a cash-flow vector has ``horizon_months + 1`` entries: index 0 is launch (the one-off cost),
  index m (1..horizon) is the end of month m;
- the plan's ``discount_rate`` is annual; it is converted to the equivalent monthly rate
  ``(1 + r) ** (1 / 12) - 1`` so that twelve monthly discounts equal one annual discount;
- IRR is solved on the monthly flows by numpy-financial and annualized as ``(1 + irr_m) ** 12 - 1``;
- payback is undiscounted and fractional (linear within the month that crosses zero).

Every function here is pure numpy/pandas so the marts, the report and analysts share one code path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace

import numpy as np
import numpy_financial as npf
import pandas as pd

SCENARIO_COLUMNS = [
    "initiative",
    "kind",
    "name",
    "npv",
    "roi",
    "irr",
    "payback_months",
    "prob_npv_positive",
    "parameter",
    "low_value",
    "high_value",
    "npv_low",
    "npv_high",
    "swing",
]

# Used only when the plan declares no range for an assumption: +-20 % is the usual planning band
# for a "we are not sure" estimate. The tornado rows record the values used, so it is visible.
DEFAULT_RELATIVE_RANGE = 0.20
# Two-sided 95 % normal quantile: the effect's low/high in the tornado is its 95 % CI.
Z95 = 1.959963984540054


def monthly_rate(rate_annual: float) -> float:
    """Monthly rate equivalent to an annual rate: ``(1 + r) ** (1/12) - 1``."""
    return (1.0 + rate_annual) ** (1.0 / 12.0) - 1.0


def cash_flows(
    one_off_cost, recurring_cost_per_month, value_per_month, horizon_months: int, start_offset: int = 0
) -> np.ndarray:
    """Monthly net cash flows: ``-one_off`` at month 0, then ``value - recurring`` each month.

    Value starts ``start_offset`` months after launch (a ramp-up delay); recurring costs start at
    month 1. Arguments broadcast: pass arrays of shape (n,) to get an (n, horizon+1) matrix of
    draws (used by :func:`monte_carlo`); scalars give a 1-D vector.
    """
    one_off, recurring, value = np.broadcast_arrays(
        np.asarray(one_off_cost, float), np.asarray(recurring_cost_per_month, float), np.asarray(value_per_month, float)
    )
    months = np.arange(horizon_months + 1)
    has_value = months >= 1 + start_offset
    has_cost = months >= 1
    flows = value[..., None] * has_value - recurring[..., None] * has_cost
    flows[..., 0] -= one_off
    return flows


def discount_factors(rate_annual, horizon_months: int) -> np.ndarray:
    """``1 / (1 + monthly rate) ** t`` for t = 0..horizon; broadcasts over an array of rates."""
    m = monthly_rate(np.asarray(rate_annual, float))
    return (1.0 + m[..., None]) ** -np.arange(horizon_months + 1)


def npv(rate_annual: float, flows) -> float | np.ndarray:
    """Net present value of monthly ``flows`` (t = 0 undiscounted) at an annual rate.

    Same convention as ``numpy_financial.npv`` applied with the monthly rate; accepts a 2-D array of
    draws (one row each) and then returns one NPV per row.
    """
    flows = np.asarray(flows, float)
    result = flows @ discount_factors(rate_annual, flows.shape[-1] - 1).T
    return float(result) if np.ndim(result) == 0 else result


def irr(flows) -> float:
    """Annualized internal rate of return of monthly ``flows``; NaN when undefined.

    Undefined means numpy-financial finds no real root, e.g. flows that never change sign
    (all costs, or all gains).
    """
    flows = np.asarray(flows, float)
    if not (np.any(flows < 0) and np.any(flows > 0)):
        return float("nan")
    monthly = npf.irr(flows)
    if not np.isfinite(monthly):
        return float("nan")
    return float((1.0 + monthly) ** 12 - 1.0)


def irr_array(flows) -> np.ndarray:
    """``irr`` of each row of a 2-D array of monthly flows, the same numbers, at once.

    numpy-financial's ``irr`` is ``np.roots`` of the reversed flows (the eigenvalues of their
    companion matrix), the positive real roots' rates ``1 / root - 1`` and the one closest to zero.
    Here the companion matrices of the rows that share their leading and trailing zeros (all of
    them, usually) are built alike and their eigenvalues computed by one call (LAPACK's geev on each
    matrix, as ``np.roots`` calls it): the initiative scenarios' 2,000 Monte Carlo IRRs 0.16 instead
    of 0.26 CPU-s (one LAPACK call per draw also woke its threads each time). A test holds every
    number equal to ``irr``'s."""
    flows = np.atleast_2d(np.asarray(flows, float))
    monthly = np.full(flows.shape[0], np.nan)
    rev = flows[:, ::-1]  # np.roots' coefficients, highest power first
    nonzero = rev != 0
    defined = (flows < 0).any(axis=1) & (flows > 0).any(axis=1)  # (a sign change: a nonzero row)
    first = np.argmax(nonzero, axis=1)
    last = rev.shape[1] - 1 - np.argmax(nonzero[:, ::-1], axis=1)
    for a, b in sorted(set(zip(first[defined].tolist(), last[defined].tolist(), strict=True))):
        rows = np.flatnonzero(defined & (first == a) & (last == b))
        p = rev[rows, a : b + 1]  # without the zeros np.roots strips (trailing ones are roots at 0: never > 0)
        n = p.shape[1]
        if n < 2:
            continue
        companion = np.zeros((len(rows), n - 1, n - 1))
        companion[:, np.arange(1, n - 1), np.arange(n - 2)] = 1.0
        companion[:, 0, :] = -p[:, 1:] / p[:, :1]
        roots = np.linalg.eigvals(companion)
        ok = (roots.imag == 0) & (roots.real > 0)
        rates = 1 / np.where(ok, roots.real, 1.0) - 1
        pick = np.argmin(np.where(ok, np.abs(rates), np.inf), axis=1)  # the first closest to zero, as argmin
        chosen = rates[np.arange(len(rows)), pick]
        monthly[rows] = np.where(ok.any(axis=1), chosen, np.nan)
    # annualized as ``irr`` does, one Python float at a time (the same rounding)
    return np.array([float((1.0 + m) ** 12 - 1.0) if np.isfinite(m) else float("nan") for m in monthly.tolist()])


def payback_months_array(flows) -> np.ndarray:
    """Vectorized undiscounted payback (months, fractional) per row; NaN where never reached."""
    flows = np.atleast_2d(np.asarray(flows, float))
    cum = np.cumsum(flows, axis=1)
    reached = cum >= 0
    first = np.argmax(reached, axis=1)
    ever = reached.any(axis=1)
    rows = np.arange(flows.shape[0])
    prev_cum = np.where(first > 0, cum[rows, np.maximum(first - 1, 0)], 0.0)
    step = flows[rows, first]
    # Linear interpolation inside the crossing month: the share of that month's flow needed to
    # bring the running total from prev_cum to zero.
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(step > 0, -prev_cum / step, 0.0)
    out = np.where(first == 0, 0.0, first - 1 + frac)
    return np.where(ever, out, np.nan)


def payback_months(flows) -> float | None:
    """First (fractional) month in which cumulative undiscounted flows reach zero; None if never."""
    value = payback_months_array(flows)[0]
    return None if np.isnan(value) else float(value)


def roi(value, cost):
    """Return on investment ``(value - cost) / cost``; NaN when cost is zero. Broadcasts."""
    value, cost = np.asarray(value, float), np.asarray(cost, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(cost != 0, (value - cost) / np.where(cost != 0, cost, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class Assumptions:
    """An initiative's financial assumptions, as declared in metrics.yaml plus the measured effect.

    ``effect_per_month`` is incremental conversions per month at full adoption (from the
    initiative's evaluation), ``effect_se`` its standard error; ``adoption`` scales the effect
    (share of the eligible population that gets the change).
    """

    effect_per_month: float
    value_per_conversion: float
    one_off_cost: float
    recurring_cost: float
    horizon_months: int
    discount_rate: float
    effect_se: float = 0.0
    adoption: float = 1.0
    start_offset: int = 0

    def flows(self) -> np.ndarray:
        value = self.effect_per_month * self.adoption * self.value_per_conversion
        return cash_flows(self.one_off_cost, self.recurring_cost, value, self.horizon_months, self.start_offset)


def _financials(a: Assumptions) -> dict:
    flows = a.flows()
    value_months = max(a.horizon_months - a.start_offset, 0)
    value = a.effect_per_month * a.adoption * a.value_per_conversion * value_months
    cost = a.one_off_cost + a.recurring_cost * a.horizon_months
    df = discount_factors(a.discount_rate, a.horizon_months)
    # NPV is linear in the effect, so its standard error follows exactly from the effect's.
    npv_se = a.effect_se * a.adoption * a.value_per_conversion * df[1 + a.start_offset :].sum()
    return {
        "value": value,
        "cost": cost,
        "roi": roi(value, cost),
        "npv": npv(a.discount_rate, flows),
        "npv_se": float(npv_se),
        "irr": irr(flows),
        "payback_months": payback_months(flows),
    }


def initiative_financials(
    effect_per_month: float,
    effect_se: float,
    value_per_conversion: float,
    one_off_cost: float,
    recurring_cost: float,
    horizon_months: int,
    discount_rate: float,
    adoption: float = 1.0,
    start_offset: int = 0,
) -> dict:
    """Value, cost, ROI, NPV (with its standard error), annualized IRR and payback over the horizon.

    ``value`` and ``cost`` are undiscounted totals over the horizon; ``roi`` is computed on them.
    """
    return _financials(
        Assumptions(
            effect_per_month,
            value_per_conversion,
            one_off_cost,
            recurring_cost,
            horizon_months,
            discount_rate,
            effect_se,
            adoption,
            start_offset,
        )
    )


def scenarios(assumptions: Assumptions, adoption: Mapping[str, float]) -> pd.DataFrame:
    """One row per named adoption scenario (e.g. ``{"low": 0.2, "base": 0.5, "high": 0.8}``).

    Adoption values are the absolute shares declared in the plan; they replace
    ``assumptions.adoption``.
    """
    rows = []
    for name, share in adoption.items():
        f = _financials(replace(assumptions, adoption=float(share)))
        rows.append({"kind": "scenario", "name": name, "adoption": float(share), **f})
    return pd.DataFrame(rows)


TORNADO_PARAMETERS = (
    "effect_per_month",
    "value_per_conversion",
    "one_off_cost",
    "recurring_cost",
    "adoption",
    "discount_rate",
)


def assumption_ranges(assumptions: Assumptions, ranges: Mapping[str, tuple[float, float]] | None = None) -> dict:
    """Low/high for every tornado parameter: declared ranges first, then defaults.

    Default for the effect is its 95 % confidence interval (its own sampling uncertainty); for the
    others +-``DEFAULT_RELATIVE_RANGE`` around the base value, with adoption capped at 1.
    """
    ranges = dict(ranges or {})
    out = {}
    for p in TORNADO_PARAMETERS:
        base = getattr(assumptions, p)
        if p in ranges:
            low, high = ranges[p]
        elif p == "effect_per_month" and assumptions.effect_se > 0:
            low, high = base - Z95 * assumptions.effect_se, base + Z95 * assumptions.effect_se
        else:
            low, high = base * (1 - DEFAULT_RELATIVE_RANGE), base * (1 + DEFAULT_RELATIVE_RANGE)
            if p == "adoption":
                high = min(high, 1.0)
        out[p] = (float(low), float(high))
    return out


def tornado(assumptions: Assumptions, ranges: Mapping[str, tuple[float, float]] | None = None) -> pd.DataFrame:
    """One-at-a-time sensitivity of NPV: each parameter at its low and high, others at base.

    Returns one row per parameter sorted by ``swing = |npv_high - npv_low|`` (largest first), the
    order a tornado chart is drawn in.
    """
    base_npv = _financials(assumptions)["npv"]
    rows = []
    for p, (low, high) in assumption_ranges(assumptions, ranges).items():
        npv_low = _financials(replace(assumptions, **{p: low}))["npv"]
        npv_high = _financials(replace(assumptions, **{p: high}))["npv"]
        rows.append(
            {
                "kind": "sensitivity",
                "name": p,
                "parameter": p,
                "base_value": float(getattr(assumptions, p)),
                "low_value": low,
                "high_value": high,
                "npv": base_npv,
                "npv_low": npv_low,
                "npv_high": npv_high,
                "swing": abs(npv_high - npv_low),
            }
        )
    return pd.DataFrame(rows).sort_values("swing", ascending=False, ignore_index=True)


@dataclass
class MonteCarloResult:
    """Summary of the simulation and the per-draw values (for the NPV distribution chart)."""

    npv_p10: float
    npv_p50: float
    npv_p90: float
    npv_mean: float
    prob_npv_positive: float
    irr_p50: float
    payback_p50: float
    n: int
    n_irr: int
    draws: pd.DataFrame

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("draws")
        return d


def _quantile(values, q: float, missing_as: float) -> float:
    """Percentile treating NaN as ``missing_as`` (+-inf); NaN when it lands on an infinite draw.

    ``inverted_cdf`` picks an observed draw instead of interpolating, which would mix a finite
    value with infinity.
    """
    v = np.asarray(values, float)
    if v.size == 0:
        return float("nan")
    out = float(np.percentile(np.where(np.isnan(v), missing_as, v), q, method="inverted_cdf"))
    return out if np.isfinite(out) else float("nan")


def _draw(
    rng: np.random.Generator, base: float, bounds: tuple[float, float] | None, n: int, distribution: str
) -> np.ndarray:
    if bounds is None:
        return np.full(n, float(base))
    low, high = float(bounds[0]), float(bounds[1])
    if low == high:
        return np.full(n, low)
    if distribution == "uniform":
        return rng.uniform(low, high, n)
    mode = min(max(float(base), low), high)
    return rng.triangular(low, mode, high, n)


# Parameters drawn from their declared ranges in the Monte Carlo. The effect has its own sampling
# distribution; the discount rate is a policy choice, not an uncertainty, so it stays fixed.
MC_RANGED = ("value_per_conversion", "one_off_cost", "recurring_cost", "adoption")


def monte_carlo(
    assumptions: Assumptions,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    n: int = 10_000,
    seed: int = 0,
    distribution: str = "triangular",
    irr_subsample: int = 1_000,
) -> MonteCarloResult:
    """Simulate NPV, ROI, IRR and payback from the effect's sampling distribution and cost ranges.

    The effect is drawn from Normal(estimate, se). Each of ``MC_RANGED`` with a declared
    (low, high) is drawn from a triangular distribution with its mode at the base value: plans state
    a most-likely figure and a range, and the triangular keeps the draws bounded while putting most
    mass near the base (``distribution="uniform"`` ignores the base, for ranges without one).
    NPV, ROI and payback are computed for all draws in one vectorized pass; IRR needs a root solve
    per draw, so it is computed on the first ``irr_subsample`` draws (they are i.i.d., so the first
    k are a random subsample), all at once (``irr_array``).
    """
    if distribution not in ("triangular", "uniform"):
        raise ValueError(f"distribution must be 'triangular' or 'uniform', not {distribution!r}")
    rng = np.random.default_rng(seed)
    ranges = dict(ranges or {})
    a = assumptions
    effect = rng.normal(a.effect_per_month, a.effect_se, n) if a.effect_se > 0 else np.full(n, a.effect_per_month)
    drawn = {p: _draw(rng, getattr(a, p), ranges.get(p), n, distribution) for p in MC_RANGED}
    value_pm = effect * drawn["adoption"] * drawn["value_per_conversion"]
    flows = cash_flows(drawn["one_off_cost"], drawn["recurring_cost"], value_pm, a.horizon_months, a.start_offset)
    npvs = npv(a.discount_rate, flows)
    value_months = max(a.horizon_months - a.start_offset, 0)
    rois = roi(value_pm * value_months, drawn["one_off_cost"] + drawn["recurring_cost"] * a.horizon_months)
    paybacks = payback_months_array(flows)
    k = min(irr_subsample, n)
    irrs = irr_array(flows[:k])
    irr_col = np.full(n, np.nan)
    irr_col[:k] = irrs
    draws = pd.DataFrame(
        {"effect_per_month": effect, **drawn, "npv": npvs, "roi": rois, "payback_months": paybacks, "irr": irr_col}
    )
    p10, p50, p90 = np.percentile(npvs, [10, 50, 90])
    # "Never pays back" counts as +inf, so the median is undefined (NaN) when most draws never do.
    payback_p50 = _quantile(paybacks, 50, np.inf)
    # Same for IRR: an undefined IRR (no sign change) is a loss, ranked below every defined one.
    irr_p50 = _quantile(irrs, 50, -np.inf)
    return MonteCarloResult(
        npv_p10=float(p10),
        npv_p50=float(p50),
        npv_p90=float(p90),
        npv_mean=float(npvs.mean()),
        prob_npv_positive=float((npvs > 0).mean()),
        irr_p50=irr_p50,
        payback_p50=payback_p50,
        n=n,
        n_irr=k,
        draws=draws,
    )


def initiative_scenarios(
    initiative: str,
    assumptions: Assumptions,
    adoption: Mapping[str, float],
    ranges: Mapping[str, tuple[float, float]] | None = None,
    n: int = 10_000,
    seed: int = 0,
    distribution: str = "triangular",
) -> pd.DataFrame:
    """Rows of ``marts.initiative_scenarios`` for one initiative.

    ``kind`` is ``scenario`` (name = adoption level), ``sensitivity`` (name = parameter, with
    low/high values and NPVs) or ``monte_carlo`` (name = p10/p50/p90/mean; each statistic is the
    marginal percentile of that metric, not one joint draw; ``prob_npv_positive`` on every row).
    """
    sc = scenarios(assumptions, adoption)
    tor = tornado(assumptions, ranges)
    mc = monte_carlo(assumptions, ranges, n=n, seed=seed, distribution=distribution)
    d = mc.draws
    mc_rows = []
    for name, q in (("p10", 10), ("p50", 50), ("p90", 90)):
        mc_rows.append(
            {
                "kind": "monte_carlo",
                "name": name,
                "npv": float(np.percentile(d["npv"], q)),
                "roi": float(np.nanpercentile(d["roi"], q)),
                "irr": _quantile(d["irr"].iloc[: mc.n_irr], q, -np.inf),
                "payback_months": _quantile(d["payback_months"], q, np.inf),
                "prob_npv_positive": mc.prob_npv_positive,
            }
        )
    mc_rows.append(
        {
            "kind": "monte_carlo",
            "name": "mean",
            "npv": mc.npv_mean,
            "roi": float(np.nanmean(d["roi"])),
            "irr": np.nan,
            "payback_months": np.nan,
            "prob_npv_positive": mc.prob_npv_positive,
        }
    )
    out = pd.concat([sc, tor, pd.DataFrame(mc_rows)], ignore_index=True)
    out["initiative"] = initiative
    return out.reindex(columns=SCENARIO_COLUMNS).astype({"payback_months": float, "irr": float})
