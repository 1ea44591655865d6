"""What a run's memory is made of, for the benchmarks (`TRACKPLAN_MEMORY_TRACE=<file>`).

A run's resident memory is DuckDB's buffer pool (cached blocks, temp tables, hash tables: capped by
its `memory_limit`, spilling past it) plus everything else (Python, Arrow, pandas, DuckDB's own
allocations outside the pool). The peak of the whole grows from 1M to 10M events mostly because the
pool fills up to its limit, so a line through the total peaks overstates what 100M events would take.
With the variable set, the run samples every 50 ms its own resident size and the pool's use
(`duckdb_memory()`, on a cursor of the run's connection) and writes, when the run's connection
closes, the peaks as JSON: `rss`, `duckdb` (the pool) and `rest` (the largest resident size less the
pool at the same instant), in bytes, with the pool's `limit`, and every sample as `series` ([Unix time,
resident MB, pool MB]: benchmarks/run.py attributes them to the run's steps). Off (no thread, no
query) without it.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time

ENV = "TRACKPLAN_MEMORY_TRACE"
_UNITS = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30}


def limit_bytes(text: str) -> int | None:
    """A DuckDB memory size as configured ('1.6GB', '512 MiB') in bytes; None for anything else."""
    m = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", text or "")
    unit = (m.group(2).lower() or "b") if m else ""
    if not m or unit not in _UNITS:
        return None
    return int(float(m.group(1)) * _UNITS[unit])


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Trace:
    """The sampler of one connection; `stop()` joins it and writes the peaks."""

    def __init__(self, con, path: str, limit: str, every: float = 0.05):
        self.path, self.every = path, every
        self.peaks = {"rss": 0, "duckdb": 0, "rest": 0, "limit": limit_bytes(limit), "samples": 0}
        self.series: list[list] = []
        self._cur = con.cursor()
        # parsed once: each sample then costs DuckDB only its bind and plan (0.15 CPU-ms a sample, where
        # the SQL text with its sum took 0.39-0.51: ~1 CPU-s less of the instrument in a 10M run's figure)
        self._pool = self._cur.extract_statements("select memory_usage_bytes from duckdb_memory()")[0]
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="trackplan-memtrace", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        pool = sum(r[0] or 0 for r in self._cur.execute(self._pool).fetchall())
        rss = _rss()
        p = self.peaks
        p["rss"], p["duckdb"], p["rest"] = max(p["rss"], rss), max(p["duckdb"], pool), max(p["rest"], rss - pool)
        p["samples"] += 1
        self.series.append([round(time.time(), 3), rss >> 20, pool >> 20])

    def _loop(self) -> None:
        while not self._done.wait(self.every):
            try:
                self._sample()
            except Exception as exc:  # noqa: BLE001 (a trace that cannot sample says so in its file, never fails the run)
                self.peaks["error"] = f"{type(exc).__name__}: {exc}"
                return

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
        try:
            self._cur.close()
        finally:
            with open(self.path, "w") as fh:
                json.dump({**self.peaks, "series": self.series}, fh)


def start(con, limit: str) -> Trace | None:
    """A Trace of `con` when TRACKPLAN_MEMORY_TRACE names a file, else None."""
    path = os.environ.get(ENV)
    return Trace(con, path, limit) if path else None
