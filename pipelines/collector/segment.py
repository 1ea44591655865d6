"""Segment HTTP Tracking API bodies -> landing-zone lines.

Turns a parsed request body into the JSONL lines the landing zone stores: batch envelopes are
unpacked, batch-level ``context``/``integrations``/``sentAt`` are carried into each message,
``receivedAt`` is stamped, a missing ``messageId`` is assigned. Messages that are not objects or
that exceed the size limit are written verbatim so the ingestion can quarantine them with a reason:
Segment-family SDKs drop a whole batch on any 4xx, so one bad message must never fail the batch.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

SEGMENT_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})


def dumps(obj: Any) -> bytes:
    """orjson, falling back to the stdlib for what orjson refuses (lone surrogates, huge ints)."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode()


def loads(data: bytes) -> Any:
    """Parse JSON; raises ValueError (incl. UnicodeDecodeError) when the bytes are not JSON."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # The stdlib accepts lone surrogate escapes and integers beyond 64 bits, which orjson
        # refuses; strict UTF-8 decoding still rejects non-UTF-8 bytes.
        return json.loads(data.decode("utf-8"))


@dataclass
class Prepared:
    """The lines of one request, ready for the landing writer, and what was counted on the way."""

    lines: list[bytes] = field(default_factory=list)
    messages: list[dict] = field(default_factory=list)  # enriched, well-formed ones (for validation)
    invalid: dict[str, int] = field(default_factory=dict)  # reason -> count

    @property
    def data(self) -> bytes:
        return b"".join(self.lines)

    def add_invalid(self, reason: str, raw: Any) -> None:
        self.lines.append(dumps(raw) + b"\n")
        self.invalid[reason] = self.invalid.get(reason, 0) + 1


def messages_of(body: Any, endpoint_type: str | None) -> tuple[list[Any], dict]:
    """Split a body into (messages, batch-level fields). Raises TypeError for a non-object body."""
    if isinstance(body, list):
        return body, {}
    if not isinstance(body, dict):
        raise TypeError("body is not a JSON object")
    if endpoint_type is None and isinstance(body.get("batch"), list):
        envelope = {k: v for k, v in body.items() if k != "batch"}
        return body["batch"], envelope
    return [body], {}


def merge_missing(target: dict | None, defaults: Any) -> dict | None:
    """Keys of ``defaults`` that ``target`` lacks are copied in (message values win)."""
    if not isinstance(defaults, dict) or not defaults:
        return target
    if not isinstance(target, dict):
        return dict(defaults) if target is None else target
    merged = dict(defaults)
    merged.update(target)
    return merged


def prepare(
    items: Iterable[Any],
    envelope: dict,
    *,
    received_at: str,
    endpoint_type: str | None = None,
    max_message_bytes: int = 32768,
) -> Prepared:
    """Enrich each message and serialize it to a JSONL line."""
    out = Prepared()
    batch_context = envelope.get("context")
    batch_integrations = envelope.get("integrations")
    batch_sent_at = envelope.get("sentAt")
    for raw in items:
        if not isinstance(raw, dict):
            out.add_invalid("not_an_object", raw)
            continue
        msg = dict(raw)
        msg.pop("writeKey", None)  # a secret; it must not end up in the landing files
        if endpoint_type and not msg.get("type"):
            msg["type"] = endpoint_type
        if not msg.get("messageId"):
            msg["messageId"] = str(uuid.uuid4())
        if not msg.get("sentAt") and batch_sent_at:
            msg["sentAt"] = batch_sent_at
        msg["receivedAt"] = received_at
        if not msg.get("timestamp") and msg.get("originalTimestamp"):
            msg["timestamp"] = msg["originalTimestamp"]
        if batch_context is not None or "context" in msg:
            ctx = merge_missing(msg.get("context"), batch_context)
            if ctx is not None:
                msg["context"] = ctx
        if batch_integrations is not None:
            integ = merge_missing(msg.get("integrations"), batch_integrations)
            if integ is not None:
                msg["integrations"] = integ
        line = dumps(msg)
        if len(line) > max_message_bytes:
            original = dumps(raw)
            if len(original) > max_message_bytes:
                out.add_invalid("oversize", raw)
                continue
        if msg.get("type") not in SEGMENT_TYPES:
            # Still landed enriched: the ingestion quarantines it with the precise reason.
            out.invalid["bad_type"] = out.invalid.get("bad_type", 0) + 1
        else:
            out.messages.append(msg)
        out.lines.append(line + b"\n")
    return out


def event_label(msg: dict) -> str:
    """The name a message is counted under: the event for track, else the call type."""
    if msg.get("type") == "track":
        return str(msg.get("event") or "")
    return str(msg.get("type") or "")
