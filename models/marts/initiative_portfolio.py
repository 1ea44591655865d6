"""marts.initiative_portfolio (and, until they get files of their own, the logic of
marts.channel_attribution and marts.initiative_scenarios, whose models/marts/<table>.py call it).

Pure functions (``compute_channel_attribution``, ``compute_initiative_scenarios``,
``compute_initiative_portfolio``); the estimators are ``models.value``'s.
"""

import json

import numpy as np
import pandas as pd

from models.kpis import compute_kpi_values
from models.value import (
    Assumptions,
    attribute,
    build_paths,
    initiative_scenarios,
    monte_carlo,
    portfolio,
)
from tracking_plan.model import Initiative, Plan

from .events_frame import load_events

__all__ = [
    "build",
    "channel_of",
    "compute_channel_attribution",
    "compute_initiative_portfolio",
    "compute_initiative_scenarios",
    "plan_rules",
]

DIRECT = "direct"
LOOKBACK_DAYS = 30  # Google Analytics' default acquisition lookback for conversions
HALF_LIFE_DAYS = 7.0  # Google Ads' time-decay default: a touch a week older gets half the credit
MC_DRAWS = 5_000  # P10/P90 move by well under 1 % of their spread between reruns at this size
MC_SEED = 0  # the same inputs give the same table
HISTOGRAM_BINS = 20  # bars of the NPV distribution chart in the report


# -- attribution --------------------------------------------------------------------------------------------
def channel_of(source, medium) -> str:
    """``source/medium`` from a session's first UTM, ``direct`` without one."""
    if source is None or (isinstance(source, float) and np.isnan(source)) or source == "":
        return DIRECT
    medium = None if medium is None or (isinstance(medium, float) and np.isnan(medium)) else medium
    return f"{source}/{medium}" if medium else str(source)


def marketing_touches(touches: pd.DataFrame) -> pd.DataFrame:
    """Campaign sessions plus each person's first session; later sessions without a campaign are dropped.

    A returning user opening the app is not a marketing touch: counting every such session as
    ``direct`` would hand last-touch credit to "direct" for nearly every purchase. This is Google
    Analytics' "last non-direct click" rule.
    """
    t = touches.sort_values(["person_id", "timestamp"], kind="stable")
    first = ~t["person_id"].duplicated()
    return t[(t["channel"] != DIRECT) | first].reset_index(drop=True)


def compute_channel_attribution(sessions: pd.DataFrame, conversions: pd.DataFrame,
                                lookback_days: float = LOOKBACK_DAYS,
                                half_life_days: float = HALF_LIFE_DAYS) -> pd.DataFrame:
    """One row per channel × model: conversions and value credited, and each channel's share.

    ``sessions`` has ``person_id, started_at, utm_source, utm_medium``; ``conversions`` has
    ``person_id, timestamp, value`` (one row per purchase).
    """
    touches = pd.DataFrame({"person_id": sessions["person_id"], "timestamp": pd.to_datetime(sessions["started_at"]),
                            "channel": [channel_of(s, m) for s, m in zip(sessions["utm_source"], sessions["utm_medium"])]})
    touches = marketing_touches(touches)
    conv = conversions.assign(timestamp=pd.to_datetime(conversions["timestamp"]),
                              value=pd.to_numeric(conversions["value"], errors="coerce").fillna(0.0))
    paths = build_paths(touches, conv, lookback_days=lookback_days)
    out = attribute(paths, "all", half_life_days=half_life_days)
    if "removal_effect" not in out:
        out["removal_effect"] = np.nan
    n_conv = int(paths["converted"].sum())
    totals = out.groupby("model")[["conversions", "value"]].transform("sum")
    out["share_conversions"] = out["conversions"] / totals["conversions"].replace(0, np.nan)
    out["share_value"] = out["value"] / totals["value"].replace(0, np.nan)
    touch_share = touches["channel"].value_counts(normalize=True)
    out["share_of_touches"] = out["channel"].map(touch_share).fillna(0.0)
    out["paths"] = len(paths)
    out["converting_paths"] = n_conv
    out["lookback_days"] = float(lookback_days)
    out["half_life_days"] = float(half_life_days)
    return out.sort_values(["model", "conversions"], ascending=[True, False], ignore_index=True)


# -- scenarios --------------------------------------------------------------------------------------------------
def assumptions_of(ini: Initiative, roi_row: dict) -> Assumptions:
    return Assumptions(effect_per_month=float(roi_row["effect_per_month"]),
                       value_per_conversion=ini.value_per_conversion, one_off_cost=ini.costs.one_off,
                       recurring_cost=ini.costs.recurring_monthly, horizon_months=ini.horizon_months,
                       discount_rate=ini.discount_rate, effect_se=float(roi_row["effect_per_month_se"] or 0.0),
                       adoption=ini.adoption.base)


def ranges_of(ini: Initiative) -> dict:
    """The plan's declared uncertainty: cost ranges and the adoption low/high."""
    r = {"adoption": (ini.adoption.low, ini.adoption.high)}
    if ini.costs.one_off_range:
        r["one_off_cost"] = tuple(ini.costs.one_off_range)
    if ini.costs.recurring_range:
        r["recurring_cost"] = tuple(ini.costs.recurring_range)
    return r


def _histogram(key: str, draws: pd.Series) -> pd.DataFrame:
    counts, edges = np.histogram(draws, bins=HISTOGRAM_BINS)
    return pd.DataFrame({"initiative": key, "kind": "distribution", "name": [f"bin_{i:02d}" for i in range(len(counts))],
                         "low_value": edges[:-1], "high_value": edges[1:], "npv": (edges[:-1] + edges[1:]) / 2,
                         "share": counts / counts.sum()})


def compute_initiative_scenarios(roi: pd.DataFrame, plan: Plan, n: int = MC_DRAWS, seed: int = MC_SEED) -> pd.DataFrame:
    """Per initiative with an effect estimate: adoption scenarios, tornado rows, Monte Carlo P10/P50/P90,
    and the NPV histogram (``kind = distribution``, ``share`` of draws per bin)."""
    frames = []
    by_key = {r["initiative"]: r for r in roi.to_dict("records")}
    for ini in plan.metrics.initiatives:
        row = by_key.get(ini.key)
        if row is None or not np.isfinite(float(row.get("effect_per_month") or np.nan)):
            continue
        a = assumptions_of(ini, row)
        adoption = {"low": ini.adoption.low, "base": ini.adoption.base, "high": ini.adoption.high}
        sc = initiative_scenarios(ini.key, a, adoption, ranges_of(ini), n=n, seed=seed)
        mc = monte_carlo(a, ranges_of(ini), n=n, seed=seed)  # same seed: the same draws as above
        frames += [sc, _histogram(ini.key, mc.draws["npv"])]
    if not frames:
        return pd.DataFrame(columns=["initiative", "kind", "name", "npv", "share"])
    out = pd.concat(frames, ignore_index=True)
    meta = roi.set_index("initiative")[["method", "evidence_grade"]]
    return out.join(meta, on="initiative")


# -- portfolio ----------------------------------------------------------------------------------------------------
def plan_rules(ini: Initiative) -> dict:
    """The initiative's decision_rules from metrics.yaml in ``models.value.portfolio``'s vocabulary."""
    r = ini.decision_rules
    return {"evidence_order": ["A", "B", "C", "D"], "default": "continue", "rules": [
        {"then": "scale", "prob_npv_positive_min": r.scale_if_prob_npv_positive, "evidence_min": r.min_evidence_to_scale},
        {"then": "stop", "prob_npv_positive_max": r.stop_if_prob_npv_positive, "evidence_min": r.min_evidence_to_scale},
        # a coin flip or worse that is not moving its KPI: keep the goal, change the approach
        {"then": "pivot", "prob_npv_positive_max": 0.5, "kpi_on_track_is": False},
    ]}


PORTFOLIO_COLUMNS = [
    "rank", "initiative", "name", "owner", "method", "evidence_grade", "evidence_label", "estimate", "ci_low",
    "ci_high", "unit", "npv", "npv_p10", "npv_p50", "npv_p90", "npv_mean", "expected_npv", "prob_npv_positive",
    "irr", "payback_months", "kpi", "kpi_current", "kpi_target", "kpi_direction", "kpi_on_track", "kpi_gap",
    "recommendation", "reason", "rules", "non_financial",
]


def compute_initiative_portfolio(roi: pd.DataFrame, scenarios: pd.DataFrame, kpis: pd.DataFrame,
                                 plan: Plan) -> pd.DataFrame:
    """One row per initiative: evidence, NPV distribution, KPI vs target, recommendation, rank by expected NPV."""
    mc = scenarios[scenarios["kind"] == "monte_carlo"] if len(scenarios) else scenarios
    kv = kpis.set_index("kpi") if len(kpis) else pd.DataFrame()
    rows = []
    for ini in plan.metrics.initiatives:
        r = roi[roi["initiative"] == ini.key]
        r = r.iloc[0].to_dict() if len(r) else {"initiative": ini.key}
        m = mc[mc["initiative"] == ini.key].set_index("name") if len(mc) else pd.DataFrame()
        def pick(name: str, col: str, m=m) -> float:
            return float(m.loc[name, col]) if name in m.index else np.nan

        k = kv.loc[ini.kpi] if ini.kpi in kv.index else {}
        current, target = k.get("current", np.nan), k.get("target", np.nan)
        row = {**{c: r.get(c) for c in ("initiative", "name", "owner", "method", "evidence_grade", "evidence_label",
                                        "estimate", "ci_low", "ci_high", "unit", "npv", "irr", "payback_months",
                                        "non_financial")},
               "npv_p10": pick("p10", "npv"), "npv_p50": pick("p50", "npv"), "npv_p90": pick("p90", "npv"),
               "npv_mean": pick("mean", "npv"), "prob_npv_positive": pick("mean", "prob_npv_positive"),
               "kpi": ini.kpi, "kpi_current": current, "kpi_target": target, "kpi_direction": k.get("direction"),
               "kpi_on_track": k.get("on_track"), "kpi_gap": (current - target)
               if target is not None and np.isfinite(float(target if target is not None else np.nan)) else np.nan}
        rules = plan_rules(ini)
        ranked = portfolio(pd.DataFrame([row]), rules)  # each initiative has its own rules
        rows.append({**ranked.iloc[0].to_dict(), "rules": json.dumps(rules)})
    out = pd.DataFrame(rows)
    if out.empty:
        return pd.DataFrame(columns=PORTFOLIO_COLUMNS)
    out = out.sort_values("expected_npv", ascending=False, na_position="last", ignore_index=True)
    out["rank"] = range(1, len(out) + 1)
    return out.reindex(columns=PORTFOLIO_COLUMNS)


def purchases(con, plan: Plan) -> pd.DataFrame:
    ev = plan.metrics.purchase.event if plan.metrics.purchase else "Order Completed"
    return con.execute("""select person_id, "timestamp",
        coalesce(try_cast(json_extract_string(properties, '$.revenue') as double), 0) as value
        from stitch.events where event_name = ? and person_id is not null""", [ev]).df()


def build(con, plan: Plan) -> pd.DataFrame:
    """marts.initiative_portfolio from marts.initiative_roi, marts.initiative_scenarios and the KPIs."""
    roi = con.execute("select * from marts.initiative_roi").df()
    scenarios = con.execute("select * from marts.initiative_scenarios").df()
    kpis = compute_kpi_values(load_events(con, plan), plan)
    return compute_initiative_portfolio(roi, scenarios, kpis, plan)


def summary(df: pd.DataFrame) -> dict:
    return {"recommendations": {r["initiative"]: r["recommendation"] for r in df.to_dict("records")}}
