"""A landing folder dated after tomorrow (UTC) is a wrong clock or a typo, not traffic yet: it is held
back (outside any partition, logged every run with its reason) until its day comes, as Dagster's daily
partitions end tomorrow (pipelines/partitions.py). Its KPIs never count back from a day to come."""

from __future__ import annotations

import datetime as dt

from support.pipeline import BASE, DAY, ev, ingest_all, query, write_lines
from typer.testing import CliRunner

from tracking_plan import landing as landing_mod
from tracking_plan.landing import held_reason, hold_future
from tracking_plan.reader import LandingEntry
from trackplan.cli import app

TODAY = dt.date(2026, 12, 5)


def test_a_partition_after_tomorrow_is_held_with_its_reason():
    assert held_reason("2026-12-05", TODAY) is None and held_reason("2026-12-06", TODAY) is None
    assert held_reason("2020-01-01", TODAY) is None and held_reason(None, TODAY) is None
    assert held_reason("not-a-day", TODAY) is None  # (the layout's own rules say what is wrong with it)
    why = held_reason("2027-06-01", TODAY)
    assert why.startswith("future partition: 2027-06-01 is after tomorrow (2026-12-06, UTC)")
    entries = [
        LandingEntry("a", "2026-12-06"),
        LandingEntry("b", "2027-06-01"),
        LandingEntry("c", "2027-06-01", skip="hidden or metadata file: .DS_Store"),
    ]
    held = hold_future(entries, TODAY)
    assert [(e.partition, e.skip) for e in held] == [
        ("2026-12-06", None),
        (None, why),
        (None, "hidden or metadata file: .DS_Store"),  # (its own reason stays)
    ]
    # the day comes: the same files are in their partition again
    assert hold_future(entries, dt.date(2027, 5, 31))[1].partition == "2027-06-01"


def _future_day() -> str:
    return (dt.datetime.now(dt.UTC).date() + dt.timedelta(days=40)).isoformat()


def test_a_run_holds_a_future_folder_back_and_reads_it_when_its_day_comes(tmp_path, monkeypatch):
    landing, w = tmp_path / "landing", tmp_path / "w.duckdb"
    later = _future_day()
    write_lines(landing, DAY, "a.jsonl", [ev(user="u1", at=BASE), ev(user="u2", at=BASE)])
    at = dt.datetime.fromisoformat(later) + dt.timedelta(hours=9)
    write_lines(landing, later, "b.jsonl", [ev(user="u3", at=at, received_at=at)])
    out = CliRunner().invoke(app, ["run", "--landing", str(landing), "--warehouse", str(w)])
    assert out.exit_code == 0, out.output
    assert "future partition" in out.output
    assert query(w, "select partition_date::varchar, count(*) from ingest.events group by 1") == [(DAY, 2)]
    ((status, reason, day),) = query(
        w, "select status, skip_reason, partition_date from ingest.ingestion_log where source_file like '%b.jsonl'"
    )
    assert status == "skipped" and day is None and reason == held_reason(later)
    # asked for by name: one line, nothing ingested
    out = CliRunner().invoke(app, ["run", "--landing", str(landing), "--warehouse", str(w), "--partition", later])
    assert out.exit_code == 1 and out.output == f"--partition {later}: {held_reason(later)}: nothing ingested\n"

    # its day comes (here: the horizon moves): the manifest never listed it, so even a run over the
    # changed partitions only reads it, and its log row is a read one now
    monkeypatch.setattr(landing_mod, "FUTURE_DAYS", 400)
    days, _ = ingest_all(w, str(landing), only_changed=True)
    assert days == [later]
    assert query(w, "select partition_date::varchar, count(*) from ingest.events group by 1 order by 1") == [
        (DAY, 2),
        (later, 1),
    ]
    assert query(w, "select status from ingest.ingestion_log where source_file like '%b.jsonl'") == [("read",)]
