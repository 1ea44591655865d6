"""`make bench`: the Spark path's events/s on local[2] beside DuckDB's, on the same generated traffic.

Three stages, each run by both engines on the same input:
  - validate: every landed file through the one validator (DuckDB: validate_files in this process;
    Spark: pipelines.spark.ingest.validate_landing, one file per task, in Spark's Python workers);
  - stitch: identity resolution from ingest.events (DuckDB: pipelines/stitch/identity.py; Spark:
    pipelines/spark/stitch.py from ingest.events exported as day-partitioned Parquet);
  - SQL models: staging.sessions and the SQL marts (DuckDB: the model SQL; Spark: the same SQL as
    models.dialects writes it, over the Spark stitch's layers).
For each it prints wall seconds, CPU seconds (DuckDB: this process's threads; Spark: the JVM and
its Python workers, read from /proc, plus the driver's own Python) and events per CPU-second, the ratios Spark/DuckDB of the same run, and the
bytes per link the Spark stitch's driver holds: the per-core and per-link figures the README's
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


class _Clock:
    """Wall and CPU seconds of a stage: this process's CPU plus (Spark) its JVM's and Python workers'."""

    def __init__(self, children: bool):
        self.children = children

    def __enter__(self):
        self.w, self.c, self.k = time.perf_counter(), time.process_time(), _children_cpu() if self.children else 0.0
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w
        self.cpu = time.process_time() - self.c + ((_children_cpu() - self.k) if self.children else 0.0)


def _driver_graph(spark, plan) -> tuple[int, int, int]:
    """(links, bytes of the collected links frame, peak bytes Python allocates resolving them): what
    the Spark stitch holds on its driver per link of a component it resolves there (over a limit),
    measured with tracemalloc (numpy and pandas report to it) over all links."""
    import tracemalloc

    from pipelines.spark.stitch import collect_links
    from pipelines.stitch.identity import resolve

    pairs = collect_links(spark, plan)
    frame = int(pairs.memory_usage(deep=True).sum())
    empty = pairs.iloc[0:0][["kind_a", "id_a"]].set_axis(["kind", "identifier"], axis=1)
    tracemalloc.start()
    resolve(pairs, empty, plan)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return len(pairs), frame, peak


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a small sample (a few minutes with Spark's start)")
    ap.add_argument("--users", type=int, default=None)
    args = ap.parse_args(argv)
    os.environ.setdefault("TRACKPLAN_HASH_SALT", "trackplan-bench")

    from pipelines.spark.session import unavailable

    why = unavailable()
    if why:
        print(f"spark_bench: skipped ({why})")
        return 0
    from support.spark import export_events
    from support.warehouse import load_landing

    from models.catalog import load_models, plan_variables, set_plan_variables
    from models.staging.plan_tables import write_plan_tables
    from pipelines.spark.ingest import validate_landing
    from pipelines.spark.marts import write_person_parts
    from pipelines.spark.marts import write_plan_tables as spark_plan_tables
    from pipelines.spark.models import ordered, run_models
    from pipelines.spark.session import spark_session
    from pipelines.spark.stitch import stitch as spark_stitch
    from pipelines.stitch.identity import build_identity
    from pipelines.stitch.person_marts import PERSON_PARTS, cache_table, split
    from pipelines.warehouse import connect
    from tracking_plan.loader import load_plan
    from tracking_plan.reader import is_input_file
    from tracking_plan.validate import validate_files
    from trackplan.demo.generate import generate

    users = args.users or (40 if args.quick else 600)
    root = Path(tempfile.mkdtemp(prefix="trackplan-spark-bench-"))
    layers = str(root / "layers")
    plan = load_plan()
    generate(root / "landing", users=users, seed=1, bug_rate=0.01, plan=plan)
    files = sorted(str(p) for p in (root / "landing").rglob("*") if p.is_file() and is_input_file(p))
    rows, took = [], {}

    with _Clock(False) as t:
        reports = validate_files(plan, files)
    lines = sum(r.total for r in reports)
    rows.append(_row("validate", "duckdb", lines, t.wall, t.cpu))
    took[("validate", "duckdb")] = (t.wall, t.cpu)

    con = connect(str(root / "w.duckdb"))
    load_landing(con, plan, root / "landing")
    events = con.execute("select count(*) from ingest.events").fetchall()[0][0]
    with _Clock(False) as t:  # the stitch again, timed alone (load_landing ran it once)
        build_identity(con, plan)
    rows.append(_row("stitch", "duckdb", events, t.wall, t.cpu))
    took[("stitch", "duckdb")] = (t.wall, t.cpu)
    write_plan_tables(con, plan)
    set_plan_variables(con, plan)
    with _Clock(False) as t:
        for m in ordered(load_models()):
            con.execute(f"create or replace table {m.table} as {m.sql}")
            if m.table in PERSON_PARTS:
                person_sql, _ = split(m.sql, PERSON_PARTS[m.table], str(m.path))
                con.execute(f"create or replace table {cache_table(m.table)} as {person_sql}")
    rows.append(_row("sql models", "duckdb", events, t.wall, t.cpu))
    took[("sql models", "duckdb")] = (t.wall, t.cpu)
    export_events(con, root / "layers")
    con.close()

    w0 = time.perf_counter()
    spark = spark_session("local[2]")
    started = time.perf_counter() - w0
    with _Clock(True) as t:
        got = (
            validate_landing(spark, plan, str(root / "landing")).where("kind = 'file'").groupBy().sum("total").collect()
        )
    assert got[0][0] == lines, (got, lines)
    rows.append(_row("validate", "spark", lines, t.wall, t.cpu))
    took[("validate", "spark")] = (t.wall, t.cpu)
    with _Clock(True) as t:
        stats = spark_stitch(spark, plan, layers)
    rows.append(_row("stitch", "spark", events, t.wall, t.cpu))
    took[("stitch", "spark")] = (t.wall, t.cpu)
    spark_plan_tables(spark, plan, layers)
    variables = plan_variables(plan)
    with _Clock(True) as t:
        run_models(spark, layers, variables)
        write_person_parts(spark, layers, variables)
    rows.append(_row("sql models", "spark", events, t.wall, t.cpu))
    took[("sql models", "spark")] = (t.wall, t.cpu)
    links, frame, peak = _driver_graph(spark, plan)
    spark.stop()

    print(
        f"Spark vs DuckDB on {users} generated users ({lines:,} landed lines, {events:,} events); Spark local[2] "
        f"started in {started:.0f} s (not counted)"
    )
    print(f"{'stage':<12} {'engine':<8} {'events':>10} {'wall s':>8} {'cpu s':>8} {'events/s':>12} {'ev/cpu-s':>12}")
    print("\n".join(rows))
    for stage in ("validate", "stitch", "sql models"):
        (dw, dc), (sw, sc) = took[(stage, "duckdb")], took[(stage, "spark")]
        print(f"{stage:<12} Spark/DuckDB in this run: wall x{sw / dw:.1f}, CPU x{sc / dc:.1f}")
    print(
        f"stitch driver cost per link (all {links:,} links collected and resolved, as over-limit components are; "
        f"{stats['linked_identifiers']:,} linked of {stats['identifiers']:,} identifiers): links frame "
        f"{frame / max(links, 1):,.0f} B/link, resolve() peak {peak / max(links, 1):,.0f} B/link"
    )
    print(
        f"stitch components in Spark: {stats['cc_iterations']} rounds; on the driver {stats['driver_links']:,} of "
        f"{links:,} links ({stats['driver_components']:,} components over a limit or with a tied best id, "
        f"{stats['driver_bytes']:,} B collected)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
