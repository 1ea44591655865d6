"""`make bench`: the Spark path's events/s on local[2] beside DuckDB's, on the same generated traffic.

Two stages, each run by both engines on the same input:
  - validate: every landed file through the one validator (DuckDB: validate_files in this process;
    Spark: pipelines.spark.ingest.validate_landing, one file per task, in Spark's Python workers);
  - SQL models: staging.sessions and the SQL marts (DuckDB: the model SQL; Spark: the same SQL as
    models.dialects writes it, over the inputs exported to Parquet).
For each it prints wall seconds, CPU seconds (DuckDB: this process's threads; Spark: the JVM and
its Python workers, read from /proc) and events per CPU-second: the per-core figure the README's
sizing note for 1 billion events a day is worked out from. On a shared machine, wall time says
little; the CPU figures and the ratio Spark/DuckDB are what to compare.

    python benchmarks/spark_bench.py [--quick] [--users N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))


def _children_cpu() -> float:
    """CPU seconds of every live descendant of this process (the JVM, Spark's Python workers)."""
    kids: dict[int, list[int]] = {}
    stat: dict[int, list[str]] = {}
    for f in Path("/proc").glob("[0-9]*/stat"):
        try:
            parts = f.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(f.parent.name)
        kids.setdefault(int(parts[1]), []).append(pid)
        stat[pid] = parts
    tick = os.sysconf("SC_CLK_TCK")
    todo, total = [os.getpid()], 0.0
    while todo:
        for c in kids.get(todo.pop(), []):
            todo.append(c)
            total += (int(stat[c][11]) + int(stat[c][12]) + int(stat[c][13]) + int(stat[c][14])) / tick
    return total


def _row(stage: str, engine: str, events: int, wall: float, cpu: float) -> str:
    return (
        f"{stage:<12} {engine:<8} {events:>10,} {wall:>8.1f} {cpu:>8.1f} {events / wall:>12,.0f} {events / cpu:>12,.0f}"
    )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small sample (about a minute plus Spark's start)")
    ap.add_argument("--users", type=int, default=None)
    args = ap.parse_args(argv)
    os.environ.setdefault("TRACKPLAN_HASH_SALT", "trackplan-bench")

    from pipelines.spark.session import unavailable

    why = unavailable()
    if why:
        print(f"spark_bench: skipped ({why})")
        return 0
    from support.spark import export_inputs
    from support.warehouse import load_landing

    from models.catalog import load_models, plan_variables, set_plan_variables
    from models.staging.plan_tables import write_plan_tables
    from pipelines.spark.ingest import validate_landing
    from pipelines.spark.models import run_models
    from pipelines.spark.session import spark_session
    from pipelines.warehouse import connect
    from tracking_plan.loader import load_plan
    from tracking_plan.reader import is_input_file
    from tracking_plan.validate import validate_files
    from trackplan.demo.generate import generate

    users = args.users or (40 if args.quick else 600)
    root = Path(tempfile.mkdtemp(prefix="trackplan-spark-bench-"))
    plan = load_plan()
    generate(root / "landing", users=users, seed=1, bug_rate=0.01, plan=plan)
    files = sorted(str(p) for p in (root / "landing").rglob("*") if p.is_file() and is_input_file(p))
    rows = []

    w, c = time.perf_counter(), time.process_time()
    reports = validate_files(plan, files)
    lines = sum(r.total for r in reports)
    rows.append(_row("validate", "duckdb", lines, time.perf_counter() - w, time.process_time() - c))

    con = connect(str(root / "w.duckdb"))
    load_landing(con, plan, root / "landing")
    write_plan_tables(con, plan)
    set_plan_variables(con, plan)
    events = con.execute("select count(*) from stitch.events").fetchall()[0][0]
    w, c = time.perf_counter(), time.process_time()
    for m in load_models():
        con.execute(f"create or replace table {m.table} as {m.sql}")
    rows.append(_row("sql models", "duckdb", events, time.perf_counter() - w, time.process_time() - c))
    export_inputs(con, root / "layers")
    con.close()

    w0 = time.perf_counter()
    spark = spark_session("local[2]")
    started = time.perf_counter() - w0
    c = _children_cpu()
    w = time.perf_counter()
    got = validate_landing(spark, plan, str(root / "landing")).where("kind = 'file'").groupBy().sum("total").collect()
    assert got[0][0] == lines, (got, lines)
    rows.append(_row("validate", "spark", lines, time.perf_counter() - w, _children_cpu() - c))
    c = _children_cpu()
    w = time.perf_counter()
    run_models(spark, str(root / "layers"), plan_variables(plan))
    rows.append(_row("sql models", "spark", events, time.perf_counter() - w, _children_cpu() - c))
    spark.stop()

    print(
        f"Spark vs DuckDB on {users} generated users ({lines:,} landed lines, {events:,} events); Spark local[2] "
        f"started in {started:.0f} s (not counted)"
    )
    print(f"{'stage':<12} {'engine':<8} {'events':>10} {'wall s':>8} {'cpu s':>8} {'events/s':>12} {'ev/cpu-s':>12}")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
