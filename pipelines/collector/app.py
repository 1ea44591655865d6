"""The collector's ASGI app: Segment HTTP Tracking API + Snowplow tp2, durable and bounded."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
import time
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from . import segment, snowplow
from .landing import LandingWriter
from .metrics import CollectorMetrics

access_log = logging.getLogger("trackplan.collector.access")
log = logging.getLogger("trackplan.collector")

Validator = Callable[[list[dict]], list[tuple[str, list[str]]]]
# Test-only fault injection: (route) -> (status, "before" | "after" the write) or None.
FaultInjector = Callable[[str], "tuple[int, str] | None"]

SUCCESS = b'{"success":true}'
# 1x1 transparent GIF: what Snowplow's GET /i pixel endpoint answers.
PIXEL = base64.b64decode(b"R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
SEGMENT_ENDPOINTS = ("track", "identify", "page", "screen", "group", "alias")
SNOWPLOW_POST = "/com.snowplowanalytics.snowplow/tp2"


@dataclass
class Settings:
    """Everything the app can be configured with; see :func:`create_app`."""

    landing: Path
    write_keys: dict[str, str] | None = None
    validator: Validator | None = None
    max_message_bytes: int = 32768  # Segment's per-message limit
    # 8x Segment's 500 KB batch limit: room for other SDKs' bigger batches, still bounded.
    max_body_bytes: int = 4 << 20
    # Memory bound across all requests in flight; past it new requests get 503 + Retry-After.
    max_inflight_bytes: int = 32 << 20
    body_timeout: float = 30.0  # a client still sending after this long is cut off (slowloris)
    retry_after: int = 1
    roll_bytes: int = 64 << 20
    roll_seconds: float = 60.0
    fault_injector: FaultInjector | None = None
    fsync: Callable[[int], None] = os.fsync
    rejected_cap_bytes: int = 64 << 20  # at most this much of an oversize body is kept in _rejected/


class _Reject(Exception):
    """Body cannot be used; answered 400 after the body is saved to _rejected/."""

    def __init__(self, code: str, reason: str, body: bytes, saved: bool = False) -> None:
        super().__init__(reason)
        self.code, self.reason, self.body, self.saved = code, reason, body, saved


class _Busy(Exception):
    """In-flight budget exhausted or body too slow: answered 503 with Retry-After."""


class Collector:
    """State shared by the routes: settings, the landing writer, metrics, the in-flight budget."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.writer = LandingWriter(settings.landing, settings.roll_bytes, settings.roll_seconds, settings.fsync)
        self.metrics = CollectorMetrics()
        self.inflight = 0

    # -- budget --------------------------------------------------------------------------------
    def _reserve(self, n: int) -> bool:
        if self.inflight + n > self.s.max_inflight_bytes:
            return False
        self.inflight += n
        self.metrics.inflight.set(self.inflight)
        return True

    def _release(self, n: int) -> None:
        self.inflight -= n
        self.metrics.inflight.set(self.inflight)

    # -- body ----------------------------------------------------------------------------------
    async def read_body(self, request: Request, held: list[int]) -> bytes:
        """Read the body within the byte budget and time limit; ``held[0]`` tracks what is reserved."""
        limit = self.s.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit():
            n = int(declared)
            if n > limit:
                await self._spool_oversize(request, b"", f"body of {n} bytes exceeds {limit}")
            if not self._reserve(n):
                raise _Busy("in-flight budget")
            held[0] += n
        chunks: list[bytes] = []
        total = 0
        try:
            async with asyncio.timeout(self.s.body_timeout):
                async for chunk in request.stream():
                    total += len(chunk)
                    if total > limit:
                        await self._spool_oversize(request, b"".join(chunks) + chunk, f"body exceeds {limit} bytes")
                    if total > held[0]:
                        if not self._reserve(total - held[0]):
                            raise _Busy("in-flight budget")
                        held[0] = total
                    chunks.append(chunk)
        except TimeoutError:
            raise _Busy("body timeout") from None
        self.metrics.request_bytes.inc(total)
        return b"".join(chunks)

    async def _spool_oversize(self, request: Request, head: bytes, reason: str) -> None:
        # Oversize bodies are streamed to disk (never held in memory) so nothing is silently lost.
        path, fh = self._rejected_file()
        kept = len(head)
        with fh:
            fh.write(head)
            try:
                async with asyncio.timeout(self.s.body_timeout):
                    async for chunk in request.stream():
                        if kept < self.s.rejected_cap_bytes:
                            fh.write(chunk[: self.s.rejected_cap_bytes - kept])
                            kept += len(chunk)
            except (TimeoutError, ClientDisconnect):
                reason += " (client stopped sending)"
            fh.flush()
            os.fsync(fh.fileno())
        self._write_reason(path, reason, request, kept)
        raise _Reject("oversize_body", reason, b"", saved=True)

    def decode(self, request: Request, raw: bytes) -> bytes:
        """Undo Content-Encoding (gzip/deflate; also gzip sent without the header), bounded."""
        encoding = request.headers.get("content-encoding", "").lower()
        if "gzip" in encoding or "deflate" in encoding or raw[:2] == b"\x1f\x8b":
            d = zlib.decompressobj(47)  # 32 + 15: accept a gzip or zlib header
            try:
                out = d.decompress(raw, self.s.max_body_bytes + 1)
            except zlib.error as exc:
                raise _Reject("bad_compression", f"bad compressed body: {exc}", raw) from None
            if len(out) > self.s.max_body_bytes:
                raise _Reject("oversize_body", f"decompressed body exceeds {self.s.max_body_bytes} bytes", raw)
            return out
        return raw

    def parse(self, data: bytes, raw: bytes) -> Any:
        try:
            return segment.loads(data)
        except UnicodeDecodeError as exc:
            raise _Reject("not_utf8", f"body is not UTF-8: {exc}", raw) from None
        except ValueError as exc:
            raise _Reject("not_json", f"body is not JSON: {exc}", raw) from None

    # -- _rejected/ ------------------------------------------------------------------------------
    def _rejected_file(self):
        folder = self.s.landing / "_rejected"
        folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = folder / f"{stamp}-{uuid.uuid4().hex}.body"
        return path, open(path, "xb")

    def _write_reason(self, path: Path, reason: str, request: Request, size: int) -> None:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("authorization", "cookie")}
        info = {
            "reason": reason,
            "path": request.url.path,
            "received_at": _now_iso(),
            "bytes_kept": size,
            "headers": headers,
            "client": request.client.host if request.client else None,
        }
        reason_path = path.with_suffix(".reason.json")
        reason_path.write_bytes(orjson.dumps(info, option=orjson.OPT_INDENT_2))
        with open(reason_path, "rb") as fh:
            os.fsync(fh.fileno())

    def save_rejected(self, request: Request, reject: _Reject) -> None:
        """Keep an unparseable body and why, fsynced, before answering 400."""
        path, fh = self._rejected_file()
        with fh:
            fh.write(reject.body)
            fh.flush()
            os.fsync(fh.fileno())
        self._write_reason(path, reject.reason, request, len(reject.body))

    # -- auth ----------------------------------------------------------------------------------
    def source_for(self, key: str | None) -> str | None:
        """Source name of a write key; None when keys are configured and this one is unknown."""
        if self.s.write_keys is None:
            return "default"
        if key is None:
            return None
        return self.s.write_keys.get(key)


def basic_username(request: Request) -> str | None:
    """The username of HTTP Basic auth (Segment sends ``writeKey:`` there)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.partition(":")[0] or None


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _busy(c: Collector) -> Response:
    return Response(
        b'{"success":false,"error":"busy"}',
        status_code=503,
        headers={"Retry-After": str(c.s.retry_after)},
        media_type="application/json",
    )


def _error(status: int, message: str) -> Response:
    return Response(orjson.dumps({"success": False, "error": message}), status, media_type="application/json")


def _injected(c: Collector, status: int) -> Response:
    response = _error(status, "injected fault")
    if status == 503:  # as a real 503 from this collector would
        response.headers["Retry-After"] = str(c.s.retry_after)
    return response


def _log_fields(request: Request) -> dict:
    return request.scope.setdefault("trackplan.log", {})


async def _ingest(
    c: Collector,
    request: Request,
    route: str,
    parse_body: Callable[[Request, Any], tuple[str | None, segment.Prepared]],
    ok: Callable[[], Response],
    body_from_query: bool = False,
) -> Response:
    """Shared request path: auth pre-check, bounded read, decode, parse, write+fsync, answer."""
    held = [0]
    try:
        key = basic_username(request)
        if key is not None and c.s.write_keys is not None and key not in c.s.write_keys:
            return _error(401, "unknown write key")
        received_at = _now_iso()
        if body_from_query:
            body: Any = dict(request.query_params)
        else:
            raw = await c.read_body(request, held)
            data = c.decode(request, raw)
            if data is not raw and len(data) > held[0]:
                extra = len(data)
                if not c._reserve(extra):
                    raise _Busy("in-flight budget")
                held[0] += extra
            body = c.parse(data, raw)
        body_key, prepared = parse_body(request, body, received_at)
        source = c.source_for(key or body_key)
        if source is None:
            return _error(401, "unknown or missing write key")
        fields = _log_fields(request)
        fields.update(source=source, events=len(prepared.lines))
        if c.s.fault_injector is not None:
            fault = c.s.fault_injector(route)
            if fault is not None and fault[1] == "before":
                return _injected(c, fault[0])
        else:
            fault = None
        if prepared.lines:
            try:
                await c.writer.write(source, received_at[:10], prepared.data)
            except OSError as exc:
                log.error("landing write failed: %s", exc)
                return _busy(c)  # nothing acknowledged: the SDK retries
        _count(c, source, prepared)
        if fault is not None:
            return _injected(c, fault[0])
        response = ok()
        if c.s.validator is not None and prepared.messages:
            response.background = BackgroundTask(_validate, c, prepared.messages)
        return response
    except _Busy as exc:
        c.metrics.backpressure.inc()
        _log_fields(request)["busy"] = str(exc)
        return _busy(c)
    except _Reject as exc:
        if not exc.saved:
            await asyncio.to_thread(c.save_rejected, request, exc)
        c.metrics.rejected_bodies.labels(exc.code).inc()
        _log_fields(request)["rejected"] = exc.reason
        return _error(400, exc.reason)
    except ClientDisconnect:
        return _error(400, "client disconnected")
    finally:
        if held[0]:
            c._release(held[0])


def _count(c: Collector, source: str, prepared: segment.Prepared) -> None:
    m = c.metrics
    m.events.labels(source).inc(len(prepared.lines))
    for reason, n in prepared.invalid.items():
        m.invalid.labels(reason).inc(n)
    names: dict[str, int] = {}
    for msg in prepared.messages:
        label = m.name_label(segment.event_label(msg))
        names[label] = names.get(label, 0) + 1
    for label, n in names.items():
        m.event_names.labels(label).inc(n)


def _validate(c: Collector, messages: list[dict]) -> None:
    """Count plan violations per event (runs after the response: never delays the 200)."""
    try:
        results = c.s.validator(messages)
    except Exception:  # a validator bug must not take the collector down
        log.exception("edge validation failed")
        return
    for name, rules in results:
        label = c.metrics.name_label(name)
        c.metrics.checked.labels(label).inc()
        for rule in rules:
            c.metrics.violations.labels(label, rule).inc()


# -- body parsers per protocol -------------------------------------------------------------------
def _segment_parser(endpoint_type: str | None, c: Collector):
    def parse(request: Request, body: Any, received_at: str):
        try:
            items, envelope = segment.messages_of(body, endpoint_type)
        except TypeError as exc:
            raise _Reject("not_an_object", str(exc), segment.dumps(body)) from None
        key = body.get("writeKey") if isinstance(body, dict) else None
        prepared = segment.prepare(
            items,
            envelope,
            received_at=received_at,
            endpoint_type=endpoint_type,
            max_message_bytes=c.s.max_message_bytes,
        )
        return (key if isinstance(key, str) else None), prepared

    return parse


def _snowplow_parser(c: Collector):
    def parse(request: Request, body: Any, received_at: str):
        try:
            events = snowplow.events_from_body(body)
        except snowplow.SnowplowError as exc:
            raise _Reject("not_payload_data", str(exc), segment.dumps(body)) from None
        mapped: list[Any] = []
        bad = segment.Prepared()
        for ev in events:
            try:
                mapped.append(snowplow.to_segment(ev) if isinstance(ev, dict) else ev)
            except snowplow.SnowplowError:
                bad.add_invalid("snowplow_decode", ev)
        prepared = segment.prepare(mapped, {}, received_at=received_at, max_message_bytes=c.s.max_message_bytes)
        prepared.lines += bad.lines
        for reason, n in bad.invalid.items():
            prepared.invalid[reason] = prepared.invalid.get(reason, 0) + n
        # Snowplow trackers send no secret: the app id (aid) stands in for the write key.
        aids = {ev.get("aid") for ev in events if isinstance(ev, dict)}
        key = aids.pop() if len(aids) == 1 else None
        return (key if isinstance(key, str) else None), prepared

    return parse


def create_app(
    landing: str | os.PathLike = "landing",
    write_keys: dict[str, str] | None = None,
    validator: Validator | None = None,
    max_message_bytes: int = 32768,
    roll_bytes: int = 64 << 20,
    roll_seconds: float = 60.0,
    **options: Any,
) -> Starlette:
    """Build the collector ASGI app (see the package docstring for routes and options).

    ``options`` are further :class:`Settings` fields (``max_body_bytes``, ``max_inflight_bytes``,
    ``body_timeout``, ``retry_after``, and for tests ``fault_injector`` and ``fsync``).
    """
    settings = Settings(
        landing=Path(landing),
        write_keys=write_keys,
        validator=validator,
        max_message_bytes=max_message_bytes,
        roll_bytes=roll_bytes,
        roll_seconds=roll_seconds,
        **options,
    )
    c = Collector(settings)

    def segment_route(path: str, endpoint_type: str | None) -> Route:
        parser = _segment_parser(endpoint_type, c)

        async def endpoint(request: Request) -> Response:
            return await _ingest(c, request, path, parser, _ok)

        return Route(path, endpoint, methods=["POST"])

    sp_parser = _snowplow_parser(c)

    async def tp2(request: Request) -> Response:
        return await _ingest(c, request, SNOWPLOW_POST, sp_parser, _ok)

    async def pixel(request: Request) -> Response:
        def parse(req, body, received_at):
            return sp_parser(req, {"data": [body]}, received_at)

        return await _ingest(c, request, "/i", parse, lambda: Response(PIXEL, media_type="image/gif"),
                             body_from_query=True)  # fmt: skip

    async def health(request: Request) -> Response:
        alive = c.writer.alive
        body = {"status": "ok" if alive else "writer down", "inflight_bytes": c.inflight}
        return Response(orjson.dumps(body), 200 if alive else 503, media_type="application/json")

    async def metrics(request: Request) -> Response:
        return Response(c.metrics.render(), headers={"Content-Type": c.metrics.content_type})

    routes = [segment_route("/v1/batch", None), segment_route("/v1/b", None)]
    routes += [segment_route(f"/v1/{t}", t) for t in SEGMENT_ENDPOINTS]
    routes += [
        Route(SNOWPLOW_POST, tp2, methods=["POST"]),
        Route("/i", pixel, methods=["GET"]),
        Route("/com.snowplowanalytics.snowplow/i", pixel, methods=["GET"]),
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        recovered = await asyncio.to_thread(c.writer.start)
        if recovered:
            log.warning("recovered %d file(s) left by a crashed collector", len(recovered))
        try:
            yield
        finally:
            await asyncio.to_thread(c.writer.close)  # flush and give open files their final names

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.collector = c
    return AccessLog(app, c)


def _ok() -> Response:
    return Response(SUCCESS, media_type="application/json")


class AccessLog:
    """ASGI middleware: one JSON line per request on the ``trackplan.collector.access`` logger."""

    def __init__(self, app: Starlette, collector: Collector) -> None:
        self.app = app
        self.collector = collector
        self.state = app.state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = [0]
        fields = scope.setdefault("trackplan.log", {})

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            path = scope["path"]
            route = path if len(path) <= 64 else path[:64]
            m = self.collector.metrics
            known = path in _KNOWN_PATHS
            m.requests.labels(route if known else "other", str(status[0])).inc()
            if known:
                m.latency.labels(route).observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                client = scope.get("client")
                record = {
                    "ts": _now_iso(),
                    "method": scope["method"],
                    "path": route,
                    "status": status[0],
                    "ms": round(elapsed * 1000, 2),
                    "client": client[0] if client else None,
                    **fields,
                }
                access_log.info(orjson.dumps(record).decode())


_KNOWN_PATHS = frozenset(
    ["/v1/batch", "/v1/b", SNOWPLOW_POST, "/i", "/com.snowplowanalytics.snowplow/i", "/health", "/metrics"]
    + [f"/v1/{t}" for t in SEGMENT_ENDPOINTS]
)
