"""Real browser trackers, unmodified, in Debian's Chromium, sending to the collector from another
origin: analytics.js (@segment/analytics-next, standard and batching delivery) and the Snowplow
browser tracker (POST, GET, anonymous/cookie-less). Every event must land, load and validate.

The libraries are the pinned npm packages of tests/browser (`make npm`); the page is served from
one 127.0.0.1 port and the collector listens on another, so Chromium enforces CORS (preflights,
credentials) exactly as on a real site. Skipped, with the reason listed, only without Chromium or
without the npm bundle.
"""

from __future__ import annotations

import json
import shutil
import time

import httpx
import orjson
from browser.support import chromium, offline_page, static_site, trackers_bundle
from support.pipeline import query

from pipelines.collector import create_app
from pipelines.collector.local import running
from pipelines.ingest.load import ingest_partition
from pipelines.warehouse import connect
from tracking_plan.loader import default_plan_dir, load_plan

WRITE_KEY = "wk_browser"
APP_ID = "shop-web"

PAGE = (
    "<!doctype html><html><head><title>Shop</title><script src='trackers.js'></script></head><body>shop</body></html>"
)

SEGMENT_JS = r"""
async ([collector, writeKey, batching]) => {
  const host = collector.replace("http://", "") + "/v1";
  const segmentio = { apiKey: writeKey, apiHost: host, protocol: "http" };
  if (batching) segmentio.deliveryStrategy = { strategy: "batching", config: { size: 4, timeout: 200 } };
  const [analytics] = await window.trackers.AnalyticsBrowser.load(
    { writeKey, cdnSettings: { integrations: { "Segment.io": segmentio } } },
    { disableClientPersistence: true });
  const tag = batching ? "b" : "s";
  const ids = [];
  const keep = (ctx) => ids.push([ctx.event.type, ctx.event.messageId]);
  keep(await analytics.page());
  keep(await analytics.identify("user-" + tag, { email: "ada@example.com", plan: "team" }));
  keep(await analytics.track("Product Viewed", { product_id: "prd_pro_annual", price: 12.5, currency: "USD" }));
  keep(await analytics.group("acme", { name: "Acme", employees: 12 }));
  keep(await analytics.screen("Settings", { screen_class: "SettingsView" }));
  keep(await analytics.alias("user-" + tag + "-new", "user-" + tag));
  return ids;
}
"""

SNOWPLOW_JS = r"""
async ([collector, appId]) => {
  const sp = window.trackers.snowplow;
  const delivered = [];
  const onRequestSuccess = (events) => events.forEach((e) => delivered.push([e.e, e.eid]));
  const failed = [];
  const onRequestFailure = (f) => failed.push(String(f.status));
  const common = { appId, onRequestSuccess, onRequestFailure, bufferSize: 1, contexts: { webPage: true } };
  sp.newTracker("post", collector, { ...common, eventMethod: "post" });
  sp.newTracker("get", collector, { ...common, eventMethod: "get" });
  sp.newTracker("anon", collector, { ...common, eventMethod: "post", stateStorageStrategy: "none",
                                     anonymousTracking: { withServerAnonymisation: true } });
  sp.setUserId("user-sp", ["post", "get"]);
  for (const t of ["post", "get", "anon"]) {
    sp.trackPageView({}, [t]);
    sp.trackStructEvent({ category: "shop", action: "Basket Add", label: "sku-1", property: "size", value: 2 }, [t]);
    sp.trackSelfDescribingEvent({ event: { schema: "iglu:com.acme/link_click/jsonschema/1-0-0",
                                           data: { target: "pricing" } } }, [t]);
  }
  const deadline = Date.now() + 20000;
  while (delivered.length < 9 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return { delivered, failed };
}
"""

EXTRA_EVENTS = {
    "basket_add.yaml": """name: Basket Add
description: Snowplow structured event (action Basket Add) from the web shop.
owner: web
status: active
type: track
version: 1-0-0
consent: analytics
properties:
  category: {type: string, description: Structured category., required: true}
  action: {type: string, description: Structured action., required: true}
  label: {type: string, description: Label.}
  property: {type: string, description: Property.}
  value: {type: number, description: Value.}
""",
    "link_click.yaml": """name: link_click
description: Snowplow self-describing event iglu:com.acme/link_click.
owner: web
status: active
type: track
version: 1-0-0
consent: analytics
properties:
  target: {type: string, description: Link target., required: true}
""",
}


def _events_landed(url: str) -> float:
    total = 0.0
    for line in httpx.get(url + "/metrics", timeout=5).text.splitlines():
        if line.startswith("trackplan_collector_events_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_real_browser_trackers_deliver_every_call_and_it_loads(tmp_path):
    bundle = trackers_bundle()
    landing = tmp_path / "landing"
    plan_dir = tmp_path / "plan"
    shutil.copytree(default_plan_dir(), plan_dir)
    for name, text in EXTRA_EVENTS.items():
        (plan_dir / "events" / name).write_text(text)
    with static_site({"index.html": PAGE, "trackers.js": bundle}) as origin:
        app = create_app(
            landing, write_keys={WRITE_KEY: "web", APP_ID: "snowplow_web"}, allowed_origins={"web": [origin]}
        )  # snowplow_web: any origin (the default)
        with running(app) as url, chromium() as browser:
            page, errors = offline_page(browser)
            requests: list[tuple[str, str]] = []
            page.on("request", lambda r: requests.append((r.method, r.url)) if r.url.startswith(url) else None)
            page.goto(origin + "/index.html")
            seg = page.evaluate(SEGMENT_JS, [url, WRITE_KEY, False])
            seg += page.evaluate(SEGMENT_JS, [url, WRITE_KEY, True])
            sp = page.evaluate(SNOWPLOW_JS, [url, APP_ID])
            deadline = time.monotonic() + 60
            while _events_landed(url) < len(seg) + 9 and time.monotonic() < deadline:
                time.sleep(0.1)  # the batching strategy flushes on its own timer
            page.close()
            metrics = httpx.get(url + "/metrics", timeout=5).text
    assert errors == [], errors
    assert sp["failed"] == [] and len(sp["delivered"]) == 9
    paths = {u.split("?")[0].removeprefix(url) for _, u in requests}
    # what the libraries really use: analytics.js short paths and /b, Snowplow's tp2 and /i
    assert {
        "/v1/p",
        "/v1/i",
        "/v1/t",
        "/v1/g",
        "/v1/s",
        "/v1/a",
        "/v1/b",
        "/com.snowplowanalytics.snowplow/tp2",
        "/i",
    } <= paths, paths

    # Chromium preflighted (OPTIONS, answered 204) analytics.js (Authorization header) and Snowplow's
    # JSON POST; page.on("request") does not show preflights, the collector's own counters do
    for route in ("/v1/t", "/v1/b", "/com.snowplowanalytics.snowplow/tp2"):
        assert f'trackplan_collector_requests_total{{route="{route}",status="204"}}' in metrics, [
            ln for ln in metrics.splitlines() if ln.startswith("trackplan_collector_requests_total")
        ]

    rows = [orjson.loads(x) for f in sorted(landing.glob("date=*/*.jsonl")) for x in f.read_bytes().splitlines()]
    assert sorted(r["messageId"] for r in rows) == sorted([m for _, m in seg] + [eid for _, eid in sp["delivered"]])
    by_id = {r["messageId"]: r for r in rows}
    assert [by_id[m]["type"] for _, m in seg] == [t for t, _ in seg]
    assert {by_id[m]["context"]["library"]["name"] for _, m in seg} == {"analytics.js"}
    anon = [r for r in rows if r.get("context", {}).get("snowplow", {}).get("tna") == "anon"]
    assert len(anon) == 3 and all("anonymousId" not in r and "userId" not in r for r in anon)

    # load through the ingestion with a plan that has these events
    plan = load_plan(plan_dir)
    wh = tmp_path / "w.duckdb"
    con = connect(wh)
    try:
        results = [ingest_partition(con, plan, landing, d.name[5:]) for d in sorted(landing.glob("date=*"))]
    finally:
        con.close()
    loaded = sum(r.loaded for r in results)
    quarantined = query(wh, "select raw, reasons from ingest.quarantine")
    reasons = {json.loads(raw)["messageId"]: [r["rule"] for r in rs] for raw, rs in quarantined}
    # Cookie-less Snowplow events carry no user or device id: the ingestion refuses them, by rule.
    assert reasons == {r["messageId"]: ["identity"] for r in anon}, reasons
    assert loaded == len(rows) - len(anon)
