"""Segment HTTP Tracking API bodies -> landing-zone lines.

Turns a parsed request body into the JSONL lines the landing zone stores: batch envelopes are
unpacked, batch-level ``context``/``integrations``/``sentAt`` are carried into each message,
``receivedAt`` is stamped, a missing ``messageId`` is assigned. Messages that are not objects or
that exceed the size limit are written verbatim so the ingestion can quarantine them with a reason:
Segment-family SDKs drop a whole batch on any 4xx, so one bad message must never fail the batch.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

# exact JSON parsing lives in tracking_plan.exactjson (the landing reader uses it too); re-exported here
from tracking_plan.exactjson import NotExact, dumps, loads, loads_checked, strict_loads

__all__ = ["NotExact", "dumps", "loads", "loads_checked", "strict_loads"]

SEGMENT_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})


_WS = re.compile(r"[ \t\n\r]*")
_LENIENT = json.JSONDecoder()  # accepts what strict_loads refuses; used only to find spans


def _skip_ws(text: str, i: int) -> int:
    return _WS.match(text, i).end()  # type: ignore[union-attr]


def _array_items(text: str, i: int) -> tuple[list[str], int]:
    """Original texts of the elements of the array starting at ``text[i] == "["``; and its end."""
    items: list[str] = []
    i = _skip_ws(text, i + 1)
    if text[i : i + 1] == "]":
        return items, i + 1
    while True:
        _, end = _LENIENT.raw_decode(text, i)
        items.append(text[i:end])
        i = _skip_ws(text, end)
        if text[i : i + 1] == "]":
            return items, i + 1
        if text[i : i + 1] != ",":
            raise ValueError(f"expected , or ] at character {i}")
        i = _skip_ws(text, i + 1)


def message_texts(data: bytes) -> tuple[list[str], list[str]]:
    """The original text of each message of a body, in the order ``messages_of`` yields them
    (the elements of a top-level array or of a top-level object's ``batch`` array, else the body),
    and the texts of the batch envelope's other values."""
    text = data.decode("utf-8")
    i = _skip_ws(text, 0)
    envelope: list[str] = []
    if text[i : i + 1] == "[":
        return _array_items(text, i)[0], envelope
    if text[i : i + 1] == "{":
        i = _skip_ws(text, i + 1)
        found: list[str] | None = None
        while text[i : i + 1] == '"':
            key, i = _LENIENT.raw_decode(text, i)
            i = _skip_ws(text, i)
            i = _skip_ws(text, i + 1)  # the ':'
            if key == "batch" and text[i : i + 1] == "[":
                found, i = _array_items(text, i)  # the last "batch" wins, as in the parsed body
            else:
                start = i
                _, i = _LENIENT.raw_decode(text, i)
                envelope.append(text[start:i])
            i = _skip_ws(text, i)
            if text[i : i + 1] == ",":
                i = _skip_ws(text, i + 1)
        if found is not None:
            return found, envelope
    return [text.strip(" \t\n\r")], []


@dataclass
class Unkept:
    """A message that cannot be re-written without changing a value: kept as its original text."""

    text: str
    reason: str

    def line(self, received_at: str) -> bytes:
        return orjson.dumps({"type": "trackplan_unkept", "reason": self.reason, "receivedAt": received_at,
                             "original": self.text}) + b"\n"  # fmt: skip


def exact_items(data: bytes, items: list[Any]) -> list[Any]:
    """``items`` (the parsed messages of ``data``) with each message that holds a value that
    cannot be kept exactly replaced by an :class:`Unkept` holding its original text."""
    texts, envelope = message_texts(data)
    for value in envelope:
        strict_loads(value)  # a batch-level value is copied into every message: it must be exact
    if len(texts) != len(items):
        raise NotExact("the body's messages could not be matched to its text")
    out: list[Any] = []
    for item, text in zip(items, texts, strict=True):
        try:
            out.append(strict_loads(text))
        except NotExact as exc:
            out.append(Unkept(text, str(exc)))
    return out


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
    lines, messages, invalid = out.lines, out.messages, out.invalid  # (the loop runs per message)
    for raw in items:
        if type(raw) is not dict:
            if isinstance(raw, Unkept):
                lines.append(raw.line(received_at))
                invalid["not_exact"] = invalid.get("not_exact", 0) + 1
                continue
            if not isinstance(raw, dict):
                out.add_invalid("not_an_object", raw)
                continue
        msg = dict(raw)
        msg.pop("writeKey", None)  # a secret; it must not end up in the landing files
        get = msg.get
        if endpoint_type and not get("type"):
            msg["type"] = endpoint_type
        if not get("messageId"):
            msg["messageId"] = str(uuid.uuid4())
        if batch_sent_at and not get("sentAt"):
            msg["sentAt"] = batch_sent_at
        msg["receivedAt"] = received_at
        if not get("timestamp") and get("originalTimestamp"):
            msg["timestamp"] = msg["originalTimestamp"]
        if batch_context is not None:  # (without one, merge_missing would give the context back)
            ctx = merge_missing(get("context"), batch_context)
            if ctx is not None:
                msg["context"] = ctx
        if batch_integrations is not None:
            integ = merge_missing(get("integrations"), batch_integrations)
            if integ is not None:
                msg["integrations"] = integ
        try:
            line = orjson.dumps(msg)
        except TypeError:
            line = dumps(msg)
        if len(line) > max_message_bytes:
            original = dumps(raw)
            if len(original) > max_message_bytes:
                out.add_invalid("oversize", raw)
                continue
        kind = get("type")
        if not isinstance(kind, str) or kind not in SEGMENT_TYPES:  # ({"type": {}} made this a 500)
            # Still landed enriched: the ingestion quarantines it with the precise reason.
            invalid["bad_type"] = invalid.get("bad_type", 0) + 1
        else:
            messages.append(msg)
        lines.append(line + b"\n")
    return out


def event_label(msg: dict) -> str:
    """The name a message is counted under: the event for track, else the call type."""
    if msg.get("type") == "track":
        return str(msg.get("event") or "")
    return str(msg.get("type") or "")
