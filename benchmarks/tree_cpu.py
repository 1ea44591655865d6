"""CPU seconds of a command and every process it starts, the Spark JVM and its Python workers
included (a shell's `time` misses a JVM its Python parent never waits for):

    python benchmarks/tree_cpu.py python -m pytest -q tests/test_spark_parity.py

Prints `CPU_TREE <cpu> s, wall <s> s, rc <code>, peak RSS <GiB>` after the command's own output;
exits with the command's code. Processes are sampled every 0.25 s (spark_bench's `_Tree`).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.spark_bench import TREE


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python benchmarks/tree_cpu.py COMMAND [ARGS...]", file=sys.stderr)
        return 2
    TREE.start()
    wall = time.perf_counter()
    proc = subprocess.Popen(argv)
    proc.wait()
    cpu = TREE.sample()
    peak = TREE.take()[0]
    print(
        f"CPU_TREE {cpu:.1f} s, wall {time.perf_counter() - wall:.1f} s, rc {proc.returncode}, "
        f"peak RSS {peak / 2**30:.2f} GiB",
        flush=True,
    )
    return proc.returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
