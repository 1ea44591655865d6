"""Regenerate the README screenshots: the report of a demo warehouse (the decision on top, at the
1280 px a laptop shows, and the growth section) and the plan catalog.

    .venv/bin/trackplan demo --out demo
    .venv/bin/python docs/screenshots/capture.py demo/warehouse.duckdb

Needs Debian's chromium (`make browser`). Review the PNGs before committing; keep them small.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from tracking_plan.docs_site import build_docs
from tracking_plan.loader import default_plan_dir
from trackplan.report import write_report

HERE = Path(__file__).resolve().parent
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def main(warehouse: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        report = write_report(warehouse, Path(tmp) / "report.html")
        build_docs(default_plan_dir(), Path(tmp) / "site")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(report.as_uri())
            page.screenshot(path=str(HERE / "report-decision.png"))
            page.evaluate("document.querySelector('#kpis').scrollIntoView()")
            page.screenshot(path=str(HERE / "report-kpis.png"))
            page.locator("#growth").scroll_into_view_if_needed()
            page.evaluate("document.querySelector('#growth').scrollIntoView()")
            page.screenshot(path=str(HERE / "report-growth.png"))
            page.goto((Path(tmp) / "site" / "index.html").as_uri())
            page.screenshot(path=str(HERE / "catalog.png"))
            page.click("text=Order Completed")
            page.screenshot(path=str(HERE / "catalog-event.png"))
            browser.close()
    from PIL import Image

    for f in sorted(HERE.glob("*.png")):
        # 256 colours keep text and charts crisp at a third of the size: the repo stays small
        Image.open(f).convert("RGB").quantize(256).save(f, optimize=True)
        print(f"{f.relative_to(HERE.parents[1])}: {f.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "demo/warehouse.duckdb")
