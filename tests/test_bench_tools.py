"""The measuring tools of benchmarks/ still run on today's code (their figures are not asserted here:
speed lives in benchmarks/, not in timed tests)."""

import math
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ingest_cost_floor_reports_every_figure(tmp_path, capsys):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import ingest_cost
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    from trackplan.demo.generate import generate

    landing = tmp_path / "landing"
    generate(landing, users=40, days=2, seed=3)
    out = ingest_cost.floor(landing, None, repeat=1)
    printed = capsys.readouterr().out
    assert out["events"] > 0 and f"{out['events']:,} events of {out['day']}" in printed
    figures = {k: v for k, v in out.items() if k not in ("day", "events")}
    assert len(figures) == 9
    for name, value in figures.items():
        assert math.isfinite(value) and value >= 0, name
        assert name in printed


def test_memory_trace_splits_duckdbs_pool_from_the_rest(tmp_path, monkeypatch):
    """pipelines/memtrace.py, which benchmarks/run.py reads to project the peak past DuckDB's cache
    filling up: the run's samples of its resident size and of the pool, written when it stops."""
    import json

    import duckdb

    from pipelines import memtrace

    monkeypatch.delenv(memtrace.ENV, raising=False)
    con = duckdb.connect(config={"memory_limit": "256MB"})
    assert memtrace.start(con, "256MB") is None  # off: no thread, no query
    out = tmp_path / "trace.json"
    monkeypatch.setenv(memtrace.ENV, str(out))
    trace = memtrace.start(con, "256MB")
    trace.every = 0.005
    # ~200 MB of strings in a temp table: the pool fills to its limit and spills the rest
    con.execute(
        "create temp table t as select md5(range::varchar) || md5((range + 1)::varchar) as s from range(3000000)"
    )
    con.execute("select count(distinct s) from t").fetchall()
    trace.stop()
    got = json.loads(out.read_text())
    assert "error" not in got
    assert got["limit"] == 256_000_000 and got["samples"] == len(got["series"]) > 0
    # (DuckDB holds its limit to within a buffer or two: 256,240,672 bytes were seen at this one)
    assert 0 < got["duckdb"] <= got["limit"] * 1.02 and got["duckdb"] < got["rss"]
    assert got["rest"] <= got["rss"] and max(p for _, _, p in got["series"]) == got["duckdb"] >> 20
    assert all(t1 >= t0 for (t0, _, _), (t1, _, _) in zip(got["series"], got["series"][1:], strict=False))


def test_memory_limit_sizes_read_as_duckdb_reads_them():
    from pipelines.memtrace import limit_bytes

    assert limit_bytes("1.6GB") == 1_600_000_000
    assert limit_bytes("512 MiB") == 512 << 20
    assert limit_bytes("2gib") == 2 << 30
    assert limit_bytes("100") == 100
    assert limit_bytes("80%") is None and limit_bytes("") is None and limit_bytes("1.6 GX") is None


def test_a_runs_warehouse_traces_its_memory_when_asked(tmp_path, monkeypatch):
    """The run's one connection (pipelines.resources.Warehouse) is the one traced, from setup to teardown."""
    import json

    import dagster as dg

    from pipelines import memtrace
    from pipelines.resources import Warehouse

    out = tmp_path / "trace.json"
    monkeypatch.setenv(memtrace.ENV, str(out))
    wh = Warehouse(database=str(tmp_path / "w.duckdb"), publish=False)
    ctx = dg.build_init_resource_context()
    wh.setup_for_execution(ctx)
    try:
        with wh.get_connection() as con:
            con.execute("create table main.x as select range as i from range(100000)")
        time.sleep(0.2)  # (a few samples at 50 ms)
    finally:
        wh.teardown_after_execution(ctx)
    got = json.loads(out.read_text())
    assert "error" not in got and got["samples"] >= 1 and got["limit"] and got["rss"] > 0


def test_the_run_bench_projects_the_rest_and_takes_the_pool_at_its_limit(monkeypatch):
    """benchmarks/run.py's projection to 100M: the line through the total peaks, and the pool at its
    limit plus the rest's line (here 1,000 MiB + 10 MiB per 1M events: 2,000 MiB at 100M, + 1,600)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import run as bench
    finally:
        sys.path.remove(str(REPO / "benchmarks"))

    def row(events: int, rest: float, pool: float) -> dict:
        mb = bench.MB
        full = {"cpu": 30.0 * events / 1e6, "wall": 20.0 * events / 1e6, "peak_mb": rest + pool}
        full["memory"] = {"rss": (rest + pool) * mb, "duckdb": pool * mb, "rest": rest * mb, "limit": 1600 * mb}
        full["memory"]["samples"] = 10
        raw = {"cpu": 10.0 * events / 1e6, "wall": 6.0 * events / 1e6, "peak_mb": 900.0}
        return {"size": events, "events": events, "full": full, "raw": raw, "steps": []}

    from rich.table import Table

    cells: list[str] = []  # (the rows as added: the printed table wraps its cells)
    add = Table.add_row
    monkeypatch.setattr(Table, "add_row", lambda self, *c, **k: (cells.extend(map(str, c)), add(self, *c, **k))[1])
    bench.run_table([row(1_000_000, 1010, 800), row(10_000_000, 1100, 1600)], Path("/cache"))
    out = " | ".join(cells)
    assert "of it DuckDB's buffer pool at most 1,600 MB" in out
    # the rest's line: 10 MiB per 1M events + 1,000 MiB -> 2,000 MiB at 100M; with the pool's 1,600 MiB
    assert f"peak ≤ {(2000 + 1600) / 1024:,.1f} GB" in out and "10.0 MB per 1M events + 1,000 MB" in out
