"""One more day on a 30-day history against that day alone, as `trackplan run` processes, by Dagster step.

`benchmarks/run.py --only run` gives the ratio of the two runs (issue 18: ≤ 1.5x); this says where the
difference goes. The cached landing of run.py (`--size` events over 30 days, plus a 31st day) is
linked into a work directory; for each code tree (`--code`, default this checkout) a warehouse of the
30 days is built once by `trackplan run` of that code (kept: `--reuse` takes it again), then each
repetition runs, as fresh processes of that code (PYTHONPATH = the tree), the 31st day
  - alone: `--partition DAY` into an empty warehouse, and
  - more: `--partition DAY` on a copy of the 30-day warehouse,
CPU seconds from wait4 and, per Dagster step, from the process tree's /proc samples (run.py's
`measured`). With several trees the repetitions alternate between them (back to back, under the same
load). Printed: each ratio more / alone, their median per tree, and the per-step medians (more, alone,
the difference), largest difference first.

    python benchmarks/oneday.py [--size 1e6] [--repeat 3] [--workdir DIR] [--reuse] [--code TREE ...]
    # main against this branch: a checkout of main (e.g. `git worktree add /tmp/main main`) first
    python benchmarks/oneday.py --code /tmp/main . --repeat 3 --workdir /tmp/oneday
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run as R  # benchmarks/run.py: the cached landing, measured runs, Dagster step spans


def _env(code: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}  # each run's home beside its warehouse
    env["TRACKPLAN_HASH_SALT"] = os.environ.get("TRACKPLAN_HASH_SALT") or "bench-salt"
    env["PYTHONPATH"] = str(code)
    return env


def _run(code: Path, landing: Path, wh_dir: Path, day: str, base: Path | None) -> tuple[dict, dict]:
    shutil.rmtree(wh_dir, ignore_errors=True)
    wh_dir.mkdir(parents=True)
    wh = wh_dir / "w.duckdb"
    if base is not None:
        shutil.copyfile(base, wh)
    r = R.timed_cmd(R._run_argv(landing, wh, "--partition", day), _env(code))
    steps = R._newest_run_steps(wh_dir / ".dagster", r.pop("samples"))
    out = {s["step"]: s["cpu"] for s in steps}
    out["(outside steps: start, imports, open and copy, publish)"] = r["cpu"] - sum(out.values())
    return r, out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=float, default=1e6, help="events over the 30 days (run.py's cached landing)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--reuse", action="store_true", help="take the 30-day warehouses built before in --workdir")
    ap.add_argument("--code", type=Path, nargs="+", default=[HERE.parent], help="code trees to measure, alternated")
    ap.add_argument("--cache", type=Path, default=R.default_cache())
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="trackplan-oneday-"))
    src = R.cached_landing(int(args.size), args.seed, args.cache)
    days = sorted(p.name for p in src.glob("date=*"))
    day = days[-1][5:]
    landing, alone_landing = work / "landing", work / "landing-last-day"
    if not landing.exists():
        R._link_days(src, landing, days)
        R._link_days(src, alone_landing, days[-1:])
    history = work / "landing-history"
    if not history.exists():
        R._link_days(src, history, days[:-1])
    codes = [c.resolve() for c in args.code]
    hists = {}
    for i, code in enumerate(codes):
        hist = work / f"history-{i}" / "w.duckdb"
        if not (args.reuse and hist.exists()):
            shutil.rmtree(hist.parent, ignore_errors=True)
            hist.parent.mkdir(parents=True)
            full = R.timed_cmd(R._run_argv(history, hist), _env(code))
            print(f"{code}: 30-day warehouse built, {full['cpu']:.1f} CPU-s", flush=True)
        hists[code] = hist
    ratios: dict[Path, list[float]] = {c: [] for c in codes}
    steps: dict[Path, dict[str, list[tuple[float, float]]]] = {c: {} for c in codes}
    for rep in range(args.repeat):
        for i, code in enumerate(codes):
            a, sa = _run(code, alone_landing, work / f"alone-{i}", day, None)
            m, sm = _run(code, landing, work / f"more-{i}", day, hists[code])
            ratios[code].append(m["cpu"] / a["cpu"])
            print(
                f"{code} run {rep + 1}: one more day {m['cpu']:.2f} / alone {a['cpu']:.2f} CPU-s = "
                f"{ratios[code][-1]:.2f}x (wall {m['wall']:.1f} / {a['wall']:.1f} s)",
                flush=True,
            )
            for k in sa.keys() | sm.keys():
                steps[code].setdefault(k, []).append((sm.get(k, 0.0), sa.get(k, 0.0)))
    for code in codes:
        r = ratios[code]
        print(f"\n{code}: {', '.join(f'{x:.2f}x' for x in r)}; median {statistics.median(r):.2f}x (goal ≤ 1.5x)")
        rows = [
            (k, statistics.median(x for x, _ in v), statistics.median(y for _, y in v)) for k, v in steps[code].items()
        ]
        print(f"  {'step (median CPU-s)':58} {'more':>7} {'alone':>7} {'diff':>7}")
        for k, more, alone in sorted(rows, key=lambda r: -(r[1] - r[2])):
            if abs(more) + abs(alone) >= 0.05:
                print(f"  {k:58} {more:7.2f} {alone:7.2f} {more - alone:7.2f}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
