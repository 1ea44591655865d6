"""CPU of the Python marts' build functions against one warehouse, two checkouts back to back (issue 18).

A warehouse built once (`trackplan run --landing L --warehouse W`) is opened read-only; each pass,
in a fresh process with PYTHONPATH set to one checkout, runs every Python mart's `build(con, plan)`
as `trackplan run` does (each on its own connection) and times it in CPU seconds of the whole
process (DuckDB's threads included; `time.process_time`). Every statement a build runs is counted
and timed too, labelled by the `models.marts.aggregates` query it is (or `other`), and those that
read `stitch.events` are counted apart. Passes alternate between the checkouts (a, b, a, b, ...) so
that load from other processes falls on both alike; printed: the median per mart and of the total,
and b's total as a ratio of a's.

    python benchmarks/marts_cpu.py WAREHOUSE --a MAIN_CHECKOUT --b . [--repeat 3] [--marts initiative_roi,...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def python_marts() -> list[str]:
    """The Python marts' module names, from the model catalog (the one list of them)."""
    sys.path.insert(0, str(REPO))
    from models.catalog import load_python_models

    return [m.table.split(".", 1)[1] for m in load_python_models()]


# (label, a piece of the statement's text that marks it), first match wins
QUERIES = [
    ("narrow events (materialize)", "temp table"),
    ("span", 'select min("timestamp"), max("timestamp"), count(*)'),
    ("exposure_outcomes", "with x as ("),
    ("first_exposures", "arg_min_null(variant"),
    ("signup_outcomes", "as signup_at, arg_min_null("),
    ("cohort_hits", "as hits"),
    ("matching_inputs", "bool_or(has_user)"),
    ("daily_counts", "count(*) as n"),
    ("kpi_windows", "with w(i, lo, hi)"),
    ("person_days", "as y\nfrom"),
    ("property_rows", "as y\nfrom"),
    ("latest_value", "arg_max("),
]


def _label(sql: str) -> str:
    for label, marker in QUERIES:
        if marker in sql:
            return label
    return "other"


class Counting:
    """A connection that times each statement (CPU of the whole process) and counts those of stitch.events."""

    def __init__(self, con, log: list):
        self._con, self._log = con, log

    def execute(self, sql, *args, **kw):
        c0 = time.process_time()
        out = self._con.execute(sql, *args, **kw)
        self._log.append((_label(sql), "stitch.events" in sql, time.process_time() - c0))
        return out

    def __getattr__(self, name):
        return getattr(self._con, name)


def child(warehouse: str, marts: list[str]) -> dict:
    """One pass in this process: every mart's build on its own connection, CPU-s and statements."""
    import importlib

    from pipelines.warehouse import connect
    from tracking_plan.loader import load_plan

    plan = load_plan()
    out = {}
    for name in marts:
        module = importlib.import_module(f"models.marts.{name}")
        con = connect(warehouse, read_only=True)
        log: list = []
        c0 = time.process_time()
        df = module.build(Counting(con, log), plan)
        cpu = time.process_time() - c0
        con.close()
        per: dict = {}
        for label, events, s in log:
            n, t = per.get(label, (0, 0.0))
            per[label] = (n + 1, t + s)
        out[name] = {
            "cpu": cpu,
            "rows": len(df),
            "statements": len(log),
            "of_events": sum(1 for _, e, _ in log if e),
            "per_query": per,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("warehouse")
    ap.add_argument("--a", help="a checkout (e.g. a git worktree of main); required")
    ap.add_argument("--b", help="the other checkout (e.g. .); required")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--marts", help="comma-separated module names (default: every Python mart)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    marts = args.marts.split(",") if args.marts else python_marts()
    if args.child:
        print(json.dumps(child(args.warehouse, marts)))
        return 0
    if not args.a or not args.b:  # (not required of the child, which this process starts without them)
        ap.error("--a and --b name the two checkouts to compare")
    runs: dict[str, list[dict]] = {"a": [], "b": []}
    for _ in range(args.repeat):
        for side in ("a", "b"):
            checkout = str(Path(getattr(args, side)).resolve())
            env = {**os.environ, "PYTHONPATH": checkout}
            env.setdefault("TRACKPLAN_HASH_SALT", "bench-salt")
            p = subprocess.run(
                [sys.executable, __file__, args.warehouse, "--marts", ",".join(marts), "--child", checkout],
                cwd=checkout,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            if p.returncode:
                raise SystemExit(f"{checkout}: {p.stderr[-3000:]}")
            runs[side].append(json.loads(p.stdout.strip().splitlines()[-1]))
    totals = {}
    for side in ("a", "b"):
        print(f"== {side}: {getattr(args, side)} (median of {args.repeat} passes, CPU-s)")
        for name in marts:
            med = statistics.median(r[name]["cpu"] for r in runs[side])
            last = runs[side][-1][name]
            queries = ", ".join(
                f"{label} {n}x {t:.2f}s"
                for label, (n, t) in sorted(last["per_query"].items(), key=lambda kv: -kv[1][1])
            )
            print(
                f"  {name:22s} {med:7.2f}  statements {last['statements']:3d}, of stitch.events "
                f"{last['of_events']:3d}, rows {last['rows']}: {queries}"
            )
        totals[side] = statistics.median(sum(r[m]["cpu"] for m in marts) for r in runs[side])
        print(f"  {'total':22s} {totals[side]:7.2f}")
    print(f"b / a total CPU: {totals['b'] / totals['a']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
