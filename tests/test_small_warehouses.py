"""What a new deployment has before it has much: `trackplan run`, `report` and `review` on landings the
generator never makes (found by feeding hand-made landings to the CLI). Each run completes, every
table is typed, and the review says "–" or why, never `None` or `nan`:

- every line quarantined: no events at all (initiative_roi subtracted a missing last day, the KPI
  values built weekly points from it, and a DuckDB result left open by `fetchone` failed the next
  statement on the connection);
- a first day of anonymous traffic only, then a day with a login (the stitch's tables were made from
  empty frames, with columns of DuckDB type NULL, and every later daily run failed until
  --full-refresh)."""

from __future__ import annotations

import re

import pytest
from support.pipeline import DAY, anonymous_day, ev, ingest, login_day, plan, untyped_columns, write_lines
from typer.testing import CliRunner

from pipelines.warehouse import connect
from trackplan.cli import app


def _run(landing, wh, *extra: str) -> None:
    out = CliRunner().invoke(app, ["run", "--landing", str(landing), "--warehouse", str(wh), *extra])
    text = " ".join(out.stderr.replace("│", " ").split())
    assert out.exit_code == 0 and "INCOMPLETE" not in text and "failed:" not in text, text[-2000:]


def _untyped(wh) -> list:
    con = connect(wh, read_only=True)
    try:
        return untyped_columns(con)
    finally:
        con.close()


def _review(wh) -> str:
    out = CliRunner().invoke(app, ["review", "--warehouse", str(wh)])
    assert out.exit_code == 0, out.stderr
    assert not re.search(r"\b(None|nan|NaN)\b", out.stdout), out.stdout
    return out.stdout


def test_no_event_loaded_at_all(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    write_lines(landing, "2026-11-14", "bad.jsonl", ["not json", '{"type": "track"}', "[1, 2]"])
    _run(landing, wh)
    assert _untyped(wh) == []
    text = _review(wh)
    # the sample plan's four initiatives, each saying why (what the ingest did with the lines)
    why = "not evaluable: no events loaded yet: 3 lines read, 0 loaded (3 quarantined); see ingest.ingestion_log"
    assert text.count(why) == 4, text
    out = CliRunner().invoke(app, ["report", "--warehouse", str(wh), "--out", str(tmp_path / "r.html")])
    assert out.exit_code == 0, out.stderr
    html = (tmp_path / "r.html").read_text(encoding="utf-8")  # an empty panel says so, not just a header
    assert "no experiment has a readout yet" in html and "no initiative has an estimate to vary yet" in html


@pytest.mark.parametrize("then", [["--partition", "2026-11-15"], ["--partition", "2026-11-15", "--full-refresh"]])
def test_a_first_day_without_a_login(tmp_path, monkeypatch, then):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    anonymous_day(landing, "2026-11-14")
    _run(landing, wh)
    assert _untyped(wh) == []
    login_day(landing, "2026-11-15")
    _run(landing, wh, *then)
    con = connect(wh, read_only=True)
    try:  # the anonymous page view of the first day is the user's
        assert con.execute("select count(distinct person_id), count(*) from stitch.events").fetchall() == [(1, 4)]
    finally:
        con.close()
    _review(wh)


def _at(day: str, hour: float):
    import datetime as dt

    return dt.datetime.fromisoformat(day) + dt.timedelta(hours=hour)


def test_an_initiative_whose_outcome_never_happened_is_not_evaluable(tmp_path, monkeypatch):
    """Two page views 45 days apart around the pricing page's start and no order at all: its interrupted
    time series was "evaluable" (an effect of 0 with a standard error of 0, grade C); now it says why not."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster"))
    (tmp_path / "dagster").mkdir()
    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    for day in ("2026-10-01", "2026-11-15"):
        write_lines(landing, day, "a.jsonl", [ev("page", None, anon="a-1", at=_at(day, 9), props={"path": "/"})])
    _run(landing, wh)
    con = connect(wh, read_only=True)
    try:
        grade, label = con.execute(
            "select evidence_grade, evidence_label from marts.initiative_roi where initiative = 'new_pricing_page'"
        ).fetchall()[0]
    finally:
        con.close()
    assert grade is None and label == (
        "not evaluable: the daily count of 'Order Completed' is 0 every day: nothing to estimate"
    )
    _review(wh)


def test_why_no_event_came_through(tmp_path):
    """Every line consent-dropped (or a folder of skipped files only): the marts' "no events loaded
    yet" says what the ingest did with what it read, not just that nothing is there."""
    from models.marts.aggregates import EventSource

    landing, wh = tmp_path / "landing", tmp_path / "w.duckdb"
    denied = {"consent": {"categoryPreferences": {"marketing": False}}}
    ad = {"ad_id": "ad1", "network": "google"}
    write_lines(landing, DAY, "a.jsonl", [ev(event="Ad Clicked", props=ad, context=denied) for _ in range(3)])
    write_lines(landing, DAY, ".hidden.jsonl", ["{}"])
    ingest(wh, landing)
    con = connect(wh, read_only=True)
    try:
        assert (
            EventSource.warehouse(con, plan()).why_empty()
            == "3 lines read, 0 loaded (3 consent-dropped); 1 file skipped"
        )
    finally:
        con.close()
    empty = tmp_path / "empty.duckdb"
    write_lines(tmp_path / "only-skipped", DAY, ".x.jsonl", ["{}"])
    ingest(empty, tmp_path / "only-skipped")
    con = connect(empty, read_only=True)
    try:
        assert EventSource.warehouse(con, plan()).why_empty() == "no lines read; 1 file skipped"
    finally:
        con.close()
