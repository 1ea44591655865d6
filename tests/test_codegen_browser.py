"""Every plan event through the generated TypeScript and the real analytics.js
(`@segment/analytics-next`, its own UMD build from npm) in headless Debian Chromium, to the
collector app `trackplan serve` runs, on 127.0.0.1; every landed event validates against the plan.

The page and the library are served to Chromium by Playwright from local files under the
collector's own origin, so the browser's POSTs to `/v1/b` (analytics.js's batching delivery) are
same-origin: this test does not depend on the collector's CORS answers. Skipped, and listed, where
Chromium, node or the pinned TypeScript toolchain (make codegen-ts) is missing.
"""

from __future__ import annotations

import json
import mimetypes
import shutil
import time
from pathlib import Path

import pytest
from test_codegen import KEY, NODE, PLAN, TS_DIR, TSC, _landed, _payload, _tsc, build_samples

from pipelines.collector import create_app
from pipelines.collector.local import running
from tracking_plan.codegen import ts_function, write_code
from tracking_plan.validate import validate_files

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]
UMD = TS_DIR / "node_modules" / "@segment" / "analytics-next" / "dist" / "umd"
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (make browser): browser codegen test skipped"),
    pytest.mark.skipif(NODE is None or not TSC.exists() or not UMD.is_dir(),
                       reason="node or the pinned TypeScript toolchain is missing (make codegen-ts): browser codegen test skipped"),
]


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, dict]:
    return build_samples(tmp_path_factory.mktemp("traffic"))


def _calls(samples: dict) -> list[str]:
    """One awaited call per event through the generated browser functions; identify first, as an app does."""
    out = []
    order = sorted(samples, key=lambda n: (PLAN.events[n].type != "identify", n))
    for name in order:
        ev, msg = PLAN.events[name], samples[name]
        fn, pay = ts_function(name), json.dumps(_payload(msg))
        if ev.type == "identify":
            out.append(f"await web.{fn}({json.dumps(msg.get('userId') or 'user-1')}, {pay})")
        elif ev.type == "group":
            out.append(f"await web.{fn}({json.dumps(msg['groupId'])}, {pay})")
        elif ev.type in ("page", "screen"):
            out.append(f"await web.{fn}({pay}, undefined, {{ name: 'Home' }})")
        else:
            out.append(f"await web.{fn}({pay})")
    return out


PAGE_TS = """\
import * as web from './tracking/browser.js'

declare global {
  interface Window { AnalyticsNext: typeof import('@segment/analytics-next') }
}

export async function run(writeKey: string, origin: string): Promise<number> {
  const segment = {
    apiKey: writeKey,
    apiHost: origin.replace(/^https?:\\/\\//, '') + '/v1',
    protocol: 'http' as const,
    deliveryStrategy: { strategy: 'batching' as const, config: { size: 200, timeout: 300 } },
  }
  const analytics = window.AnalyticsNext.AnalyticsBrowser.load(
    // metrics off: analytics.js would also post its own telemetry to <apiHost>/m
    { writeKey, cdnURL: origin + '/app/cdn', cdnSettings: { integrations: { 'Segment.io': segment }, metrics: { sampleRate: 0 } } },
    { integrations: { 'Segment.io': segment } },
  )
  web.configure(analytics, { development: true })
  let n = 0
%CALLS%
  return n
}
"""

INDEX_HTML = """<!doctype html>
<html><head><title>codegen</title><link rel="icon" href="data:,"></head><body>
<script src="cdn/analytics-next/bundles/index.js"></script>
<script type="module">
  import { run } from './js/page.js'
  run(%KEY%, location.origin).then((n) => { window.__sent = n }, (e) => { window.__error = String(e && e.stack || e) })
</script>
</body></html>
"""


def test_every_event_through_generated_typescript_and_analytics_js_in_chromium(tmp_path, samples):
    from playwright.sync_api import sync_playwright

    write_code(PLAN, "typescript", tmp_path / "tracking")
    (tmp_path / "node_modules").symlink_to(TS_DIR / "node_modules", target_is_directory=True)
    calls = _calls(samples)
    body = "\n".join(f"  {c}\n  n += 1" for c in calls)
    (tmp_path / "page.ts").write_text(PAGE_TS.replace("%CALLS%", body), encoding="utf-8")
    errors = _tsc(tmp_path, "--module", "es2022", "--moduleResolution", "bundler", "--outDir", "js",
                  "--rootDir", ".", "page.ts")
    assert errors == []
    (tmp_path / "index.html").write_text(INDEX_HTML.replace("%KEY%", json.dumps(KEY)), encoding="utf-8")

    landing = tmp_path / "landing"
    with running(create_app(landing, write_keys={KEY: "web"})) as url:
        served: list[str] = []

        def serve(route):
            rel = route.request.url.split("/app/", 1)[1].split("?")[0]
            path = (UMD / rel.removeprefix("cdn/analytics-next/bundles/")) if rel.startswith("cdn/") else tmp_path / rel
            if not path.is_file():
                return route.fulfill(status=404, body="not found")
            served.append(rel)
            mime = "text/javascript" if path.suffix == ".js" else (mimetypes.guess_type(path.name)[0] or "text/plain")
            return route.fulfill(status=200, body=path.read_bytes(), headers={"content-type": mime})

        problems: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page()
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            page.route(f"{url}/app/**", serve)
            # offline means offline: anything but the collector's origin fails the test
            page.route(lambda u: not u.startswith(url), lambda r: (problems.append(f"fetched {r.request.url}"), r.abort()))
            page.goto(f"{url}/app/index.html")
            page.wait_for_function("window.__sent !== undefined || window.__error !== undefined", timeout=60_000)
            assert page.evaluate("window.__error") is None, page.evaluate("window.__error")
            assert page.evaluate("window.__sent") == len(calls)
            deadline = time.monotonic() + 30
            while len(_landed(landing)) < len(calls) and time.monotonic() < deadline:
                # not time.sleep: Playwright's sync API runs the route handlers (every request of
                # the page passes one) only while the test is inside a Playwright call
                page.wait_for_timeout(200)
            browser.close()
    assert problems == []
    assert "js/tracking/browser.js" in served and "cdn/analytics-next/bundles/index.js" in served
    rows = _landed(landing)
    assert len(rows) == len(calls) == len(samples)
    assert {r.get("event") or r["type"] for r in rows} == {n if PLAN.events[n].type == "track" else PLAN.events[n].type
                                                          for n in samples}
    assert all(r["context"]["trackingPlan"] == {"name": PLAN.header.name, "version": PLAN.header.version} for r in rows)
    assert all(r["context"]["library"]["name"] == "analytics.js" for r in rows)
    reports = validate_files(PLAN, sorted(landing.glob("date=*/*.jsonl")))
    assert sum(r.valid for r in reports) == len(calls), [e for r in reports for e in r.errors]
