"""`make bench` (quality): anomaly scoring speed and the time every check adds to a run.

    .venv/bin/python benchmarks/quality_bench.py                 # ~1M events (users=5700, 107 days)
    .venv/bin/python benchmarks/quality_bench.py --users 1200    # ~200k events, a quicker look

Prints: score_matrix over 90 days x 30 events x 10 metrics (target < 0.5 s); then, on a generated
warehouse, the ingest + stitch time and the time of each check family, with their sum as a share
of the run (target: at most 25%).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # support.warehouse: the one sample-warehouse builder


def bench_scoring(repeats: int = 5) -> float:
    rng = np.random.default_rng(0)
    days = np.arange(np.datetime64("2026-01-01"), np.datetime64("2026-01-01") + np.timedelta64(90, "D"))
    weekly = np.tile([1.0, 1.02, 0.98, 1.0, 0.97, 0.5, 0.45], 13)[:90]
    level = rng.uniform(20, 5000, size=(300, 1))
    vals = rng.poisson(level * weekly).astype(float)  # 30 events x 10 metrics = 300 series
    from quality_checks.scoring import score_matrix

    score_matrix(vals[:2], days)  # warm-up
    best = min(_timed(lambda: score_matrix(vals, days, kind="count")) for _ in range(repeats))
    print(f"anomaly scoring, 90 days x 300 series: {best * 1000:.0f} ms (target < 500 ms)")
    return best


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_checks(users: int, days: int) -> None:
    from support.warehouse import load_landing

    from pipelines.quality.assets import build_anomalies
    from pipelines.quality.checks import gates
    from pipelines.warehouse import connect
    from quality_checks.gx_suite import run_gx_suite
    from quality_checks.metrics import build_daily_metrics
    from quality_checks.schema_checks import run_schema_check
    from schemas.pandera_models import table_specs
    from tracking_plan.loader import load_plan
    from tracking_plan.quality_settings import settings_for
    from trackplan.demo.generate import generate

    plan = load_plan()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        res = generate(tmp / "landing", days=days, users=users, bug_rate=0.01)
        print(f"generated {res.lines:,} lines in {time.perf_counter() - t:.1f} s")
        con = connect(tmp / "w.duckdb")
        timings: dict = {}
        load_landing(con, plan, tmp / "landing", timings=timings)
        run = {"ingest": timings["ingest_s"], "stitch": timings["stitch_s"]}
        base = sum(run.values())
        checks = {}
        checks["daily_metrics"] = _timed(lambda: build_daily_metrics(con, plan))
        checks["anomalies"] = _timed(lambda: build_anomalies(con, plan))
        for table in ("ingest.events", "stitch.events", "stitch.persons"):
            checks[f"gates {table}"] = _timed(lambda t=table: gates(con, plan, t))
        specs = table_specs(plan)
        for table in ("ingest.events", "ingest.quarantine", "stitch.events", "stitch.persons"):
            rows = settings_for(plan).pandera_sample_rows
            checks[f"pandera {table}"] = _timed(lambda t=table, n=rows: run_schema_check(con, specs[t], n))
        df = con.execute("select * from quality.daily_metrics").df()
        checks["great expectations"] = _timed(lambda: run_gx_suite(df, tmp / "gx_docs"))
        n = con.execute("select count(*) from ingest.events").fetchall()[0][0]
        con.close()
    print(f"\n{n:,} events loaded; ingest {run['ingest']:.1f} s, stitch {run['stitch']:.1f} s")
    for k, v in checks.items():
        print(f"  {k:<28} {v:6.2f} s")
    total = sum(checks.values())
    print(
        f"checks together: {total:.1f} s = {total / base:.0%} of ingest + stitch alone (the target, at most 25% "
        "of a whole `trackplan run` with every mart, is measured in README: Benchmarks)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=5700, help="5700 users over 107 days is about 1M events")
    ap.add_argument("--days", type=int, default=107)
    ap.add_argument("--scoring-only", action="store_true")
    a = ap.parse_args()
    bench_scoring()
    if not a.scoring_only:
        bench_checks(a.users, a.days)


if __name__ == "__main__":
    main()
