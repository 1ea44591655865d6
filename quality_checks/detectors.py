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

from .scoring import score_matrix
from .store import WARN

COLUMNS = ["day", "event_name", "metric", "property", "dimension", "observed", "expected", "expected_low",
           "expected_high", "score", "direction", "detector", "severity", "message"]
SERIES = {"volume": "count", "persons": "count", "null_rate": "share", "quarantine_share": "share",
          "lag_p95_seconds": "level"}
# PSI noise bound: PSI ~ chi2(k-1) * (1/n1 + 1/n2) under no change; this quantile keeps it rare
PSI_NOISE_QUANTILE = 0.999


def _calendar(m: pd.DataFrame) -> np.ndarray:
    d = pd.to_datetime(m["day"])
    return np.arange(d.min().to_datetime64().astype("datetime64[D]"),
                     d.max().to_datetime64().astype("datetime64[D]") + np.timedelta64(1, "D"))


def _pivot(m: pd.DataFrame, metric: str, cal: np.ndarray, col: str = "value") -> pd.DataFrame:
    sub = m[m["metric"] == metric]
    if sub.empty:
        return pd.DataFrame(columns=pd.DatetimeIndex(cal))
    p = sub.pivot_table(index=["event_name", "property", "dimension"], columns="day", values=col, aggfunc="first")
    p.columns = pd.to_datetime(p.columns)
    return p.reindex(columns=pd.DatetimeIndex(cal))


def series_anomalies(m: pd.DataFrame, s: QualitySettings, cal: np.ndarray) -> list[dict]:
    out = []
    vol = _pivot(m, "volume", cal)
    persons = _pivot(m, "persons", cal)
    for metric, kind in SERIES.items():
        p = _pivot(m, metric, cal)
        if p.empty:
            continue
        den = _pivot(m, metric, cal, "denominator").reindex(p.index).to_numpy(dtype=float)
        vals = p.to_numpy(dtype=float)
        if metric == "persons":  # no events that day: zero persons, not unknown
            zero_days = vol.droplevel([1, 2]).reindex(p.index.get_level_values(0)).to_numpy(dtype=float) == 0
            vals = np.where(np.isnan(vals) & zero_days, 0.0, vals)
        events = p.index.get_level_values(0)
        eff = None
        if kind == "count" and not persons.empty:  # persons behind the counts: see score_matrix
            eff = persons.droplevel([1, 2]).reindex(events).to_numpy(dtype=float)
            eff = np.where(np.isnan(eff) & (vals == 0), 0.0, eff)
        tun = [s.tuning(metric, e) for e in events]
        r = score_matrix(vals, cal, kind=kind, denominators=den, direction=[t.direction for t in tun],
                         sensitivity=[t.sensitivity for t in tun],
                         min_relative_change=[t.min_relative_change for t in tun],
                         min_absolute_change=[t.min_absolute_change for t in tun],
                         min_count=[t.min_count for t in tun], min_expected=[t.min_expected for t in tun],
                         effective=eff,
                         training_days=s.training_days, min_history_days=s.min_history_days,
                         seasonal_weeks=s.seasonal_weeks, min_seasonal_points=s.min_seasonal_points,
                         min_daytype_points=s.min_daytype_points, zero_min_median=s.zero_min_median)
        for i, d in zip(*np.nonzero(r.flagged)):
            ev, prop, dim = p.index[i]
            obs, exp = vals[i, d], r.expected[i, d]
            where = f" of {prop}" if prop else ""
            out.append({"day": cal[d], "event_name": ev, "metric": metric, "property": prop, "dimension": dim, "observed": obs,
                            "expected": exp, "expected_low": r.low[i, d], "expected_high": r.high[i, d],
                            "score": r.score[i, d], "direction": "up" if obs > exp else "down", "detector": metric,
                            "message": f"{ev}: {metric}{where} {obs:.4g} outside [{r.low[i, d]:.4g}, {r.high[i, d]:.4g}]"})
    return out


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
        hit = (vals[:, d] >= s.type_change_min_share) & (before < 0.01) & (seen >= s.type_change_min_history)
        flagged[:, d] = hit
        for i in np.flatnonzero(hit):
            ev, prop, jtype = p.index[i]
            out.append({"day": cal[d], "event_name": ev, "metric": "type_share", "property": prop, "dimension": jtype,
                            "observed": vals[i, d], "expected": float(before[i]), "expected_low": 0.0,
                            "expected_high": 0.01, "score": np.nan, "direction": "up", "detector": "type_change",
                            "message": f"{ev}.{prop} arrives as {jtype} ({vals[i, d]:.0%} of values), "
                                    f"not seen in the previous {len(cols)} days"})
    return out


def enum_drift(m: pd.DataFrame, s: QualitySettings, cal: np.ndarray) -> list[dict]:
    """Population stability index of an enum's value mix against the training window."""
    from scipy.stats import chi2

    sub = m[m["metric"] == "enum_share"].copy()
    if sub.empty:
        return []
    sub["n"] = sub["value"] * sub["denominator"]
    out = []
    day_ix = {np.datetime64(pd.Timestamp(x).date(), "D"): j for j, x in enumerate(cal)}
    for (ev, prop), g in sub.groupby(["event_name", "property"], sort=False):
        counts = g.pivot_table(index="dimension", columns="day", values="n", aggfunc="sum").fillna(0.0)
        mat = np.zeros((len(counts), len(cal)))
        for c, col in zip(counts.columns, counts.to_numpy().T):
            mat[:, day_ix[np.datetime64(pd.Timestamp(c).date(), "D")]] = col
        flagged = np.zeros(len(cal), dtype=bool)
        for d in range(len(cal)):
            cols = [c for c in _training_cols(d, s) if not flagged[c] and mat[:, c].sum() > 0]
            today = mat[:, d]
            if len(cols) < s.min_history_days or today.sum() < s.psi_min_count:
                continue
            base = mat[:, cols].sum(axis=1)
            n1, n2 = today.sum(), base.sum()
            p = (today + 0.5) / (n1 + 0.5 * len(today))  # half a count per value: no log(0)
            q = (base + 0.5) / (n2 + 0.5 * len(base))
            psi = float(np.sum((p - q) * np.log(p / q)))
            bound = max(s.psi_threshold, chi2.ppf(PSI_NOISE_QUANTILE, max(len(p) - 1, 1)) * (1 / n1 + 1 / n2))
            if psi > bound:
                flagged[d] = True
                top = counts.index[int(np.argmax(np.abs(p - q)))]
                out.append({"day": cal[d], "event_name": ev, "metric": "enum_share", "property": prop, "dimension": str(top),
                                "observed": psi, "expected": 0.0, "expected_low": 0.0, "expected_high": bound, "score": psi / bound,
                                "direction": "up", "detector": "enum_drift",
                                "message": f"{ev}.{prop} value mix shifted (PSI {psi:.2f} > {bound:.2f}; most: {top})"})
    return out


def new_events(m: pd.DataFrame, plan, cal: np.ndarray) -> list[dict]:
    """An event name outside the plan, on the first day it is sent."""
    q = m[(m["metric"] == "quarantined") & ~m["event_name"].isin(list(plan.events)) & (m["value"] > 0)]
    out = []
    for ev, g in q.groupby("event_name"):
        first = g.sort_values("day").iloc[0]
        out.append({"day": np.datetime64(pd.Timestamp(first["day"]).date(), "D"), "event_name": ev,
                        "metric": "quarantined", "property": "", "dimension": "", "observed": float(first["value"]),
                        "expected": 0.0, "expected_low": 0.0, "expected_high": 0.0, "score": np.nan, "direction": "up",
                        "detector": "new_event", "message": f"unknown event {ev!r} sent {int(first['value'])} times"})
    return out


def freshness(last_seen: pd.DataFrame, m: pd.DataFrame, s: QualitySettings) -> list[dict]:
    """An event usually seen every day, silent for longer than chance allows (and `freshness_hours`).

    last_seen: event_name, last_received_at (naive UTC); the clock is the newest event of all, so
    a backfill of old data is judged by its own time, not the wall clock.
    """
    if last_seen.empty:
        return []
    clock = pd.Timestamp(last_seen["last_received_at"].max())
    vol = m[m["metric"] == "volume"]
    out = []
    for ev, last in zip(last_seen["event_name"], pd.to_datetime(last_seen["last_received_at"])):
        hist = vol[(vol["event_name"] == ev) & (pd.to_datetime(vol["day"]) <= last.normalize())]
        hist = hist.sort_values("day").tail(s.training_days)
        if len(hist) < s.min_history_days:
            continue
        rate = float(hist["value"].median()) / 24.0  # events per hour on a usual day
        if rate <= 0:
            continue
        # P(no event for h hours) = exp(-rate h) < 0.1%: silence this long is not chance
        allowed = max(s.freshness_hours, 6.9 / rate)
        silent = (clock - last).total_seconds() / 3600
        if silent > allowed:
            due = (last + pd.Timedelta(hours=allowed)).date()
            out.append({"day": np.datetime64(due, "D"), "event_name": ev, "metric": "hours_since_last_event", "property": "",
                            "dimension": "", "observed": silent, "expected": 1 / rate, "expected_low": 0.0, "expected_high": allowed,
                            "score": silent / allowed, "direction": "up", "detector": "freshness",
                            "message": f"{ev} silent for {silent:.0f} h (allowed {allowed:.0f} h; last {last})"})
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
                out.append({"day": np.datetime64(pd.Timestamp(first["day"]).date(), "D"), "event_name": ev.name,
                                "metric": "volume", "property": "", "dimension": "", "observed": float(first["value"]),
                                "expected": 0.0, "expected_low": 0.0, "expected_high": 0.0, "score": np.nan, "direction": "up",
                                "detector": "sunset", "message": f"{ev.name} still arriving after its sunset {ev.sunset}"})
        if ev.status != "active":
            continue
        if ev.name not in seen.index:
            if span >= s.coverage_days:
                out.append({"day": cal[s.coverage_days - 1], "event_name": ev.name, "metric": "volume", "property": "",
                                "dimension": "", "observed": 0.0, "expected": np.nan, "expected_low": np.nan,
                                "expected_high": np.nan, "score": np.nan, "direction": "down", "detector": "coverage",
                                "message": f"{ev.name} is planned and active but was never seen"})
            continue
        last = pd.Timestamp(seen.loc[ev.name, "max"])
        gap = (end - last).days
        if gap < s.coverage_days:
            continue
        # its daily rate over everything observed up to its last day (not first-to-last seen: an
        # event seen once would look like a daily one)
        n = vol[(vol["event_name"] == ev.name)]["value"].sum()
        rate = n / max((last - pd.Timestamp(cal[0])).days + 1, 1)
        if rate * s.coverage_days >= 3:  # P(0 | Poisson(3)) = 5%: its absence is telling
            out.append({"day": np.datetime64((last + pd.Timedelta(days=s.coverage_days)).date(), "D"),
                            "event_name": ev.name, "metric": "volume", "property": "", "dimension": "", "observed": 0.0,
                            "expected": rate * s.coverage_days, "expected_low": 1.0, "expected_high": np.nan, "score": np.nan,
                            "direction": "down", "detector": "coverage",
                            "message": f"{ev.name} unseen for {gap} days (about {rate:.1f} a day before)"})
    return out


def detect(metrics: pd.DataFrame, plan, settings: QualitySettings | None = None,
           last_seen: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every anomaly in the metrics table, one row each (columns: COLUMNS)."""
    s = settings or QualitySettings()
    if metrics.empty:
        return pd.DataFrame(columns=COLUMNS)
    m = metrics.copy()
    m["day"] = pd.to_datetime(m["day"])
    cal = _calendar(m)
    rows = (series_anomalies(m, s, cal) + type_changes(m, s, cal) + enum_drift(m, s, cal) + new_events(m, plan, cal)
            + coverage(m, plan, s, cal) + (freshness(last_seen, m, s) if last_seen is not None else []))
    out = pd.DataFrame(rows, columns=[c for c in COLUMNS if c != "severity"])
    out["severity"] = WARN
    out["day"] = pd.to_datetime(out["day"]).dt.date
    return out[COLUMNS].sort_values(["day", "event_name", "detector"], kind="stable").reset_index(drop=True)
