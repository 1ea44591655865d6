"""`make bench`: the Spark path's events/s on local[2] beside DuckDB's, on the same landed traffic.

Three stages, each run by both engines on the same input:
  - validate: every landed file through the one validator (DuckDB: validate_files in this process;
    Spark: pipelines.spark.ingest.validate_landing, one file per task, in Spark's Python workers);
  - stitch: identity resolution from ingest.events (DuckDB: pipelines/stitch/identity.py; Spark:
    pipelines/spark/stitch.py from ingest.events exported as day-partitioned Parquet);
  - SQL models: staging.sessions and the SQL marts (DuckDB: the model SQL; Spark: the same SQL as
    models.dialects writes it, over the Spark stitch's layers), each model timed on its own.

At one or more sizes (`--users N,N` generated users, or `--landing DIR,DIR` existing landing zones
such as the cached ones of benchmarks/run.py), smallest first, after a throwaway warm-up of every
Spark stage on a 40-user sample (the JVM's class loading and JIT are not charged to the first size).
For each stage it prints wall seconds, CPU seconds (DuckDB: this process's threads; Spark: the JVM
and its Python workers, read from /proc, plus the driver's own Python), events per CPU-second and
the Spark/DuckDB ratios of the same run; with two sizes or more, the per-event cost and the fixed
cost from the two extreme sizes (CPU = fixed + events / rate). From Spark's event log (written
uncompressed by this bench, read back after the run) it prints, per stage and per SQL model, the
jobs, tasks, the CPU Spark's tasks spent (the rest of the JVM's CPU is the driver: planning,
scheduling, JIT, GC) and the bytes shuffled per event; and the peak resident memory of the JVM
with its Python workers. These per-core and per-event figures are what the README's sizing note
for 1 billion events a day is worked out from. On a shared machine wall time says little; the CPU
figures and the ratio Spark/DuckDB are what to compare.

    python benchmarks/spark_bench.py [--quick] [--users N[,N]] [--landing DIR[,DIR]] [--keep]

Default: 2,500 and 25,000 generated users (~100k and ~1M events); --quick: 40 users.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

WARMUP_USERS = 40


def _tree() -> tuple[dict[int, list[str]], dict[int, list[int]]]:
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
    return stat, kids


def _descendants(kids: dict[int, list[int]]) -> list[int]:
    todo, out = [os.getpid()], []
    while todo:
        for c in kids.get(todo.pop(), []):
            todo.append(c)
            out.append(c)
    return out


class _Tree(threading.Thread):
    """Samples this process's descendants (the JVM, its Python daemon and workers) every 0.25 s: their
    CPU seconds, with each process's own time kept ("banked") at its last sample once it is gone
    (idle Python workers are killed by the JVM between stages, and a live-tree sum would lose their
    CPU; children's cutime is not used, so nothing counts twice), and the peak resident memory of
    the tree and of this process since the last `take()`."""

    def __init__(self):
        super().__init__(daemon=True)
        self.page, self.tick = os.sysconf("SC_PAGE_SIZE"), os.sysconf("SC_CLK_TCK")
        self.lock = threading.Lock()
        self.live: dict[int, float] = {}
        self.banked = 0.0
        self.peak_children = self.peak_self = 0
        self.stopped = threading.Event()

    def _rss(self, pid: int) -> int:
        try:
            return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * self.page
        except (OSError, IndexError):
            return 0

    def sample(self) -> float:
        """CPU seconds of every descendant seen so far (live ones now, gone ones at their last sample)."""
        with self.lock:
            stat, kids = _tree()
            now = {p: (int(stat[p][11]) + int(stat[p][12])) / self.tick for p in _descendants(kids)}
            self.banked += sum(cpu for p, cpu in self.live.items() if p not in now)
            self.live = now
            self.peak_children = max(self.peak_children, sum(self._rss(p) for p in now))
            self.peak_self = max(self.peak_self, self._rss(os.getpid()))
            return self.banked + sum(now.values())

    def run(self):
        while not self.stopped.wait(0.25):
            self.sample()

    def take(self) -> tuple[int, int]:
        with self.lock:
            out = (self.peak_children, self.peak_self)
            self.peak_children = self.peak_self = 0
        return out


TREE = _Tree()


class _Clock:
    """Wall and CPU seconds of a stage: this process's CPU plus (Spark) its JVM's and Python workers'."""

    def __init__(self, children: bool, spark=None, group: str | None = None):
        self.children, self.spark, self.group = children, spark, group

    def __enter__(self):
        if self.spark is not None and self.group:  # the event log's jobs carry the group: per-stage metrics
            self.spark.sparkContext.setJobGroup(self.group, self.group)
        self.w, self.c, self.k = time.perf_counter(), time.process_time(), TREE.sample() if self.children else 0.0
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.w
        self.cpu = time.process_time() - self.c + ((TREE.sample() - self.k) if self.children else 0.0)
        if self.spark is not None and self.group:
            self.spark.sparkContext.setJobGroup("other", "other")


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


def read_event_log(folder: Path) -> dict[str, dict]:
    """Per job group of Spark's (uncompressed, JSON-lines) event log: jobs, stages, tasks, the tasks'
    executor CPU seconds, and bytes read from files, shuffled (written) and written out."""
    out: dict[str, dict] = defaultdict(lambda: defaultdict(float))
    stage_group: dict[int, str] = {}
    stage_shuffle: dict[int, int] = defaultdict(int)
    # Spark 4 rolls the log: eventlog_v2_<app>/events_<n>_<app> (+ an empty appstatus marker)
    files = sorted((p for p in folder.rglob("events_*")), key=lambda p: int(p.name.split("_")[1]))
    for path in files:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                ev = json.loads(line)
                kind = ev.get("Event")
                if kind == "SparkListenerJobStart":
                    group = (ev.get("Properties") or {}).get("spark.jobGroup.id") or "other"
                    out[group]["jobs"] += 1
                    for sid in ev.get("Stage IDs", []):
                        stage_group[sid] = group
                elif kind == "SparkListenerStageCompleted":
                    info = ev["Stage Info"]
                    out[stage_group.get(info["Stage ID"], "other")]["stages"] += 1
                elif kind == "SparkListenerTaskEnd":
                    m = ev.get("Task Metrics") or {}
                    g = out[stage_group.get(ev["Stage ID"], "other")]
                    g["tasks"] += 1
                    g["task_cpu_s"] += (
                        m.get("Executor CPU Time", 0) / 1e9 + m.get("Executor Deserialize CPU Time", 0) / 1e9
                    )
                    g["gc_s"] += m.get("JVM GC Time", 0) / 1e3
                    g["input_bytes"] += (m.get("Input Metrics") or {}).get("Bytes Read", 0)
                    g["output_bytes"] += (m.get("Output Metrics") or {}).get("Bytes Written", 0)
                    written = (m.get("Shuffle Write Metrics") or {}).get("Shuffle Bytes Written", 0)
                    g["shuffle_bytes"] += written
                    stage_shuffle[ev["Stage ID"]] += written
                    g["peak_exec_mem"] = max(g["peak_exec_mem"], m.get("Peak Execution Memory", 0))
    for sid, written in stage_shuffle.items():  # the largest single shuffle: what sizes the partitions
        g = out[stage_group.get(sid, "other")]
        g["max_stage_shuffle"] = max(g["max_stage_shuffle"], written)
    return out


def _landings(args, root: Path, plan) -> list[tuple[str, Path]]:
    """(label, landing zone) for every size asked for."""
    from trackplan.demo.generate import generate

    if args.landing:
        paths = [Path(p).expanduser() for p in args.landing.split(",")]
        return [(p.parent.name if p.name == "landing" else p.name, p) for p in paths]
    # by default ~100k and ~1M events, the README's sizes (benchmarks/run.py's 1e5 and 1e6 users counts)
    sizes = [int(n) for n in args.users.split(",")] if args.users else ([40] if args.quick else [2500, 25000])
    out = []
    for users in sorted(sizes):
        landing = root / f"landing-{users}"
        generate(landing, users=users, seed=1, bug_rate=0.01, plan=plan)
        out.append((f"{users} users", landing))
    return out


def _landed_files(landing: Path) -> list[str]:
    from tracking_plan.reader import is_input_file

    return sorted(str(p) for p in landing.rglob("*") if p.is_file() and is_input_file(p))


def run_duckdb(plan, landing: Path, work: Path) -> dict:
    """The DuckDB side of one size: validate, stitch (timed alone, after the ingest), SQL models."""
    from support.spark import export_events
    from support.warehouse import load_landing

    from models.catalog import load_models, set_plan_variables
    from models.staging.plan_tables import write_plan_tables
    from pipelines.spark.models import ordered
    from pipelines.stitch.identity import build_identity
    from pipelines.stitch.person_marts import PERSON_PARTS, cache_table, split
    from pipelines.warehouse import connect
    from tracking_plan.validate import validate_files

    out: dict = {"stages": {}, "models": {}}
    with _Clock(False) as t:
        reports = validate_files(plan, _landed_files(landing))
    out["lines"] = sum(r.total for r in reports)
    out["stages"]["validate"] = (t.wall, t.cpu)
    con = connect(str(work / "w.duckdb"))
    load_landing(con, plan, landing)
    out["events"] = con.execute("select count(*) from ingest.events").fetchall()[0][0]
    with _Clock(False) as t:  # the stitch again, timed alone (load_landing ran it once)
        build_identity(con, plan)
    out["stages"]["stitch"] = (t.wall, t.cpu)
    write_plan_tables(con, plan)
    set_plan_variables(con, plan)
    wall = cpu = 0.0
    models = ordered(load_models())
    for m in models:
        with _Clock(False) as t:
            con.execute(f"create or replace table {m.table} as {m.sql}")
        out["models"][m.table] = (t.wall, t.cpu)
        wall, cpu = wall + t.wall, cpu + t.cpu
    with _Clock(False) as t:
        for m in models:
            if m.table in PERSON_PARTS:
                person_sql, _ = split(m.sql, PERSON_PARTS[m.table], str(m.path))
                con.execute(f"create or replace table {cache_table(m.table)} as {person_sql}")
    out["models"]["person parts"] = (t.wall, t.cpu)
    wall, cpu = wall + t.wall, cpu + t.cpu
    out["stages"]["sql models"] = (wall, cpu)
    export_events(con, work / "layers")
    con.close()
    (work / "w.duckdb").unlink()
    return out


def run_spark(spark, plan, landing: Path, layers: str, label: str, stats_out: dict | None = None) -> dict:
    """The Spark side of one size, each stage (and each SQL model) in a job group named after it."""
    from models.catalog import load_models, plan_variables
    from pipelines.spark.ingest import validate_landing
    from pipelines.spark.marts import write_person_parts
    from pipelines.spark.marts import write_plan_tables as spark_plan_tables
    from pipelines.spark.models import layer_path, ordered, register, run_model, sql_inputs
    from pipelines.spark.stitch import stitch as spark_stitch

    out: dict = {"stages": {}, "models": {}}
    with _Clock(True, spark, f"{label}|validate") as t:
        got = validate_landing(spark, plan, str(landing)).where("kind = 'file'").groupBy().sum("total").collect()
    out["lines"] = got[0][0]
    out["stages"]["validate"] = (t.wall, t.cpu)
    with _Clock(True, spark, f"{label}|stitch") as t:
        stats = spark_stitch(spark, plan, layers)
    out["stages"]["stitch"] = (t.wall, t.cpu)
    if stats_out is not None:
        stats_out.update(stats)
    spark_plan_tables(spark, plan, layers)
    variables = plan_variables(plan)
    models = load_models()
    for table in sql_inputs(models):
        register(spark, table, layer_path(layers, table))
    wall = cpu = 0.0
    for m in ordered(models):
        with _Clock(True, spark, f"{label}|sql|{m.table}") as t:
            run_model(spark, m, layers, variables)
        out["models"][m.table] = (t.wall, t.cpu)
        wall, cpu = wall + t.wall, cpu + t.cpu
    with _Clock(True, spark, f"{label}|sql|person parts") as t:  # the funnel's per-person part (PERSON_PARTS)
        write_person_parts(spark, layers, variables)
    out["models"]["person parts"] = (t.wall, t.cpu)
    wall, cpu = wall + t.wall, cpu + t.cpu
    out["stages"]["sql models"] = (wall, cpu)
    return out


def _fit(points: list[tuple[int, float]]) -> tuple[float, float] | None:
    """(events per CPU-second of the per-event cost, fixed CPU seconds) from the smallest and the
    largest size; None when the per-event cost is not positive (the fixed cost dominates)."""
    (n1, c1), (n2, c2) = points[0], points[-1]
    if n2 == n1 or c2 <= c1:
        return None
    per_event = (c2 - c1) / (n2 - n1)
    return 1 / per_event, c1 - n1 * per_event


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--quick", action="store_true", help="one small sample, 40 users (a few minutes with Spark's start)"
    )
    ap.add_argument("--users", default=None, help="generated users, one size or several (N,N)")
    ap.add_argument("--landing", default=None, help="existing landing zones instead (DIR or DIR,DIR), smallest first")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (layers, event log) and print it")
    args = ap.parse_args(argv)
    os.environ.setdefault("TRACKPLAN_HASH_SALT", "trackplan-bench")

    from pipelines.spark.session import unavailable

    why = unavailable()
    if why:
        print(f"spark_bench: skipped ({why})")
        return 0
    from pipelines.spark.session import spark_session
    from tracking_plan.loader import load_plan
    from trackplan.demo.generate import generate

    plan = load_plan()
    root = Path(tempfile.mkdtemp(prefix="trackplan-spark-bench-"))
    eventlog = root / "eventlog"
    eventlog.mkdir()
    sampler = TREE
    sampler.start()
    try:
        sizes = _landings(args, root, plan)
        results = []
        for i, (label, landing) in enumerate(sizes):
            work = root / f"size-{i}"
            work.mkdir()
            duck = run_duckdb(plan, landing, work)
            duck["peak_self"] = sampler.take()[1]
            results.append({"label": label, "duckdb": duck, "work": work})
        warm = root / "warmup"
        generate(warm / "landing", users=WARMUP_USERS, seed=2, bug_rate=0.01, plan=plan)
        warm_duck = run_duckdb(plan, warm / "landing", warm)

        w0 = time.perf_counter()
        # the event log uncompressed (Spark 4 compresses it with zstd by default): read back below as JSON lines
        conf = {
            "spark.eventLog.enabled": "true",
            "spark.eventLog.dir": str(eventlog),
            "spark.eventLog.compress": "false",
        }
        spark = spark_session("local[2]", conf=conf)
        started = time.perf_counter() - w0
        with _Clock(True) as warmup:  # throwaway: class loading and JIT, not charged to the first size
            run_spark(spark, plan, warm / "landing", str(warm / "layers"), "warmup")
        sampler.take()
        stats: dict = {}
        for r in results:
            landing = dict(sizes)[r["label"]]
            r["spark"] = run_spark(spark, plan, landing, str(r["work"] / "layers"), r["label"], stats)
            r["spark"]["peak_children"] = sampler.take()[0]
            assert r["spark"]["lines"] == r["duckdb"]["lines"], (r["spark"]["lines"], r["duckdb"]["lines"])
        links, frame, peak = _driver_graph(spark, plan)
        spark.stop()
        log = read_event_log(eventlog)
    finally:
        sampler.stopped.set()

    print(
        f"Spark local[2] vs DuckDB; Spark started in {started:.0f} s and warmed up on {WARMUP_USERS} users "
        f"({warm_duck['events']:,} events) in {warmup.cpu:.1f} CPU-s (neither counted)"
    )
    head = f"{'size':<20} {'stage':<28} {'engine':<7} {'events':>10} {'wall s':>8} {'cpu s':>8} {'events/s':>10} {'ev/cpu-s':>10}"
    print(head)
    for r in results:
        events = r["duckdb"]["events"]
        for stage in ("validate", "stitch", "sql models"):
            n = r["duckdb"]["lines"] if stage == "validate" else events
            for engine in ("duckdb", "spark"):
                wall, cpu = r[engine]["stages"][stage]
                print(
                    f"{r['label']:<20} {stage:<28} {engine:<7} {n:>10,} {wall:>8.1f} {cpu:>8.1f} {n / wall:>10,.0f} {n / cpu:>10,.0f}"
                )
            (dw, dc), (sw, sc) = r["duckdb"]["stages"][stage], r["spark"]["stages"][stage]
            print(f"{r['label']:<20} {stage:<28} Spark/DuckDB in this run: wall x{sw / dw:.1f}, CPU x{sc / dc:.1f}")
    print("\nper SQL model (CPU s): duckdb | spark | Spark's tasks: jobs, tasks, task CPU s, shuffle bytes/event")
    for r in results:
        events = r["duckdb"]["events"]
        for table, (_, scpu) in r["spark"]["models"].items():
            g = log.get(f"{r['label']}|sql|{table}", {})
            print(
                f"{r['label']:<20} {table:<34} {r['duckdb']['models'][table][1]:>7.2f} | {scpu:>7.2f} | "
                f"{int(g.get('jobs', 0)):>4} jobs {int(g.get('tasks', 0)):>5} tasks {g.get('task_cpu_s', 0):>7.1f} s "
                f"{g.get('shuffle_bytes', 0) / events:>7.1f} B/ev"
            )
    print(
        "\nSpark per stage, from its event log: jobs, stages, tasks; task CPU (the rest of the JVM's is the driver); bytes per event"
    )
    for r in results:
        events = r["duckdb"]["events"]
        for stage in ("validate", "stitch", "sql"):
            gs = [g for k, g in log.items() if k.startswith(f"{r['label']}|{stage}")]
            tot = {
                k: sum(g.get(k, 0) for g in gs)
                for k in (
                    "jobs",
                    "stages",
                    "tasks",
                    "task_cpu_s",
                    "gc_s",
                    "input_bytes",
                    "shuffle_bytes",
                    "output_bytes",
                )
            }
            peak_mem = max((g.get("peak_exec_mem", 0) for g in gs), default=0)
            largest = max((g.get("max_stage_shuffle", 0) for g in gs), default=0)
            cpu = r["spark"]["stages"]["sql models" if stage == "sql" else stage][1]
            print(
                f"{r['label']:<20} {stage:<10} {int(tot['jobs']):>5} jobs {int(tot['stages']):>5} stages {int(tot['tasks']):>6} tasks; "
                f"task CPU {tot['task_cpu_s']:.1f} of {cpu:.1f} s (GC {tot['gc_s']:.1f} s); per event: read {tot['input_bytes'] / events:.0f} B, "
                f"shuffled {tot['shuffle_bytes'] / events:.0f} B (largest stage {largest / events:.0f} B), written {tot['output_bytes'] / events:.0f} B; peak task execution memory {peak_mem / 2**20:.0f} MiB"
            )
    for r in results:
        events = r["duckdb"]["events"]
        parquet = sum(f.stat().st_size for f in (r["work"] / "layers" / "stitch" / "events").rglob("*.parquet"))
        read = sum(g.get("input_bytes", 0) for k, g in log.items() if k.startswith(f"{r['label']}|sql"))
        print(
            f"{r['label']:<20} stitch.events is {parquet / events:.0f} B/event as Parquet: the SQL models read "
            f"{read / max(parquet, 1):.0f} times its size"
        )
    for r in results:
        print(
            f"{r['label']:<20} peak RSS: JVM + Python workers {r['spark']['peak_children'] / 2**30:.2f} GiB (Spark stages); "
            f"this process {r['duckdb']['peak_self'] / 2**30:.2f} GiB (DuckDB stages)"
        )
    if len(results) > 1:
        print(
            f"\ncost per event and fixed cost, from the two sizes {results[0]['label']} and {results[-1]['label']} (CPU = fixed + events / rate):"
        )
        for stage in ("validate", "stitch", "sql models"):
            key = "lines" if stage == "validate" else "events"
            fits = {}
            for engine in ("duckdb", "spark"):
                fits[engine] = _fit([(r["duckdb"][key], r[engine]["stages"][stage][1]) for r in results])

            def show(f):
                return "no positive slope" if f is None else f"{f[0]:,.0f} ev/CPU-s + {f[1]:.1f} CPU-s fixed"

            ratio = (
                f", per-event cost x{fits['duckdb'][0] / fits['spark'][0]:.1f}"
                if fits["duckdb"] and fits["spark"]
                else ""
            )
            print(f"  {stage:<12} duckdb {show(fits['duckdb'])}; spark {show(fits['spark'])}{ratio}")
    print(
        f"\nstitch driver cost per link (all {links:,} links collected and resolved, as over-limit components are; "
        f"{stats['linked_identifiers']:,} linked of {stats['identifiers']:,} identifiers): links frame "
        f"{frame / max(links, 1):,.0f} B/link, resolve() peak {peak / max(links, 1):,.0f} B/link"
    )
    print(
        f"stitch components in Spark: {stats['cc_iterations']} rounds; on the driver {stats['driver_links']:,} of "
        f"{links:,} links ({stats['driver_components']:,} components over a limit or with a tied best id, "
        f"{stats['driver_bytes']:,} B collected)"
    )
    if args.keep:
        print(f"kept: {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
