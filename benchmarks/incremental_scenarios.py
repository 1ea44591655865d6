"""Incremental == full over many random scenarios (issue 18, item 2): the evidence behind the claim
that daily runs build the tables one full build does, on any draw, not on one hand-made scenario.

Each seed draws a scenario (tests/support/scenarios.py: a generated landing zone plus, each later day,
late events at the session boundaries, merges and aliases reaching back, re-sends, client sessions
across days, late signups and orders, events with consent declined; a day whose folder arrives late;
a person erased after the middle run; then a day run again with a backfill of messages a later day
loaded, and a day run again without one of its files), runs
it day by day as a schedule would, and
compares every table (ingest, stitch, sessions, every mart and its kept parts, the daily metrics,
the gates' counts) with a full build of the same landing zone. Seeds are FIRST..FIRST+N-1, none
skipped; exits 1 if any scenario differs, printing its seed, what it drew and the first differences.

    .venv/bin/python benchmarks/incremental_scenarios.py [--scenarios 40] [--first-seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parents[1] / "tests")]

from support.scenarios import Scenario, daily_then_full

from tracking_plan.loader import default_plan_dir, load_plan


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("TRACKPLAN_HASH_SALT", "bench-salt")  # (the ingest's keyed hash, the erasure register)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenarios", type=int, default=40)
    ap.add_argument("--first-seed", type=int, default=0)
    args = ap.parse_args(argv)
    plan, plan_dir = load_plan(), default_plan_dir()
    failed, again = [], Counter()
    t0 = time.time()
    for seed in range(args.first_seed, args.first_seed + args.scenarios):
        with tempfile.TemporaryDirectory(prefix="trackplan-scenario-") as tmp:
            s0 = time.time()
            scenario = Scenario(Path(tmp), seed)
            diffs, modes = daily_then_full(Path(tmp), scenario, plan, plan_dir)
            for m in modes:
                again.update(m["again"].values())
            print(
                f"seed {seed}: {'the same tables' if not diffs else f'{len(diffs)} tables differ'} "
                f"({time.time() - s0:.1f} s; days run again by the ingest: "
                f"{sum(len(m['again']) for m in modes)})",
                flush=True,
            )
            if diffs:
                failed.append(seed)
                print("\n".join(["  drew:", *("    " + x for x in scenario.log), "  differences:", *diffs[:5]]))
    print(
        f"\n{args.scenarios} scenarios (seeds {args.first_seed}..{args.first_seed + args.scenarios - 1}), "
        f"{time.time() - t0:.0f} s: {args.scenarios - len(failed)} built the full build's tables, "
        f"{len(failed)} did not{': seeds ' + ', '.join(map(str, failed)) if failed else ''}"
    )
    for why, n in again.most_common():
        print(f"  days the ingest ran again, not asked for: {n} ({why})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
