"""One more day on a history against that day alone (issue 18, item 2): CPU time of the layers.

The generator writes `--days` days; a warehouse is built from all days but the last (not timed).
Then, each in a copy of its own and in this process, CPU time (time.process_time: every thread of
the process, DuckDB's included, and the kernel's time copying files for it) of what a run does to
the warehouse for the last day: open the build (pipelines/publish.py: lock, checkpoint, copy),
ingest → stitch → sessions → every SQL mart, record and publish (`publish` column):
  - incremental: the last day on the history (what `trackplan run --partition DAY` does now);
  - full-refresh: the same, rebuilding stitch and sessions from every event (`--full-refresh`, and
    what every run did before issue 18);
  - alone: the last day into an empty warehouse (the baseline of the issue's ratio).
The ratios to `alone` are the figures (goal ≤ 1.5x for `incremental`). An untimed run of the day
alone comes first, so that no measured run pays the process's first calls. The Python marts and the
quality checks are not in it (benchmarks/run.py measures whole runs).

    python benchmarks/incremental.py [--days 30 --users 10000] [--quick] [--workdir DIR (kept; reused)]
        [--repeat N (the three runs N times, in turn: each ratio, then the median)]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import support.warehouse  # noqa: F401 - sets the public demo salt for generated data unless one is set

from models.catalog import load_models, set_plan_variables
from models.staging.plan_tables import write_plan_tables
from pipelines.ingest.load import ingest_partitions, landed_partitions
from pipelines.publish import building
from pipelines.stitch import person_marts
from pipelines.stitch.incremental import stitch
from pipelines.stitch.person_marts import PERSON_PARTS
from pipelines.stitch.sessions import build_sessions
from pipelines.warehouse import connect
from tracking_plan.loader import default_plan_dir, load_plan

TARGET = 1.5


class _Profiled:
    """A connection that adds up the CPU time of each statement it runs (--profile)."""

    def __init__(self, con, times: dict):
        self._con, self._times = con, times

    def execute(self, sql, *args, **kwargs):
        t = time.process_time()
        res = self._con.execute(sql, *args, **kwargs)
        key = " ".join(getattr(sql, "query", str(sql)).split())[:110]  # (the validator's are duckdb.Statements)
        self._times[key] = self._times.get(key, 0.0) + time.process_time() - t
        return res

    def __getattr__(self, name):
        return getattr(self._con, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._con.close()


def _run(
    path: Path, landing: Path, days: list[str], plan, full_refresh: bool = False, profile: dict | None = None
) -> dict[str, float]:
    """What `trackplan run` does to the warehouse `path` (pipelines/publish.py: lock, open the build,
    the layers, record, publish) with the layers of `_layers`: CPU seconds per stage."""
    t = time.process_time()
    with building(path) as build:
        opened = time.process_time() - t
        out = _layers(build.path, landing, days, plan, full_refresh, profile)
        t = time.process_time()
        build.record("bench", days, [], [], [], None)
        build.publish()
    out["publish"] = opened + time.process_time() - t
    return out


def _layers(
    path: Path, landing: Path, days: list[str], plan, full_refresh: bool = False, profile: dict | None = None
) -> dict[str, float]:
    """Ingest `days`, stitch, sessions, SQL marts into `path`: CPU seconds per stage."""
    models = load_models()
    sessions = next(m for m in models if m.table == "staging.sessions")
    marts = [m for m in models if m.schema == "marts"]
    out: dict[str, float] = {}
    con = connect(path)
    if profile is not None:
        con = _Profiled(con, profile)
    try:
        write_plan_tables(con, plan)
        t = time.process_time()
        ingest_partitions(con, plan, landing, days)
        out["ingest"] = time.process_time() - t
        t = time.process_time()
        out["mode"] = stitch(con, plan, default_plan_dir(), full_refresh=full_refresh)["mode"]
        out["stitch"] = time.process_time() - t
        t = time.process_time()
        set_plan_variables(con, plan)
        build_sessions(con, sessions.sql, default_plan_dir(), full_refresh=full_refresh)
        out["sessions"] = time.process_time() - t
        t = time.process_time()
        for m in marts:  # as their assets build them (marts.funnel_conversion: its kept per-person part)
            if m.table in PERSON_PARTS:
                person_marts.build(con, m.table, m.sql, str(m.path), default_plan_dir(), full_refresh=full_refresh)
            else:
                con.execute(f"create or replace table {m.table} as {m.sql}").fetchall()
        out["sql marts"] = time.process_time() - t
        out["events"] = con.execute("select count(*) from ingest.events").fetchall()[0][0]
    finally:
        con.close()
    return out


def _stale(hist: Path) -> bool:
    """Whether the history's stitch was built from other code, SQL or plan than this checkout's."""
    import duckdb

    from pipelines.stitch.state import fingerprint

    con = connect(hist, read_only=True)
    try:
        row = con.execute("select fingerprint from stitch.build_state where layer = 'stitch'").fetchall()
    except duckdb.CatalogException:  # no state table: not a history of this code
        return True
    finally:
        con.close()
    return not row or row[0][0] != fingerprint(default_plan_dir())


def _measure(work: Path, hist: Path, landing: Path, last: str, plan, profile: bool) -> float:
    """The three runs of the last day (each on a copy of its own), their table; the ratio."""
    results = {}
    for name, base, full in (("incremental", hist, False), ("full-refresh", hist, True), ("alone", None, False)):
        path = work / f"{name}.duckdb"
        path.unlink(missing_ok=True)
        if base:
            shutil.copyfile(base, path)
        prof = {} if profile and name == "incremental" else None
        results[name] = _run(path, landing, [last], plan, full_refresh=full, profile=prof)
        if prof:
            for sql, cpu in sorted(prof.items(), key=lambda kv: -kv[1])[:25]:
                print(f"{cpu:8.3f}s  {sql}")
    stages = ["ingest", "stitch", "sessions", "sql marts", "publish"]
    alone = results["alone"]
    print(
        f"{hist.stat().st_size / 2**20:.0f} MB of history; last day {last}: {alone['events']:,} events alone, "
        f"{results['incremental']['events']:,} with the history"
    )
    print(f"{'':14}" + "".join(f"{s:>11}" for s in [*stages, "total"]) + f"{'ratio':>9}  stitch mode")
    for r in results.values():
        r["total"] = sum(r[s] for s in stages)
    for name, r in results.items():
        ratio = r["total"] / alone["total"] if name != "alone" else 1.0
        print(f"{name:14}" + "".join(f"{r[s]:>10.2f}s" for s in [*stages, "total"]) + f"{ratio:>8.2f}x  {r['mode']}")
    ratio = results["incremental"]["total"] / alone["total"]
    print(f"one more day on the history / that day alone (CPU): {ratio:.2f}x (goal ≤ {TARGET}x)")
    return ratio


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--users", type=int, default=10000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="8 days of 2000 users (~25k lines): a smoke run")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--profile", action="store_true", help="print the statements of the incremental run by CPU time")
    ap.add_argument(
        "--repeat", type=int, default=1, help="measure N times (alternating the runs): each ratio and the median"
    )
    args = ap.parse_args()
    if args.quick:
        args.days, args.users = 8, 2000
    from trackplan.demo.generate import generate

    work = args.workdir or Path(tempfile.mkdtemp(prefix="trackplan-incr-"))
    landing = work / "landing"
    plan = load_plan()
    hist = work / "history.duckdb"
    if not (args.workdir and hist.exists()):  # --workdir: a second run reuses the data and the history
        shutil.rmtree(landing, ignore_errors=True)
        generate(landing, days=args.days, users=args.users, seed=args.seed, bug_rate=0.01, plan=plan)
        hist.unlink(missing_ok=True)
    elif _stale(hist):  # built by other stitching code: its next run would be a full rebuild
        print(f"{hist}: built by other stitching code or SQL; building it again from the same landing")
        hist.unlink()
    if not hist.exists():
        _run(hist, landing, landed_partitions(landing)[:-1], plan)
    days = landed_partitions(landing)
    last = days[-1]
    print(f"{len(days)} days ({args.users} users, seed {args.seed})")
    # untimed: the day alone once, so that imports and first calls (pandas, scipy, DuckDB's JSON
    # functions) are charged to none of the measured runs (they went to whichever came first)
    warm = work / "warm-up.duckdb"
    warm.unlink(missing_ok=True)
    _run(warm, landing, [last], plan)
    warm.unlink()
    ratios = []
    for rep in range(args.repeat):
        if args.repeat > 1:
            print(f"-- run {rep + 1} of {args.repeat}")
        ratios.append(_measure(work, hist, landing, last, plan, args.profile and rep == 0))
    if args.repeat > 1:
        print(
            f"one more day / that day alone (CPU), {args.repeat} runs: "
            f"{', '.join(f'{r:.2f}x' for r in ratios)}; median {statistics.median(ratios):.2f}x (goal ≤ {TARGET}x)"
        )
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
