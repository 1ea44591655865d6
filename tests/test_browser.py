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
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
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
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(("file:", "http://127.0.0.1"))
               else (errors.append(f"fetched {route.request.url}"), route.abort()))
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
