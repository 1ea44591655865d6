"""Every plan event through the generated TypeScript and the real analytics.js
(`@segment/analytics-next`, bundled by `make npm` from the pinned npm package) in headless Debian
Chromium, to the collector app `trackplan serve` runs on 127.0.0.1; every landed event validates.

The page comes from a static server on another port (another origin): the browser applies CORS to
every request, as on a real site, and analytics.js uses its default delivery (one request per event
to /v1/t, /v1/i, /v1/p, /v1/s, /v1/g). The generated code is compiled by the pinned tsc
(make codegen-ts). Skipped, and listed, where Chromium, node or either npm toolchain is missing.
"""

from __future__ import annotations

import json
import time

import pytest
from browser.support import chromium, offline_page, static_site, trackers_bundle
from test_codegen import KEY, NODE, PLAN, TS_DIR, TSC, _landed, _payload, _tsc, build_samples

from pipelines.collector import create_app
from pipelines.collector.local import running
from tracking_plan.codegen import ts_function, write_code
from tracking_plan.validate import validate_files

pytestmark = pytest.mark.skipif(
    NODE is None or not TSC.exists(),
    reason="node or the pinned TypeScript toolchain is missing (make codegen-ts): browser codegen test skipped",
)


@pytest.fixture(scope="module")
def samples(tmp_path_factory) -> dict[str, dict]:
    return build_samples(tmp_path_factory.mktemp("traffic"))


def _calls(samples: dict) -> list[str]:
    """One awaited call per event through the generated browser functions; identify first, as an app does."""
    out = []
    for name in sorted(samples, key=lambda n: (PLAN.events[n].type != "identify", n)):
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
import type { AnalyticsBrowser } from '@segment/analytics-next'
import * as web from './browser.js'

export async function run(load: typeof AnalyticsBrowser.load, writeKey: string, collector: string): Promise<number> {
  const segment = { apiKey: writeKey, apiHost: collector.replace(/^https?:\\/\\//, '') + '/v1', protocol: 'http' as const }
  const analytics = load(
    // settings given, so nothing is fetched from Segment's CDN; metrics off: analytics.js would
    // also post its own telemetry to <apiHost>/m
    { writeKey, cdnSettings: { integrations: { 'Segment.io': segment }, metrics: { sampleRate: 0 } } },
    { integrations: { 'Segment.io': segment } },
  )
  web.configure(analytics, { development: true })
  let n = 0
%CALLS%
  return n
}
"""

INDEX_HTML = """<!doctype html>
<html><head><title>codegen</title></head><body>
<script src="trackers.js"></script>
<script type="module">
  import { run } from './page.js'
  run(window.trackers.AnalyticsBrowser.load, %KEY%, %COLLECTOR%)
    .then((n) => { window.__sent = n }, (e) => { window.__error = String(e && e.stack || e) })
</script>
</body></html>
"""


def test_every_event_through_generated_typescript_and_analytics_js_in_chromium(tmp_path, samples):
    bundle = trackers_bundle()
    write_code(PLAN, "typescript", tmp_path)  # plan.ts, browser.ts, node.ts beside the page
    (tmp_path / "node_modules").symlink_to(TS_DIR / "node_modules", target_is_directory=True)
    calls = _calls(samples)
    body = "\n".join(f"  {c}\n  n += 1" for c in calls)
    (tmp_path / "page.ts").write_text(PAGE_TS.replace("%CALLS%", body), encoding="utf-8")
    assert (
        _tsc(
            tmp_path,
            "--module",
            "es2022",
            "--moduleResolution",
            "bundler",
            "--outDir",
            "js",
            "--rootDir",
            ".",
            "page.ts",
        )
        == []
    )
    js = tmp_path / "js"
    landing = tmp_path / "landing"
    with running(create_app(landing, write_keys={KEY: "web"})) as url:
        files = {
            "index.html": INDEX_HTML.replace("%KEY%", json.dumps(KEY)).replace("%COLLECTOR%", json.dumps(url)),
            "trackers.js": bundle,
            **{p.name: p for p in sorted(js.glob("*.js"))},
        }
        assert {"page.js", "browser.js", "plan.js"} <= set(files)
        with static_site(files) as origin, chromium() as browser:
            assert origin != url  # another port: another origin, CORS applies
            page, errors = offline_page(browser)
            statuses: list[tuple[str, int]] = []
            page.on(
                "response",
                lambda r: statuses.append((r.url.removeprefix(url), r.status)) if r.url.startswith(url) else None,
            )
            page.goto(f"{origin}/index.html")
            page.wait_for_function("window.__sent !== undefined || window.__error !== undefined", timeout=60_000)
            assert page.evaluate("window.__error") is None, page.evaluate("window.__error")
            assert page.evaluate("window.__sent") == len(calls)
            deadline = time.monotonic() + 30
            while len(_landed(landing)) < len(calls) and time.monotonic() < deadline:
                page.wait_for_timeout(200)
    assert errors == []
    assert statuses and {s for _, s in statuses} == {200}, statuses
    assert {p for p, _ in statuses} <= {"/v1/t", "/v1/i", "/v1/p", "/v1/s", "/v1/g"}  # default delivery, one per event
    rows = _landed(landing)
    assert len(rows) == len(calls) == len(samples)
    assert {r.get("event") or r["type"] for r in rows} == {
        n if PLAN.events[n].type == "track" else PLAN.events[n].type for n in samples
    }
    assert all(r["context"]["trackingPlan"] == {"name": PLAN.header.name, "version": PLAN.header.version} for r in rows)
    assert all(r["context"]["library"]["name"] == "analytics.js" for r in rows)
    reports = validate_files(PLAN, sorted(landing.glob("date=*/*.jsonl")))
    assert sum(r.valid for r in reports) == len(calls), [e for r in reports for e in r.errors]
