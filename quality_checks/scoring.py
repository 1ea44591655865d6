"""Robust anomaly scoring of many daily series at once (numpy, one pass over the days).

What Elementary gets wrong and this does not:
- the training window (default 14 days) lies strictly before the day scored, and points already
  flagged are masked out of every later window, so one incident does not widen the band for the
  next two weeks; where that leaves fewer than `min_history_days` clean days, older clean days
  make them up (at most one more window back), so a series is not left unscored after an incident;
- no score before `min_history_days` clean points;
- shares and levels: a robust z (median, MAD scaled to sigma) with a binomial noise floor for
  shares and a minimum relative change, so a flat series [100000, 99999, ...] then 99995 raises
  nothing;
- counts (volume, persons): a count model, not a z on logs: a negative binomial around the
  training median whose variance is the largest of the window's robust spread, Poisson, and the
  compound floor of a few persons sending many events (`count_tails`); a count is flagged when its
  tail probability is below that of a normal z of `sensitivity`. A zero is one count among others:
  flagged only when it lies outside the model's range (issue 22: a quiet event's zero on a weekend
  is not an incident);
- weekly seasonality: a Monday is scored against past Mondays once there are enough of them, else
  against weekdays (or weekend days) of the window, else against all days of the window;
- sustained drops (counts, one-sided; issue 22's recall target): a halving sits about 3 of a busy
  event's sigmas below a usual day, so one day cannot show it at a rate of false alerts anyone
  would keep. The run test judges the total of the last 2-3 unflagged days against what was
  expected of them before the run began (forecast from the run's first day's training, so the
  run's own first days do not pull the expected down), and the per-person test judges a count
  against the persons behind it (persons x their usual events each): a drop that takes a share of
  every person's events is plain there while the count's own range, wide because a few persons
  send many events, hides it. Each has its own threshold (`run_sensitivity`); a run that fires
  leaves the training whole;
- a lasting change is learned, not alerted on for weeks: when most recent days were taken out of
  training (or `shift_min_taken` of them, with a `shift_agree` share of the recent days scored on
  their side of the expected), they train again and the days before them are moved to their level,
  weekday for weekday (`_relevel`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from tracking_plan.quality_settings import QualitySettings

MAD_TO_SIGMA = 1.4826  # MAD of a normal distribution times this is its standard deviation
IQR_TO_SIGMA = 1.349  # the IQR of a normal distribution is this many standard deviations
DIRECTIONS = {"both": 0, "up": 1, "down": -1}


@dataclass
class Scored:
    """Flags and bands, each an array shaped like the input [series, days]."""

    flagged: np.ndarray
    expected: np.ndarray
    low: np.ndarray
    high: np.ndarray
    score: np.ndarray
    basis: np.ndarray  # 3 same weekday, 2 same day type, 1 all days, 0 not scored
    # counts: a flag raised by the run test (see score_matrix `run_days`): the run's length in days
    # (0: none), its total, the total expected and the low end of the total's range
    run_days: np.ndarray | None = None
    run_observed: np.ndarray | None = None
    run_expected: np.ndarray | None = None
    run_low: np.ndarray | None = None
    run_persons: np.ndarray | None = None  # the per-person test: the persons behind the run's days
    # why a point was not scored (basis 0): one of NOT_SCORED's codes, 0 where it was scored
    reason: np.ndarray | None = None


# why a series-day was not scored (Scored.reason): nothing is skipped without one
NO_VALUE, FEW_LINES, SHORT_HISTORY, TRAINING_FLAGGED = 1, 2, 3, 4
NOT_SCORED = {
    NO_VALUE: "no value that day",
    FEW_LINES: "fewer lines than min_count",
    SHORT_HISTORY: "fewer than min_history_days days of history",
    TRAINING_FLAGGED: "fewer than min_history_days clean days in two training windows: the others were flagged",
}


def _weekday(days: np.ndarray) -> np.ndarray:
    # 1970-01-01 was a Thursday: +3 makes Monday 0
    return (days.astype("datetime64[D]").astype(np.int64) + 3) % 7


def nan_quantiles(h: np.ndarray, qs) -> list[np.ndarray]:
    """Row-wise quantiles of a 2-D array ignoring NaN (linear interpolation, like numpy's default).

    numpy's nanpercentile loops over rows in Python; sorting once (NaN sorts last) and indexing
    is about 50x faster on the [series, window] blocks scored here.
    """
    srt = np.sort(h, axis=1)
    n = (~np.isnan(h)).sum(axis=1)
    out = []
    rows = np.arange(h.shape[0])
    for q in qs:
        pos = q * np.maximum(n - 1, 0)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, np.maximum(n - 1, 0))
        frac = pos - lo
        val = srt[rows, lo] * (1 - frac) + srt[rows, hi] * frac
        out.append(np.where(n > 0, val, np.nan))
    return out


_Q = QualitySettings()  # the defaults, with their reasons, live in one place


def alpha_of(sensitivity) -> np.ndarray:
    """One-sided tail probability of a normal z: the count model flags what is this unlikely."""
    from scipy.stats import norm

    return norm.sf(np.asarray(sensitivity, dtype=float))


def _z_of(p: np.ndarray) -> np.ndarray:
    from scipy.stats import norm

    return np.minimum(norm.isf(np.clip(p, 1e-300, 1.0)), 40.0)


def count_tails(
    x: np.ndarray,
    mu: np.ndarray,
    log_scale: np.ndarray,
    units: np.ndarray,
    n_points: np.ndarray,
    alpha,
    mu_up: np.ndarray | None = None,
    alpha_low=None,
):
    """Negative binomial tails of counts `x` around the expected `mu`: (P(X <= x), P(X >= x), low, high).

    The variance is the largest of: the spread seen in the training window (the robust spread of
    log(1 + count) times 1 + mu), Poisson (mu), and the compound floor mu (2 mu / units - 1)
    (`units`: the independent senders behind the count, distinct persons: a person's events come
    together, and some persons send many); then
    widened by 1 + pi / (2 n) because the median of n training points is itself uncertain. Above
    the mean, the variance becomes NB's dispersion; at the mean, Poisson. `mu_up`: the expectation
    the upper tail is judged against (defaults to `mu`). low / high: the range outside which a count
    has tail probability below `alpha` (`alpha_low` below, when drops have their own).
    """
    from scipy.stats import nbinom, poisson

    x = np.nan_to_num(np.asarray(x, dtype=float), nan=0.0)
    alpha = np.broadcast_to(np.asarray(alpha, dtype=float), x.shape)

    def model(m):
        m = np.maximum(np.nan_to_num(m, nan=0.0), 1e-3)
        return nb_params(m, count_variance(m, log_scale, units, n_points))

    m, over, r, p = model(mu)
    p_lo = np.where(over, nbinom.cdf(x, r, p), poisson.cdf(x, m))
    a_lo = alpha if alpha_low is None else np.broadcast_to(np.asarray(alpha_low, dtype=float), x.shape)
    low = np.where(over, nbinom.ppf(a_lo, r, p), poisson.ppf(a_lo, m))
    m, over, r, p = model(mu if mu_up is None else mu_up)
    p_hi = np.where(over, nbinom.sf(x - 1, r, p), poisson.sf(x - 1, m))
    high = np.where(over, nbinom.isf(alpha, r, p), poisson.isf(alpha, m))
    return p_lo, p_hi, low, high


def count_variance(m, log_scale, units, n_points) -> np.ndarray:
    """The count model's variance around the expected `m` (see count_tails)."""
    m = np.maximum(np.nan_to_num(m, nan=0.0), 1e-3)
    u = np.maximum(np.nan_to_num(units, nan=0.0), 1e-3)
    # compound floor: k = m / u events per sender; with a geometric-like spread of k per
    # person, Var = m (2k - 1) (a person with 30 screens today may send 3 tomorrow)
    var = np.maximum.reduce([(np.nan_to_num(log_scale) * (1 + m)) ** 2, m, m * (2 * m / u - 1)])
    return var * (1 + np.pi / (2 * np.maximum(n_points, 1)))


def nb_params(m, var):
    """(m, overdispersed, r, p) of the negative binomial with mean m and variance var (Poisson
    where var <= m: r and p are then placeholders)."""
    over = var > m * (1 + 1e-6)
    r = np.where(over, m * m / np.maximum(var - m, 1e-12), 1.0)
    p = np.where(over, m / np.maximum(var, 1e-12), 0.5)
    return m, over, r, p


def theil_sen(h: np.ndarray, cols: np.ndarray, min_points: int = 6) -> np.ndarray:
    """Row-wise Theil-Sen slope (median of pairwise slopes) of h [rows, points] at x = cols; NaN
    points ignored; 0 where fewer than `min_points` points are there."""
    cols = np.asarray(cols, dtype=float)
    i, j = np.triu_indices(len(cols), k=1)
    if len(i) == 0:
        return np.zeros(h.shape[0])
    slopes = (h[:, j] - h[:, i]) / (cols[j] - cols[i])[None, :]
    out = nan_quantiles(slopes, (0.5,))[0]
    enough = (~np.isnan(h)).sum(axis=1) >= min_points
    return np.where(enough, np.nan_to_num(out, nan=0.0), 0.0)


def _forecast(
    t, b, window, v, usable, train, rows, slope, weekend, seasonal_weeks, min_seasonal_points, min_daytype_points
) -> np.ndarray:
    """Expected count (as in score_matrix, the lower of median and mean) of day `t` from the
    training of an earlier day (its `window` and `train` mask, `slope` and basis `b`), for the run test."""
    cands = []
    if b == 3:
        cands.append((np.arange(t - 7, max(-1, t - 7 * seasonal_weeks - 1), -7), min_seasonal_points, usable))
    if b >= 2:
        cands.append((window[weekend[window] == weekend[t]], min_daytype_points, train))
    cands.append((window, 1, train))
    out = np.full(rows.sum(), np.nan)
    for cols, need, mask in cands:
        cols = cols[cols < window[-1] + 1]
        if len(cols) == 0:
            continue
        ok = mask[np.ix_(rows, cols)]
        h = np.where(ok, v[np.ix_(rows, cols)], np.nan) + slope[:, None] * (t - cols)[None, :]
        med = np.expm1(nan_quantiles(h, (0.5,))[0])
        avg = np.nanmean(np.expm1(h), axis=1)
        out = np.where(np.isnan(out) & (ok.sum(axis=1) >= need), np.minimum(med, avg), out)
    return out


def _per_person_test(
    d, ok, x, eff, v, usable, window, run_sens, min_rel, run_days, out, pp, in_run, min_history_days
) -> np.ndarray:
    """Counts with their persons (`eff`): the events per person of the last 1..run_days days against
    the training's usual rate (fills out.run_*; returns the rows it flags).

    A drop that takes a share of each person's events (one screen of several stops sending, a
    client drops half its batches) leaves the persons nearly as many: the count's own range,
    wide because a few persons send many events, hides it; given the persons seen, the count is
    the sum of their events. Expected: persons x the usual rate (median over the training window);
    variance: per person a geometric count of that mean (k (k - 1), the compound floor's
    assumption), or the training's own spread of the rate when larger, plus the rate's own
    uncertainty. Only for rates of 1.5 and more (an event sent once per person has no rate to lose)."""

    with np.errstate(divide="ignore", invalid="ignore"):
        ok_days = usable[:, window] & (np.nan_to_num(eff[:, window]) > 0)
        lr = np.where(ok_days, v[:, window] - np.log(np.where(ok_days, eff[:, window], 1.0)), np.nan)
    n = ok_days.sum(axis=1)
    mid = nan_quantiles(lr, (0.5,))[0]
    pp["rate"][:, d] = np.exp(mid)
    pp["spread"][:, d] = MAD_TO_SIGMA * nan_quantiles(np.abs(lr - mid[:, None]), (0.5,))[0]
    pp["n"][:, d] = n
    pp["eff"][:, d] = eff[:, d]
    pp["x"][:, d] = x
    hit = np.zeros(len(ok), dtype=bool)
    alpha = alpha_of(np.nan_to_num(run_sens, nan=40.0))
    for k in range(1, run_days + 1):
        if d - k + 1 < 0:
            break
        s, cols, ok_k = _run_window(d, k, ok, hit, out, in_run)
        rate, spread, n_s = pp["rate"][:, s], pp["spread"][:, s], pp["n"][:, s]
        e = pp["eff"][:, cols]
        ok_k &= (n_s >= min_history_days) & (rate >= 1.5) & (np.nan_to_num(e) > 0).all(axis=1)
        if not ok_k.any():
            continue
        e = np.nan_to_num(e)
        tot_e = e.sum(axis=1)
        tot_x = np.nansum(pp["x"][:, cols], axis=1)
        tot_mu = rate * tot_e
        own = np.maximum(tot_e * rate * (rate - 1), ((np.nan_to_num(spread * rate)[:, None] * e) ** 2).sum(axis=1))
        level = (np.nan_to_num(spread) * rate * tot_e) ** 2 * np.pi / (2 * np.maximum(n_s, 1))
        new = _flag_run(out, d, k, ok_k, tot_x, tot_mu, own + level, alpha, min_rel)
        out.run_persons[new, d] = tot_e[new]
        hit |= new
    return hit


def _flag_run(out, d, k, ok_k, tot_x, tot_mu, tot_var, alpha, min_rel) -> np.ndarray:
    """The judgement of both sustained-drop tests: a k-day total `tot_x` below its count model's
    alpha tail (negative binomial with mean `tot_mu` and variance `tot_var`, Poisson when not
    overdispersed) and more than `min_rel` below expected; records the run in out.run_* and
    returns the rows flagged."""
    from scipy.stats import nbinom, poisson

    m, over, r, p = nb_params(np.maximum(tot_mu, 1e-3), np.maximum(tot_var, tot_mu))
    p_lo = np.where(over, nbinom.cdf(tot_x, r, p), poisson.cdf(tot_x, m))
    ratio = np.maximum(tot_mu, 0.5) / np.maximum(tot_x, 0.5)
    new = ok_k & (p_lo < alpha) & (ratio - 1 > min_rel)
    if new.any():
        low = np.where(over, nbinom.ppf(alpha, r, p), poisson.ppf(alpha, m))
        out.run_days[new, d] = k
        out.run_observed[new, d] = tot_x[new]
        out.run_expected[new, d] = tot_mu[new]
        out.run_low[new, d] = low[new]
    return new


def _run_window(d, k, ok, hit, out, in_run) -> tuple[int, np.ndarray, np.ndarray]:
    """The k-day run ending on day `d` (both sustained-drop tests): its first day, its days, and the
    rows it may judge: not flagged yet, every earlier day of the run scored, unflagged and in no run."""
    s = d - k + 1
    cols = np.arange(s, d + 1)
    prev = cols[:-1]
    ok_k = ok & ~hit & (out.basis[:, prev] > 0).all(axis=1) & ~out.flagged[:, prev].any(axis=1)
    return s, cols, ok_k & ~in_run[:, prev].any(axis=1)


def _run_test(
    d, ok, run_sens, min_rel, run_days, out, fc, hist_x, hist_scale, hist_usual, hist_n, in_run
) -> np.ndarray:
    """The run test of score_matrix on day `d` (fills out.run_*; returns the rows it flags).

    A run of k days from s = d - k + 1 is judged against the expected of its days as forecast on
    day s (`fc[:, s, j]`, trained before the run), with the spread of day s. The variance of the
    total: each day's own noise adds up; the uncertainty of the training level (the 1 + pi / 2n
    part of count_variance) is shared by the run's days, so it adds as one standard deviation per
    day, not as a variance."""

    hit = np.zeros(len(ok), dtype=bool)
    alpha = alpha_of(np.nan_to_num(run_sens, nan=40.0))
    for k in range(2, run_days + 1):
        if d - k + 1 < 0:
            break
        s, cols, ok_k = _run_window(d, k, ok, hit, out, in_run)
        mu = fc[:, s, :k]
        ok_k &= ~np.isnan(mu).any(axis=1)
        if not ok_k.any():
            continue
        n_pts, c = hist_n[:, s, None], np.pi / (2 * np.maximum(hist_n[:, s, None], 1))
        var = count_variance(mu, hist_scale[:, s, None], hist_usual[:, s, None], n_pts)
        tot_x = np.nansum(hist_x[:, cols], axis=1)
        tot_mu = np.nansum(np.maximum(np.nan_to_num(mu), 1e-3), axis=1)
        tot_var = np.nansum(var / (1 + c), axis=1) + np.nansum(np.sqrt(var * c / (1 + c)), axis=1) ** 2
        hit |= _flag_run(out, d, k, ok_k, tot_x, tot_mu, tot_var, alpha, min_rel)
    return hit


def _relevel(v, usable, taken, shifted, recent, window, releveled) -> None:
    """A regime change learned (`shifted` series: most of their `recent` days taken out of training,
    `taken`): each such series' days before its first taken day t0 are moved (in `v`, in place) by
    the median change of its days from t0 against the same weekday a week before (where that day is
    before t0 and usable; else by the difference of the medians of its days from t0 and of its usable
    days of `window` before), once per change (`releveled` keeps t0). The weekly pattern and the
    spread stay; the level is the new one (`benchmarks/detector_bench.py`, after an incident: see
    the README)."""
    for i in np.flatnonzero(shifted):
        t0 = int(recent[taken[i]][0])
        if releveled[i] == t0:
            continue
        releveled[i] = t0
        # the change, weekday for weekday: each day since t0 against the same weekday a week before,
        # where that day is before t0 and usable (else the medians of the two sides)
        t = np.arange(t0, recent[-1] + 1)
        t = t[(t >= 7) & (t - 7 < t0)]
        pairs = v[i, t] - v[i, t - 7]
        pairs = pairs[usable[i, t - 7] & ~np.isnan(pairs)]
        if len(pairs):
            v[i, :t0] += np.median(pairs)
            continue
        new, old = v[i, t0 : recent[-1] + 1], window[window < t0]
        old = v[i, old[usable[i, old]]]
        if not np.isnan(new).all() and len(old):
            v[i, :t0] += np.nanmedian(new) - np.median(old)


def _training_days(train, usable, v, window, lo, min_history_days) -> None:
    """The training days of the day after `window` into `train` (its columns in `window`): the usable
    days from `lo` (the last `training_days`), and, where flags took so many of those out of training
    (observed, not usable) that fewer than `min_history_days` are left, the next older usable days of
    `window` up to that many (never more than the flags took): a series goes on being scored after an
    incident rather than waiting for its days to leave the window, and is trained on clean days only.
    A window with enough clean days is what it was, so is what is scored in it."""
    recent, older = window[window >= lo], window[window < lo]
    train[:, recent] = usable[:, recent]
    if len(older):
        taken = (~np.isnan(v[:, recent]) & ~usable[:, recent]).sum(axis=1)
        need = np.minimum(taken, np.maximum(0, min_history_days - usable[:, recent].sum(axis=1)))
        ok = usable[:, older]
        newest_first = np.cumsum(ok[:, ::-1], axis=1)[:, ::-1]
        train[:, older] = ok & (newest_first <= need[:, None])


def _per_series(x, n) -> np.ndarray:
    return np.broadcast_to(np.asarray(x, dtype=float), (n,)).astype(float)


def score_matrix(
    values: np.ndarray,
    days: np.ndarray,
    *,
    kind: str = "count",
    denominators: np.ndarray | None = None,
    direction="both",
    sensitivity=_Q.sensitivity,
    min_relative_change=_Q.min_relative_change,
    min_absolute_change=0.0,
    min_relative_rise=None,
    drop_sensitivity=None,
    training_days: int = _Q.training_days,
    min_history_days: int = _Q.min_history_days,
    seasonal_weeks: int = _Q.seasonal_weeks,
    min_seasonal_points: int = _Q.min_seasonal_points,
    min_daytype_points: int = _Q.min_daytype_points,
    min_count=0,
    min_expected=0.0,
    trend: bool = True,
    min_trend_points: int = 6,
    max_trend: float = 0.05,
    effective: np.ndarray | None = None,
    run_days: int = 1,
    run_sensitivity=None,
    run_min_relative_change=None,
    shift_min_taken: int = 3,
    shift_agree: float = 0.9,
) -> Scored:
    """Score every day of every series against its own past.

    values: [series, days] floats, NaN where there is no observation; days: consecutive dates.
    kind: "count" (negative binomial tails, see count_tails), "share" (binomial floor; needs `denominators`)
    or "level" (no floor beyond the MAD). min_count: a share of fewer than this many lines is not scored.
    effective (counts): the independent units behind each count (distinct persons): events of one
    person move together, so the noise floor and `min_expected` are on these when given.
    min_expected (counts): the usual effective count (persons) below which nothing is flagged.
    run_days, run_sensitivity (counts): the run test, a one-sided test of sustained drops. The total
    of the last 2..`run_days` days, none of them flagged, is judged against the sum of those days'
    expected counts: a drop the single day cannot show (a halving sits about 3 of its sigmas below
    a usual day) shows in the total of two or three days (the noise of a sum grows as the square
    root of its days, the drop as its days). Flagged when the total's lower tail is below that of
    a normal z of `run_sensitivity` (per series; None or NaN: off) and it is below its expected by
    `min_relative_change` (the ratio). The alert is on the run's last day; the whole run leaves
    the training, so the expected of the days after it does not follow the drop down. For counts min_relative_change is a ratio either way (1.0: doubling or halving). direction, sensitivity and the minimum changes are scalars
    or one value per series.
    """
    raw = np.asarray(values, dtype=float)
    if raw.ndim == 1:
        raw = raw[None, :]
    # counts are scored on log(1 + x): day-to-day noise of event counts is multiplicative (a busy
    # person sends many events), so a doubling of 3 and of 3000 weigh alike; the band is mapped back
    v = np.log1p(np.maximum(raw, 0.0)) if kind == "count" else raw
    s_n, d_n = v.shape
    den = None if denominators is None else np.asarray(denominators, dtype=float).reshape(s_n, d_n)
    dir_code = np.array([DIRECTIONS[d] for d in np.broadcast_to(np.asarray(direction, dtype=object), (s_n,))])
    sens = _per_series(sensitivity, s_n)
    min_rel = _per_series(min_relative_change, s_n)
    sens_down = (
        sens
        if drop_sensitivity is None
        else np.array(
            [
                a if b is None else b
                for a, b in zip(sens, np.broadcast_to(np.asarray(drop_sensitivity, dtype=object), (s_n,)))
            ],
            dtype=float,
        )
    )
    min_rise = (
        min_rel
        if min_relative_rise is None
        else _per_series(
            [
                m if r is None else r
                for m, r in zip(min_rel, np.broadcast_to(np.asarray(min_relative_rise, dtype=object), (s_n,)))
            ],
            s_n,
        )
    )
    min_abs = _per_series(min_absolute_change, s_n)
    min_n = _per_series(min_count, s_n)
    min_exp = _per_series(min_expected, s_n)
    eff = None if effective is None else np.asarray(effective, dtype=float).reshape(s_n, d_n)
    wd = _weekday(np.asarray(days))
    weekend = wd >= 5

    usable = ~np.isnan(v)  # training mask: drops NaNs now, flagged points as they are found
    releveled = np.full(s_n, -1)  # per series, the first day of the last regime change learned (_relevel)
    train = np.zeros_like(usable)  # the window's training days of the day scored (_training_days)
    out = Scored(*(np.full((s_n, d_n), np.nan) for _ in range(5)), basis=np.zeros((s_n, d_n), dtype=np.int8))
    out.reason = np.full((s_n, d_n), SHORT_HISTORY, dtype=np.int8)
    out.flagged = np.zeros((s_n, d_n), dtype=bool)
    run_sens = np.array(
        [np.nan if x is None else float(x) for x in np.broadcast_to(np.asarray(run_sensitivity, dtype=object), (s_n,))]
    )
    run_on = (kind == "count") & (run_days >= 2) & ~np.isnan(run_sens)
    run_rel = min_rel if run_min_relative_change is None else _per_series(run_min_relative_change, s_n)
    if run_on.any():
        out.run_days = np.zeros((s_n, d_n), dtype=np.int8)
        out.run_observed, out.run_expected, out.run_low = (np.full((s_n, d_n), np.nan) for _ in range(3))
        hist_x, hist_scale, hist_usual, hist_n = (np.full((s_n, d_n), np.nan) for _ in range(4))
        fc = np.full((s_n, d_n, run_days), np.nan)  # [series, day, j]: expected of day + j, trained before day
        in_run = np.zeros((s_n, d_n), dtype=bool)  # days an earlier run alert already spoke for
        out.run_persons = np.full((s_n, d_n), np.nan)
        pp = {k: np.full((s_n, d_n), np.nan) for k in ("rate", "spread", "n", "eff", "x")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows are expected on cold start
        for d in range(d_n):
            lo = max(0, d - training_days)
            if lo == d:
                out.reason[:, d] = np.where(np.isnan(v[:, d]), NO_VALUE, SHORT_HISTORY)
                continue
            # the training window, reaching back past the days flags took out of it (`train`)
            window = np.arange(max(0, d - 2 * training_days), d)
            _training_days(train, usable, v, window, lo, min_history_days)
            window = window[(window >= lo) | train[:, window].any(axis=0)]  # (older days no series uses: gone)
            seasonal = np.arange(d - 7, max(-1, d - 7 * seasonal_weeks - 1), -7)
            daytype = window[weekend[window] == weekend[d]]
            n_all = train[:, window].sum(axis=1)
            n_seas = usable[:, seasonal].sum(axis=1) if len(seasonal) else np.zeros(s_n, dtype=int)
            n_type = train[:, daytype].sum(axis=1) if len(daytype) else np.zeros(s_n, dtype=int)
            basis = np.where(n_seas >= min_seasonal_points, 3, np.where(n_type >= min_daytype_points, 2, 1))
            basis = np.where(n_all >= min_history_days, basis, 0)
            x = v[:, d]
            # the reason of each point left unscored: history taken out of training by flags (`usable`
            # drops them) or never there, too few lines, no value; the last that applies is given
            observed = (~np.isnan(v[:, window[window >= lo]])).sum(axis=1)
            reason = np.where(observed >= min_history_days, TRAINING_FLAGGED, SHORT_HISTORY)
            basis = np.where(np.isnan(x), 0, basis)
            if den is not None:
                few = np.nan_to_num(den[:, d], nan=0.0) < min_n
                basis = np.where(few, 0, basis)
                reason = np.where(few, FEW_LINES, reason)
            reason = np.where(np.isnan(x), NO_VALUE, reason)
            out.reason[:, d] = np.where(basis > 0, 0, reason)
            # a regime change, not an incident: when most recent points were taken out of training (by
            # a flag, or a run alert's days), learn from them, and move the days before the change to
            # the new level (_relevel): the same weekday a week or more back no longer speaks for the old
            recent = np.arange(max(0, d - min_history_days), d)
            taken = ~usable[:, recent] & ~np.isnan(v[:, recent])
            n_taken = taken.sum(axis=1)
            # or a few days taken, and nearly every recent day scored on their side of the expected:
            # a change the detector sees only now and then (a persons series under a drop of the rows)
            sides = np.sign(out.score[:, recent])
            side = np.sign(np.nansum(np.where(taken, sides, 0.0), axis=1))
            n_scored = (~np.isnan(sides)).sum(axis=1)
            agree = (sides == side[:, None]).sum(axis=1)
            shifted = (n_taken * 2 > len(recent)) | (
                (n_taken >= shift_min_taken) & (n_scored >= min_history_days // 2) & (agree >= shift_agree * n_scored)
            )
            if shifted.any():
                if v is raw:  # (the caller's array: moved days are this function's own)
                    v = v.copy()
                _relevel(v, usable, taken, shifted, recent, np.arange(max(0, d - 2 * training_days), d), releveled)
                usable[np.ix_(shifted, recent)] = ~np.isnan(v[np.ix_(shifted, recent)])
                _training_days(train, usable, v, window, lo, min_history_days)
            if not basis.any():
                continue
            med = np.full(s_n, np.nan)
            mad = np.full(s_n, np.nan)
            iqr = np.full(s_n, np.nan)
            avg = np.full(s_n, np.nan)
            for b, cols, spread_cols in ((3, seasonal, daytype), (2, daytype, daytype), (1, window, window)):
                rows = basis == b
                if not rows.any() or len(cols) == 0:
                    continue
                h = np.where((usable if b == 3 else train)[np.ix_(rows, cols)], v[np.ix_(rows, cols)], np.nan)
                hs = np.where(train[np.ix_(rows, spread_cols)], v[np.ix_(rows, spread_cols)], np.nan)
                if kind == "count" and trend:
                    # traffic that grows 1% a day sits 7% above a 14-day median and 17% above four
                    # past Mondays: move every training point to day d along its robust slope
                    # at most 5% a day either way: a slope is extrapolated up to four weeks, and a
                    # steeper one is an incident or a launch, not a trend to follow
                    sl = theil_sen(hs, spread_cols, min_trend_points)
                    slope = np.clip(sl, -max_trend, max_trend)
                    h = h + slope[:, None] * (d - cols)[None, :]
                    hs = hs + slope[:, None] * (d - spread_cols)[None, :]
                med[rows] = nan_quantiles(h, (0.5,))[0]
                if kind == "count":
                    avg[rows] = np.log1p(np.nanmean(np.expm1(h), axis=1))
                if run_on.any() and kind == "count":
                    # the run test's expected of the next days, from this day's training: a run is
                    # judged against what was expected before it began, not against a level that
                    # its own first days have already pulled down
                    sl_ = slope if trend else np.zeros(rows.sum())
                    for j in range(1, min(run_days, d_n - d)):
                        fc[rows, d, j] = _forecast(
                            d + j,
                            b,
                            window,
                            v,
                            usable,
                            train,
                            rows,
                            sl_,
                            weekend,
                            seasonal_weeks,
                            min_seasonal_points,
                            min_daytype_points,
                        )
                # the spread comes from the larger same-day-type set: 3 or 4 past Mondays give the
                # level, but their MAD alone would understate the noise
                if b == 3 and (spread_cols >= lo).sum() >= min_daytype_points:
                    h = hs
                m, q1, q3 = nan_quantiles(h, (0.5, 0.25, 0.75))
                mad[rows] = nan_quantiles(np.abs(h - m[:, None]), (0.5,))[0]
                iqr[rows] = q3 - q1
                if b == 3 and kind == "count":
                    # judged against the same weekday, the noise is that of week-over-week changes
                    # (over sqrt 2): a weekday set's spread would count Friday's usual dip as noise
                    wk = window[window >= 7]
                    both = train[np.ix_(rows, wk)] & usable[np.ix_(rows, wk - 7)]
                    ww = np.where(both, v[np.ix_(rows, wk)] - v[np.ix_(rows, wk - 7)], np.nan)
                    if trend:
                        ww = ww - 7 * slope[:, None]
                    wm = nan_quantiles(ww, (0.5,))[0]
                    w_mad = nan_quantiles(np.abs(ww - wm[:, None]), (0.5,))[0] / np.sqrt(2)
                    ok = both.sum(axis=1) >= min_trend_points
                    mad[rows] = np.where(ok, w_mad, mad[rows])
                    iqr[rows] = np.where(ok, 0.0, iqr[rows])
            # MAD alone collapses on a two-level series (weekday/weekend, bursts); the IQR does not
            scale = np.maximum(MAD_TO_SIGMA * mad, iqr / IQR_TO_SIGMA)
            if kind == "count":
                usual = np.expm1(med)
                if eff is not None:
                    e = np.where(train[:, window], eff[:, window], np.nan)
                    usual = np.minimum(usual, np.nan_to_num(nan_quantiles(e, (0.5,))[0], nan=0.0))
            elif kind == "share":
                n = den[:, d] if den is not None else np.ones(s_n)
                n = np.maximum(np.nan_to_num(n, nan=1.0), 1.0)
                p = (med * n + 1) / (n + 2)  # Laplace: a share that was always 0 still has a noise floor
                scale = np.maximum(scale, np.sqrt(p * (1 - p) / n))
            scale = np.maximum(scale, 1e-9)
            diff = x - med
            z = diff / scale
            dir_ok = (dir_code == 0) | (np.sign(diff) == dir_code)
            if kind == "count":
                x_o, med_o = np.expm1(x), np.expm1(med)
                n_pts = np.where(
                    basis == 3, np.maximum(n_seas, 1), np.where(basis == 2, np.maximum(n_type, 1), np.maximum(n_all, 1))
                )
                # low counts: the median of a few small integers is coarse; the mean of the same days
                # judges the upper tail when it is higher, the lower tail when it is lower
                avg_o = np.expm1(avg)
                p_lo, p_hi, low, high = count_tails(
                    x_o,
                    np.minimum(med_o, avg_o),
                    scale,
                    usual,
                    n_pts,
                    alpha_of(sens),
                    mu_up=np.maximum(med_o, avg_o),
                    alpha_low=alpha_of(sens_down),
                )
                # the count model's tail probability, as a z (sign: direction of the change)
                z = np.where(diff < 0, -_z_of(p_lo), _z_of(p_hi))  # the count model's tail as a z
                diff_o = x_o - med_o
                # a ratio either way: min_relative_change 1.0 means doubling or halving
                ratio = np.maximum(x_o, 0.5) / np.maximum(med_o, 0.5)
                rel = np.maximum(ratio, 1 / ratio) - 1
                big_enough = usual >= min_exp
                tail = np.where(diff < 0, p_lo / alpha_of(sens_down), p_hi / alpha_of(sens))
                flag = (
                    (basis > 0)
                    & dir_ok
                    & (tail < 1.0)
                    & (rel > np.where(diff < 0, min_rel, min_rise))
                    & (np.abs(diff_o) > min_abs)
                    & big_enough
                )
                if run_on.any():
                    fc[:, d, 0] = np.where(basis > 0, np.minimum(med_o, avg_o), np.nan)
                    hist_x[:, d] = np.where(basis > 0, x_o, np.nan)
                    hist_scale[:, d], hist_usual[:, d], hist_n[:, d] = scale, usual, n_pts
                    ok = run_on & (basis > 0) & ~flag & (dir_code != 1) & big_enough
                    run_hit = _run_test(
                        d, ok, run_sens, run_rel, run_days, out, fc, hist_x, hist_scale, hist_usual, hist_n, in_run
                    )
                    flag = flag | run_hit
                    if eff is not None:
                        pp_hit = _per_person_test(
                            d,
                            ok & ~run_hit,
                            x_o,
                            eff,
                            v,
                            train,
                            window,
                            run_sens,
                            run_rel,
                            run_days,
                            out,
                            pp,
                            in_run,
                            min_history_days,
                        )
                        flag = flag | pp_hit
                low, high = np.minimum(low, med_o / (1 + min_rel)), np.maximum(high, med_o * (1 + min_rise))
                low, high = np.minimum(low, med_o - min_abs), np.maximum(high, med_o + min_abs)
                med = med_o
            else:
                x_o, med_o, diff_o = x, med, diff
                rel = np.abs(diff_o) / np.maximum(np.abs(med_o), 1e-9)
                flag = (basis > 0) & dir_ok & (np.abs(z) > sens) & (rel > min_rel) & (np.abs(diff_o) > min_abs)
                band = np.maximum.reduce([sens * scale, min_rel * np.abs(med), min_abs])
                low, high = med - band, med + band
            if kind in ("count", "share"):
                low = np.maximum(low, 0.0)
            if kind == "share":
                high = np.minimum(high, 1.0)
            scored = basis > 0
            out.expected[scored, d] = med[scored]
            out.low[scored, d] = low[scored]
            out.high[scored, d] = high[scored]
            out.score[scored, d] = z[scored]
            out.basis[:, d] = basis
            out.flagged[:, d] = flag
            usable[flag, d] = False  # a past anomaly never trains the band again
            if run_on.any():  # nor does any day of a run that raised an alert
                for k in range(2, run_days + 1):
                    rows = out.run_days[:, d] == k
                    if rows.any():
                        usable[np.ix_(rows, np.arange(d - k + 1, d + 1))] = False
                        in_run[np.ix_(rows, np.arange(d - k + 1, d + 1))] = True
    return out
