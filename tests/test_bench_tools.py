"""The measuring tools of benchmarks/ still run on today's code (their figures are not asserted here:
speed lives in benchmarks/, not in timed tests)."""

import math
import sys
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
