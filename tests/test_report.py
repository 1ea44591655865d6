"""The KPI report: one offline HTML file whose numbers are the marts' numbers (and the KPIs, the review's)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from support.report import MISSING, build_warehouse

from pipelines.warehouse import connect
from trackplan.report import TABLE_FILTERS, write_report

ISLAND = re.compile(r'<script type="application/json" id="report-data">(.*?)</script>', re.DOTALL)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str, dict]:
    d = tmp_path_factory.mktemp("report")
    wh = build_warehouse(d / "w.duckdb")
    html = write_report(wh, d / "report.html").read_text()
    return wh, html, json.loads(ISLAND.search(html).group(1).replace("<\\/", "</"))


def _same(a, b) -> bool:
    if a is None or (not isinstance(a, list | tuple | str) and pd.isna(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    if isinstance(b, str) and not isinstance(a, str):  # dates travel as ISO strings
        return pd.Timestamp(a) == pd.Timestamp(b)
    if isinstance(a, float) or isinstance(b, float):
        return b is not None and float(a) == float(b)  # JSON keeps a double's shortest repr: exact
    return a == b


def test_every_embedded_table_equals_the_warehouse(built):
    wh, _, data = built
    con = duckdb.connect(str(wh), read_only=True)
    assert len(data["tables"]) >= 9
    for name, table in data["tables"].items():
        if "." not in name or name.startswith("report."):
            continue
        col, value = TABLE_FILTERS.get(name, (None, None))
        where = f"where {col} = '{value}'" if col else ""
        df = con.execute(f"select * from {name} {where}").df()
        assert table["columns"] == list(df.columns), name
        assert len(table["rows"]) == len(df), name
        for got, want in zip(table["rows"], df.itertuples(index=False, name=None), strict=True):
            for g, w, c in zip(got, want, df.columns, strict=True):
                assert _same(w.item() if hasattr(w, "item") else w, g), (name, c, g, w)


def test_kpi_values_equal_sql_and_the_review(built):
    wh, html, data = built
    con = duckdb.connect(str(wh), read_only=True)
    kpis = {k["key"]: k for k in data["kpis"]}
    end = '(select max("timestamp") from stitch.events)'
    # independent SQL of each definition (models/kpis.py): signups of the 30 days before the last
    # closed 7-day window, activated with >= 3 Task Completed inside their window
    act = con.execute(f"""
        with s as (select person_id, min("timestamp") as t from stitch.events where event_name = 'Account Created'
                   group by 1 having min("timestamp") <= {end} - interval 7 day
                                 and min("timestamp") > {end} - interval 37 day)
        select avg(case when (select count(*) from stitch.events e where e.person_id = s.person_id
                              and e.event_name = 'Task Completed' and e."timestamp" > s.t
                              and e."timestamp" <= s.t + interval 7 day) >= 3 then 1.0 else 0.0 end) from s""").fetchall()[
        0
    ][0]
    assert 0 < act < 1 and kpis["activation_rate"]["value"] == pytest.approx(act, rel=1e-12)
    tickets = con.execute(f"""select count(*) from stitch.events where event_name = 'Support Ticket Created'
        and "timestamp" > {end} - interval 30 day""").fetchall()[0][0]
    assert kpis["support_tickets"]["value"] == tickets
    revenue = con.execute(f"""select sum((properties ->> '$.revenue')::double) from stitch.events
        where event_name = 'Order Completed' and "timestamp" > {end} - interval 30 day""").fetchall()[0][0]
    assert kpis["revenue"]["value"] == pytest.approx(revenue, rel=1e-12)
    # the card on screen carries the same value, and its status follows the target's direction
    card = re.search(r'data-kpi="activation_rate" data-value="([^"]+)" data-target="([^"]+)"', html)
    assert float(card.group(1)) == pytest.approx(act, rel=1e-12) and float(card.group(2)) == 0.35
    assert kpis["support_tickets"]["status"] == ("on_target" if tickets <= 150 else "off_target")
    # the review reads the same computation on the same warehouse: same values, same verdicts
    from tracking_plan.loader import load_plan
    from trackplan.review import build_review

    review = build_review(con, load_plan())
    seen = 0
    for obj in review.tree:
        for k in obj["kpis"]:
            mine = kpis[k["kpi"]]
            if mine["value"] is None:
                assert k["current"] is None or math.isnan(k["current"]), k["kpi"]
                continue
            seen += 1
            assert k["current"] == mine["value"], k["kpi"]
            assert k["on_track"] == (mine["status"] == "on_target"), k["kpi"]
    assert seen >= 4


def test_charts_are_inline_svg_and_nothing_is_fetched(built):
    _, html, _ = built
    panels = dict(re.findall(r'data-table="([^"]+)" data-charts="(\d+)"', html))
    for table in (
        "marts.activation_cohorts",
        "marts.retention",
        "marts.customer_value",
        "marts.experiment_results",
        "marts.channel_attribution",
        "marts.initiative_portfolio",
        "ingest.ingestion_log",
    ):
        assert int(panels[table]) >= 1, table
    assert int(panels["marts.funnel_conversion"]) == 2  # one chart per plan funnel
    assert int(panels["marts.initiative_scenarios"]) == 2  # one tornado per initiative
    assert html.count("<svg") >= 11
    # offline: no script, stylesheet or image is loaded from anywhere
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html)
    assert "cdn" not in html.lower()


def test_missing_tables_are_labelled_not_built(built, tmp_path):
    _, html, data = built
    for table in MISSING:
        assert table in data["missing"]
    for table in ("quality.anomalies", "quality.check_results"):
        assert re.search(rf'class="panel missing" data-table="{re.escape(table)}"', html)
    # an empty warehouse (schemas only) and one that does not exist yet both render
    connect(tmp_path / "empty.duckdb").close()
    # 13 panels read a table: 10 read the 9 marts (the portfolio twice: the decision on top and its NPV
    # distribution), one the ingestion log and 2 the quality tables; `connect` creates the (empty)
    # ingestion log, so the empty warehouse misses one fewer
    for wh, missing in ((tmp_path / "empty.duckdb", 12), (tmp_path / "absent.duckdb", 13)):
        out = write_report(wh, tmp_path / f"{wh.stem}.html").read_text()
        assert out.count('class="panel missing"') == missing
        assert 'data-kpi="activation_rate" data-value=""' in out


def test_kpi_cards_show_the_change_against_the_previous_period(built):
    """Each card carries the previous period's value from the one KPI computation (models.kpis) and
    the change against it, in points for a ratio."""
    wh, html, _ = built
    from models.kpis import kpi_values
    from tracking_plan.loader import load_plan

    con = duckdb.connect(str(wh), read_only=True)
    values = kpi_values(con, load_plan()).set_index("kpi")
    for key, row in values.iterrows():
        card = re.search(
            rf'data-kpi="{key}".*?<div class="delta ([a-z]*)" data-previous="([^"]*)">([^<]*)</div>', html, re.DOTALL
        )
        assert card, key
        if pd.isna(row["previous"]) or pd.isna(row["current"]):
            assert card.group(3) == "no previous period"
            continue
        assert float(card.group(2)) == pytest.approx(row["previous"], rel=1e-12)
        delta = row["current"] - row["previous"]
        assert card.group(1) == (
            "" if delta == 0 else "good" if (delta > 0) == (row["direction"] == "increase") else "bad"
        )
        if row["unit"] == "ratio":
            assert card.group(3).startswith(f"{delta * 100:+.1f} pts".replace("-", "−"))


def test_a_kpi_that_is_not_finite_reads_as_the_tables_write_it():
    """Two revenues of 1.7e308 add up beyond the largest double: the card says ∞ as the tables do,
    not Python's "inf"; NaN is no value."""
    from trackplan.report import _fmt_kpi

    assert _fmt_kpi(float("inf"), "USD") == "∞ USD" and _fmt_kpi(-float("inf"), "USD") == "−∞ USD"
    assert _fmt_kpi(float("inf"), "ratio") == "∞" and _fmt_kpi(float("nan"), "USD") == "–"
    assert _fmt_kpi(1234.5, "USD") == "1,234 USD"  # (the finite path as before)
