"""A small, seeded warehouse holding every table the report reads, for report and browser tests.

Mart shapes follow models/marts/*.yml (activation_cohorts, retention, funnel_conversion,
customer_value) and models/value_finance / value_portfolio (scenarios, portfolio); the quality tables
are left out on purpose so the "not built yet" panels are exercised too.
"""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from models.value_finance import Assumptions, initiative_scenarios
from models.value_portfolio import portfolio
from pipelines.warehouse import connect

MISSING = ("quality.anomalies", "quality.daily_metrics", "quality.check_results")


def build_warehouse(path: Path, seed: int = 7) -> Path:
    rng = np.random.default_rng(seed)
    weeks = [date(2026, 8, 3) + timedelta(weeks=i) for i in range(8)]
    signups = rng.integers(40, 90, len(weeks))
    activated = np.array([rng.binomial(n, 0.3) for n in signups])
    frames: dict[str, pd.DataFrame] = {}
    frames["marts.activation_cohorts"] = pd.DataFrame(
        {
            "cohort_week": pd.to_datetime(weeks),
            "signups": signups,
            "activated": activated,
            "activation_rate": activated / signups,
            "median_hours_to_activate": rng.uniform(20, 90, len(weeks)),
            "activation_window_days": 7,
            "activation_min_count": 3,
            "window_complete": [True] * (len(weeks) - 1) + [False],
        }
    )
    rows = []
    for i, (w, n) in enumerate(zip(weeks, signups, strict=True)):
        for p in range(len(weeks) - i):
            kept = int(n * (1.0 if p == 0 else 0.55 * 0.8**p))
            rows.append(
                {
                    "period_type": "week",
                    "cohort_start": pd.Timestamp(w),
                    "period": p,
                    "period_start": pd.Timestamp(w + timedelta(weeks=p)),
                    "cohort_size": int(n),
                    "retained": kept,
                    "retained_unbounded": kept,
                    "retention_rate": kept / n,
                    "unbounded_retention_rate": kept / n,
                }
            )
    frames["marts.retention"] = pd.DataFrame(rows)
    steps = {
        "onboarding": ["Account Created", "Onboarding Completed", "Project Created", "Invite Sent"],
        "checkout": ["Product Viewed", "Checkout Started", "Payment Info Entered", "Order Completed"],
    }
    rows = []
    for f, evs in steps.items():
        persons = [500]
        for _ in evs[1:]:
            persons.append(int(persons[-1] * rng.uniform(0.4, 0.8)))
        for i, (e, n) in enumerate(zip(evs, persons, strict=True), start=1):
            nxt = persons[i] if i < len(persons) else None
            rows.append(
                {
                    "funnel": f,
                    "step_index": i,
                    "event_name": e,
                    "persons": n,
                    "converted_to_next": nxt,
                    "dropped_off": n - nxt if nxt is not None else 0,
                    "step_conversion": n / persons[i - 2] if i > 1 else 1.0,
                    "overall_conversion": n / persons[0],
                    "median_hours_from_previous": rng.uniform(1, 30),
                    "median_hours_from_start": rng.uniform(1, 60),
                    "window_hours": 168.0,
                }
            )
    frames["marts.funnel_conversion"] = pd.DataFrame(rows)
    channels = ["google", "linkedin", "newsletter", "direct"]
    cust = rng.integers(10, 60, len(channels))
    spend = rng.uniform(1000, 9000, len(channels))
    arpu = rng.uniform(40, 120, len(channels))
    churn = rng.uniform(0.02, 0.08, len(channels))
    clv = arpu * 0.8 / churn
    frames["marts.customer_value"] = pd.DataFrame(
        {
            "channel": channels,
            "plan": "all",
            "customers": cust,
            "spend": spend,
            "cac": spend / cust,
            "arpu_monthly": arpu,
            "gross_margin": 0.8,
            "monthly_churn": churn,
            "clv": clv,
            "clv_cac_ratio": clv / (spend / cust),
            "payback_months": (spend / cust) / (arpu * 0.8),
        }
    )
    frames["marts.experiment_results"] = pd.DataFrame(
        {
            "experiment": "onboarding_checklist",
            "variant": ["control", "checklist"],
            "metric": "activation_rate",
            "exposures": [400, 410],
            "conversions": [112, 140],
            "rate": [0.28, 140 / 410],
            "lift_abs": [None, 140 / 410 - 0.28],
            "lift_rel": [None, (140 / 410) / 0.28 - 1],
            "ci_low": [None, 0.0],
            "ci_high": [None, 0.125],
            "p_value": [None, 0.048],
            "srm_p_value": 0.75,
        }
    )
    scen, port = [], []
    for key, effect in (("onboarding_checklist", 30.0), ("eu_live_chat", 4.0)):
        a = Assumptions(
            effect_per_month=effect,
            value_per_conversion=220,
            one_off_cost=30000,
            recurring_cost=1500,
            horizon_months=24,
            discount_rate=0.1,
            effect_se=effect / 3,
        )
        s = initiative_scenarios(key, a, {"low": 0.6, "base": 1.0, "high": 1.2}, n=2000, seed=seed)
        scen.append(s)
        mc = s[s["kind"] == "monte_carlo"].set_index("name")["npv"]
        port.append(
            {
                "initiative": key,
                "npv": float(s.loc[(s["kind"] == "scenario") & (s["name"] == "base"), "npv"].iloc[0]),
                "evidence_grade": "A",
                "npv_p10": mc["p10"],
                "npv_p50": mc["p50"],
                "npv_p90": mc["p90"],
                "npv_mean": mc["mean"],
                "prob_npv_positive": float(s["prob_npv_positive"].max()),
            }
        )
    frames["marts.initiative_scenarios"] = pd.concat(scen, ignore_index=True)
    frames["marts.initiative_portfolio"] = portfolio(pd.DataFrame(port))
    frames["marts.initiative_roi"] = pd.DataFrame(
        {
            "initiative": ["onboarding_checklist", "eu_live_chat"],
            "method": ["ab_test", "diff_in_diff"],
            "incremental_conversions": [52.0, 9.5],
            "value": [11440.0, 8550.0],
            "cost": [39000.0, 23000.0],
            "roi": [-0.71, -0.63],
            "npv": [port[0]["npv"], port[1]["npv"]],
            "irr": [0.12, None],
            "payback_months": [14.0, None],
            "evidence_grade": ["A", "B"],
        }
    )
    frames["marts.channel_attribution"] = pd.DataFrame(
        [
            {"channel": c, "model": m, "conversions": float(rng.uniform(5, 50)), "value": float(rng.uniform(500, 5000))}
            for c in channels
            for m in ("first_touch", "last_touch", "linear", "markov")
        ]
    )
    con = connect(path)
    for name, df in frames.items():
        con.register("frame", df)
        con.execute(f"create or replace table {name} as select * from frame")
        con.unregister("frame")
    _events(con, rng)
    con.close()
    return path


def _events(con, rng) -> None:
    """stitch.events and ingest.ingestion_log: enough rows for the event-based KPIs and data health."""
    start = datetime(2026, 9, 1)
    rows = []
    for i in range(200):
        pid = f"p{i}"
        t = start + timedelta(hours=int(rng.integers(0, 24 * 40)))
        rows.append((pid, "Account Created", t, "{}"))
        for _ in range(int(rng.choice([0, 1, 3, 4], p=[0.4, 0.2, 0.25, 0.15]))):  # activation: 3 tasks in 7 days
            rows.append((pid, "Task Completed", t + timedelta(hours=int(rng.integers(1, 24 * 7))), "{}"))
        if rng.random() < 0.2:
            rows.append(
                (
                    pid,
                    "Order Completed",
                    t + timedelta(days=2),
                    json.dumps({"revenue": round(float(rng.uniform(50, 500)), 2)}),
                )
            )
        if rng.random() < 0.3:
            rows.append((pid, "Support Ticket Created", t + timedelta(days=1), "{}"))
        if rng.random() < 0.4:
            rows.append(
                (pid, "Survey Responded", t + timedelta(days=3), json.dumps({"score": int(rng.integers(0, 11))}))
            )
    df = pd.DataFrame(rows, columns=["person_id", "event_name", "timestamp", "properties"])
    con.register("ev", df)
    # stitch.events is ingest.events with the person in front (pipelines/stitch/identity.py)
    con.execute(
        "create or replace table stitch.events as select person_id, * exclude (person_id) from ingest.events limit 0"
    )
    con.execute(
        'insert into stitch.events by name select person_id, event_name, "timestamp", properties::json as properties, '
        "'track' as type, person_id || '-' || row_number() over () as message_id from ev"
    )
    con.unregister("ev")
    days = pd.date_range("2026-09-01", periods=20, freq="D")
    lines = rng.integers(800, 1200, len(days))
    quar = rng.binomial(lines, 0.01)
    log = pd.DataFrame(
        {
            "partition_date": days,
            "source_file": [f"date={d:%Y-%m-%d}/events-0.jsonl" for d in days],
            "lines": lines,
            "loaded": lines - quar,
            "quarantined": quar,
        }
    )
    con.register("log", log)
    con.execute("insert into ingest.ingestion_log by name select * from log")
    con.unregister("log")
