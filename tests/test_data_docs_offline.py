"""Great Expectations' Data Docs open offline: every CDN script, stylesheet and image is replaced by a
pinned local copy (quality_checks/data_docs.py), checked on GX's own output in a real Chromium with
the network cut."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

from quality_checks.data_docs import ASSETS, external_loads, make_offline
from quality_checks.gx_suite import run_gx_suite

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
needs_assets = pytest.mark.skipif(
    not (ASSETS / "jquery").is_dir(),
    reason="Data Docs assets not installed (make assets needs npm): offline test skipped",
)


def _metrics() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "day": pd.to_datetime(["2026-01-01"] * 3),
            "event_name": ["A", "A", "B"],
            "metric": ["volume", "null_rate", "volume"],
            "property": ["", "x", ""],
            "dimension": ["", "", ""],
            "value": [10.0, 0.1, 3.0],
            "denominator": [10, 10, 3],
        }
    )


def test_unknown_cdn_addresses_are_removed_and_reported(tmp_path):
    site = tmp_path / "site"
    (site / "static" / "images").mkdir(parents=True)
    (site / "index.html").write_text(
        '<html><head><script src="https://cdn.example.org/x.js"></script>'
        '<link rel="stylesheet" href="https://cdn.example.org/y.css"></head>'
        '<body><a href="https://greatexpectations.io/">a link is not a load</a></body></html>'
    )
    result = make_offline(site)
    html = (site / "index.html").read_text()
    assert external_loads(html) == [] and "https://greatexpectations.io/" in html
    assert result.removed == ["index.html: https://cdn.example.org/x.js", "index.html: https://cdn.example.org/y.css"]


@needs_assets
def test_gx_data_docs_load_nothing_from_the_network(tmp_path):
    out = run_gx_suite(_metrics(), tmp_path / "gx_docs")
    index = Path(out.metadata["data_docs"])
    assert out.metadata["data_docs_offline"] is True
    pages = list(index.parent.rglob("*.html"))
    assert len(pages) >= 3
    before = sum(len(external_loads(p.read_text())) for p in pages)
    assert before == 0, "every page points at local copies"
    if CHROMIUM is None:
        pytest.skip("chromium not installed (make browser): the in-browser half is skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-background-networking"]
        )
        try:
            for page_file in pages:
                page = browser.new_page(viewport={"width": 1280, "height": 900})
                fetched, errors = [], []
                page.route(
                    "**/*",
                    lambda r, f=fetched: (
                        r.continue_() if r.request.url.startswith("file:") else (f.append(r.request.url), r.abort())
                    ),
                )
                page.on("pageerror", lambda e, errs=errors: errs.append(str(e)))
                page.goto(page_file.as_uri())
                page.wait_for_load_state("load")
                assert fetched == [] and errors == [], page_file.name
                # styled by Bootstrap (its font stack), not the browser's default serif
                assert "Segoe UI" in page.evaluate("getComputedStyle(document.body).fontFamily")
                if page_file == index:  # the validation list is drawn by bootstrap-table from the page's data
                    assert page.locator("table tbody tr").count() >= 1
                page.close()
        finally:
            browser.close()
