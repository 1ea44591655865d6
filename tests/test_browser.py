"""The report and the catalog in a real browser: headless Debian Chromium driven by Playwright.

Skipped, with the reason listed by `pytest -ra`, only where Chromium is not installed (`make browser`
installs it). The README's screenshots come from docs/screenshots/capture.py on the demo warehouse.
"""

from __future__ import annotations

import functools
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from support.report import build_warehouse

from tracking_plan.docs_site import build_docs
from tracking_plan.loader import DEFAULT_PLAN, load_plan
from trackplan.report import write_report

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make browser): browser tests skipped")


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _page(browser):
    page = browser.new_page(viewport={"width": 1280, "height": 860})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    # offline means offline: any request leaving the machine fails the test
    page.route(
        "**/*",
        lambda route: (
            route.continue_()
            if route.request.url.startswith(("file:", "http://127.0.0.1"))
            else (errors.append(f"fetched {route.request.url}"), route.abort())
        ),
    )
    return page, errors


def _save(page, tmp: Path, name: str) -> None:
    page.screenshot(path=str(tmp / name))
    assert (tmp / name).stat().st_size > 10_000  # a blank page compresses to a few hundred bytes


def test_report_renders_charts_without_errors(browser, tmp_path):
    wh = build_warehouse(tmp_path / "w.duckdb")
    report = write_report(wh, tmp_path / "report.html")
    page, errors = _page(browser)
    page.goto(report.as_uri())
    assert page.locator(".kpi").count() == len(load_plan(DEFAULT_PLAN).metrics.kpis)
    charts = page.locator(".chart svg")
    assert charts.count() >= 11
    for i in range(charts.count()):  # drawn, not just present: every chart has marks and a size
        box = charts.nth(i).bounding_box()
        assert box and box["width"] > 100 and box["height"] > 50
        assert charts.nth(i).locator("path, rect, line, text").count() > 5
    assert page.locator(".panel.missing").count() == 2  # anomalies and check results: the fixture leaves them out
    assert errors == []
    _save(page, tmp_path, "report.png")


def test_catalog_filters_and_links(browser, tmp_path):
    site = tmp_path / "site"
    build_docs(DEFAULT_PLAN, site)
    plan = load_plan(DEFAULT_PLAN)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a, **k: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page, errors = _page(browser)
        page.goto(f"http://127.0.0.1:{server.server_port}/index.html")
        rows = page.locator("#events tbody tr")
        assert rows.count() == len(plan.events)
        billing = sum(e.owner == "billing" for e in plan.events.values())
        page.select_option("#f-owner", "billing")
        assert page.locator("#events tbody tr:visible").count() == billing
        page.select_option("#f-owner", "")
        page.fill("#q", "order")
        want = sum("order" in (e.name + " " + (e.description or "")).lower() for e in plan.events.values())
        assert page.locator("#events tbody tr:visible").count() == want > 0
        _save(page, tmp_path, "catalog.png")
        page.click("text=Order Completed")
        assert page.locator("#example").inner_text().strip().startswith("{")
        assert page.locator("#properties tr[data-property]").count() >= 8
        assert errors == []
    finally:
        server.shutdown()
        server.server_close()


# -- the report as a decision maker reads it -------------------------------------------------------------
KEY_COLUMNS = ["recommendation", "evidence", "expected NPV", "P(NPV > 0)", "ROI", "payback", "KPI vs target"]
# the shape of a formatted cell: one per column (a dash, "not evaluable" and similar words stand for no value)
SHAPE_JS = """() => {
  const shape = t => /^[−-]?[\\d,]+(\\.\\d+)?%$/.test(t) ? 'percent' + (t.split('.')[1] || '').length
                   : /^> [\\d,]+%$/.test(t) ? 'capped'
                   : /^(< )?[−-]?[\\d,]+(\\.\\d+)?$/.test(t) ? 'number' + (t.split('.')[1] || '').length
                   : /^\\d{4}-\\d{2}-\\d{2}( \\d{2}:\\d{2})?$/.test(t) ? 'date' : (t === '–' || t === '' ? null : 'text');
  const out = [];
  document.querySelectorAll('.panel table').forEach((table, ti) => {
    const heads = [...table.querySelectorAll('thead th')].map(th => th.textContent.trim());
    heads.forEach((h, ci) => {
      const shapes = new Set();
      table.querySelectorAll('tbody tr').forEach(tr => {
        const td = tr.children[ci]; if (!td) return;
        const main = td.querySelector('.main'); const s = shape((main || td).textContent.trim());
        if (s !== null) shapes.add(s);
      });
      const kinds = new Set([...shapes].map(s => s.replace(/\\d+$/, '')));
      kinds.delete('capped');  // an IRR past the cap says so in words, in a percent column
      if (kinds.size > 1 || (kinds.has('percent') || kinds.has('number')) && shapes.size - (shapes.has('capped') ? 1 : 0) > 1)
        out.push(`${table.closest('.panel').dataset.table}: ${h}: ${[...shapes].join(', ')}`);
    });
  });
  return out;
}"""


@pytest.fixture(scope="module")
def report_files(tmp_path_factory):
    """The report of the shared generated sample (the demo's pipeline on a smaller seed) and of a tiny
    hand-built warehouse."""
    from support.marts_sample import built_marts

    d = tmp_path_factory.mktemp("decision")
    sample, _ = built_marts()
    return {
        "sample": write_report(sample, d / "sample.html"),
        "tiny": write_report(build_warehouse(d / "tiny.duckdb"), d / "tiny.html"),
    }


@pytest.mark.parametrize("width", [1280, 1920])
@pytest.mark.parametrize("which", ["sample", "tiny"])
def test_the_decision_is_readable_first(browser, report_files, tmp_path, which, width):
    page = browser.new_page(viewport={"width": width, "height": 900})
    fetched: list[str] = []
    page.route(
        "**/*",
        lambda r: r.continue_() if r.request.url.startswith("file:") else (fetched.append(r.request.url), r.abort()),
    )
    page.goto(report_files[which].as_uri())
    # the portfolio is the first thing on the page, and every key column is on screen without scrolling
    first = page.locator("main section").first
    assert first.get_attribute("id") == "decision"
    table = page.locator('table[data-component="portfolio"]')
    heads = [h.strip() for h in table.locator("thead th").all_inner_texts()]
    for col in KEY_COLUMNS:
        th = table.locator("thead th").nth(next(i for i, h in enumerate(heads) if h.startswith(col)))
        box = th.bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= width, (col, box)
    wrap = page.locator(".portfolio-wrap")
    assert wrap.evaluate("e => e.scrollWidth <= e.clientWidth + 1")
    assert table.locator("tbody tr").count() >= 1
    # nothing wider than the window, no chart wider than its panel
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.evaluate("""[...document.querySelectorAll('.chart svg')].every(s =>
        s.getBoundingClientRect().width <= s.closest('.panel').getBoundingClientRect().width + 1)""")
    # one format per column, in every table of the report
    assert page.evaluate(SHAPE_JS) == []
    assert "<NA>" not in page.content() and "nan" not in page.locator("main").inner_text().split()
    assert fetched == []
    _save(page, tmp_path, f"report-{which}-{width}.png")
    page.close()
