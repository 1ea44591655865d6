"""`make bench`: start-up time of the plan commands and of the Dagster definitions (issue 17).

Each command runs in a fresh process, `--runs` times (median kept), beside a baseline measured in
the same run: `python -c pass` (the interpreter alone). Targets: `trackplan lint` and
`trackplan diff` on the sample plan within 1 s; `import pipelines.definitions` within 4 s
(what every `trackplan run` and `dagster dev` pays before any work).

    python benchmarks/startup.py [--runs 5]      # --runs 1: a quick look
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PLAN = REPO / "tracking_plan" / "plan"

# (label, argv, target seconds or None)
COMMANDS = [
    ("python -c pass (baseline)", [sys.executable, "-c", "pass"], None),
    ("trackplan lint", [str(BIN / "trackplan"), "lint", "--plan", str(PLAN)], 1.0),
    (
        "trackplan diff --base <sample plan>",
        [str(BIN / "trackplan"), "diff", "--base", str(PLAN), "--plan", str(PLAN)],
        1.0,
    ),
    ("trackplan sql --dialect spark", [str(BIN / "trackplan"), "sql", "--dialect", "spark"], None),  # no Dagster
    ("import pipelines.definitions", [sys.executable, "-c", "import pipelines.definitions"], 4.0),
]


def timed(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child: user + system). CPU time barely moves when other
    processes share the cores, so it is the figure to compare on a busy machine."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if done.returncode not in (0, 1):  # lint/diff exit 1 on findings; anything else is a failure to start
        raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip().splitlines()[-1:]}")
    return elapsed, cpu


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5, help="runs per command; the median is reported")
    args = ap.parse_args()
    results = []
    for label, argv, target in COMMANDS:
        timed(argv)  # warm the OS file cache: the first start after a build reads every .pyc from disk
        runs = [timed(argv) for _ in range(args.runs)]
        results.append((label, statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs), target))
    base = results[0][1]
    print(f"start-up, median of {args.runs} run(s), each a fresh process\n")
    print(f"{'command':<38} {'wall s':>7} {'x baseline':>11} {'CPU s':>6} {'target':>8}  verdict (wall)")
    failed = 0
    for label, secs, cpu, target in results:
        verdict = "" if target is None else ("ok" if secs <= target else "OVER")
        failed += verdict == "OVER"
        print(
            f"{label:<38} {secs:7.2f} {secs / base:11.1f} {cpu:6.2f} {'' if target is None else f'<= {target:g} s':>8}  "
            f"{verdict}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
