"""Collector, in-process: replay of real SDK captures and every kind of bad input."""

from __future__ import annotations

import base64
import gzip
import json
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from pipelines.collector import create_app, load_write_keys

CAPTURES = Path(__file__).resolve().parents[2] / "shared" / "peer-data" / "sdk-captures"
CAPTURE_FILES = sorted(p for p in CAPTURES.glob("*/*.json")) if CAPTURES.is_dir() else []
KEY = "WRITE_KEY_TEST"  # the key every capture was made with (captures README)
BASIC = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
ISO_MS_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
FILE_NAME = re.compile(r"^collector-[a-z0-9_-]+-\d{8}T\d{6}-\d+-[0-9a-f]{6}-\d+\.jsonl$")


def landed(landing: Path) -> list[dict]:
    """Every line of every closed landing file, parsed."""
    rows = []
    for f in sorted(landing.glob("date=*/*.jsonl")):
        assert FILE_NAME.match(f.name), f.name
        rows += [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines()]
    return rows


def replay(client: TestClient, capture: dict):
    """Send a capture as the SDK did: same path, headers, body (gzipped where it was)."""
    headers = {k: v for k, v in capture["headers"].items() if k.lower() not in ("content-length", "host")}
    if capture["method"] == "GET":
        return client.get(capture["path"], headers=headers)
    body = json.dumps(capture["body"]).encode()
    if capture["capture"]["wire_body_encoding"] == "gzip":
        body = gzip.compress(body)
    return client.post(capture["path"], content=body, headers=headers)


@pytest.fixture
def make_client(tmp_path):
    clients = []

    def make(**kwargs):
        kwargs.setdefault("write_keys", {KEY: "web", "app-1": "snowplow_app"})
        client = TestClient(create_app(tmp_path / "landing", **kwargs))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def close(client: TestClient) -> None:
    """Graceful shutdown: renames open .part files to their final .jsonl names."""
    client.__exit__(None, None, None)


# -- real SDK captures ------------------------------------------------------------------------
@pytest.mark.skipif(not CAPTURE_FILES, reason=f"SDK captures not found at {CAPTURES}")
@pytest.mark.parametrize(
    "path", [p for p in CAPTURE_FILES if p.name != "retry-observations.json"], ids=lambda p: f"{p.parent.name}/{p.stem}"
)
def test_replayed_capture_lands_as_segment_message(make_client, tmp_path, path):
    capture = json.loads(path.read_text())
    client = make_client()
    before = datetime.now(UTC)
    r = replay(client, capture)
    assert r.status_code == 200, r.text
    close(client)
    rows = landed(tmp_path / "landing")
    assert len(rows) == 1
    row = rows[0]
    source = "snowplow_app" if "snowplow" in path.parent.name else "web"
    files = list((tmp_path / "landing").glob("date=*/*.jsonl"))
    assert files[0].parent.name == f"date={row['receivedAt'][:10]}"  # partition = UTC day received
    assert row["receivedAt"] >= before.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert files[0].name.startswith(f"collector-{source}-")
    assert not list((tmp_path / "landing").rglob("*.part"))
    assert ISO_MS_Z.match(row["receivedAt"])
    assert "writeKey" not in row
    assert row["timestamp"] and row["sentAt"]

    if "snowplow" in path.parent.name:
        ev = capture["body"]["data"][0] if capture["body"] else capture["decoded_for_reading"]["query"]
        assert row["messageId"] == ev["eid"]
        assert (row["userId"], row["anonymousId"]) == ("user-1", "duid-1")
        assert row["context"]["sessionId"] == "sid-1"
        assert row["context"]["snowplow"]["aid"] == "app-1"
        expected = {"pv": ("page", None), "pp": ("track", "page_ping"), "se": ("track", "add-to-basket")}
        if ev["e"] == "ue":
            decoded = capture.get("decoded_for_reading", {}).get("ue_px") or json.loads(ev["ue_pr"])
            name = decoded["data"]["schema"].split("/")[1]
            expected["ue"] = ("screen", None) if name == "screen_view" else ("track", name)
            assert row["properties"] == decoded["data"]["data"]
        assert (row["type"], row.get("event")) == expected[ev["e"]]
        if "ttm" in ev:  # the app-set true timestamp is the event time
            assert row["timestamp"] == datetime.fromtimestamp(int(ev["ttm"]) / 1000, UTC).isoformat(
                timespec="milliseconds"
            ).replace("+00:00", "Z")
        if ev.get("cx") or ev.get("co"):
            assert row["context"]["snowplow"]["contexts"][0]["data"] == {"variant": "a"}
    else:
        sent = capture["body"]["batch"][0]
        assert row["messageId"] == sent["messageId"]
        assert row["type"] == sent["type"]
        assert row["context"]["library"] == sent["context"]["library"]
        assert row["timestamp"] == (sent.get("timestamp") or sent["originalTimestamp"])
        assert row["sentAt"] == (sent.get("sentAt") or capture["body"]["sentAt"])
        for field in ("event", "userId", "properties", "traits", "previousId", "groupId", "name"):
            assert row.get(field) == sent.get(field)


# -- write keys -------------------------------------------------------------------------------
def test_write_key_from_basic_auth_or_body_and_unknown_is_401(make_client, tmp_path):
    client = make_client()
    msg = {"type": "track", "event": "A", "userId": "u"}
    assert client.post("/v1/track", json=msg, headers={"Authorization": BASIC}).status_code == 200
    assert client.post("/v1/track", json={**msg, "writeKey": KEY}).status_code == 200
    assert client.post("/v1/track", json=msg).status_code == 401  # no key anywhere
    bad = "Basic " + base64.b64encode(b"nope:").decode()
    assert client.post("/v1/track", json=msg, headers={"Authorization": bad}).status_code == 401
    assert client.post("/v1/batch", json={"batch": [msg], "writeKey": "nope"}).status_code == 401
    close(client)
    rows = landed(tmp_path / "landing")
    assert len(rows) == 2 and all("writeKey" not in r for r in rows)


def test_any_key_accepted_without_a_key_list(make_client, tmp_path):
    client = make_client(write_keys=None)
    assert client.post("/v1/identify", json={"userId": "u", "writeKey": "whatever"}).status_code == 200
    close(client)
    [f] = (tmp_path / "landing").glob("date=*/*.jsonl")
    assert f.name.startswith("collector-default-")
    assert landed(tmp_path / "landing")[0]["type"] == "identify"  # type from the endpoint


def test_write_key_file_formats(tmp_path):
    flat = tmp_path / "keys.json"
    flat.write_text(json.dumps({"k1": "web"}))
    nested = tmp_path / "keys.yaml"
    nested.write_text("sources:\n  web: [k1, k2]\n  backend: k3\n")
    assert load_write_keys(flat) == {"k1": "web"}
    assert load_write_keys(nested) == {"k1": "web", "k2": "web", "k3": "backend"}


def test_path_traversal_in_write_key_and_source_stays_inside_landing(make_client, tmp_path):
    evil_key = "../../../../tmp/evil"
    client = make_client(write_keys={evil_key: "../../etc/passwd\x00/..", "k": "/abs/olute"})
    auth = "Basic " + base64.b64encode(f"{evil_key}:".encode()).decode()
    assert (
        client.post("/v1/track", json={"event": "A", "userId": "u"}, headers={"Authorization": auth}).status_code == 200
    )
    assert (
        client.post(
            "/v1/batch", json={"writeKey": "k", "batch": [{"type": "track", "event": "B", "userId": "u"}]}
        ).status_code
        == 200
    )
    close(client)
    landing = (tmp_path / "landing").resolve()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files and all(landing in p.resolve().parents for p in files)
    names = sorted(p.name for p in files)
    assert all(FILE_NAME.match(n) for n in names), names
    assert [n.split("-")[1] for n in names] == ["abs_olute", "etc_passwd"]
    assert len(landed(tmp_path / "landing")) == 2


# -- bad input --------------------------------------------------------------------------------
def _rejected(landing: Path) -> list[tuple[bytes, dict]]:
    out = []
    for body in sorted((landing / "_rejected").glob("*.body")):
        out.append((body.read_bytes(), json.loads(body.with_suffix(".reason.json").read_text())))
    return out


def test_invalid_json_is_400_and_saved_with_reason(make_client, tmp_path):
    client = make_client()
    body = b'{"batch": [{"type": "track", "event": "A"'  # cut short
    r = client.post("/v1/batch", content=body, headers={"Authorization": BASIC, "Content-Type": "application/json"})
    assert r.status_code == 400
    [(saved, reason)] = _rejected(tmp_path / "landing")
    assert saved == body
    assert "not JSON" in reason["reason"] and reason["path"] == "/v1/batch"
    assert "authorization" not in {k.lower() for k in reason["headers"]}  # no secrets kept


def test_non_utf8_body_is_400_and_kept_byte_for_byte(make_client, tmp_path):
    client = make_client()
    body = '{"batch": [{"type": "track", "event": "Caf\u00e9", "userId": "u"}]}'.encode("latin-1")
    r = client.post("/v1/batch", content=body, headers={"Authorization": BASIC})
    assert r.status_code == 400
    [(saved, reason)] = _rejected(tmp_path / "landing")
    assert saved == body and "UTF-8" in reason["reason"]


def test_one_bad_message_never_fails_the_batch(make_client, tmp_path):
    client = make_client(max_message_bytes=2000)
    good = [{"type": "track", "event": f"E{i}", "userId": "u", "messageId": f"m{i}"} for i in range(3)]
    huge = {"type": "track", "event": "Huge", "userId": "u", "messageId": "big", "properties": {"blob": "x" * 5000}}
    batch = [good[0], "not an object", good[1], huge, {"event": "NoType", "messageId": "nt"}, good[2]]
    r = client.post("/v1/batch", json={"batch": batch}, headers={"Authorization": BASIC})
    assert r.status_code == 200
    metrics = client.get("/metrics").text
    close(client)
    rows = landed(tmp_path / "landing")
    assert len(rows) == len(batch)  # nothing dropped: bad ones are landed for quarantine
    enriched = [r for r in rows if isinstance(r, dict) and "receivedAt" in r]
    assert {r["messageId"] for r in enriched} == {"m0", "m1", "m2", "nt"}
    assert "not an object" in rows
    assert huge in rows  # verbatim, not enriched
    assert 'trackplan_collector_messages_invalid_total{reason="oversize"} 1.0' in metrics
    assert 'trackplan_collector_messages_invalid_total{reason="not_an_object"} 1.0' in metrics
    assert 'trackplan_collector_messages_invalid_total{reason="bad_type"} 1.0' in metrics


def test_a_type_or_app_id_that_is_not_text_is_no_500(make_client, tmp_path):
    # found by posting 3,000 random bodies (2026-12-05): {"type": {}} and an object aid were answered
    # 500 (a set lookup of an unhashable value), which SDKs retry forever; now the message is landed
    # for the ingest to quarantine like any other bad type, and an object aid is no app id
    client = make_client()
    batch = [{"type": {}, "messageId": "t1"}, {"type": ["track"], "messageId": "t2"}, {"type": "track", "event": "E"}]
    r = client.post("/v1/batch", json={"batch": batch}, headers={"Authorization": BASIC})
    assert r.status_code == 200
    r = client.post("/v1/track", json={"type": [None, 1], "messageId": "t3"}, headers={"Authorization": BASIC})
    assert r.status_code == 200
    good = {"e": "pv", "eid": "e1", "aid": "app-1", "url": "https://x.example/"}
    body = {"schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4", "data": [good]}
    odd = {"schema": body["schema"], "data": [{**good, "eid": "e2", "aid": {}}]}
    assert client.post("/com.snowplowanalytics.snowplow/tp2", json=odd).status_code < 500
    mixed = {"schema": body["schema"], "data": [good, {**good, "eid": "e3", "aid": {}}]}
    assert client.post("/com.snowplowanalytics.snowplow/tp2", json=mixed).status_code == 401  # whose is it?
    metrics = client.get("/metrics").text
    close(client)
    rows = landed(tmp_path / "landing")
    assert [r.get("messageId") for r in rows if r.get("messageId") in ("t1", "t2", "t3")] == ["t1", "t2", "t3"]
    assert 'trackplan_collector_messages_invalid_total{reason="bad_type"} 3.0' in metrics


def test_body_over_the_limit_is_streamed_to_rejected_not_413(make_client, tmp_path):
    client = make_client(max_body_bytes=10_000)
    body = json.dumps({"batch": [{"type": "track", "event": "A", "userId": "u", "p": "y" * 20_000}]}).encode()
    r = client.post("/v1/batch", content=body, headers={"Authorization": BASIC})
    assert r.status_code == 400  # Snowplow retries 413 forever; Segment SDKs drop either way
    [(saved, reason)] = _rejected(tmp_path / "landing")
    assert saved == body and "exceeds" in reason["reason"]


def test_gzip_bomb_is_bounded(make_client, tmp_path):
    client = make_client(max_body_bytes=100_000)
    bomb = gzip.compress(b"[" + b" " * 5_000_000 + b"]")  # 5 MB of JSON whitespace in ~5 KB
    r = client.post("/v1/batch", content=bomb, headers={"Authorization": BASIC, "Content-Encoding": "gzip"})
    assert r.status_code == 400
    [(saved, reason)] = _rejected(tmp_path / "landing")
    assert saved == bomb and "decompressed" in reason["reason"]


def test_missing_message_id_is_assigned_and_batch_fields_are_merged(make_client, tmp_path):
    client = make_client()
    body = {
        "batch": [
            {"type": "track", "event": "A", "userId": "u", "originalTimestamp": "2026-01-02T03:04:05.000Z"},
            {"type": "track", "event": "B", "userId": "u", "messageId": "", "context": {"ip": "192.0.2.9"},
             "integrations": {"X": False}, "sentAt": "2026-01-02T03:04:06.000Z"},
        ],
        "context": {"ip": "192.0.2.1", "library": {"name": "lib", "version": "1"}},
        "integrations": {"All": True},
        "sentAt": "2026-01-02T03:04:07.000Z",
        "writeKey": KEY,
    }  # fmt: skip
    assert client.post("/v1/batch", json=body).status_code == 200
    close(client)
    a, b = landed(tmp_path / "landing")
    for row in (a, b):
        assert uuid.UUID(row["messageId"]).version == 4
    assert a["messageId"] != b["messageId"]
    assert a["timestamp"] == a["originalTimestamp"] == "2026-01-02T03:04:05.000Z"
    assert a["sentAt"] == "2026-01-02T03:04:07.000Z" and b["sentAt"] == "2026-01-02T03:04:06.000Z"
    assert a["context"] == body["context"]
    assert b["context"] == {"ip": "192.0.2.9", "library": {"name": "lib", "version": "1"}}  # message wins
    assert a["integrations"] == {"All": True} and b["integrations"] == {"X": False, "All": True}


def test_rudder_style_gzip_with_form_content_type_parses_as_json(make_client, tmp_path):
    client = make_client()
    body = gzip.compress(json.dumps({"batch": [{"type": "track", "event": "A", "userId": "u"}]}).encode())
    headers = {"Authorization": BASIC, "Content-Type": "application/x-www-form-urlencoded", "Content-Encoding": "gzip"}
    assert client.post("/v1/batch", content=body, headers=headers).status_code == 200
    close(client)
    assert landed(tmp_path / "landing")[0]["event"] == "A"


def test_snowplow_bad_base64_event_is_landed_verbatim_not_the_batch(make_client, tmp_path):
    client = make_client()
    good = {"e": "se", "se_ca": "c", "se_ac": "a", "eid": "e1", "aid": "app-1", "dtm": "1795375437000"}
    bad = {"e": "ue", "ue_px": "%%%not-base64", "eid": "e2", "aid": "app-1"}
    body = {"schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4", "data": [good, bad]}
    assert client.post("/com.snowplowanalytics.snowplow/tp2", json=body).status_code == 200
    unknown_app = {"schema": body["schema"], "data": [{**good, "aid": "other"}]}
    assert client.post("/com.snowplowanalytics.snowplow/tp2", json=unknown_app).status_code == 401
    close(client)
    rows = landed(tmp_path / "landing")
    assert rows[0]["messageId"] == "e1" and rows[0]["event"] == "a" and rows[0]["properties"]["category"] == "c"
    assert rows[1] == bad


# -- backpressure, metrics, health ------------------------------------------------------------
def test_backpressure_is_503_with_retry_after_never_413(make_client, tmp_path):
    client = make_client(max_inflight_bytes=1_000, max_body_bytes=100_000)
    body = json.dumps({"batch": [{"type": "track", "event": "A", "userId": "u", "p": "z" * 3000}]})
    r = client.post("/v1/batch", content=body, headers={"Authorization": BASIC})
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    small = {"batch": [{"type": "track", "event": "A", "userId": "u"}]}
    assert client.post("/v1/batch", json=small, headers={"Authorization": BASIC}).status_code == 200
    assert "trackplan_collector_backpressure_rejections_total 1.0" in client.get("/metrics").text


def test_disk_failure_answers_503_and_leaves_no_unacknowledged_line(make_client, tmp_path):
    failing = {"on": False}

    def fsync(fd):
        if failing["on"]:
            raise OSError(5, "I/O error (injected)")

    client = make_client(fsync=fsync)
    send = lambda mid: client.post(
        "/v1/track", json={"event": "A", "userId": "u", "messageId": mid}, headers={"Authorization": BASIC}
    )
    assert send("ok-1").status_code == 200
    failing["on"] = True
    r = send("lost")
    assert r.status_code == 503 and "Retry-After" in r.headers  # the SDK will retry it
    failing["on"] = False
    assert send("ok-2").status_code == 200
    close(client)
    assert [r["messageId"] for r in landed(tmp_path / "landing")] == ["ok-1", "ok-2"]


def test_metrics_count_events_and_fake_validator_violations(make_client, tmp_path):
    seen = []

    def validator(messages):
        seen.extend(messages)
        return [
            (m.get("event") or m["type"], ["REQUIRED"] if "plan" not in m.get("properties", {}) else [])
            for m in messages
        ]

    client = make_client(validator=validator)
    batch = [
        {"type": "track", "event": "Order Completed", "userId": "u", "properties": {"plan": "x"}},
        {"type": "track", "event": "Order Completed", "userId": "u", "properties": {}},
        {"type": "identify", "userId": "u"},
    ]
    assert client.post("/v1/batch", json={"batch": batch}, headers={"Authorization": BASIC}).status_code == 200
    # the plan check runs off the request path (one worker thread): wait for it to count all three
    deadline = time.monotonic() + 30
    while True:
        text = client.get("/metrics").text
        checked = re.findall(r"^trackplan_collector_plan_checked_events_total\{[^}]*\} ([0-9.]+)$", text, re.MULTILINE)
        if sum(float(n) for n in checked) >= 3 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(seen) == 3
    assert 'trackplan_collector_plan_violations_total{event="Order Completed",rule="REQUIRED"} 1.0' in text
    assert 'trackplan_collector_plan_violations_total{event="identify",rule="REQUIRED"} 1.0' in text
    assert 'trackplan_collector_plan_checked_events_total{event="Order Completed"} 2.0' in text
    assert 'trackplan_collector_event_names_total{event="Order Completed"} 2.0' in text
    assert 'trackplan_collector_events_total{source="web"} 3.0' in text
    assert 'trackplan_collector_requests_total{route="/v1/batch",status="200"} 1.0' in text
    assert client.get("/health").json()["status"] == "ok"


def test_access_log_is_one_json_line_per_request(make_client, caplog):
    client = make_client()
    with caplog.at_level("INFO", logger="trackplan.collector.access"):
        client.post("/v1/track", json={"event": "A", "userId": "u"}, headers={"Authorization": BASIC})
        client.post("/v1/batch", content=b"{", headers={"Authorization": BASIC})
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "trackplan.collector.access"]
    assert [(x["path"], x["status"]) for x in lines] == [("/v1/track", 200), ("/v1/batch", 400)]
    assert lines[0]["source"] == "web" and lines[0]["events"] == 1 and "ms" in lines[0]
    assert "not JSON" in lines[1]["rejected"]


# -- against a real uvicorn server ------------------------------------------------------------
def test_slow_client_is_cut_off_without_blocking_others(tmp_path):
    import socket

    import httpx

    from pipelines.collector.local import running

    with running(create_app(tmp_path / "landing", write_keys={KEY: "web"}, body_timeout=2.0)) as url:
        host, port = url.removeprefix("http://").split(":")
        slow = socket.create_connection((host, int(port)))
        slow.sendall(
            b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: {BASIC}\r\nContent-Length: 1000\r\n\r\n".encode()
            + b'{"batch": ['  # ...and then nothing more (slowloris)
        )
        started = time.monotonic()
        ok = httpx.post(url + "/v1/track", json={"event": "A", "userId": "u"}, auth=(KEY, ""), timeout=5)
        # Served well before the slow body's 2 s timeout: the slow client blocks nobody.
        assert ok.status_code == 200 and time.monotonic() - started < 1.5
        slow.settimeout(5)
        reply = slow.recv(4096).decode()
        slow.close()
        assert reply.startswith("HTTP/1.1 503") and "retry-after: 1" in reply.lower()
    assert [r["event"] for r in landed(tmp_path / "landing")] == ["A"]


def test_slow_disk_turns_into_503_with_bounded_memory(tmp_path):
    import threading

    import httpx

    from pipelines.collector.local import running

    def slow_fsync(fd):
        time.sleep(0.2)  # a disk far slower than the senders

    app = create_app(tmp_path / "landing", write_keys={KEY: "web"}, fsync=slow_fsync, max_inflight_bytes=4_000)
    statuses, acked, lock = [], [], threading.Lock()

    def sender(w):
        with httpx.Client(auth=(KEY, ""), timeout=10) as client:
            for b in range(5):
                mid = f"{w}-{b}"
                batch = [{"type": "track", "event": "A", "userId": "u", "messageId": mid, "p": "x" * 900}]
                r = client.post(url + "/v1/batch", json={"batch": batch})
                with lock:
                    statuses.append((r.status_code, r.headers.get("Retry-After")))
                    if r.status_code == 200:
                        acked.append(mid)

    with running(app) as url:
        threads = [threading.Thread(target=sender, args=(w,)) for w in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert httpx.get(url + "/health").json()["inflight_bytes"] == 0  # every reservation released
    assert (503, "1") in statuses and any(s == 200 for s, _ in statuses)
    assert {s for s, _ in statuses} <= {200, 503}  # never 413, never a dropped connection
    assert sorted(r["messageId"] for r in landed(tmp_path / "landing")) == sorted(acked)


def test_edge_validation_uses_the_plan_engine(make_client):
    """`serve --validate`: the same Validator as `trackplan validate` counts violations per event and rule."""
    from tracking_plan.loader import DEFAULT_PLAN
    from tracking_plan.validate import collector_validator

    client = make_client(validator=collector_validator(str(DEFAULT_PLAN)))
    batch = [
        {"type": "track", "event": "Signed In", "userId": "u", "properties": {"method": "password"}},
        {"type": "track", "event": "Signed In", "userId": "u", "properties": {"method": "carrier pigeon"}},
        {"type": "track", "event": "Order Complete", "userId": "u", "properties": {}},
    ]
    assert client.post("/v1/batch", json={"batch": batch}, headers={"Authorization": BASIC}).status_code == 200
    deadline = time.time() + 10  # the check runs after the 200 was sent
    while time.time() < deadline:
        text = client.get("/metrics").text
        if 'rule="unknown_event"' in text:
            break
        time.sleep(0.05)
    assert 'trackplan_collector_plan_violations_total{event="Signed In",rule="enum"} 1.0' in text
    assert 'trackplan_collector_plan_violations_total{event="Order Complete",rule="unknown_event"} 1.0' in text
    assert 'trackplan_collector_plan_checked_events_total{event="Signed In"} 2.0' in text
