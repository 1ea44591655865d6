"""Real, unmodified tracking SDKs against a collector on 127.0.0.1, with and without injected faults.

Invariant under faults (issue 6, item 6): every messageId an SDK sent is in the landing zone, and
after de-duplication by messageId the landed set equals the sent set (set equality, not a count).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest

from pipelines.collector import create_app
from pipelines.collector.local import running

KEY = "WRITE_KEY_TEST"
NODE_SDKS = {"@segment/analytics-node": "3.1.0", "@rudderstack/rudder-sdk-node": "3.0.13"}  # versions captured


def landed(landing: Path, source: str) -> list[dict]:
    rows = []
    for f in sorted(landing.glob(f"date=*/collector-{source}-*.jsonl")):
        rows += [json.loads(x) for x in f.read_text(encoding="utf-8").splitlines()]
    return rows


class Faults:
    """A fault plan, cycled over requests: a fault "before" the write lands nothing; one "after" it
    lands the batch without acknowledging it, so the SDK's retry lands a duplicate. The plans keep
    failures at most two in a row so the SDKs' exponential backoff keeps the test short."""

    def __init__(self, pattern: list) -> None:
        self.pattern = pattern
        self.n = 0
        self.injected: list[tuple[int, str]] = []
        self.lock = threading.Lock()

    def __call__(self, route: str):
        with self.lock:
            fault = self.pattern[self.n % len(self.pattern)]
            self.n += 1
            if fault is not None:
                self.injected.append(fault)
            return fault


def _segment_python(url: str, n: int, gzip: bool) -> list[str]:
    from segment.analytics import Client

    client = Client(KEY, host=url, gzip=gzip, upload_size=25, max_retries=10)
    sent = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            ok, msg = client.track(f"user-{i}", "Order Completed", {"order_id": f"o-{i}", "revenue": i / 2})
        elif kind == 1:
            ok, msg = client.identify(f"user-{i}", {"plan": "pro"})
        elif kind == 2:
            ok, msg = client.page(f"user-{i}", "Docs", "Home", {"url": "https://example.com/"})
        else:
            ok, msg = client.group(f"user-{i}", f"group-{i % 3}", {"name": "g"})
        assert ok
        sent.append(msg["messageId"])
    client.flush()  # blocks until every batch is answered 2xx (or retries are exhausted)
    client.join()
    return sent


def _snowplow_python(url: str, n: int, method: str, deadline_s: float = 30) -> list[str]:
    from snowplow_tracker import (
        Emitter,
        PageView,
        SelfDescribing,
        SelfDescribingJson,
        StructuredEvent,
        Subject,
        Tracker,
    )

    host, port = url.removeprefix("http://").split(":")
    delivered: set[str] = set()
    emitter = Emitter(
        host, protocol="http", port=int(port), method=method, batch_size=10,
        on_success=lambda evs: delivered.update(e["eid"] for e in evs),
    )  # fmt: skip
    subject = Subject().set_user_id("user-1").set_domain_user_id("duid-1").set_domain_session_id("sid-1")
    tracker = Tracker("ns1", emitter, subject=subject, app_id="app-1", encode_base64=True)
    sent: list[str] = []
    end = time.monotonic() + deadline_s
    for i in range(n):
        if i % 3 == 0:
            ev = PageView(page_url=f"https://example.com/p{i}", page_title="P")
        elif i % 3 == 1:
            ev = StructuredEvent(category="shop", action="add-to-basket", label=f"sku-{i}", value=i)
        else:
            ev = SelfDescribing(SelfDescribingJson("iglu:com.example/link_click/jsonschema/1-0-0", {"target": f"t{i}"}))
        sent.append(tracker.track(ev))
        if len(sent) % 10 == 0 or i == n - 1:
            # Deliver batch by batch, so that each request meets the next step of a fault plan
            # (while a retry is pending the tracker would otherwise pool everything into one POST).
            tracker.flush()
            while not delivered >= set(sent) and time.monotonic() < end:
                time.sleep(0.05)  # retries run on the emitter's own timer
    return sent


def test_segment_python_sdk_every_message_arrives(tmp_path):
    landing = tmp_path / "landing"
    with running(create_app(landing, write_keys={KEY: "py"})) as url:
        sent = _segment_python(url, 200, gzip=False) + _segment_python(url, 60, gzip=True)
    rows = landed(landing, "py")
    assert sorted(r["messageId"] for r in rows) == sorted(sent)  # exactly once without faults
    assert {r["type"] for r in rows} == {"track", "identify", "page", "group"}
    assert all(r["context"]["library"]["name"] == "analytics-python" for r in rows)


@pytest.mark.parametrize("method", ["post", "get"])
def test_snowplow_python_tracker_every_event_arrives(tmp_path, method):
    landing = tmp_path / "landing"
    with running(create_app(landing, write_keys={"app-1": "sp"})) as url:
        sent = _snowplow_python(url, 30, method)
    rows = landed(landing, "sp")
    assert sorted(r["messageId"] for r in rows) == sorted(sent)
    by_type = {(r["type"], r.get("event")) for r in rows}
    assert by_type == {("page", None), ("track", "add-to-basket"), ("track", "link_click")}
    assert all(r["userId"] == "user-1" and r["context"]["sessionId"] == "sid-1" for r in rows)


def test_injected_500_and_503_every_message_ingested_exactly_once_after_dedup(tmp_path):
    landing = tmp_path / "landing"
    seg_faults = Faults([(500, "before"), (503, "after"), None, (503, "before"), None, (500, "after"), None, None])
    with running(create_app(landing, write_keys={KEY: "py"}, fault_injector=seg_faults)) as url:
        sent = _segment_python(url, 400, gzip=True)
    # Snowplow's retry delay doubles from ~0.5 s and is only reset by a success: one failure at a time.
    sp_faults = Faults([(500, "after"), None, (503, "before"), None, (503, "after"), None, (500, "before"), None])
    with running(create_app(landing, write_keys={"app-1": "sp"}, fault_injector=sp_faults)) as url:
        sp_sent = _snowplow_python(url, 60, "post")
    for source, ids, faults in (("py", sent, seg_faults), ("sp", sp_sent, sp_faults)):
        rows = landed(landing, source)
        ids_landed = [r["messageId"] for r in rows]
        assert set(faults.injected) == {(500, "before"), (503, "before"), (500, "after"), (503, "after")}
        assert len(ids_landed) > len(set(ids_landed))  # "after" faults really produced duplicates
        assert set(ids_landed) == set(ids)  # set equality after de-duplication by messageId
        assert len(set(ids)) == len(ids)


# -- Node SDKs (npm) ----------------------------------------------------------------------------
NODE_SCRIPT = r"""
const [kind, url, idsJson] = process.argv.slice(2);
const ids = JSON.parse(idsJson);
async function main() {
  if (kind === "segment") {
    const { Analytics } = require("@segment/analytics-node");
    const a = new Analytics({ writeKey: "WRITE_KEY_TEST", host: url, flushAt: 20 });
    ids.forEach((id, i) => (i % 2 ? a.identify({ userId: "user-" + i, traits: { plan: "pro" }, messageId: id })
                                  : a.track({ userId: "user-" + i, event: "Order Completed", properties: { i }, messageId: id })));
    await a.closeAndFlush({ timeout: 20000 });
  } else {
    const Analytics = require("@rudderstack/rudder-sdk-node");
    const a = new Analytics("WRITE_KEY_TEST", { dataPlaneUrl: url, flushAt: 20 });
    // Rudder's flush() resolves before batches queued by earlier flushes are sent: wait for
    // every message's own callback instead (called once its batch got a 2xx).
    const done = ids.map((id, i) => new Promise((resolve, reject) => {
      const cb = (err) => (err ? reject(err) : resolve());
      if (i % 2) a.identify({ userId: "user-" + i, traits: { plan: "pro" }, messageId: id }, cb);
      else a.track({ userId: "user-" + i, event: "Order Completed", properties: { i }, messageId: id }, cb);
    }));
    await a.flush();
    await Promise.all(done);
  }
}
main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
"""


@pytest.fixture(scope="module")
def node_sdks() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.skip("Node SDK tests skipped: `node`/`npm` not on PATH")
    key = "-".join(f"{k.split('/')[-1]}{v}" for k, v in NODE_SDKS.items())
    folder = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "trackplan-tests" / key
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # xdist workers share this cache: one installs at a time
        problem = (
            None
            if (folder / "node_modules" / "@rudderstack" / "rudder-sdk-node").is_dir()
            else _npm_install(npm, folder)
        )
        (folder / "send.js").write_text(NODE_SCRIPT)
    if problem:
        pytest.skip(f"Node SDK tests skipped: {problem}")
    return folder


def _npm_install(npm: str, folder: Path) -> str | None:
    """Install the Node SDKs from the npm registry into ``folder``; the reason if it failed."""
    specs = [f"{k}@{v}" for k, v in NODE_SDKS.items()]
    try:
        proc = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--loglevel=error", "--prefix", str(folder), *specs],
            check=False, capture_output=True, text=True, timeout=180,  # registry fetch; bounded
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return "npm install timed out (registry unreachable?)"
    return None if proc.returncode == 0 else f"npm install failed: {proc.stderr.strip()[-300:]}"


@pytest.mark.parametrize("kind,lib", [("segment", "@segment/analytics-node"), ("rudder", "analytics-node")])
def test_node_sdk_every_message_arrives(tmp_path, node_sdks, kind, lib):
    landing = tmp_path / "landing"
    ids = [str(uuid.uuid4()) for _ in range(50)]
    with running(create_app(landing, write_keys={KEY: kind})) as url:
        proc = subprocess.run(
            ["node", str(node_sdks / "send.js"), kind, url, json.dumps(ids)],
            cwd=node_sdks, check=False, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    rows = landed(landing, kind)
    assert sorted(r["messageId"] for r in rows) == sorted(ids)
    assert {r["context"]["library"]["name"] for r in rows} == {lib}
    assert {r["type"] for r in rows} == {"track", "identify"}
