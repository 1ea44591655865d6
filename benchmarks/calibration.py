"""Calibration of the statistics behind the evidence marts: coverage, bias, false alarms and power.

A user's data is one more seed, so what matters is how often each method's 95 % interval holds the
planted truth and how often its robustness checks fire on data planted to pass, over many seeds, not
whether one sample happens to pass. For every method behind ``marts.initiative_roi``,
``marts.experiment_results`` and the uplift / CLV / attribution marts this script draws many samples
at two sizes and prints:

- coverage: share of seeds whose 95 % interval holds the truth, with its Monte Carlo band
  (± 2 √(0.95·0.05/seeds)); bias: mean(estimate − truth); se/sd: mean reported standard error over
  the spread of (estimate − truth) across seeds (1 = honest standard errors); power: share of seeds
  significant at 5 % where the truth is not 0;
- the false-positive rate of each robustness check (SRM, pre-trend, placebo, balance) on data
  planted to pass, and how often the balance check fires where an imbalance is planted (a
  confounder left out of the propensity model: its power) or a trivial one (SMD ≈ 0.04: it should
  not fire).

Where the data come from (column ``dgp``):

- ``generator``: the sample generator's own simulation (``trackplan.demo.sim``, the code
  behind ``trackplan generate``) with its planted truths (the same functions that write
  ``_truth.json``). Its events are stitched perfectly (each device and user id mapped to its
  person) into the marts' event frame, skipping the landing files, ingest and Dagster: the marts'
  own ``compute_experiment_results`` / ``initiatives.estimate`` / ``uplift_by_segment`` run on it.
  Sizes are the generator's ``users`` (existing accounts).
- ``generator, pricing launch only``: the same simulation with the experiment and every other
  initiative switched off (``clean_plan``), so the daily orders the interrupted time series reads
  carry the pricing launch alone and its placebo's pre-period is planted to pass. On the full
  simulation that pre-period holds the Slack, checklist and EU-chat launches, and the placebo
  firing there is reported as a true positive (planted: other launches in the pre-period).
- ``own``: the method's own data-generating process, where the generator plants no such effect
  (CUPED, the confidence sequence, the panel TWFE / event study / placebo, BG/NBD, Markov
  attribution) or to vary what it cannot (matching at 20,000 units, or with poor overlap); sizes
  are units per arm, units, days, customers or paths.

Usage: ``python benchmarks/calibration.py --quick`` (about a minute: 10 seeds, one size) or
``python benchmarks/calibration.py`` (100 seeds at two sizes; ~30 min on one core, ``--jobs 2``
halves it). ``--markdown`` prints the table as Markdown for the README. ``--only`` picks parts:
``generator`` (every generator row, and ``its_clean``), ``its_clean``, ``generator_matching`` (only the
generator's matching rows: no experiment readout, no other initiative) and the own DGPs by name;
``--first-seed`` with ``--csv`` runs a long table in chunks that ``--from-csv`` prints together.
Every row is keyed by what its numbers depend on besides seed and size (``code``: a hash of the
statistics, marts and generator sources, ``VERSIONED``; ``burn_in_days``): ``--from-csv`` refuses,
in one line, a file whose rows were written by other code or settings.
``--series`` prints the clean series' weekly mean daily orders by flow, without and with the
burn-in the ``its_clean`` rows use (``CLEAN_BURN_IN_DAYS``), and estimates nothing.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

Z95 = 1.959963984540054

# What a CSV row's numbers depend on besides its seed and size: the statistics, the marts that feed
# them, the generator, and the clean series' burn-in. Every row carries them (``code``,
# ``burn_in_days``) and ``--from-csv`` refuses rows whose key is not this code's, so a table never
# mixes a run from before a method change with one after it.
VERSIONED = ("models/causal", "models/stats.py", "models/marts", "trackplan/demo")


@functools.cache
def code_version() -> str:
    """A short hash of the sources the rows' numbers depend on (``VERSIONED``)."""
    import hashlib

    h = hashlib.sha256()
    for entry in VERSIONED:
        path = ROOT / entry
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(f.relative_to(ROOT).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


def stale_rows(rows: pd.DataFrame, source: str) -> str | None:
    """One line saying why ``rows`` (read from ``source``) are not this code's, or None."""
    want = {"code": code_version(), "burn_in_days": CLEAN_BURN_IN_DAYS}
    for col, value in want.items():
        if col not in rows:
            return f"{source}: no '{col}' column (written before runs were keyed); re-run it with this code"
        got = sorted({str(v) for v in rows[col].dropna().unique()})
        if got != [str(value)]:
            return f"{source}: rows with {col} {', '.join(got)}, this code has {value}; re-run them with this code"
    return None


# -- the generator's simulation as the marts' event frame ----------------------------------------------
def simulate_events(seed: int, users: int, plan, burn_in_days: int = 0, only: set[str] | None = None):
    """(events frame, simulation) of one seed: the generator's simulation, perfectly stitched.

    ``burn_in_days``: start the simulation that many days before the window and drop their events,
    so flows that build up from the start (new visitors' purchases, up to ~5 weeks after arrival)
    are already steady when the window opens (``CLEAN_BURN_IN_DAYS``). ``only``: keep just these
    track events, plus the window's first and last event of any kind, so the data's span (the
    series' first day and ``data_end``) is the full frame's: a daily series of one of them is the
    full frame's (identical estimates, checked on seeds 1001-1003), for ~20 % less CPU."""
    from models.marts.events_frame import BASE_COLUMNS, normalize, prop_column, property_names, where_column, where_keys
    from trackplan.demo import params as P
    from trackplan.demo.sim import FLAG_MKT_DECLINED, Simulation

    start = P.DEFAULT_END - timedelta(days=P.DEFAULT_DAYS + burn_in_days)
    sim = Simulation(plan, np.random.default_rng(seed), start, P.DEFAULT_DAYS + burn_in_days, users)
    raw = []
    for k in range(sim.days):
        sim.day(k)
        if k >= burn_in_days:
            raw.extend(x for x in sim.buf if not x[2] & FLAG_MKT_DECLINED)  # consent-declined: dropped at ingest
        sim.buf = []
    if only is not None and raw:
        ends = {min(range(len(raw)), key=lambda i: raw[i][0]), max(range(len(raw)), key=lambda i: raw[i][0])}
        raw = [x for i, x in enumerate(raw) if i in ends or x[3].get("event") in only]
    owner: dict[str, int] = {}
    for p in sim.persons:
        for d in p.devices:
            owner[d.anon] = p.idx
        if p.user_id:
            owner[p.user_id] = p.idx
    name_of = {e.type: e.name for e in plan.events.values() if e.type != "track"}
    props_wanted = property_names(plan)
    keys = where_keys(plan)
    cols: dict[str, list] = {c: [] for c in BASE_COLUMNS}  # the marts' own event frame, built without the warehouse
    extra = {prop_column(p): [] for p in props_wanted} | {where_column(k): [] for k in keys}
    for t, _lag, _flags, ev in raw:
        pid = owner.get(ev.get("userId")) if ev.get("userId") else owner.get(ev.get("anonymousId"))
        props = ev.get("properties") or {}
        traits = ev.get("traits") or {}
        cols["person_id"].append(f"p{pid}")
        cols["event_name"].append(ev["event"] if ev["type"] == "track" else name_of.get(ev["type"], ev["type"]))
        cols["timestamp"].append(t)
        cols["region"].append(((ev.get("context") or {}).get("location") or {}).get("region"))
        cols["has_user"].append("userId" in ev)
        cols["experiment_id"].append(props.get("experiment_id"))
        cols["variant"].append(props.get("variation_id", props.get("variant")))
        cols["company_size"].append(traits.get("company_size", props.get("company_size")))
        cols["seats"].append(props.get("seats", traits.get("seats")))
        cols["plan"].append(traits.get("plan"))
        for p in props_wanted:
            v = props.get(p)
            extra[prop_column(p)].append(
                float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else np.nan
            )
        for k in keys:
            v = props.get(k)
            extra[where_column(k)].append(None if v is None else str(v))
    df = pd.DataFrame({**cols, **extra})
    df["timestamp"] = pd.to_datetime(df["timestamp"], unit="ms")
    df["seats"] = pd.to_numeric(df["seats"], errors="coerce")
    return normalize(df, plan), sim


def _row(method, dgp, size, seed, effect, se, lo, hi, truth, p=np.nan, **checks) -> dict:
    return {
        "method": method,
        "dgp": dgp,
        "size": size,
        "seed": seed,
        "effect": float(effect),
        "se": float(se),
        "ci_low": float(lo),
        "ci_high": float(hi),
        "truth": float(truth),
        "p_value": float(p),
        # a check already named with its kind (other:placebo) keeps it; the rest were planted to pass
        **{(k if ":" in k else f"check:{k}"): bool(v) for k, v in checks.items()},
        "code": code_version(),
        "burn_in_days": CLEAN_BURN_IN_DAYS,
    }


def generator_matching_seed(args: tuple[int, int]) -> list[dict]:
    """Only the matching initiative's rows of :func:`generator_seed` (``--only generator_matching``)."""
    return generator_seed(args, methods=("matching",))


def generator_seed(args: tuple[int, int], methods: tuple[str, ...] | None = None) -> list[dict]:
    """Every generator-planted method on one seed and size (``methods``: only these initiatives)."""
    seed, users = args
    from models.marts.aggregates import EventSource
    from models.marts.experiment_results import compute_experiment_results, metric_outcomes
    from models.stats import uplift_by_segment
    from tracking_plan.loader import load_plan
    from trackplan.demo import params as P
    from trackplan.demo.generate import _truth_experiment

    warnings.simplefilter("ignore")
    plan = load_plan()
    event_rows, sim = simulate_events(seed, users, plan)
    data_end = event_rows["timestamp"].max()
    events = EventSource.frame(event_rows, plan)  # the marts' own SQL aggregates read it, as they read a warehouse
    out: list[dict] = []
    if methods is not None:
        return out + _initiative_rows(events, plan, sim, data_end, None, users, seed, methods)
    er = compute_experiment_results(events, plan, data_end)

    # A/B readout (Welch / proportion variance) and SRM, as marts.experiment_results has them
    te = _truth_experiment(sim)
    r = er[(er["experiment"] == te["key"]) & (er["metric_role"] == "primary") & ~er["is_control"]].iloc[0]
    out.append(
        _row(
            "ab_readout (activation lift)",
            "generator",
            users,
            seed,
            r["lift_abs"],
            r["std_error"],
            r["ci_low"],
            r["ci_high"],
            te["true_lift_abs"],
            r["p_value"],
            srm=not r["srm_flag"],
        )
    )
    if r["seq_ci_low"] == r["seq_ci_low"]:
        out.append(
            _row(
                "ab_readout sequential CS",
                "generator",
                users,
                seed,
                r["lift_abs"],
                r["std_error"],
                r["seq_ci_low"],
                r["seq_ci_high"],
                te["true_lift_abs"],
                r["seq_p_value"],
            )
        )
    # guardrail with a planted effect of 0: its interval should hold 0 (false alarm = regression flag)
    g = er[(er["experiment"] == te["key"]) & (er["metric_role"] == "guardrail") & ~er["is_control"]]
    if len(g):
        g = g.iloc[0]
        out.append(
            _row(
                "ab_readout (guardrail, effect 0)",
                "generator",
                users,
                seed,
                g["lift_abs"],
                g["std_error"],
                g["ci_low"],
                g["ci_high"],
                0.0,
                g["p_value"],
                guardrail=not g["guardrail_regression"],
            )
        )

    # uplift by segment (the uplift mart's segment statistics; the T-learner scores are not rerun)
    exp = next(e for e in plan.metrics.experiments if e.key == te["key"])
    frame, _ = metric_outcomes(events, exp, plan, exp.primary_metric, data_end)
    frame = frame.dropna(subset=["y"])
    sizes = event_rows.dropna(subset=["company_size"]).groupby("person_id")["company_size"].last()
    frame["company_size"] = frame["person_id"].map(sizes).fillna("unknown")
    frame["treated"] = (frame["variant"] != exp.control).astype(int)
    seg = uplift_by_segment(frame, segment="company_size", treatment="treated", outcome="y")
    for _, s in seg.iterrows():
        if s["company_size"] not in P.CHECKLIST_LIFT:
            continue
        truth = P.CHECKLIST_LIFT[s["company_size"]]
        se = (s["ci_high"] - s["ci_low"]) / (2 * Z95)
        kind = "helped" if truth > 0 else "not helped"
        out.append(
            _row(
                f"uplift_by_segment ({kind} segments)",
                "generator",
                users,
                seed,
                s["uplift"],
                se,
                s["ci_low"],
                s["ci_high"],
                truth,
                s["p_value"],
                **({"no_target": not s["target"]} if truth == 0 else {}),
            )
        )

    return out + _initiative_rows(events, plan, sim, data_end, er, users, seed, None)


def _initiative_rows(events, plan, sim, data_end, er, users: int, seed: int, methods) -> list[dict]:
    """The initiatives, through the mart's own frame builders and estimators."""
    from models.marts.initiatives import Skip, estimate, estimate_its
    from trackplan.demo.generate import _truth_did, _truth_its, _truth_matching

    out: list[dict] = []
    truths = {
        "eu_live_chat": _truth_did(sim),
        "slack_integration": _truth_matching(sim),
        "new_pricing_page": _truth_its(sim),
    }
    for ini in plan.metrics.initiatives:
        t = truths.get(ini.key)
        if not t or not t.get("present") or (methods and ini.evaluation.method not in methods):
            continue
        truth = {
            "diff_in_diff": t.get("true_effect_abs"),
            "matching": t.get("true_att"),
            "interrupted_time_series": t.get("true_level_change_per_day"),
        }[ini.evaluation.method]
        try:
            got = estimate(events, plan, ini, er, data_end)
        except Skip:
            continue
        e = got["estimate"]
        checks = dict(got["checks"])
        if ini.evaluation.method == "interrupted_time_series":
            # This series also carries the other planted launches (Slack on 08-15, the checklist
            # experiment on 09-01, EU chat on 10-01): the pre-period is not planted to pass, and a
            # placebo that fires here has found one of them (a true positive). The false-alarm rate is
            # measured on a clean series: generator_clean_its.
            checks = {"other:placebo": not checks.pop("placebo"), **checks}
        name = {
            "diff_in_diff": "diff_in_diff 2x2 (HC1)",
            "matching": "matching IPW (ATT)",
            "interrupted_time_series": "interrupted time series (AR(1) GLS)",
        }[ini.evaluation.method]
        out.append(
            _row(
                name,
                "generator",
                users,
                seed,
                e.effect,
                e.std_error,
                e.ci_low,
                e.ci_high,
                truth,
                e.p_value,
                **checks,
                **(
                    {"balance_fixed_0.1": _fixed_rule(got["details"]["balance"])}
                    if ini.evaluation.method == "matching"
                    else {}
                ),
            )
        )
        if "ar1_rho" in got["details"]:
            out[-1]["ar1_rho"] = got["details"]["ar1_rho"]  # the errors' AR(1) coefficient, for diagnosis
        if ini.evaluation.method == "matching":
            d = got["details"]
            lo, hi = d["nearest_ci"]
            out.append(
                _row(
                    "matching nearest (ATT)",
                    "generator",
                    users,
                    seed,
                    d["nearest_effect"],
                    (hi - lo) / (2 * Z95),
                    lo,
                    hi,
                    truth,
                    balance=not any(b["flagged"] for b in d["nearest_balance"]),
                    **{"balance_fixed_0.1": _fixed_rule(d["nearest_balance"])},
                )
            )
            out += balance_power(events, plan, ini, data_end, users, seed)
        if ini.evaluation.method == "interrupted_time_series":
            ba = estimate_its(events, plan, ini, data_end, "before_after")["estimate"]
            out.append(
                _row(
                    "before_after (not causal)",
                    "generator",
                    users,
                    seed,
                    ba.effect,
                    ba.std_error,
                    ba.ci_low,
                    ba.ci_high,
                    truth,
                    ba.p_value,
                )
            )
    return out


@functools.cache
def _clean_plan_once(load_plan):
    """The clean plan, read once per worker process (reading the YAML is ~10 % of a clean sample)."""
    return clean_plan(load_plan())


def clean_plan(plan):
    """The sample plan with only the pricing page launch: no experiment, no other initiative."""
    clean = plan.model_copy(deep=True)
    clean.metrics.initiatives = [i for i in clean.metrics.initiatives if i.key == "new_pricing_page"]
    clean.metrics.experiments = []
    return clean


# Days simulated before the window of the clean series: a steady-state start. The generator's
# simulation starts with no new accounts, and the daily Order Completed count (the ITS's series)
# comes from three flows: the existing free accounts' upgrade hazard (steady from day 0, the pool
# shrinking ~0.2 % a day), new visitors' purchases and their invited teammates'. A visitor signs up
# at the last of their visits (up to 10 days after arriving) and orders 0.3-21 days later, so new
# accounts' orders build up over the first ~31 days; invitees' follow their inviters' sessions and
# a 21-day purchase delay (about 34 days), then grow with the signed-up population (linear: the
# series' trend). Measured (weekly mean orders per day, weeks 1-15 of the window, clean plan, 300
# users, 200 seeds 1001-1200, what ``--series --sizes 300 --seeds 200 --first-seed 1001`` prints):
# no burn-in 0.49 0.66 0.80 1.10 1.14 1.16 ... (the bend the placebo read as a pre-trend: it fired
# on 8 % of 50 seeds at 300 users, 18 % at 600); 42 days' burn-in 1.16 1.11 1.17 1.13 1.16 1.13
# 1.08 1.10 1.15 1.13 | launch 1.33 1.86 ... (flat within ± 0.03, the weeks' Monte Carlo error).
# Renewals send Subscription Renewed, never Order Completed, so they cannot echo in this series.
# 42 days (six weeks, so the weekday pattern keeps its phase) is past every flow's build-up.
CLEAN_BURN_IN_DAYS = 42


def generator_clean_its(args: tuple[int, int]) -> list[dict]:
    """The interrupted time series on a series planted to pass: the same generator, with the other
    initiatives and the experiment switched off, so its daily orders carry only the pricing launch
    (the placebo's pre-period holds no other launch), after a burn-in that fills the purchase
    pipeline before the window opens (``CLEAN_BURN_IN_DAYS``). Same estimator and placebo as the mart's."""
    seed, users = args
    from models.marts.initiatives import estimate_its
    from tracking_plan.loader import load_plan
    from trackplan.demo.generate import _truth_its

    warnings.simplefilter("ignore")
    from models.marts.experiment_results import resolve_metric

    plan = _clean_plan_once(load_plan)
    ini = plan.metrics.initiatives[0]
    kpi_event = resolve_metric(plan, ini.kpi)[0]
    events, sim = simulate_events(seed, users, plan, burn_in_days=CLEAN_BURN_IN_DAYS, only={kpi_event})
    data_end = events["timestamp"].max()
    truth = _truth_its(sim)["true_level_change_per_day"]
    got = estimate_its(events, plan, ini, data_end, "its")
    e = got["estimate"]
    ba = estimate_its(events, plan, ini, data_end, "before_after")["estimate"]
    label = "generator, pricing launch only"
    return [
        _row(
            "interrupted time series (AR(1) GLS)",
            label,
            users,
            seed,
            e.effect,
            e.std_error,
            e.ci_low,
            e.ci_high,
            truth,
            e.p_value,
            **got["checks"],
        )
        | {"ar1_rho": got["details"]["ar1_rho"]},
        _row(
            "before_after (not causal)",
            label,
            users,
            seed,
            ba.effect,
            ba.std_error,
            ba.ci_low,
            ba.ci_high,
            truth,
            ba.p_value,
        ),
    ]


SERIES_FLOWS = ("existing", "new", "invitee")  # Person.kind "base" is an existing account


def clean_series(args: tuple[int, int, int]) -> np.ndarray:
    """Daily Order Completed count (the ITS's series) of one clean-plan seed, by the flow it comes
    from (rows: ``SERIES_FLOWS``), over the window's days, after ``burn_in`` days (``--series``)."""
    seed, users, burn_in = args
    from tracking_plan.loader import load_plan
    from trackplan.demo import params as P
    from trackplan.demo.sim import DAY, Simulation

    plan = clean_plan(load_plan())
    start = P.DEFAULT_END - timedelta(days=P.DEFAULT_DAYS + burn_in)
    sim = Simulation(plan, np.random.default_rng(seed), start, P.DEFAULT_DAYS + burn_in, users)
    window = sim.t0 + burn_in * DAY
    row = {"base": 0, "new": 1, "invitee": 2}
    out = np.zeros((len(SERIES_FLOWS), P.DEFAULT_DAYS))
    for k in range(sim.days):
        sim.day(k)
        for t, _lag, _flags, ev in sim.buf:
            d = (t - window) // DAY
            if ev.get("event") == "Order Completed" and 0 <= d < P.DEFAULT_DAYS:
                out[row[sim.persons[int(ev["userId"][4:], 16)].kind], d] += 1
        sim.buf = []
    return out


def series_table(first_seed: int, seeds: int, sizes: list[int], jobs: int) -> str:
    """Weekly mean orders per day of the clean series, by flow, without and with the burn-in."""
    from trackplan.demo import params as P

    cases = [(users, burn) for users in sizes for burn in (0, CLEAN_BURN_IN_DAYS)]
    work = [(seed, users, burn) for users, burn in cases for seed in range(first_seed, first_seed + seeds)]
    if jobs > 1:
        with ProcessPoolExecutor(jobs) as pool:
            got = list(pool.map(clean_series, work, chunksize=2))
    else:
        got = [clean_series(w) for w in work]
    weeks = P.DEFAULT_DAYS // 7
    launch = (pd.Timestamp(clean_plan_launch()) - pd.Timestamp(P.DEFAULT_END - timedelta(days=P.DEFAULT_DAYS))).days
    head = (
        f"Order Completed per day, weekly means over seeds {first_seed}..{first_seed + seeds - 1} "
        f"(window weeks 1-{weeks}; the launch is on day {launch + 1}, in week {launch // 7 + 1})"
    )
    lines = [head]
    for i, (users, burn) in enumerate(cases):
        mean = np.mean(got[i * seeds : (i + 1) * seeds], axis=0)[:, : weeks * 7]
        wk = mean.reshape(len(SERIES_FLOWS), weeks, 7).mean(axis=2)
        lines.append(f"\nusers {users}, burn-in {burn} days")
        for name, r in zip((*SERIES_FLOWS, "total"), [*wk, wk.sum(axis=0)]):
            lines.append(f"  {name:9s}" + " ".join(f"{x:5.2f}" for x in r))
    return "\n".join(lines)


def clean_plan_launch() -> str:
    from tracking_plan.loader import load_plan

    return clean_plan(load_plan()).metrics.initiatives[0].start


def _fixed_rule(balance: list[dict]) -> bool:
    """The balance check as it was before: every |SMD| after adjustment at most 0.1, whatever n."""
    return all(abs(b["smd_after"]) <= 0.1 for b in balance)


def balance_power(events, plan, ini, data_end, users: int, seed: int) -> list[dict]:
    """The balance check's power: the generator selects Slack accounts on their pre-period activity
    and size; a propensity model that leaves the activity out (company size only) leaves that
    imbalance in the weighted sample, and the check, told to look at it too (cobalt's ``addl``),
    should flag it. Check-only rows (no estimate): ``detect:balance`` is True when it fires."""
    from models.marts.initiatives import matching_frame
    from models.stats import matched_effect

    df = matching_frame(events, plan, ini, data_end)
    out = []
    for method in ("ipw", "nearest"):
        res = matched_effect(
            df,
            treatment="treated",
            outcome="y",
            covariates=["company_size_rank"],
            method=method,
            balance_also=["pre_events"],
        )
        row = _row(
            f"matching {'IPW' if method == 'ipw' else 'nearest'}, activity left out of the propensity model",
            "generator",
            users,
            seed,
            np.nan,
            np.nan,
            np.nan,
            np.nan,
            np.nan,
        )
        out.append({**row, "detect:balance": not res.balanced})
    return out


# -- the methods' own data-generating processes -----------------------------------------------------------
def own_cuped(seed: int, n: int) -> list[dict]:
    """Two arms of n units; post = 0.7·pre + noise + 0.1·treated (continuous) and a 0/1 metric."""
    from models.stats import ab_readout

    rng = np.random.default_rng([seed, 11])
    pre = rng.gamma(2.0, 1.0, 2 * n)
    arm = np.repeat(["a", "b"], n)
    tau = 0.1
    y = 0.7 * pre + rng.normal(0, 1.0, 2 * n) + tau * (arm == "b")
    df = pd.DataFrame({"v": arm, "y": y, "pre": pre})
    out = []
    for label, kw in (("CUPED (continuous)", {"pre": "pre"}), ("ab_readout Welch (continuous)", {})):
        r = ab_readout(df, variant="v", outcome="y", control="a", **kw).iloc[0]
        out.append(
            _row(label, "own", n, seed, r["lift_abs"], r["std_error"], r["ci_low"], r["ci_high"], tau, r["p_value"])
        )
    # binary outcome with a binary pre-period covariate (GrowthBook's proportion CUPED)
    pre_b = (rng.random(2 * n) < 0.3).astype(float)
    p = 0.2 + 0.4 * pre_b + 0.05 * (arm == "b")
    yb = (rng.random(2 * n) < p).astype(float)
    r = ab_readout(
        pd.DataFrame({"v": arm, "y": yb, "pre": pre_b}), variant="v", outcome="y", control="a", pre="pre"
    ).iloc[0]
    out.append(
        _row(
            "CUPED (0/1 metric)",
            "own",
            n,
            seed,
            r["lift_abs"],
            r["std_error"],
            r["ci_low"],
            r["ci_high"],
            0.05,
            r["p_value"],
        )
    )
    return out


def own_sequential(seed: int, n: int) -> list[dict]:
    """Confidence sequence checked after each of 20 batches: does it ever exclude the truth?"""
    from models.stats import ArmStats, ttest_from_stats

    rng = np.random.default_rng([seed, 12])
    looks = 20
    ya = (rng.random(n) < 0.3).astype(float)
    yb = (rng.random(n) < 0.33).astype(float)
    ever_out = False
    for k in range(1, looks + 1):
        m = n * k // looks
        a = ArmStats(m, ya[:m].sum(), ya[:m].sum(), True)
        b = ArmStats(m, yb[:m].sum(), yb[:m].sum(), True)
        r = ttest_from_stats(a, b, sequential=True)
        if not r.ci_low <= 0.03 <= r.ci_high:
            ever_out = True
    # coverage here is "never excluded the truth at any of the 20 looks"
    return [
        {
            **_row(
                "sequential CS, 20 looks (any look)",
                "own",
                n,
                seed,
                r.effect,
                r.std_error,
                r.ci_low,
                r.ci_high,
                0.03,
                r.p_value,
            ),
            "covered": not ever_out,
        }
    ]


def own_panel(seed: int, units: int) -> list[dict]:
    """Units × 12 periods, unit and period effects, AR(1) errors (rho 0.5); half the units treated
    from period 8 with effect 0.5; parallel trends hold."""
    from models.stats import diff_in_diff, event_study, placebo_did, twfe_did

    rng = np.random.default_rng([seed, 13])
    periods, launch, rho, tau = 12, 8, 0.5, 0.5
    e = np.zeros((units, periods))
    e[:, 0] = rng.normal(0, 1, units)
    for t in range(1, periods):
        e[:, t] = rho * e[:, t - 1] + rng.normal(0, math.sqrt(1 - rho**2), units)
    group = (np.arange(units) < units // 2).astype(float)
    y = rng.normal(0, 1, units)[:, None] + 0.1 * np.arange(periods)[None, :] + e
    d = group[:, None] * (np.arange(periods)[None, :] >= launch)
    y = y + tau * d
    df = pd.DataFrame(
        {
            "unit": np.repeat(np.arange(units), periods),
            "t": np.tile(np.arange(periods), units),
            "y": y.ravel(),
            "d": d.ravel(),
            "g": np.repeat(group, periods),
        }
    )
    df["post"] = (df["t"] >= launch).astype(float)
    tw = twfe_did(df, outcome="y", unit="unit", time="t", treated="d")
    es = event_study(df, outcome="y", unit="unit", time="t", group="g", launch=launch, leads=4, lags=3)
    pl = placebo_did(df, outcome="y", unit="unit", time="t", group="g", launch=launch, shift=3)
    did = diff_in_diff(df, outcome="y", treated="g", post="post", cluster="unit")
    return [
        _row(
            "twfe_did (cluster by unit)",
            "own",
            units,
            seed,
            tw.effect,
            tw.std_error,
            tw.ci_low,
            tw.ci_high,
            tau,
            tw.p_value,
            pretrend=es.pretrend_passed,
            placebo=pl.p_value >= 0.05,
        ),
        _row(
            "diff_in_diff 2x2 on a panel (cluster)",
            "own",
            units,
            seed,
            did.effect,
            did.std_error,
            did.ci_low,
            did.ci_high,
            tau,
            did.p_value,
        ),
        _row(
            "event_study (mean of lags)",
            "own",
            units,
            seed,
            es.effect,
            es.std_error,
            es.ci_low,
            es.ci_high,
            tau,
            es.p_value,
        ),
    ]


def own_its(seed: int, days: int) -> list[dict]:
    """A daily KPI: level 50, trend 0.05/day, a weekday pattern, AR(1) noise (rho 0.4, sd 3); the
    last third of the days after launch, with a level change of 4 (no slope change)."""
    from models.stats import before_after, interrupted_time_series

    rng = np.random.default_rng([seed, 16])
    launch = (2 * days) // 3
    e = np.zeros(days)
    for t in range(days):
        e[t] = (0.4 * e[t - 1] if t else 0.0) + rng.normal(0, 3.0)
    day = pd.date_range("2026-01-05", periods=days, freq="D")
    week = np.array([1.0, 1.04, 1.03, 1.0, 0.92, 0.45, 0.38])[day.day_of_week] * 10
    tau = 4.0
    y = 50 + 0.05 * np.arange(days) + week + e + tau * (np.arange(days) >= launch)
    df = pd.DataFrame({"day": day, "y": y})
    its = interrupted_time_series(df, time="day", outcome="y", launch=day[launch])
    pre = df.iloc[:launch]
    placebo = interrupted_time_series(pre, time="day", outcome="y", launch=pre["day"].iloc[len(pre) // 2])
    ba = before_after(df, time="day", outcome="y", launch=day[launch])
    return [
        _row(
            "interrupted time series (AR(1) GLS)",
            "own",
            days,
            seed,
            its.effect,
            its.std_error,
            its.ci_low,
            its.ci_high,
            tau,
            its.p_value,
            placebo=placebo.p_value >= 0.05,
        ),
        _row(
            "before_after (not causal)",
            "own",
            days,
            seed,
            ba.effect,
            ba.std_error,
            ba.ci_low,
            ba.ci_high,
            tau,
            ba.p_value,
        ),
    ]


def own_matching(seed: int, n: int) -> list[dict]:
    """n units, four standard-normal covariates; selection logit(-1 + 0.8·x1 + 0.5·x2 + 0.3·x3 +
    0.05·x4), outcome x1 + x2 + x3 + x4 + 0.5·treated + N(0, 1). On all four covariates the
    weights remove the selection (balance planted to pass); leaving x3 out of the propensity model
    leaves an imbalance of ≈ 0.25 SD (planted: the check should fire); leaving x4 out leaves one of
    ≈ 0.04 SD, below the 0.1 a large sample should still not flag (trivial)."""
    from models.stats import matched_effect

    rng = np.random.default_rng([seed, 17])
    x = rng.normal(size=(n, 4))
    logit = -1 + x @ np.array([0.8, 0.5, 0.3, 0.05])
    t = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    tau = 0.5
    y = x.sum(axis=1) + tau * t + rng.normal(size=n)
    df = pd.DataFrame({"t": t, "y": y, "x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "x4": x[:, 3]})
    out = []
    for method in ("ipw", "nearest"):
        label = "IPW" if method == "ipw" else "nearest"
        res = matched_effect(df, treatment="t", outcome="y", covariates=["x1", "x2", "x3", "x4"], method=method)
        out.append(
            _row(
                f"matching {label} (ATT)",
                "own",
                n,
                seed,
                res.effect,
                res.std_error,
                res.ci_low,
                res.ci_high,
                tau,
                res.p_value,
                balance=res.balanced,
                **{"balance_fixed_0.1": _fixed_rule(res.balance.to_dict("records"))},
            )
        )
        nan = np.nan
        for left_out, kind in (("x3", "detect"), ("x4", "trivial")):
            kept = [c for c in ("x1", "x2", "x3", "x4") if c != left_out]
            r2 = matched_effect(df, treatment="t", outcome="y", covariates=kept, method=method, balance_also=[left_out])
            row = _row(f"matching {label}, {left_out} left out", "own", n, seed, nan, nan, nan, nan, nan)
            out.append({**row, f"{kind}:balance": not r2.balanced})
    return out


def own_bgnbd(seed: int, customers: int) -> list[dict]:
    """BG/NBD customers (r=0.6, alpha=5, a=0.8, b=3) over 52 weeks, then 26 weeks held out: the
    fitted model's expected hold-out purchases against the realized ones (no interval: bias only)."""
    from models.value import expected_purchases, fit_bgnbd

    rng = np.random.default_rng([seed, 14])
    r, alpha, a, b = 0.6, 5.0, 0.8, 3.0
    T, hold = 52.0, 26.0
    lam = rng.gamma(r, 1 / alpha, customers)
    pdrop = rng.beta(a, b, customers)
    x = np.zeros(customers)
    t_x = np.zeros(customers)
    future = np.zeros(customers)
    for i in range(customers):
        t, alive = 0.0, True
        while alive:
            t += rng.exponential(1 / lam[i])
            if t > T + hold:
                break
            if t <= T:
                x[i] += 1
                t_x[i] = t
            else:
                future[i] += 1
            alive = rng.random() >= pdrop[i]
    summary = pd.DataFrame({"frequency": x, "recency": t_x, "T": T})
    fit = fit_bgnbd(summary)
    pred = float(np.sum(expected_purchases(fit, hold, x, t_x, T)))
    actual = float(future.sum())
    truth_pred = float(
        np.sum(expected_purchases(dataclasses.replace(fit, r=r, alpha=alpha, a=a, b=b), hold, x, t_x, T))
    )
    nan = float("nan")
    return [
        _row(
            "BG/NBD hold-out purchases (per customer)",
            "own",
            customers,
            seed,
            pred / customers,
            nan,
            nan,
            nan,
            actual / customers,
        ),
        _row("BG/NBD r (purchase-rate shape)", "own", customers, seed, fit.r, nan, nan, nan, r),
        _row(
            "BG/NBD, true params (reference)",
            "own",
            customers,
            seed,
            truth_pred / customers,
            nan,
            nan,
            nan,
            actual / customers,
        ),
    ]


def own_markov(seed: int, paths: int) -> list[dict]:
    """Paths from a known first-order Markov chain over three channels: the fitted removal effects
    against the chain's own (no interval: bias only)."""
    from models.value import markov_removal_effects

    rng = np.random.default_rng([seed, 15])
    start = np.array([0.5, 0.3, 0.2])
    # rows: channels; columns: channels, conversion, null
    trans = np.array([[0.10, 0.30, 0.10, 0.05, 0.45], [0.20, 0.10, 0.20, 0.15, 0.35], [0.10, 0.20, 0.10, 0.25, 0.35]])
    names = ["a", "b", "c"]
    rows = []
    for _ in range(paths):
        s = rng.choice(3, p=start)
        path = [names[s]]
        while True:
            nxt = rng.choice(5, p=trans[s])
            if nxt >= 3:
                rows.append((path, nxt == 3))
                break
            s = nxt
            path.append(names[s])
    df = pd.DataFrame({"channels": [p for p, _ in rows], "converted": [c for _, c in rows]})
    est = markov_removal_effects(df)
    q, rr = trans[:, :3], trans[:, 3]

    def p_conv(removed):
        q2, s2 = q.copy(), start.copy()
        if removed is not None:
            q2[:, removed] = 0.0
            s2[removed] = 0.0
        return float(s2 @ np.linalg.solve(np.eye(3) - q2, rr))

    base = p_conv(None)
    nan = float("nan")
    return [
        _row(f"markov removal effect (channel {c})", "own", paths, seed, est[c], nan, nan, nan, 1 - p_conv(i) / base)
        for i, c in enumerate(names)
    ]


def own_matching_overlap(seed: int, n: int) -> list[dict]:
    """Poor overlap: heavier users opt in (tests/test_stats_causal.py's design). Usage ~ gamma(2, 1.5),
    tenure ~ N(12, 4); selection logit(-2.5 + 0.6·usage + 0.05·tenure), so the heaviest users are
    treated with probability near 1 and their few comparable controls carry odds weights up to 99
    at 0.01-0.99; outcome 2·usage + 0.1·tenure + 1.0·treated + N(0, 1.5²). Each method at the default
    trim (0.05, 0.95), and IPW at the earlier default, 0.01-0.99, too."""
    from models.stats import matched_effect

    rng = np.random.default_rng([seed, 29])
    usage, tenure = rng.gamma(2.0, 1.5, n), rng.normal(12, 4, n)
    t = (rng.random(n) < 1 / (1 + np.exp(-(-2.5 + 0.6 * usage + 0.05 * tenure)))).astype(int)
    tau = 1.0
    df = pd.DataFrame({"t": t, "usage": usage, "tenure": tenure})
    df["y"] = 2.0 * usage + 0.1 * tenure + tau * t + rng.normal(0, 1.5, n)
    out = []
    for method, kw, label in (
        ("ipw", {}, "IPW"),
        ("ipw", {"trim": (0.01, 0.99)}, "IPW, trim 0.01"),
        ("nearest", {}, "nearest"),
    ):
        r = matched_effect(df, treatment="t", outcome="y", covariates=["usage", "tenure"], method=method, **kw)
        out.append(
            _row(
                f"matching {label} (ATT), poor overlap", "own", n, seed, r.effect, r.std_error, r.ci_low, r.ci_high, tau
            )
        )
    return out


OWN = {
    "cuped": (own_cuped, (500, 4000)),
    "sequential": (own_sequential, (1000, 8000)),
    "panel": (own_panel, (40, 200)),
    "its": (own_its, (90, 365)),
    "matching": (own_matching, (500, 20000)),
    "matching_overlap": (own_matching_overlap, (1000, 4000)),
    "bgnbd": (own_bgnbd, (500, 2000)),
    "markov": (own_markov, (500, 5000)),
}


def own_seed(args: tuple[str, int, int]) -> list[dict]:
    name, seed, size = args
    warnings.simplefilter("ignore")
    return OWN[name][0](seed, size)


# -- the table ---------------------------------------------------------------------------------------------
def summarize(rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    out = []
    for (method, dgp, size), g in rows.groupby(["method", "dgp", "size"], sort=False):
        g = g[g["effect"].notna()]  # e.g. a segment with nobody in one arm: no estimate, not counted
        n = len(g)
        if not n:
            continue
        err = g["effect"] - g["truth"]
        has_ci = g["ci_low"].notna().all()
        covered = (g["ci_low"] <= g["truth"]) & (g["truth"] <= g["ci_high"])
        if "covered" in g and g["covered"].notna().all():
            covered = g["covered"].astype(bool)
        cover = float(covered.mean()) if has_ci else np.nan
        sd = float(err.std(ddof=1)) if n > 1 else np.nan
        nonzero = (g["truth"].abs() > 1e-12).all()
        power = float((g["p_value"] < 0.05).mean()) if nonzero and g["p_value"].notna().all() else np.nan
        out.append(
            {
                "method": method,
                "dgp": dgp,
                "size": size,
                "seeds": n,
                "coverage": cover,
                "mc_band": 2 * math.sqrt(0.95 * 0.05 / n),
                "truth": float(g["truth"].mean()),
                "bias": float(err.mean()),
                "bias_se": sd / math.sqrt(n) if n > 1 else np.nan,
                "se_over_sd": float(g["se"].mean()) / sd if sd and sd > 0 and g["se"].notna().all() else np.nan,
                "power": power,
            }
        )
    checks = []
    # check:<name> is True when the check passed on data planted to pass (fires = false alarm);
    # detect:<name> / trivial:<name> are True when it fired on data with a planted imbalance that
    # it should flag (fires = power) / a trivial one below its practical threshold (should not fire)
    # other:<name> is True when it fired on data carrying other planted changes its pre-period
    # should not hold (the generator's full series for the ITS placebo): fires = true positives
    planted = {
        "check": "pass",
        "detect": "imbalance",
        "trivial": "trivial imbalance",
        "other": "other launches in the pre-period",
    }
    for (method, dgp, size), g in rows.groupby(["method", "dgp", "size"], sort=False):
        for c in [c for c in g.columns if c.split(":")[0] in planted and g[c].notna().any()]:
            kind, name = c.split(":", 1)
            v = g[c].dropna().astype(bool)
            checks.append(
                {
                    "method": method,
                    "dgp": dgp,
                    "size": size,
                    "check": name,
                    "planted": planted[kind],
                    "seeds": len(v),
                    "fires": float((~v).mean() if kind == "check" else v.mean()),
                }
            )
    return pd.DataFrame(out), pd.DataFrame(checks)


def fmt(x, spec=".3f") -> str:
    return "" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


def render(summary: pd.DataFrame, checks: pd.DataFrame, markdown: bool) -> str:
    head = ["method", "dgp", "size", "seeds", "coverage (95%)", "bias", "truth", "se/sd", "power"]
    body = [
        [
            r.method,
            r.dgp,
            str(r.size),
            str(r.seeds),
            (f"{r.coverage:.3f} ± {r.mc_band:.3f}" if math.isfinite(r.coverage) else "n/a"),
            f"{r.bias:+.4f} ± {2 * r.bias_se:.4f}" if math.isfinite(r.bias_se) else fmt(r.bias, "+.4f"),
            fmt(r.truth, ".4f"),
            fmt(r.se_over_sd, ".2f"),
            fmt(r.power, ".2f"),
        ]
        for r in summary.itertuples()
    ]
    chead = ["check", "method", "dgp", "size", "seeds", "planted", "fires (false alarm when planted to pass)"]
    cbody = [
        [r.check, r.method, r.dgp, str(r.size), str(r.seeds), r.planted, f"{r.fires:.3f}"] for r in checks.itertuples()
    ]
    return _table(head, body, markdown) + "\n\n" + _table(chead, cbody, markdown)


def _table(head, body, markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body])
    w = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(head)]
    fmt_row = lambda r: "  ".join(c.ljust(w[i]) for i, c in enumerate(r))
    return "\n".join([fmt_row(head), fmt_row(["-" * x for x in w]), *map(fmt_row, body)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="10 seeds at the small size only (about a minute)")
    ap.add_argument("--seeds", type=int, default=None, help="seeds per size (default 100; 10 with --quick)")
    ap.add_argument(
        "--first-seed", type=int, default=1, help="first seed (default 1): run a long table in chunks, one --csv each"
    )
    ap.add_argument("--sizes", default="300,600", help="generator users per sample, two sizes (default 300,600)")
    ap.add_argument("--jobs", type=int, default=1, help="worker processes (default 1: the machine is shared)")
    ap.add_argument(
        "--only",
        default="",
        help="comma-separated: generator (with its_clean), its_clean (the ITS on a series planted to pass) and/or own methods (cuped, ...)",
    )
    ap.add_argument(
        "--series",
        action="store_true",
        help="print the clean series' weekly mean orders per day by flow, without and with the burn-in (no estimation)",
    )
    ap.add_argument("--markdown", action="store_true", help="print Markdown tables (for the README)")
    ap.add_argument("--csv", default=None, help="also write every seed's row to this CSV")
    ap.add_argument(
        "--from-csv", default=None, help="print the tables of earlier --csv runs, comma-separated (no sampling)"
    )
    a = ap.parse_args(argv)
    if a.from_csv:
        frames = []
        for f in a.from_csv.split(","):
            got = pd.read_csv(f)
            why = stale_rows(got, f)
            if why:
                print(f"calibration: {why}", file=sys.stderr)
                return 2
            frames.append(got)
        summary, checks = summarize(pd.concat(frames, ignore_index=True))
        print(render(summary, checks, a.markdown))
        return 0
    seeds = a.seeds or (10 if a.quick else 100)
    sizes = [int(s) for s in a.sizes.split(",")]
    if a.quick:
        sizes = sizes[:1]
    if a.series:
        print(series_table(a.first_seed, seeds, sizes, a.jobs))
        return 0
    only = set(filter(None, a.only.split(",")))
    t0 = time.perf_counter()
    jobs: list = []
    if not only or "generator" in only:
        jobs += [
            (generator_seed, (seed, users)) for users in sizes for seed in range(a.first_seed, a.first_seed + seeds)
        ]
    if "generator_matching" in only:
        jobs += [
            (generator_matching_seed, (seed, users))
            for users in sizes
            for seed in range(a.first_seed, a.first_seed + seeds)
        ]
    if not only or "generator" in only or "its_clean" in only:
        jobs += [
            (generator_clean_its, (seed, users))
            for users in sizes
            for seed in range(a.first_seed, a.first_seed + seeds)
        ]
    for name, (_fn, own_sizes) in OWN.items():
        if only and name not in only:
            continue
        use = own_sizes[:1] if a.quick else own_sizes
        jobs += [(own_seed, (name, seed, size)) for size in use for seed in range(a.first_seed, a.first_seed + seeds)]
    rows: list[dict] = []
    if a.jobs > 1:
        with ProcessPoolExecutor(a.jobs) as pool:
            for k, got in enumerate(pool.map(_call, jobs, chunksize=2), 1):
                rows += got
                _progress(k, len(jobs), t0)
                _checkpoint(rows, a.csv, k)
    else:
        for k, j in enumerate(jobs, 1):
            rows += _call(j)
            _progress(k, len(jobs), t0)
            _checkpoint(rows, a.csv, k)
    df = pd.DataFrame(rows)
    if a.csv:
        df.to_csv(a.csv, index=False)
    summary, checks = summarize(df)
    print(render(summary, checks, a.markdown))
    print(
        f"\n{len(jobs)} samples in {time.perf_counter() - t0:.0f} s "
        f"(seeds {a.first_seed}..{a.first_seed + seeds - 1}; sizes: generator users {sizes}; own DGPs "
        + ", ".join(f"{k} {v[1][:1] if a.quick else v[1]}" for k, v in OWN.items())
        + ")"
    )
    return 0


def _progress(k: int, total: int, t0: float) -> None:
    if k % 20 == 0 or k == total:
        print(f"  {k}/{total} samples, {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)


def _checkpoint(rows: list[dict], csv: str | None, k: int) -> None:
    """Every 10 samples, (re)write the --csv so far: a run stopped early keeps its finished seeds."""
    if csv and k % 10 == 0:
        pd.DataFrame(rows).to_csv(csv, index=False)


def _call(job):
    fn, args = job
    return fn(args)


if __name__ == "__main__":
    raise SystemExit(main())
