"""The calibration's clean ITS series (benchmarks/calibration.py): burn-in and the light frame.

The ITS placebo's false-alarm rate is measured on the generator with every other initiative off
and a burn-in before the window (``CLEAN_BURN_IN_DAYS``), so new accounts' purchases are already
flowing when the window opens. These check the mechanics on small samples: the
burn-in's events are dropped and the window is the default one, its daily orders do not start from
an empty pipeline, and the light frame (``only=``) gives the full frame's series and estimate.
"""

from __future__ import annotations

import importlib.util
import sys
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cal():
    spec = importlib.util.spec_from_file_location("calibration_under_test", ROOT / "benchmarks" / "calibration.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def plan(cal):
    from tracking_plan.loader import load_plan

    return cal.clean_plan(load_plan())


def test_clean_plan_keeps_only_the_pricing_launch(cal, plan):
    assert [i.key for i in plan.metrics.initiatives] == ["new_pricing_page"]
    assert plan.metrics.experiments == []
    assert cal.CLEAN_BURN_IN_DAYS >= 35  # past the ~31-day visit + purchase-delay build-up


def test_burn_in_drops_its_days_and_keeps_the_window(cal, plan):
    from trackplan.demo import params as P

    burn = cal.CLEAN_BURN_IN_DAYS
    events, sim = cal.simulate_events(7, 400, plan, burn_in_days=burn)
    window = pd.Timestamp(P.DEFAULT_END - timedelta(days=P.DEFAULT_DAYS))
    assert sim.start == P.DEFAULT_END - timedelta(days=P.DEFAULT_DAYS + burn)
    assert window <= events["timestamp"].min() < window + pd.Timedelta(days=1)
    assert events["timestamp"].max() < pd.Timestamp(P.DEFAULT_END) + pd.Timedelta(hours=2)
    # the purchase pipeline is full when the window opens: accounts that signed up during the
    # burn-in order inside the window (about 7 such orders expected at 400 accounts; P(none) < 0.1 %)
    in_burn = {
        f"p{p.idx}"
        for p in sim.persons
        if p.kind != "base" and p.signup_ms is not None and p.signup_ms < sim.t0 + burn * 86_400_000
    }
    orders = events[events["event_name"] == "Order Completed"]
    assert orders["person_id"].isin(in_burn).sum() >= 1


def test_light_frame_gives_the_full_frames_estimate(cal, plan):
    from models.marts.initiatives import daily_series, estimate_its, source_of

    ini = plan.metrics.initiatives[0]
    full, _ = cal.simulate_events(3, 40, plan, burn_in_days=cal.CLEAN_BURN_IN_DAYS)
    light, _ = cal.simulate_events(3, 40, plan, burn_in_days=cal.CLEAN_BURN_IN_DAYS, only={"Order Completed"})
    assert len(light) < len(full) / 20
    assert light["timestamp"].min() == full["timestamp"].min()
    assert light["timestamp"].max() == full["timestamp"].max()
    end = full["timestamp"].max()
    a = daily_series(source_of(full, plan), "Order Completed", full["timestamp"].min(), end)
    b = daily_series(source_of(light, plan), "Order Completed", light["timestamp"].min(), end)
    pd.testing.assert_frame_equal(a, b)
    ea = estimate_its(full, plan, ini, end, "its")
    eb = estimate_its(light, plan, ini, end, "its")
    assert ea["estimate"].effect == eb["estimate"].effect
    assert ea["details"]["placebo_p_value"] == eb["details"]["placebo_p_value"]


def test_rows_are_keyed_and_stale_rows_refused(cal, tmp_path, capsys):
    row = cal._row("m", "own", 90, 1, 1.0, 0.5, 0.0, 2.0, 1.0)
    assert row["code"] == cal.code_version() and row["burn_in_days"] == cal.CLEAN_BURN_IN_DAYS
    fresh = pd.DataFrame([row, {**row, "seed": 2}])
    assert cal.stale_rows(fresh, "f.csv") is None
    # rows written before the key, by other code, or with another burn-in are refused, one line each
    cases = {
        "no_key.csv": fresh.drop(columns=["code", "burn_in_days"]),
        "old_code.csv": fresh.assign(code=["0" * 12, cal.code_version()]),
        "burn_in.csv": fresh.assign(burn_in_days=0),
    }
    for name, df in cases.items():
        df.to_csv(tmp_path / name, index=False)
        assert cal.main(["--from-csv", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"calibration: {tmp_path / name}: ") and "\n" not in err
    fresh.to_csv(tmp_path / "ok.csv", index=False)
    assert cal.main(["--from-csv", str(tmp_path / "ok.csv")]) == 0


def test_code_version_follows_the_method_sources(cal, tmp_path, monkeypatch):
    # a byte changed in a versioned source changes the key; a file outside them does not
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "est.py").write_text("se = 1\n")
    (tmp_path / "one.py").write_text("x = 1\n")
    (tmp_path / "bench.py").write_text("y = 1\n")
    monkeypatch.setattr(cal, "ROOT", tmp_path)
    monkeypatch.setattr(cal, "VERSIONED", ("pkg", "one.py"))
    version = cal.code_version.__wrapped__
    before = version()
    (tmp_path / "bench.py").write_text("y = 2\n")
    assert version() == before
    (tmp_path / "pkg" / "est.py").write_text("se = 2\n")
    assert version() != before


def test_a_check_named_with_its_kind_keeps_it(cal):
    # the full simulation's ITS placebo is a true positive when it fires (other launches in the
    # pre-period): its rate is the share of seeds where it fired, not where it stayed quiet
    rows = [
        cal._row("its", "generator", 300, s, 1.0, 0.5, 0.0, 2.0, 1.0, **{"other:placebo": s == 1}) for s in (1, 2, 3, 4)
    ]
    assert "other:placebo" in rows[0] and "check:other:placebo" not in rows[0]
    _, checks = cal.summarize(pd.DataFrame(rows))
    c = checks.iloc[0]
    assert (c["check"], c["planted"], c["fires"]) == ("placebo", "other launches in the pre-period", 0.25)
