"""marts.customer_clv on non-contractual purchases simulated from BG/NBD itself: the channel whose
customers drop out more must show fewer expected purchases and a lower CLV; on contractual
renewals (the sample product) the model is reported as not identified instead of printing nonsense."""

import numpy as np
import pandas as pd

from models.marts.customer_clv import compute_customer_clv
from tracking_plan.loader import load_plan


def _simulate(channel: str, n: int, dropout_a: float, dropout_b: float, rng) -> list[dict]:
    rows = []
    start = pd.Timestamp("2026-01-05")
    for i in range(n):
        lam = rng.gamma(2.0, 1 / 6.0)  # purchases per week (r = 2, alpha = 6)
        p = rng.beta(dropout_a, dropout_b)  # chance of dropping out after each purchase
        t = rng.uniform(0, 10)  # first purchase in the first 10 weeks
        while t < 52:
            rows.append(
                {
                    "person_id": f"{channel}-{i}",
                    "timestamp": start + pd.Timedelta(weeks=t),
                    "revenue": float(rng.gamma(5, 10)),
                    "channel": channel,
                }
            )
            if rng.random() < p:
                break
            t += rng.exponential(1 / lam)
    return rows


def test_leaky_channel_has_fewer_expected_purchases_and_lower_clv():
    rng = np.random.default_rng(7)
    revenue = pd.DataFrame(_simulate("sticky", 800, 1.0, 9.0, rng) + _simulate("leaky", 800, 5.0, 5.0, rng))
    value = pd.DataFrame(
        {"channel": ["sticky", "leaky"], "plan": ["all", "all"], "clv": [1.0, 1.0], "cac": [50.0, 50.0]}
    )
    out = compute_customer_clv(revenue, value, load_plan()).set_index("channel")
    assert out["note"].eq("").all()
    # (mean p_alive is no discriminator here: BG/NBD puts p_alive = 1 on every customer without a
    # repeat purchase, and the leaky channel has more of them)
    assert out.loc["leaky", "expected_purchases_12m"] < 0.7 * out.loc["sticky", "expected_purchases_12m"]
    assert out.loc["leaky", "clv_probabilistic"] < 0.7 * out.loc["sticky", "clv_probabilistic"]
    assert out.loc["sticky", "clv_probabilistic_cac_ratio"] == out.loc["sticky", "clv_probabilistic"] / 50.0


def test_contractual_renewals_are_reported_as_not_identified():
    # monthly renewals like clockwork: every customer a repeat buyer, nobody ever silent
    rows = [
        {
            "person_id": f"c{i}",
            "timestamp": pd.Timestamp("2026-01-01") + pd.Timedelta(days=30 * k),
            "revenue": 49.0,
            "channel": "google",
        }
        for i in range(60)
        for k in range(10)
    ]
    value = pd.DataFrame({"channel": ["google"], "plan": ["all"], "clv": [980.0], "cac": [70.0]})
    out = compute_customer_clv(pd.DataFrame(rows), value, load_plan())
    assert out["note"].str.startswith("BG/NBD not identified").all()
    assert out["clv_probabilistic"].isna().all() and out["clv_simple"].eq(980.0).all()
