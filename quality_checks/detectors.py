"""Anomaly detectors over quality.daily_metrics: one row per anomaly, with its expected range.

Series detectors (robust scoring in `scoring.py`): volume, persons, null_rate, quarantine_share,
lag_p95_seconds. Rule detectors: type_change (a JSON type new to a property), enum_drift (PSI of an
enum's value mix), new_event (an event name outside the plan), freshness (an expected event silent
for too long), coverage (a planned active event unseen for N days) and sunset (an event still
arriving after its sunset date).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tracking_plan.quality_settings import QualitySettings

from .scoring import NO_VALUE, NOT_SCORED, score_matrix
from .store import WARN

COLUMNS = [
    "day",
    "event_name",
    "metric",
    "property",
    "dimension",
    "observed",
    "expected",
    "expected_low",
    "expected_high",
    "score",
    "direction",
    "detector",
    "severity",
    "message",
]


def anomaly(
    day,
    event_name: str,
    metric: str,
    observed: float,
    detector: str,
    message: str,
    *,
    prop: str = "",
    dimension: str = "",
    expected: float = 0.0,
    low: float = 0.0,
    high: float = 0.0,
    score: float = np.nan,
    direction: str = "up",
) -> dict:
    """One row of quality.anomalies (COLUMNS but its severity, which `detect` sets)."""
    return {
        "day": day,
        "event_name": event_name,
        "metric": metric,
        "property": prop,
        "dimension": dimension,
        "observed": observed,
        "expected": expected,
        "expected_low": low,
        "expected_high": high,
        "score": score,
        "direction": direction,
        "detector": detector,
        "message": message,
    }


SERIES = {
    "volume": "count",
    "persons": "count",
    "null_rate": "share",
    "quarantine_share": "share",
    "lag_p95_seconds": "level",
}
# PSI noise bound: PSI ~ chi2(k-1) * (1/n1 + 1/n2) under no change; this quantile keeps it rare
PSI_NOISE_QUANTILE = 0.999


def _calendar(m: pd.DataFrame) -> np.ndarray:
    d = pd.to_datetime(m["day"])
    return np.arange(
        d.min().to_datetime64().astype("datetime64[D]"),
        d.max().to_datetime64().astype("datetime64[D]") + np.timedelta64(1, "D"),
    )


def _prepared(metrics: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The metrics with `day` as timestamps (a copy), and their calendar of consecutive days."""
    m = metrics.copy()
    m["day"] = pd.to_datetime(m["day"])
    return m, _calendar(m)


def _pivot(m: pd.DataFrame, metric: str, cal: np.ndarray, col: str = "value") -> pd.DataFrame:
    sub = m[m["metric"] == metric]
    if sub.empty:
        return pd.DataFrame(columns=pd.DatetimeIndex(cal))
    p = sub.pivot_table(index=["event_name", "property", "dimension"], columns="day", values=col, aggfunc="first")
    p.columns = pd.to_datetime(p.columns)
    return p.reindex(columns=pd.DatetimeIndex(cal))


def decisions(m: pd.DataFrame, first_scored) -> dict[str, int]:
    """The decisions each detector makes over quality.daily_metrics rows `m` from day `first_scored`:
    one per series and day (an event-day for the rule detectors on events). The exposure a false-alert
    rate is per (benchmarks/detector_bench.py; tests hold a clean sample to that rate)."""
    m = m[pd.to_datetime(m["day"]) >= pd.Timestamp(first_scored)]
    out = {k: int((m["metric"] == k).sum()) for k in SERIES}
    out["type_change"] = len(m[m["metric"] == "type_share"][["day", "event_name", "property"]].drop_duplicates())
    out["enum_drift"] = len(m[m["metric"] == "enum_share"][["day", "event_name", "property"]].drop_duplicates())
    for k in ("new_event", "freshness", "coverage", "sunset"):
        out[k] = out["volume"]
    return out


def complete_days(cal: np.ndarray, last_seen: pd.DataFrame | None, s: QualitySettings) -> np.ndarray:
    """Which calendar days are complete: the newest event received anywhere is within
    `partial_day_grace_minutes` of the day's end (or later). A run in the middle of a day sees that
    day partial; its counts are scored by the first run after it is complete. Without `last_seen`,
    every day is taken as complete."""
    done = np.ones(len(cal), dtype=bool)
    if last_seen is None or last_seen.empty or last_seen["last_received_at"].isna().all():
        return done
    clock = pd.Timestamp(last_seen["last_received_at"].max()).to_datetime64()
    ends = (
        cal.astype("datetime64[D]")
        + np.timedelta64(1, "D")
        - np.timedelta64(int(s.partial_day_grace_minutes * 60), "s")
    )
    return clock >= ends


def _scored_series(m: pd.DataFrame, s: QualitySettings, cal: np.ndarray, complete: np.ndarray | None = None):
    """(metric, series index, values, Scored) of every series metric."""
    vol = _pivot(m, "volume", cal)
    persons = _pivot(m, "persons", cal)
    for metric, kind in SERIES.items():
        p = _pivot(m, metric, cal)
        if p.empty:
            continue
        den = _pivot(m, metric, cal, "denominator").reindex(p.index).to_numpy(dtype=float)
        vals = p.to_numpy(dtype=float, copy=True)
        if metric == "persons":  # no events that day: zero persons, not unknown
            zero_days = vol.droplevel([1, 2]).reindex(p.index.get_level_values(0)).to_numpy(dtype=float) == 0
            vals = np.where(np.isnan(vals) & zero_days, 0.0, vals)
        if kind == "count" and complete is not None:  # a partial day's count is not yet the day's count
            vals[:, ~complete] = np.nan
        events = p.index.get_level_values(0)
        eff = None
        if kind == "count" and not persons.empty:  # persons behind the counts: see score_matrix
            eff = persons.droplevel([1, 2]).reindex(events).to_numpy(dtype=float)
            eff = np.where(np.isnan(eff) & (vals == 0), 0.0, eff)
        tun = [s.tuning(metric, e) for e in events]
        r = score_matrix(
            vals,
            cal,
            kind=kind,
            denominators=den,
            direction=[t.direction for t in tun],
            sensitivity=[t.sensitivity for t in tun],
            min_relative_change=[t.min_relative_change for t in tun],
            min_relative_rise=[t.min_relative_rise for t in tun],
            drop_sensitivity=[t.drop_sensitivity for t in tun],
            min_absolute_change=[t.min_absolute_change for t in tun],
            min_count=[t.min_count for t in tun],
            min_expected=[t.min_expected for t in tun],
            effective=eff,
            training_days=s.training_days,
            min_history_days=s.min_history_days,
            seasonal_weeks=s.seasonal_weeks,
            min_seasonal_points=s.min_seasonal_points,
            min_daytype_points=s.min_daytype_points,
            run_days=s.drop_run_days,
            run_sensitivity=[t.run_sensitivity for t in tun],
            run_min_relative_change=[
                t.min_relative_change if t.run_min_relative_change is None else t.run_min_relative_change for t in tun
            ],
            shift_min_taken=s.shift_min_taken,
            shift_agree=s.shift_agree,
        )
        if kind == "count" and complete is not None:  # a count there, not scored until its day is complete
            r.reason[:, ~complete] = np.where(np.isnan(p.to_numpy(dtype=float)[:, ~complete]), NO_VALUE, DAY_OPEN)
        yield metric, p.index, vals, r


DAY_OPEN = 5  # Scored.reason of a count on a day not yet complete (complete_days)
UNSCORED = {**NOT_SCORED, DAY_OPEN: "the day is not complete yet"}
COVERAGE_EXAMPLES = 5  # series named per day and reason in scoring_coverage


def _label(key: tuple) -> str:
    ev, prop, dim = key
    return " / ".join(x for x in (ev, prop, dim) if x)


def _tally(metric: str, index: pd.MultiIndex, r, cal: np.ndarray) -> list[dict]:
    """scoring_coverage's rows of one series metric: per day, the series scored and those not, by reason."""
    rows = []
    for code in [0, *UNSCORED]:
        hit = (r.basis > 0) if code == 0 else (r.basis == 0) & (r.reason == code)
        for d in np.flatnonzero(hit.any(axis=0)):
            who = np.flatnonzero(hit[:, d])
            rows.append(
                {
                    "day": pd.Timestamp(cal[d]).date(),
                    "metric": metric,
                    "status": "scored" if code == 0 else UNSCORED[code],
                    "series": len(who),
                    "examples": [] if code == 0 else [_label(index[i]) for i in who[:COVERAGE_EXAMPLES]],
                }
            )
    return rows


def scoring_coverage(
    metrics: pd.DataFrame, settings: QualitySettings | None = None, last_seen: pd.DataFrame | None = None
) -> pd.DataFrame:
    """What the series detectors did with every series on every day: one row per day, metric and
    status ("scored", or why not: UNSCORED), with how many series and up to COVERAGE_EXAMPLES of those
    not scored by name. An empty anomaly list means nothing only with this beside it: a warehouse of
    five days has no anomalies because nothing could be scored yet."""
    s = settings or QualitySettings()
    if metrics.empty:
        return coverage_frame([])
    m, cal = _prepared(metrics)
    rows = []
    for metric, index, _vals, r in _scored_series(m, s, cal, complete_days(cal, last_seen, s)):
        rows += _tally(metric, index, r, cal)
    return coverage_frame(rows)


def coverage_frame(rows: list[dict]) -> pd.DataFrame:
    """scoring_coverage's frame of its rows (or of those `detect(scored=...)` collected)."""
    cols = ["day", "metric", "status", "series", "examples"]
    out = pd.DataFrame(rows, columns=cols)
    return out.sort_values(["day", "metric", "status"], kind="stable").reset_index(drop=True)


def last_day_coverage(cov: pd.DataFrame) -> dict | None:
    """The newest day of a scoring_coverage frame in a few numbers: how many series there were, how
    many were scored, how many were not by reason, and up to COVERAGE_EXAMPLES of each by name."""
    if cov.empty:
        return None
    day = cov["day"].max()
    c = cov[cov["day"] == day]
    skipped = c[c["status"] != "scored"]
    by = skipped.groupby("status", sort=False)
    return {
        "day": str(day),
        "series": int(c["series"].sum()),
        "scored": int(c.loc[c["status"] == "scored", "series"].sum()),
        "not_scored": {k: int(v) for k, v in by["series"].sum().items()},
        "examples": {k: [x for xs in v for x in xs][:COVERAGE_EXAMPLES] for k, v in by["examples"]},
    }


def series_anomalies(
    m: pd.DataFrame,
    s: QualitySettings,
    cal: np.ndarray,
    complete: np.ndarray | None = None,
    scored: list | None = None,
) -> list[dict]:
    """The series detectors' anomalies; with `scored` (a list), scoring_coverage's rows appended to it."""
    out = []
    for metric, index, vals, r in _scored_series(m, s, cal, complete):
        if scored is not None:
            scored += _tally(metric, index, r, cal)
        for i, d in zip(*np.nonzero(r.flagged)):
            ev, prop, dim = index[i]
            obs, exp = vals[i, d], r.expected[i, d]
            low, high = r.low[i, d], r.high[i, d]
            where = f" of {prop}" if prop else ""
            msg = f"{ev}: {metric}{where} {obs:.4g} outside [{low:.4g}, {high:.4g}]"
            k = 0 if r.run_days is None else int(r.run_days[i, d])
            if k:  # a sustained drop: the run's total against its expected total (no upper end)
                obs, exp, low, high = r.run_observed[i, d], r.run_expected[i, d], r.run_low[i, d], np.nan
                first = pd.Timestamp(cal[d - k + 1]).date()
                span = f"on {first}" if k == 1 else f"in the {k} days from {first}"
                ppl = np.nan if r.run_persons is None else r.run_persons[i, d]
                why = (
                    f"expected {exp:.4g}: a sustained drop"
                    if np.isnan(ppl)
                    else f"expected {exp:.4g} from {ppl:.0f} persons at their usual {exp / ppl:.3g} each: "
                    "fewer events per person"
                )
                msg = f"{ev}: {metric}{where} {obs:.4g} {span}, below {low:.4g} ({why})"
            out.append(
                anomaly(
                    cal[d],
                    ev,
                    metric,
                    obs,
                    metric,
                    msg,
                    prop=prop,
                    dimension=dim,
                    expected=exp,
                    low=low,
                    high=high,
                    score=r.score[i, d],
                    direction="up" if obs > exp else "down",
                )
            )
    return out


def series_bands(
    metrics: pd.DataFrame, settings: QualitySettings | None = None, last_seen: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Every scored point of the series detectors with its expected range (flagged or not):
    day, event_name, metric, property, dimension, observed, expected, expected_low, expected_high, flagged."""
    s = settings or QualitySettings()
    m, cal = _prepared(metrics)
    rows = []
    for metric, index, vals, r in _scored_series(m, s, cal, complete_days(cal, last_seen, s)):
        i, d = np.nonzero(r.basis > 0)
        keys = index[i]
        rows.append(
            pd.DataFrame(
                {
                    "day": pd.to_datetime(cal[d]).date,
                    "event_name": keys.get_level_values(0),
                    "metric": metric,
                    "property": keys.get_level_values(1),
                    "dimension": keys.get_level_values(2),
                    "observed": vals[i, d],
                    "expected": r.expected[i, d],
                    "expected_low": r.low[i, d],
                    "expected_high": r.high[i, d],
                    "flagged": r.flagged[i, d],
                }
            )
        )
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()


def _training_cols(d: int, s: QualitySettings) -> range:
    """The days before day index `d` that may train it (never `d` itself)."""
    return range(max(0, d - s.training_days), d)


def type_changes(m: pd.DataFrame, s: QualitySettings, cal: np.ndarray) -> list[dict]:
    """A JSON type reaching `type_change_min_share` of a property's values, absent in the training window."""
    p = _pivot(m, "type_share", cal)
    if p.empty:
        return []
    vals = p.fillna(0.0).to_numpy()
    # values of the property (any type) each day: the denominator every type's share shares
    n_prop = _pivot(m, "type_share", cal, "denominator").groupby(level=[0, 1]).max()
    n = n_prop.reindex(p.index.droplevel(2)).fillna(0.0).to_numpy(dtype=float)
    flagged = np.zeros(vals.shape, dtype=bool)
    out = []
    for d in range(len(cal)):
        cols = np.array(_training_cols(d, s), dtype=int)
        if len(cols) == 0:
            continue
        clean = ~flagged[:, cols]
        before = np.where(clean, vals[:, cols], 0.0).max(axis=1)
        seen = np.where(clean, n[:, cols], 0.0).sum(axis=1)
        # under 1% before: at most a stray wrong-typed value, not the property's type
        # and at least 3 values of it: one or two odd values on a quiet day are not a change
        hit = (
            (vals[:, d] >= s.type_change_min_share)
            & (vals[:, d] * n[:, d] >= 3)
            & (before < 0.01)
            & (seen >= s.type_change_min_history)
        )
        flagged[:, d] = hit
        for i in np.flatnonzero(hit):
            ev, prop, jtype = p.index[i]
            out.append(
                anomaly(
                    cal[d],
                    ev,
                    "type_share",
                    vals[i, d],
                    "type_change",
                    f"{ev}.{prop} arrives as {jtype} ({vals[i, d]:.0%} of values), "
                    f"not seen in the previous {len(cols)} days",
                    prop=prop,
                    dimension=jtype,
                    expected=float(before[i]),
                    high=0.01,
                )
            )
    return out


def enum_drift(m: pd.DataFrame, s: QualitySettings, cal: np.ndarray) -> list[dict]:
    """Population stability index of an enum's value mix against the training window.

    All enum properties at once: rows are (event, property, value), `g` maps a row to its property.
    """
    from scipy.stats import chi2

    p = _pivot(m, "enum_share", cal)
    if p.empty:
        return []
    den = _pivot(m, "enum_share", cal, "denominator").reindex(p.index)
    mat = (p.fillna(0.0) * den.fillna(0.0)).to_numpy(dtype=float)  # values counted per day
    keys = p.index.droplevel(2)
    g = pd.factorize(keys)[0]
    n_g = g.max() + 1
    k = np.bincount(g, minlength=n_g)  # values per property
    tot = np.zeros((n_g, len(cal)))
    np.add.at(tot, g, mat)
    flagged = np.zeros((n_g, len(cal)), dtype=bool)
    bound_q = chi2.ppf(PSI_NOISE_QUANTILE, np.maximum(k - 1, 1))
    # values come in clusters: a person on iOS sends every event from iOS, so the noise bound counts
    # the distinct persons behind the values (when known), not the values
    persons = _pivot(m, "persons", cal)
    event_of = [keys[np.flatnonzero(g == j)[0]][0] for j in range(n_g)]
    ppl = (
        persons.droplevel([1, 2]).reindex(event_of).to_numpy(dtype=float)
        if not persons.empty
        else np.full((n_g, len(cal)), np.nan)
    )
    ppl = np.where(np.isnan(ppl), tot, np.minimum(ppl, tot))
    out = []
    for d in range(len(cal)):
        cols = np.array(_training_cols(d, s), dtype=int)
        if len(cols) == 0:
            continue
        use = ~flagged[:, cols] & (tot[:, cols] > 0)  # [group, window]
        base = (mat[:, cols] * use[g]).sum(axis=1)
        n1, n2 = tot[:, d], np.bincount(g, weights=base, minlength=n_g)
        e1, e2 = np.maximum(ppl[:, d], 1.0), np.maximum((ppl[:, cols] * use).sum(axis=1), 1.0)
        ok = (use.sum(axis=1) >= s.min_history_days) & (n1 >= s.psi_min_count)
        if not ok.any():
            continue
        pp = (mat[:, d] + 0.5) / (n1[g] + 0.5 * k[g])  # half a count per value: no log(0)
        qq = (base + 0.5) / (n2[g] + 0.5 * k[g])
        psi = np.bincount(g, weights=(pp - qq) * np.log(pp / qq), minlength=n_g)
        with np.errstate(divide="ignore"):
            bound = np.maximum(s.psi_threshold, bound_q * (1 / e1 + 1 / e2))
        hit = ok & (psi > bound)
        flagged[:, d] = hit
        for j in np.flatnonzero(hit):
            rows = np.flatnonzero(g == j)
            top = p.index[rows[int(np.argmax(np.abs(pp[rows] - qq[rows])))]][2]
            ev, prop = keys[rows[0]]
            out.append(
                anomaly(
                    cal[d],
                    ev,
                    "enum_share",
                    psi[j],
                    "enum_drift",
                    f"{ev}.{prop} value mix shifted (PSI {psi[j]:.2f} > {bound[j]:.2f}; most: {top})",
                    prop=prop,
                    dimension=str(top),
                    high=bound[j],
                    score=psi[j] / bound[j],
                )
            )
    return out


def new_events(m: pd.DataFrame, plan, cal: np.ndarray) -> list[dict]:
    """An event name outside the plan, on the first day it is sent."""
    q = m[(m["metric"] == "quarantined") & ~m["event_name"].isin(list(plan.events)) & (m["value"] > 0)]
    out = []
    for ev, g in q.groupby("event_name"):
        first = g.sort_values("day").iloc[0]
        out.append(
            anomaly(
                np.datetime64(pd.Timestamp(first["day"]).date(), "D"),
                ev,
                "quarantined",
                float(first["value"]),
                "new_event",
                f"unknown event {ev!r} sent {int(first['value'])} times",
            )
        )
    return out


def _silence_units(s: QualitySettings) -> float:
    """Expected events whose total absence is as unlikely as a count beyond `sensitivity`:
    P(0 | Poisson(k)) = e^-k = alpha, so k = -ln(alpha) (12.6 at 4.5)."""
    from .scoring import alpha_of

    return float(-np.log(alpha_of(s.sensitivity)))


def freshness(last_seen: pd.DataFrame, m: pd.DataFrame, s: QualitySettings) -> list[dict]:
    """An event usually seen every day, silent for longer than chance allows (and `freshness_hours`).

    last_seen: event_name, last_received_at (naive UTC); the clock is the newest event of all, so
    a backfill of old data is judged by its own time, not the wall clock.
    """
    if last_seen.empty:
        return []
    clock = pd.Timestamp(last_seen["last_received_at"].max())
    vol = m[m["metric"] == "volume"]
    # each event's volume rows, split once (filtering every event's rows out of the whole table cost
    # ~2 ms an event: 0.1 CPU-s over 30 days)
    by_event = {ev: g.assign(day=pd.to_datetime(g["day"])) for ev, g in vol.groupby("event_name", sort=False)}
    none = vol.iloc[:0].assign(day=pd.to_datetime(vol["day"].iloc[:0]))
    out = []
    for ev, last in zip(last_seen["event_name"], pd.to_datetime(last_seen["last_received_at"])):
        hist = by_event.get(ev, none)
        hist = hist[hist["day"] <= last.normalize()]
        hist = hist.sort_values("day").tail(s.training_days)
        if len(hist) < s.min_history_days:
            continue
        rate = float(hist["value"].median()) / 24.0  # events per hour on a usual day
        if rate <= 0:
            continue
        # P(no event for h hours) = exp(-rate h) below the count model's tail probability: silence
        # this long is not chance
        allowed = max(s.freshness_hours, _silence_units(s) / rate)
        silent = (clock - last).total_seconds() / 3600
        if silent > allowed:
            due = (last + pd.Timedelta(hours=allowed)).date()
            out.append(
                anomaly(
                    np.datetime64(due, "D"),
                    ev,
                    "hours_since_last_event",
                    silent,
                    "freshness",
                    f"{ev} silent for {silent:.0f} h (allowed {allowed:.0f} h; last {last})",
                    expected=1 / rate,
                    high=allowed,
                    score=silent / allowed,
                )
            )
    return out


def coverage(m: pd.DataFrame, plan, s: QualitySettings, cal: np.ndarray) -> list[dict]:
    """Planned active events unseen for `coverage_days` (when expected), and events after their sunset."""
    out = []
    vol = m[(m["metric"] == "volume") & (m["value"] > 0)]
    seen = vol.groupby("event_name")["day"].agg(["min", "max"])
    end = pd.Timestamp(cal[-1])
    span = len(cal)
    for ev in plan.events.values():
        if ev.sunset:
            late = vol[(vol["event_name"] == ev.name) & (pd.to_datetime(vol["day"]) > pd.Timestamp(ev.sunset))]
            if not late.empty:
                first = late.sort_values("day").iloc[0]
                out.append(
                    anomaly(
                        np.datetime64(pd.Timestamp(first["day"]).date(), "D"),
                        ev.name,
                        "volume",
                        float(first["value"]),
                        "sunset",
                        f"{ev.name} still arriving after its sunset {ev.sunset}",
                    )
                )
        if ev.status != "active":
            continue
        if ev.name not in seen.index:
            if span >= s.coverage_days:
                out.append(
                    anomaly(
                        cal[s.coverage_days - 1],
                        ev.name,
                        "volume",
                        0.0,
                        "coverage",
                        f"{ev.name} is planned and active but was never seen",
                        expected=np.nan,
                        low=np.nan,
                        high=np.nan,
                        direction="down",
                    )
                )
            continue
        last = pd.Timestamp(seen.loc[ev.name, "max"])
        gap = (end - last).days
        if gap < s.coverage_days:
            continue
        # its daily rate over everything observed up to its last day (not first-to-last seen: an
        # event seen once would look like a daily one)
        n = vol[(vol["event_name"] == ev.name)]["value"].sum()
        rate = n / max((last - pd.Timestamp(cal[0])).days + 1, 1)
        if rate * s.coverage_days >= _silence_units(s):  # P(0 | Poisson) below the tail probability
            out.append(
                anomaly(
                    np.datetime64((last + pd.Timedelta(days=s.coverage_days)).date(), "D"),
                    ev.name,
                    "volume",
                    0.0,
                    "coverage",
                    f"{ev.name} unseen for {gap} days (about {rate:.1f} a day before)",
                    expected=rate * s.coverage_days,
                    low=1.0,
                    high=np.nan,
                    direction="down",
                )
            )
    return out


def detect(
    metrics: pd.DataFrame,
    plan,
    settings: QualitySettings | None = None,
    last_seen: pd.DataFrame | None = None,
    scored: list | None = None,
) -> pd.DataFrame:
    """Every anomaly in the metrics table, one row each (columns: COLUMNS). With `scored` (a list):
    what the series detectors scored and what not, and why, appended to it (scoring_coverage's rows)."""
    s = settings or QualitySettings()
    if metrics.empty:
        return pd.DataFrame(columns=COLUMNS)
    m, cal = _prepared(metrics)
    rows = (
        series_anomalies(m, s, cal, complete_days(cal, last_seen, s), scored)
        + type_changes(m, s, cal)
        + enum_drift(m, s, cal)
        + new_events(m, plan, cal)
        + coverage(m, plan, s, cal)
        + (freshness(last_seen, m, s) if last_seen is not None else [])
    )
    out = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "severity"])
    out["severity"] = WARN
    out["day"] = pd.to_datetime(out["day"]).dt.date
    return out[COLUMNS].sort_values(["day", "event_name", "detector"], kind="stable").reset_index(drop=True)
