"""marts.initiative_roi: each initiative's effect by its declared evaluation method, with evidence.

Every estimator comes from ``models.stats``; this module only builds the analysis frame each method
needs from SQL aggregates of the events (``aggregates``: per person or per day), runs the method's robustness checks and states the units:

- ``ab_test``: the experiment's primary-metric lift (from marts.experiment_results) per exposed
  person; per month = lift × exposures per month. Check: no sample-ratio mismatch.
- ``diff_in_diff``: one row per account (signup cohort), outcome = the KPI's event within
  ``window_days`` of signup, treated = the signup's segment is in ``treated``, post = signed up on or
  after the start. 2×2 DiD with robust errors; checks: an event study of weekly cohorts whose
  leads test parallel pre-trends, and a placebo launch halfway through the pre-period.
- ``matching``: accounts existing and not yet paying at the start; treated = did the
  ``treatment_event`` within ``window_days`` of the start; outcome = the KPI's event from the start
  to the end of the data; propensity matching on pre-period covariates. Check: balance (no
  standardized mean difference after weighting above both 0.1 and its chance band at this sample
  size, family-wise 5 %: ``models.causal.matching.balance_table``); IPW as a second estimate.
- ``interrupted_time_series``: the daily count of the KPI's event, level change at the start, AR(1)
  errors (feasible GLS). Check: a placebo launch halfway through the pre-period finds no level change.
- ``before_after``: the same daily series, mean after minus before: not causal, grade D.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import statsmodels.formula.api as smf

from models.stats import (
    Estimate,
    before_after,
    diff_in_diff,
    evidence_grade,
    interrupted_time_series,
    matched_effect,
)
from tracking_plan.model import Initiative, Plan

from .aggregates import (
    daily_counts_sql,
    matching_inputs_sql,
    signup_outcomes_sql,
    source_of,
    times,
)
from .events_frame import treatment_where
from .experiment_results import DAYS_PER_MONTH, resolve_metric

DAY = pd.Timedelta(days=1)
CHECK_ALPHA = 0.05  # a robustness check passes when it fails to reject at this level
EVENT_STUDY_LEADS = 4  # weekly cohorts before launch tested for parallel trends (-1 is the reference)
EVENT_STUDY_LAGS = 3
# Company-size buckets as Segment's and HubSpot's forms offer them, smallest first; the rank is
# the matching covariate `company_size_rank`.
COMPANY_SIZES = ("1-10", "11-50", "51-200", "201-1000", "1000+")
# `traits.plan` values that mean "not paying" (Segment's spec leaves the values to the app).
FREE_PLANS = ("free", "trial", "freemium", "")


class Skip(Exception):
    """The data cannot support this initiative's method (yet); the row says why."""


def _signup_event(plan: Plan) -> str:
    return plan.metrics.signup.event if plan.metrics.signup else "Account Created"


# -- difference in differences ---------------------------------------------------------------------
def did_frame(events, plan: Plan, ini: Initiative, data_end: pd.Timestamp) -> pd.DataFrame:
    """One row per account in a treated or control segment with a complete outcome window.

    Reads one row per signed-up person (``aggregates.signup_outcomes_sql``): the first signup, its
    segment and the first KPI event after it."""
    ev_name, _, _ = resolve_metric(plan, ini.kpi)
    ev = ini.evaluation
    window = ev.window_days * DAY
    src = source_of(events, plan)
    s = times(
        src.df(signup_outcomes_sql(src.ev, _signup_event(plan), ev.segment_field or "region", ev_name)),
        "signup_at",
        "first_after",
    )
    seg = s["segment"]
    s = s.assign(treated=seg.isin(ev.treated).astype(float))
    s = s[seg.isin(ev.treated) | seg.isin(ev.control)]
    s = s[s["signup_at"] + window <= data_end].copy()
    start = pd.Timestamp(ini.start)
    s["y"] = (s["first_after"] <= s["signup_at"] + window).astype(float)
    s["post"] = (s["signup_at"] >= start).astype(float)
    s["rel_week"] = np.floor((s["signup_at"] - start) / (7 * DAY)).astype(int)
    return s[["person_id", "signup_at", "segment", "treated", "post", "rel_week", "y"]].reset_index(drop=True)


def cross_section_event_study(df: pd.DataFrame, leads: int = EVENT_STUDY_LEADS, lags: int = EVENT_STUDY_LAGS) -> dict:
    """Leads and lags of treated × cohort week with segment and week fixed effects (HC1).

    ``models.stats.event_study`` needs a panel (units seen before and after); accounts are seen once,
    in their signup week, so this is its repeated-cross-section form. The leads' joint Wald test
    is the parallel pre-trend test.
    """
    d = df.copy()
    d["rel"] = d["rel_week"].clip(-leads, lags)
    names = []
    for k in [*range(-leads, -1), *range(lags + 1)]:
        name = f"lead{-k}" if k < 0 else f"lag{k}"
        d[name] = ((d["rel"] == k) & (d["treated"] > 0)).astype(float)
        if d[name].sum() > 0:
            names.append(name)
    fit = smf.ols("y ~ C(segment) + C(rel_week) + " + " + ".join(names), data=d).fit(cov_type="HC1")
    lead_names = [n for n in names if n.startswith("lead")]
    p = (
        float(fit.wald_test(", ".join(f"{n} = 0" for n in lead_names), scalar=True).pvalue)
        if lead_names
        else float("nan")
    )
    coefs = [{"term": n, "coef": float(fit.params[n]), "std_error": float(fit.bse[n])} for n in names]
    return {
        "pretrend_p_value": p,
        "pretrend_passed": bool(math.isfinite(p) and p >= CHECK_ALPHA),
        "coefficients": coefs,
    }


def estimate_did(events, plan, ini, data_end) -> dict:
    df = did_frame(events, plan, ini, data_end)
    if df.groupby(["treated", "post"]).size().reindex(pd.MultiIndex.from_product([[0.0, 1.0]] * 2)).isna().any():
        raise Skip("no accounts in one of the four treated/control × before/after cells yet")
    res = diff_in_diff(df, outcome="y", treated="treated", post="post")
    study = cross_section_event_study(df)
    pre = df[df["post"] == 0]
    fake = pre["signup_at"].min() + (pre["signup_at"].max() - pre["signup_at"].min()) / 2
    try:
        placebo = diff_in_diff(
            pre.assign(post=(pre["signup_at"] >= fake).astype(float)), outcome="y", treated="treated", post="post"
        )
        placebo_passed, placebo_error = bool(placebo.p_value >= CHECK_ALPHA), None
    except ValueError as exc:  # (a half of the before period without treated or control accounts)
        placebo, placebo_passed, placebo_error = None, False, f"placebo not estimable: {exc}"
    treated_post = df[(df["treated"] > 0) & (df["post"] > 0)]
    months = max((data_end - pd.Timestamp(ini.start)) / DAY - ini.evaluation.window_days, 1.0) / DAYS_PER_MONTH
    per_month = len(treated_post) / months  # treated-segment accounts eligible per month
    checks = {"pretrend": study["pretrend_passed"], "placebo": placebo_passed}
    return {
        "estimate": res,
        "unit": "conversion-rate difference per treated account",
        "effect_per_month": res.effect * per_month,
        "effect_per_month_se": res.std_error * per_month,
        "incremental_conversions": res.effect * len(treated_post),
        "population": len(treated_post),
        "checks": checks,
        "details": {
            "event_study": study,
            # a placebo that could not be estimated has not shown the pre-period is flat: failed, with why
            "placebo_effect": placebo.effect if placebo is not None else None,
            "placebo_p_value": placebo.p_value if placebo is not None else None,
            **({"placebo_error": placebo_error} if placebo_error else {}),
            "placebo_launch": str(fake),
            "cells": res.cell_means.to_dict("records"),
        },
    }


# -- matching ----------------------------------------------------------------------------------------
def matching_frame(events, plan: Plan, ini: Initiative, data_end: pd.Timestamp) -> pd.DataFrame:
    """Accounts known and not yet paying at the start: treatment, outcome, pre-period covariates.

    Reads one row per person (``aggregates.matching_inputs_sql``, kept per person in a pipeline run)."""
    ev = ini.evaluation
    ev_name, _, _ = resolve_metric(plan, ini.kpi)
    start = pd.Timestamp(ini.start)
    src = source_of(events, plan)
    per = src.per_person(
        "matching_inputs",
        lambda events: matching_inputs_sql(
            events,
            signup_event=_signup_event(plan),
            outcome_event=ev_name,
            treatment_event=ev.treatment_event,
            start=start,
            window_days=ev.window_days,
            where=treatment_where(ini),
            free_plans=FREE_PLANS,
        ),
    )
    per = times(per, "signup_at", "first_outcome", "first_revenue", "first_paid").set_index("person_id", drop=False)
    # Accounts at the start: identified persons who did not sign up after it (accounts older than
    # the data have no signup event at all, and may have been quiet before the start).
    accounts = per[per["has_user"].astype(bool) & ~(per["signup_at"] >= start)]
    # Already paying: bought before the start, or billed (an event with revenue) before any purchase
    # of theirs, i.e. a subscriber from before the data began; or a paid plan in the person's
    # traits before any purchase of theirs: an annual subscriber from before the data began, who is
    # never billed inside it.
    buys = accounts["first_outcome"]
    before_buy = lambda t: t.notna() & (buys.isna() | (t < buys))
    paying = (buys < start) | before_buy(accounts["first_revenue"]) | before_buy(accounts["first_paid"])
    acc = accounts[~paying]
    if acc.empty:
        raise Skip("no account existed, unpaid, at the start")
    df = pd.DataFrame({"person_id": pd.Series(acc["person_id"].to_numpy(), dtype=object)})
    df["treated"] = acc["treated"].astype(bool).astype(int).to_numpy()
    df["y"] = acc["first_outcome"].between(start, data_end).astype(float).to_numpy()
    df["pre_events"] = np.log1p(acc["pre_events"].astype(float).to_numpy())  # counts are skewed
    rank = {s: i + 1 for i, s in enumerate(COMPANY_SIZES)}
    df["company_size_rank"] = acc["company_size"].map(rank).astype(float).to_numpy()
    df["company_size_rank"] = df["company_size_rank"].fillna(df["company_size_rank"].median())
    df["seats"] = np.log1p(acc["pre_seats"].astype(float).fillna(0).to_numpy())
    return df


def estimate_matching(events, plan, ini, data_end) -> dict:
    df = matching_frame(events, plan, ini, data_end)
    if df["treated"].sum() < 5 or (1 - df["treated"]).sum() < 5:
        raise Skip("fewer than 5 treated or control accounts")
    wanted = ini.evaluation.covariates or ["pre_events", "company_size_rank"]
    usable = [c for c in wanted if c in df and df[c].nunique() > 1]
    dropped = [c for c in wanted if c not in usable]
    # IPW is the headline: it keeps every control, whereas 1:1 nearest-neighbour matching with
    # replacement hands all treated accounts tied on a discrete score (activity counts) to one control
    # and its standard error balloons. The matched estimate is the cross-check.
    # (a ValueError here is the data's: too few accounts left to compare once the trim drops the
    # scores near 0 and 1, said in the row as why it is not evaluable)
    try:
        res = matched_effect(df, treatment="treated", outcome="y", covariates=usable, method="ipw")
    except ValueError as exc:
        raise Skip(f"propensity weighting: {exc}") from None
    try:
        nn, nn_error = matched_effect(df, treatment="treated", outcome="y", covariates=usable, method="nearest"), None
    except ValueError as exc:  # the cross-check cannot agree, so its check fails, saying why
        nn, nn_error = None, f"nearest-neighbour matching: {exc}"
    months = max((data_end - pd.Timestamp(ini.start)) / DAY, 1.0) / DAYS_PER_MONTH
    per_month = res.n_treated / months
    agrees = bool(nn is not None and nn.ci_low <= res.effect <= nn.ci_high)
    return {
        "estimate": res,
        "unit": "conversion probability difference per treated account (ATT, IPW)",
        "effect_per_month": res.effect * per_month,
        "effect_per_month_se": res.std_error * per_month,
        "incremental_conversions": res.effect * res.n_treated,
        "population": int(df["treated"].sum()),
        "checks": {"balance": res.balanced, "matching_agrees": agrees},
        "details": {
            "naive_effect": res.naive_effect,
            "nearest_effect": nn.effect if nn else None,
            "nearest_ci": [nn.ci_low, nn.ci_high] if nn else None,
            "nearest_balance": nn.balance.to_dict("records") if nn else None,
            "nearest_error": nn_error,
            "balance": res.balance.to_dict("records"),
            "covariates": usable,
            "covariates_unavailable": dropped,
            "n_trimmed": res.n_trimmed,
            "n_treated_unmatched": nn.n_treated_unmatched if nn else None,
        },
    }


# -- time series ---------------------------------------------------------------------------------------
def daily_series(events, event: str, data_start, data_end, plan: Plan | None = None) -> pd.DataFrame:
    """Daily count of ``event`` over every day of the data (days without one count 0).

    Reads one row per day with the event (``aggregates.daily_counts_sql``)."""
    src = source_of(events, plan)
    days = pd.date_range(pd.Timestamp(data_start).normalize(), pd.Timestamp(data_end).normalize(), freq="D")
    got = src.df(daily_counts_sql(src.ev, event))
    counts = pd.Series(got["n"].to_numpy(float), index=pd.to_datetime(got["day"]))
    # the last day is usually partial: leave it out rather than read it as a drop
    days = days[:-1] if len(days) > 1 and pd.Timestamp(data_end) < days[-1] + DAY - pd.Timedelta(minutes=1) else days
    return pd.DataFrame({"day": days, "y": counts.reindex(days).fillna(0).to_numpy(float)})


def estimate_its(events, plan, ini, data_end, method: str) -> dict:
    ev_name, _, _ = resolve_metric(plan, ini.kpi)
    src = source_of(events, plan)
    series = daily_series(src, ev_name, src.span()[0], data_end)
    start = pd.Timestamp(ini.start)
    if (series["day"] < start).sum() < 14 or (series["day"] >= start).sum() < 7:
        raise Skip("needs 14 days before and 7 after the start")  # two weeks fit the weekday pattern
    if series["y"].nunique() < 2:  # (all zero: no event at all; an estimate of 0 with no error is no evidence)
        raise Skip(f"the daily count of {ev_name!r} is {series['y'].iloc[0]:g} every day: nothing to estimate")
    per_month = DAYS_PER_MONTH  # the effect is conversions per day
    post_days = int((series["day"] >= start).sum())
    if method == "before_after":
        res = before_after(series, time="day", outcome="y", launch=start)
        return {
            "estimate": res,
            "unit": "conversions per day (after minus before; not causal)",
            "effect_per_month": res.effect * per_month,
            "effect_per_month_se": res.std_error * per_month,
            "incremental_conversions": res.effect * post_days,
            "population": post_days,
            "checks": {},
            "details": {"warnings": res.warnings},
        }
    res = interrupted_time_series(series, time="day", outcome="y", launch=start)
    pre = series[series["day"] < start]
    fake = pre["day"].iloc[len(pre) // 2]
    placebo = interrupted_time_series(pre, time="day", outcome="y", launch=fake)
    return {
        "estimate": res,
        "unit": "conversions per day (level change at launch)",
        "effect_per_month": res.effect * per_month,
        "effect_per_month_se": res.std_error * per_month,
        "incremental_conversions": res.effect * post_days,
        "population": post_days,
        "checks": {"placebo": bool(placebo.p_value >= CHECK_ALPHA)},
        "details": {
            "slope_change": res.slope_change,
            "slope_change_p_value": res.slope_change_p_value,
            "errors": res.errors,
            "ar1_rho": res.ar1_rho,
            "placebo_effect": placebo.effect,
            "placebo_p_value": placebo.p_value,
            "placebo_launch": str(fake.date()),
        },
    }


# -- A/B test --------------------------------------------------------------------------------------------
def estimate_ab(experiment_results: pd.DataFrame, ini: Initiative) -> dict:
    key = ini.evaluation.experiment
    r = experiment_results[
        (experiment_results["experiment"] == key)
        & (experiment_results["metric_role"] == "primary")
        & ~experiment_results["is_control"].astype(bool)
    ]
    if r.empty or not math.isfinite(float(r["lift_abs"].iloc[0])):
        raise Skip(f"experiment {key!r} has no readout yet")
    r = r.sort_values("exposures", ascending=False).iloc[0]
    est = Estimate(
        effect=float(r["lift_abs"]),
        std_error=float(r["std_error"]),
        p_value=float(r["p_value"]),
        ci_low=float(r["ci_low"]),
        ci_high=float(r["ci_high"]),
        n=int(r["analysed"]),
        method="ab_test",
    )
    per_month = float(r["exposures_per_month"])
    return {
        "estimate": est,
        "unit": "conversion-rate difference per exposed person",
        "effect_per_month": est.effect * per_month,
        "effect_per_month_se": est.std_error * per_month,
        "incremental_conversions": est.effect * float(r["exposures"]),
        "population": int(r["exposures"]),
        "checks": {"srm": not bool(r["srm_flag"])},
        "details": {
            "variant": r["variant"],
            "srm_p_value": float(r["srm_p_value"]),
            "sequential_ci": [float(r["seq_ci_low"]), float(r["seq_ci_high"])],
            "power": float(r["power"]),
        },
    }


def estimate(events, plan: Plan, ini: Initiative, experiment_results: pd.DataFrame, data_end: pd.Timestamp) -> dict:
    """The initiative's estimate by its method; ``events`` an ``aggregates.EventSource`` or an event frame."""
    m = ini.evaluation.method
    if m == "ab_test":
        return estimate_ab(experiment_results, ini)
    if m == "diff_in_diff":
        return estimate_did(events, plan, ini, data_end)
    if m == "matching":
        return estimate_matching(events, plan, ini, data_end)
    return estimate_its(events, plan, ini, data_end, m)


def grade_of(method: str, checks: dict) -> tuple[str, str, bool | None]:
    passed = None if not checks else all(checks.values())
    g = evidence_grade(method, passed)
    return g.grade, g.label, passed


def json_safe(obj):
    """Plain JSON for a details column: timestamps as text, NaN and infinities as null."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str):
        return obj
    return None if obj is pd.NaT else str(obj)
