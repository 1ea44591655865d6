"""The collector's ASGI app: Segment HTTP Tracking API + Snowplow tp2, durable and bounded."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import os
import threading
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
# analytics.js (analytics-next) posts each call to `https://<apiHost>/<first letter of the type>`
# with apiHost "api.segment.io/v1", and its batching strategy posts to `<apiHost>/b`.
SEGMENT_SHORT = {t[0]: t for t in SEGMENT_ENDPOINTS}
SNOWPLOW_POST = "/com.snowplowanalytics.snowplow/tp2"
SNOWPLOW_GET = ("/i", "/com.snowplowanalytics.snowplow/i")
# /v1/b: analytics.js batching; /v1/import: Segment's import endpoint (same body as batch).
SEGMENT_BATCH_PATHS = ("/v1/batch", "/v1/b", "/v1/import")


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
    rejected_cap_bytes: int = 16 << 20  # at most this much of one body is kept in _rejected/
    # _rejected/ is bounded in size (all bodies kept) and in rate (a token bucket of bytes):
    # what does not fit is answered the same 400 but not kept, and counted (rejected_not_kept).
    rejected_max_bytes: int = 256 << 20
    rejected_rate_bytes: float = 2 << 20  # per second, sustained
    rejected_burst_bytes: int = 32 << 20
    # Browser origins allowed per source (CORS). None, or a source absent from the mapping,
    # allows every origin (the demo default); ["*"] too.
    allowed_origins: dict[str, list[str]] | None = None


class _Reject(Exception):
    """Body cannot be used; answered 400 after the body is saved to _rejected/ (when authenticated)."""

    def __init__(self, code: str, reason: str, body: bytes, saved: bool = False) -> None:
        super().__init__(reason)
        self.code, self.reason, self.body, self.saved = code, reason, body, saved


class _Unauthenticated(Exception):
    """No valid write key could be established: answered 401, nothing stored anywhere."""


class RejectedBudget:
    """Bounds what ``_rejected/`` may hold: total bytes on disk and a token bucket of bytes/s."""

    def __init__(self, folder: Path, max_bytes: int, rate: float, burst: int, metrics: CollectorMetrics) -> None:
        self.folder, self.max_bytes, self.rate, self.burst, self.m = folder, max_bytes, rate, burst, metrics
        self.used: int | None = None  # scanned at first use (bodies kept by earlier runs count)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self, n: int) -> tuple[int, str | None]:
        """How many of ``n`` bytes may be kept now, and the cap that cut it (None: all of them)."""
        if self.used is None:
            self.used = (
                sum(f.stat().st_size for f in self.folder.glob("*") if f.is_file()) if self.folder.exists() else 0
            )
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        room_size, room_rate = self.max_bytes - self.used, int(self.tokens)
        allowed = max(0, min(n, room_size, room_rate))
        self.used += allowed
        self.tokens -= allowed
        self.m.rejected_dir_bytes.set(self.used)
        cause = None if allowed >= n else ("size_cap" if room_size <= room_rate else "rate_cap")
        return allowed, cause


class _Busy(Exception):
    """In-flight budget exhausted or body too slow: answered 503 with Retry-After."""


class Collector:
    """State shared by the routes: settings, the landing writer, metrics, the in-flight budget."""

    def __init__(self, settings: Settings) -> None:
        self.s = settings
        self.writer = LandingWriter(settings.landing, settings.roll_bytes, settings.roll_seconds, settings.fsync)
        self.metrics = CollectorMetrics()
        self.inflight = 0
        self.edge: EdgeValidation | None = None  # started with the app (lifespan)
        self.rejected = RejectedBudget(settings.landing / "_rejected", settings.rejected_max_bytes,
                                       settings.rejected_rate_bytes, settings.rejected_burst_bytes, self.metrics)  # fmt: skip

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
    async def read_body(self, request: Request, held: list[int], authenticated: bool) -> bytes:
        """Read the body within the byte budget and time limit; ``held[0]`` tracks what is reserved.
        An oversize body is streamed to ``_rejected/`` only for an authenticated sender."""
        limit = self.s.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit():
            n = int(declared)
            if n > limit:
                if not authenticated:
                    raise _Unauthenticated(
                        f"body of {n} bytes exceeds {limit} and no write key in the Authorization header"
                    )
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
                        if not authenticated:
                            raise _Unauthenticated(
                                f"body exceeds {limit} bytes and no write key in the Authorization header"
                            )
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
        # Oversize bodies are streamed to disk (never held in memory), up to the caps of _rejected/.
        cap = self.s.rejected_cap_bytes
        allowed, cause = self.rejected.take(cap)
        if allowed == 0:
            self.metrics.rejected_not_kept.labels(cause or "size_cap").inc()
            raise _Reject("oversize_body", reason + f" (not kept: _rejected/ {cause})", b"", saved=True)
        path, fh = self._rejected_file()
        kept = min(len(head), allowed)
        seen = len(head)
        with fh:
            fh.write(head[:kept])
            try:
                async with asyncio.timeout(self.s.body_timeout):
                    async for chunk in request.stream():
                        seen += len(chunk)
                        if kept < allowed:
                            piece = chunk[: allowed - kept]
                            fh.write(piece)
                            kept += len(piece)
            except (TimeoutError, ClientDisconnect):
                reason += " (client stopped sending)"
            fh.flush()
            os.fsync(fh.fileno())
        if kept < seen:
            reason += f" (kept the first {kept} of {seen} bytes)"
        self.rejected.used = (self.rejected.used or 0) - (allowed - kept)  # return what was not used
        self.metrics.rejected_bytes.inc(kept)
        self._write_reason(path, reason, request, kept)
        raise _Reject("oversize_body", reason, b"", saved=True)

    def decode(self, request: Request, raw: bytes) -> bytes:
        """Undo Content-Encoding (gzip/deflate; also gzip sent without the header), bounded.

        Every member of a multi-member gzip body is read (``cat a.gz b.gz`` is one valid gzip
        stream); a truncated stream or bytes after the last member refuse the whole body.
        """
        encoding = request.headers.get("content-encoding", "").lower()
        if not ("gzip" in encoding or "deflate" in encoding or raw[:2] == b"\x1f\x8b"):
            return raw
        limit = self.s.max_body_bytes
        parts: list[bytes] = []
        total = 0
        rest = raw
        member = 0
        while True:
            member += 1
            d = zlib.decompressobj(47)  # 32 + 15: accept a gzip or zlib header
            try:
                out = d.decompress(rest, limit + 1 - total)
            except zlib.error as exc:
                raise _Reject("bad_compression", f"bad compressed body (member {member}): {exc}", raw) from None
            total += len(out)
            parts.append(out)
            if total > limit or d.unconsumed_tail:
                raise _Reject("oversize_body", f"decompressed body exceeds {limit} bytes", raw)
            if not d.eof:
                raise _Reject("bad_compression", f"compressed body is truncated (member {member})", raw)
            rest = d.unused_data
            if not rest:
                return b"".join(parts)
            if rest[:2] != b"\x1f\x8b":
                raise _Reject("bad_compression", f"{len(rest)} bytes after the compressed stream", raw)

    def parse(self, data: bytes, raw: bytes) -> tuple[Any, bool]:
        """(body, exact): see :func:`segment.loads_checked`."""
        try:
            return segment.loads_checked(data)
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
        anonymous = "sp-anonymous" in request.headers  # Snowplow server anonymisation: no IP kept
        info = {
            "reason": reason,
            "path": request.url.path,
            "received_at": _now_iso(),
            "bytes_kept": size,
            "headers": headers,
            "client": None if anonymous else (request.client.host if request.client else None),
        }
        reason_path = path.with_suffix(".reason.json")
        reason_path.write_bytes(orjson.dumps(info, option=orjson.OPT_INDENT_2))
        with open(reason_path, "rb") as fh:
            os.fsync(fh.fileno())

    def reserve_rejected(self, reject: _Reject) -> bool:
        """Take room in _rejected/ for ``reject.body`` (runs on the event loop); False: not kept."""
        n = min(len(reject.body), self.s.rejected_cap_bytes)
        allowed, cause = self.rejected.take(n)
        if allowed < n:
            self.rejected.used = (self.rejected.used or 0) - allowed
            self.metrics.rejected_not_kept.labels(cause or "size_cap").inc()
            reject.reason += f" (not kept: _rejected/ {cause})"
            return False
        return True

    def save_rejected(self, request: Request, reject: _Reject) -> None:
        """Keep an unparseable body and why, fsynced, before answering 400."""
        body = reject.body[: self.s.rejected_cap_bytes]
        path, fh = self._rejected_file()
        with fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        reason = (
            reject.reason
            if len(body) == len(reject.body)
            else reject.reason + f" (kept the first {len(body)} of {len(reject.body)} bytes)"
        )
        self.metrics.rejected_bytes.inc(len(body))
        self._write_reason(path, reason, request, len(body))

    # -- auth ----------------------------------------------------------------------------------
    def source_for(self, key: str | None) -> str | None:
        """Source name of a write key; None when keys are configured and this one is unknown."""
        if self.s.write_keys is None:
            return "default"
        if key is None:
            return None
        return self.s.write_keys.get(key)

    def origin_allowed(self, source: str | None, origin: str) -> bool:
        """May a page from ``origin`` send for ``source`` (None: for any configured source)?"""
        table = self.s.allowed_origins
        if table is None:
            return True
        if source is None:  # a preflight carries no key: allowed if some source allows it
            sources = set(self.s.write_keys.values()) if self.s.write_keys is not None else {"default"}
            return any(self.origin_allowed(src, origin) for src in sources)
        listed = table.get(source)
        return listed is None or "*" in listed or origin in listed


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
    parse_body: Callable[..., tuple[str | None, segment.Prepared]],
    ok: Callable[[], Response],
    body_from_query: bool = False,
) -> Response:
    """Shared request path: authenticate, bounded read, decode, parse, write+fsync, answer.

    Nothing is stored (landing zone or ``_rejected/``) before the sender is authenticated: a key
    in the Authorization header is checked before the body is read; a key that only the body
    carries (analytics.js classic, Snowplow's app id) is checked after parsing, and a body that
    cannot be parsed or is oversize without a header key is answered 401 and not kept.
    """
    held = [0]
    origin = request.headers.get("origin")
    header_source: str | None = None
    try:
        key = basic_username(request)
        if c.s.write_keys is None:
            header_source = "default"
        elif key is not None:
            header_source = c.s.write_keys.get(key)
            if header_source is None:
                return _error(401, "unknown write key")
        if header_source is not None and origin and not c.origin_allowed(header_source, origin):
            return _error(403, f"origin {origin} is not allowed for this source")
        received_at = _now_iso()
        exact = True
        data = b""
        if body_from_query:
            body: Any = dict(request.query_params)
        else:
            raw = await c.read_body(request, held, authenticated=header_source is not None)
            data = c.decode(request, raw)
            if data is not raw and len(data) > held[0]:
                extra = len(data)
                if not c._reserve(extra):
                    raise _Busy("in-flight budget")
                held[0] += extra
            body, exact = c.parse(data, raw)
        body_key, prepared = parse_body(request, body, received_at, None if exact else data)
        source = header_source or c.source_for(key or body_key)
        if source is None:
            return _error(401, "unknown or missing write key")
        if origin and not c.origin_allowed(source, origin):
            return _error(403, f"origin {origin} is not allowed for this source")
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
        if c.edge is not None and prepared.messages:
            c.edge.submit(prepared.messages)
        return ok()
    except _Busy as exc:
        c.metrics.backpressure.inc()
        _log_fields(request)["busy"] = str(exc)
        return _busy(c)
    except _Unauthenticated as exc:
        c.metrics.unauthenticated.inc()
        _log_fields(request)["rejected"] = str(exc)
        return _error(401, str(exc))
    except _Reject as exc:
        if not exc.saved and header_source is None:
            # Cannot tell who sent it: nothing is kept (an anonymous sender cannot fill the disk).
            c.metrics.unauthenticated.inc()
            _log_fields(request)["rejected"] = exc.reason + " (unauthenticated: not kept)"
            return _error(401, f"{exc.reason}; and no valid write key in the Authorization header")
        if not exc.saved and c.reserve_rejected(exc):
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
    by_name: dict[str, int] = {}  # event names first, then labels once per name (in first-seen order)
    event_label = segment.event_label
    for msg in prepared.messages:
        name = event_label(msg)
        by_name[name] = by_name.get(name, 0) + 1
    names: dict[str, int] = {}
    for name, n in by_name.items():
        label = m.name_label(name)
        names[label] = names.get(label, 0) + n
    for label, n in names.items():
        m.event_names.labels(label).inc(n)


class EdgeValidation:
    """``--validate``: plan violations counted off the request path, by one worker thread.

    Requests hand over their messages and never wait; the worker takes everything queued and
    validates it in one call (one query plan for many requests, instead of one per request and
    threads competing for two cores). Past ``max_pending`` messages the newest are not checked,
    and counted as skipped, so a slow validator can never grow memory or delay a 200.
    """

    def __init__(self, validator: Validator, metrics: CollectorMetrics, max_pending: int = 50_000,
                 max_per_call: int = 10_000) -> None:  # fmt: skip
        self.validator, self.m = validator, metrics
        self.max_pending, self.max_per_call = max_pending, max_per_call
        self.pending: list[dict] = []
        self.cv = threading.Condition()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, name="edge-validation", daemon=True)
        self.thread.start()

    def submit(self, messages: list[dict]) -> None:
        with self.cv:
            if len(self.pending) + len(messages) > self.max_pending:
                self.m.validation_skipped.inc(len(messages))
                return
            self.pending.extend(messages)
            self.cv.notify()

    def close(self, timeout: float = 30) -> None:
        with self.cv:
            self.stopping = True
            self.cv.notify()
        self.thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self.cv:
                while not self.pending and not self.stopping:
                    self.cv.wait()
                if not self.pending:
                    return
                work, self.pending = self.pending[: self.max_per_call], self.pending[self.max_per_call :]
            self._check(work)

    def _check(self, messages: list[dict]) -> None:
        try:
            results = self.validator(messages)
        except Exception as exc:  # noqa: BLE001 - a validator bug must not take the collector down; it is counted
            self.m.validation_errors.labels(type(exc).__name__).inc()
            self.m.validation_skipped.inc(len(messages))
            log.error("edge validation failed: %s: %s", type(exc).__name__, exc)
            return
        for name, rules in results:
            label = self.m.name_label(name)
            self.m.checked.labels(label).inc()
            for rule in rules:
                self.m.violations.labels(label, rule).inc()


# -- body parsers per protocol -------------------------------------------------------------------
def _segment_parser(endpoint_type: str | None, c: Collector):
    def parse(request: Request, body: Any, received_at: str, inexact: bytes | None = None):
        try:
            items, envelope = segment.messages_of(body, endpoint_type)
        except TypeError as exc:
            raise _Reject("not_an_object", str(exc), inexact or segment.dumps(body)) from None
        if inexact is not None:  # some value would change if re-written: find which messages
            try:
                items = segment.exact_items(inexact, items)
            except (segment.NotExact, ValueError) as exc:
                raise _Reject("not_exact", f"batch fields cannot be kept exactly: {exc}", inexact) from None
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
    def parse(request: Request, body: Any, received_at: str, inexact: bytes | None = None):
        if inexact is not None:
            # tp2 values are strings; a number or repeated key in the envelope is not tp2
            raise _Reject("not_exact", "tp2 body holds a value that cannot be kept exactly", inexact)
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
        # (a non-text aid is no app id: {"aid": {}} made this set a 500)
        aids = {a if isinstance(a := ev.get("aid"), str) else None for ev in events if isinstance(ev, dict)}
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
        def parse(req, body, received_at, inexact=None):
            return sp_parser(req, {"data": [body]}, received_at)

        return await _ingest(c, request, "/i", parse, lambda: Response(PIXEL, media_type="image/gif"),
                             body_from_query=True)  # fmt: skip

    async def health(request: Request) -> Response:
        alive = c.writer.alive
        body = {"status": "ok" if alive else "writer down", "inflight_bytes": c.inflight}
        return Response(orjson.dumps(body), 200 if alive else 503, media_type="application/json")

    async def metrics(request: Request) -> Response:
        return Response(c.metrics.render(), headers={"Content-Type": c.metrics.content_type})

    routes = [segment_route(path, None) for path in SEGMENT_BATCH_PATHS]
    routes += [segment_route(f"/v1/{t}", t) for t in SEGMENT_ENDPOINTS]
    routes += [segment_route(f"/v1/{short}", t) for short, t in SEGMENT_SHORT.items()]
    routes += [
        Route(SNOWPLOW_POST, tp2, methods=["POST"]),
        *[Route(path, pixel, methods=["GET"]) for path in SNOWPLOW_GET],
        Route("/health", health, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        recovered = await asyncio.to_thread(c.writer.start)
        if recovered:
            log.warning("recovered %d file(s) left by a crashed collector", len(recovered))
        if settings.validator is not None:
            c.edge = EdgeValidation(settings.validator, c.metrics)
        try:
            yield
        finally:
            await asyncio.to_thread(c.writer.close)  # flush and give open files their final names
            if c.edge is not None:
                await asyncio.to_thread(c.edge.close)

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.collector = c
    return AccessLog(Cors(app, c), c)


def _ok() -> Response:
    return Response(SUCCESS, media_type="application/json")


class Cors:
    """ASGI middleware: CORS for browser trackers on every collector route.

    Browsers preflight analytics.js (it sends ``Authorization``) and Snowplow's tracker
    (``Content-Type: application/json``, ``SP-Anonymous``); the preflight is answered 204 here
    when the origin is allowed for some source. Every answer to a request with an ``Origin``
    echoes that origin with ``Access-Control-Allow-Credentials: true``: Snowplow's tracker sends
    ``credentials: "include"`` by default, and ``*`` is not accepted with credentials. Which
    origin may send for which source is checked again per request once the source is known.
    """

    def __init__(self, app: Any, collector: Collector) -> None:
        self.app, self.c, self.state = app, collector, app.state

    def _headers(self, origin: str) -> list[tuple[bytes, bytes]]:
        return [(b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-allow-credentials", b"true"), (b"vary", b"Origin")]  # fmt: skip

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        origin = headers.get(b"origin", b"").decode("latin-1")
        if not origin or not self.c.origin_allowed(None, origin):
            if scope["method"] == "OPTIONS":
                status = 403 if origin else 204
                await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"0")]})
                return await send({"type": "http.response.body", "body": b""})
            return await self.app(scope, receive, send)
        cors = self._headers(origin)
        if scope["method"] == "OPTIONS":
            requested = headers.get(b"access-control-request-headers", b"")
            cors += [(b"access-control-allow-methods", b"GET, POST, OPTIONS"), (b"access-control-max-age", b"7200"),
                     (b"content-length", b"0")]  # fmt: skip
            if requested:
                cors.append((b"access-control-allow-headers", requested))
            if headers.get(b"access-control-request-private-network") == b"true":
                cors.append((b"access-control-allow-private-network", b"true"))
            await send({"type": "http.response.start", "status": 204, "headers": cors})
            return await send({"type": "http.response.body", "body": b""})

        async def send_with_cors(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *cors]}
            await send(message)

        return await self.app(scope, receive, send_with_cors)


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
    [*SEGMENT_BATCH_PATHS, SNOWPLOW_POST, *SNOWPLOW_GET, "/health", "/metrics"]
    + [f"/v1/{t}" for t in [*SEGMENT_ENDPOINTS, *SEGMENT_SHORT]]
)
