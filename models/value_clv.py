"""Customer lifetime value: the probabilistic BG/NBD + Gamma-Gamma model and the simple formula.

BG/NBD (Fader, Hardie & Lee 2005, "Counting Your Customers the Easy Way") gives each customer's
probability of still being alive and expected repeat purchases; Gamma-Gamma (Colombo & Jiang 1999;
Fader & Hardie 2013, "The Gamma-Gamma Model of Monetary Value") gives the value per purchase.
Both are fitted by maximum likelihood on their closed-form log-likelihoods with scipy.

Why not a package: ``lifetimes`` (and its fork ``btyd``) are unmaintained and fail on this stack
(``lifetimes`` refuses the CDNOW data under pandas 3 with "recency larger than T"; ``btyd`` fails to
import); ``pymc-marketing`` is maintained but brings ~600 MB of pymc/pytensor, takes ~20 s to
compile and fit CDNOW, and its default MAP priors move a and b 10-15 % off the published MLE.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special

# Days per model time unit for rfm_summary's freq; "W" is fractional weeks (days / 7), the unit
# of the published CDNOW summaries.
TIME_UNIT_DAYS = {"D": 1.0, "W": 7.0}


def rfm_summary(
    transactions: pd.DataFrame,
    customer: str = "customer_id",
    time: str = "date",
    value: str | None = None,
    observation_end=None,
    freq: str = "D",
) -> pd.DataFrame:
    """Per-customer frequency / recency / T (and mean repeat value) from a transaction log.

    Purchases on the same day are one purchase. ``frequency`` is the number of repeat purchase
    days, ``recency`` the time from first to last purchase, ``T`` from first purchase to
    ``observation_end`` (default: the last transaction), all in ``freq`` units (``D`` days, ``W``
    weeks = days / 7). ``monetary_value`` is the mean value of the repeat purchases (the first is
    excluded, as Gamma-Gamma requires), 0 for customers without repeats. Transactions after
    ``observation_end`` are ignored.
    """
    if freq not in TIME_UNIT_DAYS:
        raise ValueError(f"freq must be one of {sorted(TIME_UNIT_DAYS)}, not {freq!r}")
    df = transactions[[customer, time] + ([value] if value else [])].copy()
    df[time] = pd.to_datetime(df[time]).dt.normalize()
    end = pd.Timestamp(observation_end) if observation_end is not None else df[time].max()
    df = df[df[time] <= end]
    if value is None:
        df["_value"] = 0.0
        value = "_value"
    days = df.groupby([customer, time], as_index=False)[value].sum().sort_values([customer, time])
    first_day = days.groupby(customer)[time].transform("min")
    days["repeat"] = days[time] > first_day
    g = days.groupby(customer)
    unit = TIME_UNIT_DAYS[freq]
    first, last = g[time].min(), g[time].max()
    out = pd.DataFrame(
        {
            "frequency": g["repeat"].sum().astype(int),
            "recency": (last - first).dt.days / unit,
            "T": (end - first).dt.days / unit,
        }
    )
    repeat_value = days[days["repeat"]].groupby(customer)[value].mean()
    out["monetary_value"] = repeat_value.reindex(out.index).fillna(0.0)
    out.attrs["time_unit_days"] = unit
    return out


@dataclass(frozen=True)
class BGNBDParams:
    """Fitted BG/NBD parameters (r, alpha: purchase rate Gamma; a, b: dropout Beta)."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    n: int


@dataclass(frozen=True)
class GammaGammaParams:
    """Fitted Gamma-Gamma parameters (lifetimes' names p, q, v)."""

    p: float
    q: float
    v: float
    log_likelihood: float
    n: int


def bgnbd_log_likelihood(r, alpha, a, b, x, t_x, T) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood (Fader, Hardie & Lee 2005, eq. 6)."""
    x, t_x, T = (np.asarray(v, float) for v in (x, t_x, T))
    common = (
        special.gammaln(r + x)
        - special.gammaln(r)
        + r * np.log(alpha)
        + special.betaln(a, b + x)
        - special.betaln(a, b)
    )
    still_alive = -(r + x) * np.log(alpha + T)
    # B(a+1, b+x-1) / B(a, b+x) = a / (b+x-1): the "dropped out after the last purchase" term,
    # present only for repeat buyers.
    with np.errstate(divide="ignore", invalid="ignore"):
        dropped = np.where(
            x > 0, np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x), -np.inf
        )
    return common + np.logaddexp(still_alive, dropped)


def _fit(neg_ll, x0: np.ndarray) -> optimize.OptimizeResult:
    # Parameters are positive: optimise their logs. Nelder-Mead then a gradient polish is robust
    # to the flat ridges these likelihoods have, and converges tightly enough (xatol 1e-8) for the
    # published figures to be reproduced to three decimals.
    res = optimize.minimize(
        neg_ll, x0, method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 20_000, "maxfev": 40_000}
    )
    polish = optimize.minimize(neg_ll, res.x, method="L-BFGS-B")
    return polish if polish.fun <= res.fun else res


def fit_bgnbd(summary: pd.DataFrame) -> BGNBDParams:
    """Maximum-likelihood BG/NBD fit on ``frequency``, ``recency``, ``T`` columns."""
    x, t_x, T = (summary[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    # Scale time so alpha starts near 1 whatever the unit (days vs weeks); undone below.
    scale = float(np.mean(T)) or 1.0
    # customers with the same (x, t_x, T) have the same likelihood: each distinct triple once, weighted
    # by its customers (lifetimes' `weights`). Counted in weeks or days, a long history has far fewer
    # triples than customers (1M events: ~0.6 of this mart's CPU went to the likelihood).
    triples, weight = np.unique(np.stack([x, t_x, T], axis=1), axis=0, return_counts=True)
    ux, ut, uT = triples.T

    def neg_ll(logp):
        r, alpha, a, b = np.exp(logp)
        return -(weight * bgnbd_log_likelihood(r, alpha, a, b, ux, ut / scale, uT / scale)).sum()

    res = _fit(neg_ll, np.zeros(4))
    r, alpha, a, b = np.exp(res.x)
    ll = float(bgnbd_log_likelihood(r, alpha * scale, a, b, x, t_x, T).sum())
    return BGNBDParams(float(r), float(alpha * scale), float(a), float(b), ll, len(x))


def gamma_gamma_log_likelihood(p, q, v, x, m) -> np.ndarray:
    """Per-customer Gamma-Gamma log-likelihood of mean spend ``m`` over ``x`` repeat purchases."""
    x, m = np.asarray(x, float), np.asarray(m, float)
    return (
        special.gammaln(p * x + q)
        - special.gammaln(p * x)
        - special.gammaln(q)
        + q * np.log(v)
        + (p * x - 1) * np.log(m)
        + p * x * np.log(x)
        - (p * x + q) * np.log(x * m + v)
    )


def fit_gamma_gamma(summary: pd.DataFrame) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma fit on repeat buyers' ``frequency`` and ``monetary_value``."""
    rep = summary[(summary["frequency"] > 0) & (summary["monetary_value"] > 0)]
    x, m = rep["frequency"].to_numpy(float), rep["monetary_value"].to_numpy(float)
    scale = float(np.mean(m)) or 1.0  # v is in money units: start the search at the right scale

    def neg_ll(logp):
        p, q, v = np.exp(logp)
        return -gamma_gamma_log_likelihood(p, q, v, x, m / scale).sum()

    res = _fit(neg_ll, np.zeros(3))
    p, q, v = np.exp(res.x)
    ll = float(gamma_gamma_log_likelihood(p, q, v * scale, x, m).sum())
    return GammaGammaParams(float(p), float(q), float(v * scale), ll, len(x))


def probability_alive(params: BGNBDParams, x, t_x, T) -> np.ndarray:
    """P(customer still active | x, t_x, T) (Fader, Hardie & Lee 2005, eq. 13 in the appendix)."""
    x, t_x, T = (np.asarray(v, float) for v in (x, t_x, T))
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = np.where(x > 0, a / np.maximum(b + x - 1, 1e-300) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0)
    return 1.0 / (1.0 + odds)


def expected_purchases(params: BGNBDParams, t, x, t_x, T) -> np.ndarray:
    """Expected purchases in (T, T + t] given the history (Fader, Hardie & Lee 2005, eq. 10)."""
    x, t_x, T = (np.asarray(v, float) for v in (x, t_x, T))
    t = np.asarray(t, float)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    hyp = special.hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
    num = (a + b + x - 1) / (a - 1) * (1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp)
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = np.where(x > 0, a / np.maximum(b + x - 1, 1e-300) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0)
    return num / (1.0 + odds)


def expected_average_value(params: GammaGammaParams, x, m) -> np.ndarray:
    """Expected value per purchase given x repeats with mean m; the population mean when x = 0."""
    x, m = np.asarray(x, float), np.asarray(m, float)
    p, q, v = params.p, params.q, params.v
    return p * (v + x * m) / (p * x + q - 1)


def customer_clv(
    summary: pd.DataFrame,
    horizon_days: float,
    discount_rate: float,
    margin: float,
    bgnbd: BGNBDParams | None = None,
    gamma_gamma: GammaGammaParams | None = None,
    time_unit_days: float | None = None,
) -> pd.DataFrame:
    """Per customer: p_alive, expected purchases and average value over the horizon, and CLV.

    CLV = margin × expected value per purchase × expected purchases, discounted month by month
    (30-day steps, the last one partial) at the annual ``discount_rate`` converted to monthly, as
    lifetimes' ``customer_lifetime_value`` does. ``time_unit_days`` is the summary's unit (taken
    from ``rfm_summary``'s attrs, else 1 = days). Models are fitted here when not given.
    """
    bgnbd = bgnbd or fit_bgnbd(summary)
    gamma_gamma = gamma_gamma or fit_gamma_gamma(summary)
    unit = time_unit_days or summary.attrs.get("time_unit_days", 1.0)
    x, t_x, T = (summary[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    avg_value = expected_average_value(gamma_gamma, x, summary["monetary_value"].to_numpy(float))
    monthly = (1.0 + discount_rate) ** (1.0 / 12.0) - 1.0
    edges = np.append(np.arange(0.0, horizon_days, 30.0), horizon_days)
    cum = np.stack([expected_purchases(bgnbd, d / unit, x, t_x, T) if d > 0 else np.zeros_like(x) for d in edges])
    per_step = np.diff(cum, axis=0)
    months = edges[1:] / 30.0
    discounted = (per_step / (1.0 + monthly) ** months[:, None]).sum(axis=0)
    return pd.DataFrame(
        {
            "p_alive": probability_alive(bgnbd, x, t_x, T),
            "expected_purchases": cum[-1],
            "expected_avg_value": avg_value,
            "clv": margin * avg_value * discounted,
        },
        index=summary.index,
    )


def simple_clv(arpu_monthly, gross_margin, monthly_churn):
    """Margin × expected lifetime: ``arpu × margin / churn``; NaN when churn is zero. Broadcasts."""
    arpu, margin, churn = (np.asarray(v, float) for v in (arpu_monthly, gross_margin, monthly_churn))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(churn > 0, arpu * margin / np.where(churn > 0, churn, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out


def cac(spend, new_customers):
    """Customer acquisition cost ``spend / new customers``; NaN without new customers."""
    spend, new = np.asarray(spend, float), np.asarray(new_customers, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(new > 0, spend / np.where(new > 0, new, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out


def payback_months_cac(cac_value, arpu_monthly, gross_margin):
    """Months of gross margin to recover the CAC: ``cac / (arpu × margin)``; NaN if no margin."""
    c, arpu, margin = (np.asarray(v, float) for v in (cac_value, arpu_monthly, gross_margin))
    monthly_margin = arpu * margin
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(monthly_margin > 0, c / np.where(monthly_margin > 0, monthly_margin, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out
