"""Peak memory of building the Python marts at two sizes (issue 18, item 3): it must not grow with raw events.

The generator writes a landing zone at each size (`--users` existing accounts over the default days;
~220 events per account), which is ingested, stitched and sessionized (not measured). Then, each in a
fresh process so that nothing else counts toward its peak, the peak resident memory (ru_maxrss) of:
  - marts: building every Python mart (experiment_results, experiment_uplift, initiative_roi,
    initiative_scenarios, initiative_portfolio, channel_attribution, customer_clv) and kpi_values from
    the warehouse, as `trackplan run` does: SQL aggregates of stitch.events (DuckDB's memory included);
  - per-event frame: only loading the one-row-per-event frame the marts used before (the oracle in
    tests/support/marts_reference.py), the least the old path held.
Each figure is the peak (VmHWM) minus the process's resident memory after its imports. Printed: both at
both sizes and their slope in MB per million events; the marts' slope against the per-event
frame's is the ratio that counts (memory that "does not grow with raw events" has a slope near 0;
what remains grows with persons and days, which the generator grows along with the users).

    python benchmarks/marts_memory.py [--users 460 4600] [--days D1 D2] [--quick] [--workdir DIR]

`--users 460 460 --days 30 120` grows the events at (nearly) the same persons instead.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import support.warehouse  # noqa: F401 - sets the public demo salt for generated data unless one is set

PYTHON_MARTS = (
    "experiment_results",
    "experiment_uplift",
    "initiative_roi",
    "initiative_scenarios",
    "initiative_portfolio",
    "channel_attribution",
    "customer_clv",
)


def _status_mb(field: str) -> float:
    """VmHWM (peak) or VmRSS (now) of this process from /proc: ru_maxrss would carry the parent's
    peak over fork and exec, VmHWM belongs to this process's own memory."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: the best there is


def _rss_mb() -> float:
    return _status_mb("VmHWM")


def build_warehouse(users: int, work: Path, seed: int, days: int | None = None) -> dict:
    """Landing zone → ingest → stitch → sessions → marts.customer_value (customer_clv reads it)."""
    from support.warehouse import load_landing

    from models.catalog import load_models, set_plan_variables
    from models.staging.plan_tables import write_plan_tables
    from pipelines.warehouse import connect
    from tracking_plan.loader import load_plan
    from trackplan.demo.generate import generate

    plan = load_plan()
    kw = {"days": days} if days else {}
    generate(work / "landing", users=users, seed=seed, bug_rate=0.0, plan=plan, **kw)
    con = connect(work / "w.duckdb")
    try:
        load_landing(con, plan, work / "landing", sessions=True)
        write_plan_tables(con, plan)
        set_plan_variables(con, plan)
        value = next(m for m in load_models() if m.table == "marts.customer_value")
        con.execute(f"create or replace table {value.table} as {value.sql}")
        events, persons = con.execute("select count(*), count(distinct person_id) from stitch.events").fetchone()
    finally:
        con.close()
    shutil.rmtree(work / "landing", ignore_errors=True)
    return {"events": events, "persons": persons}


def measure(path: Path, what: str) -> dict:
    """In this (fresh) process: peak RSS of `what` ("marts" or "frame") above the RSS after imports."""
    import importlib

    import pandas as pd  # noqa: F401 - imported before the baseline, as the pipeline has it
    from support import marts_reference

    import models.kpis
    from pipelines.warehouse import connect
    from tracking_plan.loader import load_plan

    mods = {m: importlib.import_module(f"models.marts.{m}") for m in PYTHON_MARTS}
    plan = load_plan()
    con = connect(path)
    base = _status_mb("VmRSS")
    if what == "marts":
        for m, mod in mods.items():
            df = mod.build(con, plan)
            con.register("_mart", df)
            con.execute(f"create or replace table marts.{m} as select * from _mart")
            con.unregister("_mart")
            del df
        models.kpis.kpi_values(con, plan)
    else:
        frame = marts_reference.normalize(marts_reference.load_events(con, plan), plan)
        del frame
    con.close()
    return {"peak_mb": _rss_mb(), "base_mb": base, "delta_mb": _rss_mb() - base}


def _child(path: Path, what: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", what, "--workdir", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, nargs=2, default=[460, 4600], help="two sizes (~100k and ~1M events)")
    ap.add_argument("--days", type=int, nargs=2, help="days of traffic at the two sizes (default: the generator's)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="120 and 480 users (~25k and ~100k events): a smoke run")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--measure", choices=["marts", "frame"], help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(args.workdir, args.measure)))
        return 0
    if args.quick:
        args.users = [120, 480]
    work = args.workdir or Path(tempfile.mkdtemp(prefix="trackplan-martsmem-"))
    rows = []
    try:
        for users, days in zip(args.users, args.days or [None, None]):
            d = work / f"u{users}d{days or 0}"
            d.mkdir(parents=True, exist_ok=True)
            size = build_warehouse(users, d, args.seed, days)
            marts, frame = _child(d / "w.duckdb", "marts"), _child(d / "w.duckdb", "frame")
            rows.append({"users": users, **size, "marts": marts, "frame": frame})
            print(
                f"users {users:>6}  days {days or 'default'}  events {size['events']:>9,}  persons {size['persons']:>7,}  "
                f"marts +{marts['delta_mb']:7.1f} MB (peak {marts['peak_mb']:.0f})  "
                f"per-event frame +{frame['delta_mb']:7.1f} MB (peak {frame['peak_mb']:.0f})",
                flush=True,
            )
    finally:
        if not args.workdir:
            shutil.rmtree(work, ignore_errors=True)
    a, b = rows
    million = (b["events"] - a["events"]) / 1e6
    slope = {k: (b[k]["delta_mb"] - a[k]["delta_mb"]) / million for k in ("marts", "frame")}
    print(
        f"slope, MB per million events: marts {slope['marts']:.1f}, per-event frame {slope['frame']:.1f} "
        f"(ratio {slope['marts'] / slope['frame'] if slope['frame'] > 0 else float('nan'):.2f}); events x{b['events'] / a['events']:.1f}, "
        f"persons x{b['persons'] / a['persons']:.1f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
