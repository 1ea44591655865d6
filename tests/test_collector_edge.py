"""Collector edge: CORS and browser paths, authentication before storage, the _rejected/ caps,
gzip members, values kept exactly, slow-header timeouts, concurrent edge validation."""

from __future__ import annotations

import base64
import gzip
import json
import socket
import threading
import time
from pathlib import Path

import httpx
import orjson
import pytest
from starlette.testclient import TestClient

from pipelines.collector import create_app, load_sources
from pipelines.collector.local import running

KEY = "wk_web"
BASIC = "Basic " + base64.b64encode(f"{KEY}:".encode()).decode()
ORIGIN = "http://127.0.0.1:5173"


def landed(landing: Path) -> list:
    return [orjson.loads(x) for f in sorted(landing.glob("date=*/*.jsonl")) for x in f.read_bytes().splitlines()]


def raw_lines(landing: Path) -> list[bytes]:
    return [x for f in sorted(landing.glob("date=*/*.jsonl")) for x in f.read_bytes().splitlines()]


@pytest.fixture
def make_client(tmp_path):
    clients = []

    def make(**kwargs):
        kwargs.setdefault("write_keys", {KEY: "web", "app-1": "sp"})
        client = TestClient(create_app(tmp_path / "landing", **kwargs))
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


def metric(client: TestClient, line_start: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# -- CORS and browser paths ------------------------------------------------------------------------
ROUTES = [
    "/v1/batch",
    "/v1/b",
    "/v1/import",
    "/v1/track",
    "/v1/t",
    "/v1/p",
    "/v1/i",
    "/v1/g",
    "/v1/a",
    "/v1/s",
    "/com.snowplowanalytics.snowplow/tp2",
    "/i",
    "/com.snowplowanalytics.snowplow/i",
]


@pytest.mark.parametrize("path", ROUTES)
def test_every_route_answers_the_preflight_with_the_origin_and_credentials(make_client, path):
    client = make_client()
    r = client.options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,sp-anonymous",
        },
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == ORIGIN  # echoed: "*" is refused with credentials
    assert r.headers["access-control-allow-credentials"] == "true"
    assert {h.strip() for h in r.headers["access-control-allow-headers"].split(",")} == {
        "authorization",
        "content-type",
        "sp-anonymous",
    }
    assert "POST" in r.headers["access-control-allow-methods"] and "GET" in r.headers["access-control-allow-methods"]


def test_analytics_js_short_paths_and_text_plain_bodies_land_typed(make_client, tmp_path):
    client = make_client()
    headers = {"Origin": ORIGIN, "Content-Type": "text/plain", "Authorization": BASIC}
    for short, full in [
        ("t", "track"),
        ("p", "page"),
        ("i", "identify"),
        ("g", "group"),
        ("a", "alias"),
        ("s", "screen"),
    ]:
        body = {"messageId": f"m-{short}", "anonymousId": "a1", "writeKey": KEY}
        if full == "track":
            body["event"] = "Clicked"
        r = client.post(f"/v1/{short}", content=json.dumps(body), headers=headers)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == ORIGIN
    batch = {
        "writeKey": KEY,
        "batch": [{"type": "track", "event": "B", "anonymousId": "a1", "messageId": "m-b"}],
        "sentAt": "2026-01-01T00:00:00.000Z",
    }
    assert client.post("/v1/b", content=json.dumps(batch), headers=headers).status_code == 200
    imported = {
        "batch": [{"type": "identify", "userId": "u1", "messageId": "m-imp", "timestamp": "2020-01-01T00:00:00Z"}]
    }
    assert client.post("/v1/import", json=imported, headers={"Authorization": BASIC}).status_code == 200
    client.__exit__(None, None, None)
    got = {r["messageId"]: r["type"] for r in landed(tmp_path / "landing")}
    assert got == {
        "m-t": "track",
        "m-p": "page",
        "m-i": "identify",
        "m-g": "group",
        "m-a": "alias",
        "m-s": "screen",
        "m-b": "track",
        "m-imp": "identify",
    }
    assert all("writeKey" not in r for r in landed(tmp_path / "landing"))


def test_allowed_origins_per_source_from_the_write_keys_file(make_client, tmp_path):
    keys_file = tmp_path / "keys.yaml"
    keys_file.write_text(
        "sources:\n  web:\n    write_keys: [wk_web]\n    allowed_origins: ['https://shop.example']\n"
        "  backend: [wk_backend]\n"
    )
    keys, origins = load_sources(keys_file)
    assert keys == {"wk_web": "web", "wk_backend": "backend"} and origins == {"web": ["https://shop.example"]}
    client = make_client(write_keys=keys, allowed_origins=origins)
    msg = {"type": "track", "event": "A", "userId": "u"}
    ok = client.post("/v1/t", json=msg, headers={"Authorization": BASIC, "Origin": "https://shop.example"})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == "https://shop.example"
    bad = client.post("/v1/t", json=msg, headers={"Authorization": BASIC, "Origin": "https://evil.example"})
    assert bad.status_code == 403  # web allows only its shop; nothing stored
    # backend lists no origins: any origin may send with its key (the permissive default)
    backend = "Basic " + base64.b64encode(b"wk_backend:").decode()
    assert (
        client.post("/v1/t", json=msg, headers={"Authorization": backend, "Origin": "https://evil.example"}).status_code
        == 200
    )
    only_web = make_client(write_keys={"wk_web": "web"}, allowed_origins={"web": ["https://shop.example"]})
    pre = only_web.options("/v1/t", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 403 and "access-control-allow-origin" not in pre.headers
    client.__exit__(None, None, None)
    assert len(landed(tmp_path / "landing")) == 2


def test_snowplow_anonymous_post_lands_without_the_sender_address(make_client, tmp_path):
    client = make_client()
    ev = {"e": "se", "se_ca": "shop", "se_ac": "add", "eid": "e-1", "aid": "app-1", "tv": "js-4.10.1", "p": "web"}
    r = client.post(
        "/com.snowplowanalytics.snowplow/tp2",
        json={"schema": "iglu:x", "data": [ev]},
        headers={"Origin": ORIGIN, "SP-Anonymous": "*", "Content-Type": "application/json; charset=UTF-8"},
    )
    assert r.status_code == 200 and r.headers["access-control-allow-credentials"] == "true"
    client.__exit__(None, None, None)
    [row] = landed(tmp_path / "landing")
    assert row["messageId"] == "e-1" and "ip" not in row["context"] and "anonymousId" not in row


# -- authenticate before storing -------------------------------------------------------------------
def test_nothing_is_stored_for_an_unauthenticated_sender(make_client, tmp_path):
    client = make_client(max_body_bytes=10_000)
    garbage = b'{"batch": [not json at all'
    bad_key = "Basic " + base64.b64encode(b"nope:").decode()
    assert client.post("/v1/batch", content=garbage, headers={"Authorization": bad_key}).status_code == 401
    assert client.post("/v1/batch", content=garbage).status_code == 401  # no key, unparseable: cannot authenticate
    assert client.post("/v1/batch", content=b"x" * 50_000).status_code == 401  # oversize, no header key
    gz = gzip.compress(b"[" + b" " * 5_000_000 + b"]")
    assert client.post("/v1/batch", content=gz, headers={"Content-Encoding": "gzip"}).status_code == 401
    assert metric(client, "trackplan_collector_unauthenticated_total") == 3
    client.__exit__(None, None, None)
    landing = tmp_path / "landing"
    assert not (landing / "_rejected").exists() or not list((landing / "_rejected").iterdir())
    assert not list(landing.glob("date=*/*"))
    # the same malformed body with a valid key is kept, with its reason
    client = make_client()
    assert client.post("/v1/batch", content=garbage, headers={"Authorization": BASIC}).status_code == 400
    assert [p.read_bytes() for p in (landing / "_rejected").glob("*.body")] == [garbage]


def test_unknown_header_key_is_refused_before_the_body_is_read(tmp_path):
    app = create_app(tmp_path / "landing", write_keys={KEY: "web"})
    with running(app) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as s:
            auth = base64.b64encode(b"nope:").decode()
            # announces 50 MB and sends none of it: the answer must come without waiting for the body
            s.sendall(
                f"POST /v1/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {auth}\r\n"
                f"Content-Length: 50000000\r\n\r\n".encode()
            )
            assert s.recv(100).startswith(b"HTTP/1.1 401")
    assert not (tmp_path / "landing" / "_rejected").exists()


def test_rejected_folder_is_capped_by_size_and_by_rate_with_metrics(make_client, tmp_path):
    client = make_client(rejected_max_bytes=3000, rejected_rate_bytes=1e9, rejected_burst_bytes=10**9)
    body = b"{" + b"x" * 999  # 1000 bytes, not JSON
    codes = [client.post("/v1/batch", content=body, headers={"Authorization": BASIC}).status_code for _ in range(5)]
    assert codes == [400] * 5  # same answer whether kept or not
    folder = tmp_path / "landing" / "_rejected"
    assert len(list(folder.glob("*.body"))) == 3
    assert metric(client, 'trackplan_collector_rejected_not_kept_total{cause="size_cap"}') == 2
    assert metric(client, "trackplan_collector_rejected_bytes_total") == 3000
    rated = make_client(rejected_max_bytes=10**9, rejected_rate_bytes=10, rejected_burst_bytes=2500)
    for _ in range(4):
        assert rated.post("/v1/batch", content=body, headers={"Authorization": BASIC}).status_code == 400
    assert metric(rated, 'trackplan_collector_rejected_not_kept_total{cause="rate_cap"}') == 2
    assert len(list(folder.glob("*.body"))) == 3 + 2


# -- gzip members ---------------------------------------------------------------------------------
def _batch(ids):
    return json.dumps({"batch": [{"type": "track", "event": "A", "userId": "u", "messageId": m} for m in ids]})


def test_every_gzip_member_is_read(make_client, tmp_path):
    client = make_client()
    # a batch split across two gzip members (`cat a.gz b.gz`): one valid gzip body
    text = _batch(["m1", "m2", "m3"]).encode()
    body = gzip.compress(text[:20]) + gzip.compress(text[20:])
    r = client.post("/v1/batch", content=body, headers={"Authorization": BASIC, "Content-Encoding": "gzip"})
    assert r.status_code == 200
    whole = gzip.compress(text)
    for bad, why in [
        (whole + b"junk", "after the compressed stream"),
        (whole[:-6], "truncated"),
        (whole + whole[:-6], "truncated (member 2)"),
    ]:
        r = client.post("/v1/batch", content=bad, headers={"Authorization": BASIC, "Content-Encoding": "gzip"})
        assert r.status_code == 400 and why in r.json()["error"]
    client.__exit__(None, None, None)
    assert sorted(r["messageId"] for r in landed(tmp_path / "landing")) == ["m1", "m2", "m3"]


# -- values kept exactly -------------------------------------------------------------------------
def test_a_message_that_cannot_be_kept_exactly_is_landed_as_its_original_text(make_client, tmp_path):
    client = make_client()
    kept = [
        (
            '{"type":"track","event":"Ok","userId":"u","messageId":"ok1","properties":{"x":0.30000000000000004,'
            '"big":18446744073709551615,"neg":-9223372036854775808,"e":1.5e2}}'
        )
    ]
    unkept = {
        "nan": '{"type":"track","event":"N","userId":"u","messageId":"nan","properties":{"x":NaN}}',
        "inf": '{"type":"track","event":"I","userId":"u","messageId":"inf","properties":{"x":-Infinity}}',
        "big": '{"type":"track","event":"B","userId":"u","messageId":"big","properties":{"x":1208925819614629174706176}}',
        "dup": '{"type":"track","event":"D","userId":"u","messageId":"dup","properties":{"x":1,"x":2}}',
        "long": '{"type":"track","event":"L","userId":"u","messageId":"long","properties":{"x":0.1000000000000000000001}}',
        "huge": '{"type":"track","event":"H","userId":"u","messageId":"huge","properties":{"x":1e400}}',
    }
    body = '{"sentAt":"2026-01-01T00:00:00.000Z","batch":[' + ",".join(kept + list(unkept.values())) + "]}"
    r = client.post("/v1/batch", content=body, headers={"Authorization": BASIC})
    assert r.status_code == 200  # one message must never fail the batch (Segment SDKs drop it on 4xx)
    assert metric(client, 'trackplan_collector_messages_invalid_total{reason="not_exact"}') == len(unkept)
    client.__exit__(None, None, None)
    rows = landed(tmp_path / "landing")
    [ok] = [r for r in rows if r.get("messageId") == "ok1"]
    assert ok["properties"] == {
        "x": 0.30000000000000004,
        "big": 18446744073709551615,
        "neg": -9223372036854775808,
        "e": 150.0,
    }
    lost = {r["original"]: r for r in rows if r["type"] == "trackplan_unkept"}
    assert set(lost) == set(unkept.values())  # byte for byte what was sent
    assert "NaN" in lost[unkept["nan"]]["reason"] and "64-bit" in lost[unkept["big"]]["reason"]
    assert "twice" in lost[unkept["dup"]]["reason"] and "exact double" in lost[unkept["long"]]["reason"]
    # a batch-level value copied into every message must be exact too, else the body is refused
    client = make_client()
    r = client.post(
        "/v1/batch", content='{"context":{"x":NaN},"batch":[' + kept[0] + "]}", headers={"Authorization": BASIC}
    )
    assert r.status_code == 400 and "exactly" in r.json()["error"]


def test_unkept_lines_are_quarantined_by_the_ingestion(make_client, tmp_path):
    from support.pipeline import ingest, query

    client = make_client()
    body = (
        '[{"type":"identify","userId":"u","messageId":"m1","timestamp":"2026-03-02T09:00:00.000Z"},'
        '{"type":"identify","userId":"u","messageId":"m2","traits":{"n":NaN}}]'
    )
    assert client.post("/v1/batch", content=body, headers={"Authorization": BASIC}).status_code == 200
    client.__exit__(None, None, None)
    [day] = [p.name[5:] for p in (tmp_path / "landing").glob("date=*")]
    res = ingest(tmp_path / "w.duckdb", tmp_path / "landing", day)
    assert (res.loaded, res.quarantined) == (1, 1)
    [(raw,)] = query(tmp_path / "w.duckdb", "select raw from ingest.quarantine")
    assert json.loads(raw)["original"] == '{"type":"identify","userId":"u","messageId":"m2","traits":{"n":NaN}}'


# -- timeouts ---------------------------------------------------------------------------------------
def test_half_open_slow_header_connections_are_closed(tmp_path):
    app = create_app(tmp_path / "landing", write_keys=None)
    with running(app, header_timeout=1.0) as url:
        host, port = url.removeprefix("http://").split(":")
        socks = []
        for _ in range(30):
            s = socket.create_connection((host, int(port)), timeout=10)
            s.sendall(b"POST /v1/track HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # and never the rest
            socks.append(s)
        idle = socket.create_connection((host, int(port)), timeout=10)  # connects, sends nothing
        socks.append(idle)
        # a real sender is served meanwhile
        assert httpx.post(url + "/v1/track", json={"event": "A", "userId": "u"}, timeout=5).status_code == 200
        started = time.monotonic()
        closed = 0
        for s in socks:
            try:
                closed += s.recv(1) == b""  # EOF: the server closed it
            except (ConnectionResetError, TimeoutError):
                closed += isinstance(s, socket.socket)
            s.close()
        assert closed == len(socks)
        assert time.monotonic() - started < 8  # closed after ~1 s, not held open


# -- edge validation under concurrency ------------------------------------------------------------
def test_edge_validator_is_safe_under_concurrent_calls():
    from tracking_plan.validate import collector_validator

    # a cursor per call: with one shared connection, even 3 concurrent calls collided
    check = collector_validator(str(Path(__file__).parent / "fixtures" / "plans" / "v1"))
    n = 16  # each call plans the SQL of its events' rules: 16 at once, on 2 cores, keeps the test short
    good = {
        "type": "track",
        "event": "Cart Viewed",
        "userId": "u",
        "messageId": "m",
        "timestamp": "2026-03-02T09:00:00.000Z",
        "receivedAt": "2026-03-02T09:00:00.000Z",
        "properties": {"cart_id": "c1"},
    }
    bad = {**good, "properties": {"cart_id": 42}}
    expected = {i: check([good] if i % 2 else [bad, good]) for i in range(2)}
    assert len(expected[0]) == 2 and len(expected[1]) == 1 and expected[0][0][1] != expected[1][0][1]
    results: dict[int, object] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(n)

    def call(i):
        barrier.wait()
        try:
            results[i] = check([good] if i % 2 else [bad, good])
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert errors == []
    assert all(results[i] == expected[i % 2] for i in range(n))


def test_validate_counts_every_event_of_160_concurrent_requests(tmp_path):
    from tracking_plan.validate import collector_validator

    check = collector_validator(str(Path(__file__).parent / "fixtures" / "plans" / "v1"))
    calls = []

    def counted(messages):
        calls.append(len(messages))
        return check(messages)

    app = create_app(tmp_path / "landing", write_keys=None, validator=counted)
    good = {
        "type": "track",
        "event": "Cart Viewed",
        "userId": "u",
        "timestamp": "2026-03-02T09:00:00.000Z",
        "properties": {"cart_id": "c1"},
    }
    bad = {**good, "properties": {"cart_id": 42}}
    codes: list[int] = []
    with running(app) as url:
        barrier = threading.Barrier(160)

        def send():
            with httpx.Client(timeout=60) as c:
                barrier.wait()
                codes.append(c.post(url + "/v1/batch", json={"batch": [good, bad]}).status_code)

        threads = [threading.Thread(target=send) for _ in range(160)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        deadline = time.monotonic() + 120
        text = ""
        while time.monotonic() < deadline:  # validation runs after the 200, on its own thread
            text = httpx.get(url + "/metrics").text
            if 'trackplan_collector_plan_checked_events_total{event="Cart Viewed"} 320.0' in text:
                break
            time.sleep(0.2)
    assert codes == [200] * 160 and sum(calls) == 320
    assert len(calls) < 160  # queued requests are validated together
    assert 'trackplan_collector_plan_checked_events_total{event="Cart Viewed"} 320.0' in text
    assert "trackplan_collector_plan_validation_errors_total{" not in text
    assert "trackplan_collector_plan_unchecked_events_total 0.0" in text
    # the oracle: the same engine called once, directly, on one good and one bad event
    [(_, good_rules), (_, bad_rules)] = check([good, bad])
    assert bad_rules and set(good_rules) < set(bad_rules)
    for rule in set(bad_rules) - set(good_rules):
        assert f'trackplan_collector_plan_violations_total{{event="Cart Viewed",rule="{rule}"}} 160.0' in text
