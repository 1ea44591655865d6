"""`make bench`: ingest → stitch → sessions on generated traffic of 1M and 10M events.

For each size the generator writes a landing zone (users scaled to reach the event count), then two
fresh processes run on the same files:
  - DuckDB's own `read_json` of every landing file into a table (the raw read rate to beat), and
  - our pipeline: ingest (validate, quarantine, de-duplicate, consent, PII) → stitch → sessions.
Each prints its wall time and its peak resident memory (ru_maxrss of that process: DuckDB
allocates outside Python, so tracemalloc would miss it). The table ends with the ratio of our
ingest rate to DuckDB's read rate.

    python benchmarks/run.py [--sizes 1e6,1e7] [--workdir DIR] [--keep]

Targets (issue 3, item 8): ingest ≥ 40% of DuckDB's raw read rate; peak memory ≤ 3 GB at 10M events.
`trackplan validate` (issue 14): ≥ 100,000 events/s on one core, printed with its rate per CPU second
and as a share of DuckDB's read_json rate on the same file and cores, measured in the same process.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # support.warehouse: the one sample-warehouse builder

LINES_PER_USER = 218  # measured: users=570 over the default 107 days wrote 124,501 lines
TARGET_RATIO = 0.40
TARGET_PEAK_GB = 3.0
TARGET_VALIDATE = 100_000  # events/s on one core (issue 2)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _input_files(landing: Path) -> tuple[list[str], list[str]]:
    from tracking_plan.reader import is_input_file

    files = sorted(p for p in landing.glob("date=*/*") if p.is_file() and is_input_file(p))
    lines = [str(p) for p in files if not p.name.endswith((".json", ".json.gz"))]
    batches = [str(p) for p in files if p.name.endswith((".json", ".json.gz"))]
    return lines, batches


def step_duckdb_read(landing: Path, workdir: Path) -> dict:
    """DuckDB reading and parsing the same files into a table, nothing else."""
    import duckdb

    lines, batches = _input_files(landing)
    con = duckdb.connect(str(workdir / "raw.duckdb"))
    t0 = time.perf_counter()
    n = 0
    if lines:
        con.execute(
            "create or replace table raw_lines as select * from read_json(?, format = 'newline_delimited', "
            "union_by_name = true, ignore_errors = true)",
            [lines],
        ).fetchall()
        n += con.execute("select count(*) from raw_lines").fetchall()[0][0]
    if batches:
        con.execute(
            "create or replace table raw_batches as select unnest(batch, max_depth := 2) from "
            "read_json(?, format = 'unstructured', union_by_name = true)",
            [batches],
        ).fetchall()
        n += con.execute("select count(*) from raw_batches").fetchall()[0][0]
    seconds = time.perf_counter() - t0
    con.close()
    return {"rows": n, "seconds": seconds, "peak_mb": _peak_mb()}


def step_pipeline(landing: Path, workdir: Path) -> dict:
    """Our ingest → stitch → sessions into a fresh warehouse, timed per stage."""
    from support.warehouse import load_landing

    from pipelines.warehouse import connect
    from tracking_plan.loader import load_plan

    plan = load_plan()
    wh = workdir / "warehouse.duckdb"
    wh.unlink(missing_ok=True)
    con = connect(wh)
    out: dict = {}
    load_landing(con, plan, landing, sessions=True, timings=out)
    con.close()
    out["peak_mb"] = _peak_mb()
    return out


def step_validate(landing: Path, workdir: Path, cores: int) -> dict:
    """`trackplan validate`'s engine over every landing line as one file, pinned to `cores` CPUs."""
    from tracking_plan.loader import load_plan
    from tracking_plan.validate import validate_files

    os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cores]))
    one = workdir / "all-events.jsonl"
    if not one.exists():
        lines, _ = _input_files(landing)
        with open(one, "wb") as out:
            for f in lines:
                with gzip.open(f, "rb") if f.endswith(".gz") else open(f, "rb") as fh:
                    shutil.copyfileobj(fh, out, 16 << 20)
    plan = load_plan()
    t0, c0 = time.perf_counter(), time.process_time()
    (rep,) = validate_files(plan, [str(one)])
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    # DuckDB's own read_json of the same file on the same cores, in this same process: the ratio
    # holds on a loaded machine where seconds alone say little
    import duckdb

    con = duckdb.connect()
    con.execute(f"set threads = {cores}")
    r0, rc0 = time.perf_counter(), time.process_time()
    con.execute(
        "create table raw_lines as select * from read_json(?, format = 'newline_delimited', "
        "union_by_name = true, ignore_errors = true)",
        [str(one)],
    ).fetchall()
    read_s, read_cpu = time.perf_counter() - r0, time.process_time() - rc0
    con.close()
    return {
        "rows": rep.total,
        "invalid": rep.invalid,
        "seconds": seconds,
        "cpu_s": cpu,
        "read_s": read_s,
        "read_cpu_s": read_cpu,
        "gb": one.stat().st_size / 1e9,
        "cores": cores,
        "peak_mb": _peak_mb(),
    }


def _child(step: str, landing: Path, workdir: Path, *extra: str) -> dict:
    """Run one step in a fresh interpreter so its peak memory is its own."""
    proc = subprocess.run(
        [sys.executable, __file__, "--_step", step, "--_landing", str(landing), "--workdir", str(workdir), *extra],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"{step} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench(size: int, workdir: Path, seed: int) -> dict:
    from trackplan.demo.generate import generate

    landing = workdir / f"landing-{size}"
    users = max(1, round(size / LINES_PER_USER))
    truth = landing / "_truth.json"
    if truth.exists() and json.loads(truth.read_text())["generator"].get("users") == users:
        lines = json.loads(truth.read_text())["totals"]["lines"]
        print(f"  reusing {landing} ({lines:,} lines, {users:,} users; --keep kept it)", file=sys.stderr)
    else:
        t0 = time.perf_counter()
        lines = generate(landing, users=users, seed=seed).lines
        print(f"  generated {lines:,} lines ({users:,} users) in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    validate = [_child("validate", landing, workdir, "--_cores", str(c)) for c in (1, min(2, os.cpu_count() or 1))]
    for v in validate:
        print(
            f"  trackplan validate on {v['cores']} core(s): {v['rows'] / v['seconds']:,.0f} events/s "
            f"({v['gb']:.2f} GB in {v['seconds']:.1f} s, {v['rows'] / v['cpu_s']:,.0f} events per CPU second, "
            f"peak {v['peak_mb']:,.0f} MB); {v['read_s'] / v['seconds']:.0%} of DuckDB read_json's rate on the "
            f"same file and cores ({v['read_s']:.1f} s; in CPU time {v['read_cpu_s'] / v['cpu_s']:.0%})",
            file=sys.stderr,
        )
    (workdir / "all-events.jsonl").unlink(missing_ok=True)
    raw = _child("duckdb_read", landing, workdir)
    print(f"  duckdb read_json: {raw['seconds']:.1f} s", file=sys.stderr)
    ours = _child("pipeline", landing, workdir)
    print(
        f"  pipeline: ingest {ours['ingest_s']:.1f} s, stitch {ours['stitch_s']:.1f} s, "
        f"sessions {ours['sessions_s']:.1f} s",
        file=sys.stderr,
    )
    return {"size": size, "lines": lines, "raw": raw, "ours": ours, "validate": validate}


def _table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title="trackplan bench: ingest → stitch → sessions vs DuckDB read_json (same files, same run)")
    for col in (
        "events",
        "duckdb read ev/s",
        "ingest ev/s",
        "ratio",
        "stitch ev/s",
        "sessions ev/s",
        "end-to-end ev/s",
        "peak MB (ours)",
        "peak MB (duckdb)",
        "persons",
        "sessions",
    ):
        t.add_column(col, justify="right")
    for r in rows:
        o, raw, n = r["ours"], r["raw"], r["lines"]
        raw_rate = raw["rows"] / raw["seconds"]
        ingest_rate = n / o["ingest_s"]
        total = o["ingest_s"] + o["stitch_s"] + o["sessions_s"]
        ratio = ingest_rate / raw_rate
        t.add_row(
            f"{n:,}",
            f"{raw_rate:,.0f}",
            f"{ingest_rate:,.0f}",
            f"{ratio:.0%}" + ("" if ratio >= TARGET_RATIO else " (<40%)"),
            f"{o['loaded'] / o['stitch_s']:,.0f}",
            f"{o['loaded'] / o['sessions_s']:,.0f}",
            f"{n / total:,.0f}",
            f"{o['peak_mb']:,.0f}" + ("" if o["peak_mb"] <= TARGET_PEAK_GB * 1024 else " (>3 GB)"),
            f"{raw['peak_mb']:,.0f}",
            f"{o['persons']:,}",
            f"{o['sessions']:,}",
        )
    Console(width=200).print(t)  # a wide table: piped output must not fold the figures
    v = Table(
        title="trackplan validate (the CLI's engine) on all the same events as one file; target ≥ 100,000 ev/s on one core"
    )
    for col in (
        "events",
        "file GB",
        "cores",
        "events/s",
        "ev per CPU s",
        "vs read_json",
        "vs read_json (CPU)",
        "peak MB",
    ):
        v.add_column(col, justify="right")
    for r in rows:
        for x in r.get("validate", []):
            rate = x["rows"] / x["seconds"]
            v.add_row(
                f"{x['rows']:,}",
                f"{x['gb']:.2f}",
                str(x["cores"]),
                f"{rate:,.0f}" + ("" if x["cores"] > 1 or rate >= TARGET_VALIDATE else " (<100k)"),
                f"{x['rows'] / x['cpu_s']:,.0f}",
                f"{x['read_s'] / x['seconds']:.0%}",
                f"{x['read_cpu_s'] / x['cpu_s']:.0%}",
                f"{x['peak_mb']:,.0f}",
            )
    Console(width=200).print(v)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1e6,1e7", help="comma-separated event counts, e.g. 1e6 or 1e6,1e7")
    ap.add_argument(
        "--workdir", type=Path, default=None, help="where landing zones and warehouses go (default: a temp dir)"
    )
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--_step", help=argparse.SUPPRESS)
    ap.add_argument("--_landing", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--_cores", type=int, default=1, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._step:
        if args._step == "validate":
            print(json.dumps(step_validate(args._landing, args.workdir, args._cores)))
            return 0
        fn = {"duckdb_read": step_duckdb_read, "pipeline": step_pipeline}[args._step]
        print(json.dumps(fn(args._landing, args.workdir)))
        return 0
    sizes = [int(float(s)) for s in args.sizes.split(",") if s.strip()]
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="trackplan-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for size in sizes:
            print(f"{size:,} events:", file=sys.stderr)
            rows.append(bench(size, workdir, args.seed))
            if not args.keep:
                shutil.rmtree(workdir / f"landing-{size}", ignore_errors=True)
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    _table(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
