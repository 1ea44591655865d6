"""Segment HTTP Tracking API bodies -> landing-zone lines.

Turns a parsed request body into the JSONL lines the landing zone stores: batch envelopes are
unpacked, batch-level ``context``/``integrations``/``sentAt`` are carried into each message,
``receivedAt`` is stamped, a missing ``messageId`` is assigned. Messages that are not objects or
that exceed the size limit are written verbatim so the ingestion can quarantine them with a reason:
Segment-family SDKs drop a whole batch on any 4xx, so one bad message must never fail the batch.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
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


# -- values kept exactly ---------------------------------------------------------------------------
# The collector re-serializes each message (to add receivedAt, messageId, batch fields). That is
# only allowed when it cannot change a value. A message holding a value that has no exact 64-bit
# JSON form (NaN/Infinity, an integer outside int64/uint64, a float whose digits a double does not
# keep, a key given twice) is never rewritten: it is landed as an `Unkept` record that carries its
# original text byte for byte and the reason, which the ingestion quarantines.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1  # what orjson (and 64-bit JSON readers) hold exactly


class NotExact(ValueError):
    """A JSON text holds a value that would change if parsed and written again."""


def _exact_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or Decimal(text) != Decimal(repr(value)):
        raise NotExact(f"number {text[:40]} has no exact double form")
    return value


def _exact_int(text: str) -> int:
    value = int(text)
    if not _INT_MIN <= value <= _INT_MAX:
        raise NotExact(f"integer {text[:40]} is outside the 64-bit range")
    return value


def _no_constant(text: str) -> Any:
    raise NotExact(f"{text} is not a JSON number")


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        dup = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise NotExact(f"key {dup[:60]!r} appears twice in one object")
    return out


def strict_loads(text: str | bytes) -> Any:
    """Parse JSON, raising NotExact for any value that would not survive being written again."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return json.loads(text, parse_float=_exact_float, parse_int=_exact_int, parse_constant=_no_constant,
                      object_pairs_hook=_unique_pairs)  # fmt: skip


# One translation of the body (digits and dots -> "0", "E" -> "e", "-" -> "+", whitespace -> " "),
# then each kind of suspicious text is one C-speed pass (``find``/``count``, one regex).
_NUMBERISH = bytes.maketrans(b"0123456789.E-\t\n\r", b"00000000000e+   ")
_RUN = b"0" * 16  # 16 digits/dots in a row: more than the 15 significant digits every double keeps
_NUMBER_START = frozenset(b":,[+e ")  # what may precede a digit run that is (part of) a number
_ESCAPED_COLON = b"\\u003"  # a colon written as \u003a (or, harmlessly, \u0030-\u003f)


def _long_number(z: bytes) -> bool:
    """True if some run of 16+ digits/dots in ``z`` (the body after ``_NUMBERISH``) might be
    (part of) a number token: a float of more digits than a double keeps, or an integer that
    orjson would read as a float. A run that starts right after a byte no number can start after
    (a letter, ``"``, ``_``, ``/`` ...) lies inside a string: a long order id in a string needs no
    slow path. Runs after ``:`` ``,`` ``[``, whitespace, a sign or an exponent mark (or at the
    start) count.
    """
    find = z.find
    i = find(_RUN)
    while i >= 0:
        if i == 0 or z[i - 1] in _NUMBER_START:
            return True
        i = find(_RUN, i + 16)  # later matches in the same run follow a digit: inside the string too
    return False


# after _NUMBERISH: a digit, e/E, maybe a sign, 3+ digits, then what follows a number (a uuid's
# "3e-1234-" never ends so). One regex pass: a find per candidate costs more, uuids hold many.
_BIG_EXPONENT = re.compile(rb"0e\+?000+[,\]} ]")


def _surely_exact(data: bytes, obj: Any) -> bool:
    """True only if re-writing ``obj`` (parsed from ``data`` by orjson) changes no value.

    Scans at C speed that can only err towards the slow path:

    * ``orjson.dumps(obj) == data``: the body is already what re-writing gives (compact senders
      such as analytics.js's ``JSON.stringify``), so nothing can change;
    * numbers: orjson refuses NaN/Infinity and overflow to infinity, but reads an integer beyond
      64 bits as a float and rounds a float of more than 15-17 digits. Every decimal of at most 15
      significant digits with an exponent below 100 is a normal double that writes back to the
      same number; longer numbers show as a run of 16+ digits/dots outside strings, larger or
      smaller exponents as ``e`` + 3 digits (also underflow to 0.0 and subnormals);
    * repeated keys: a colon outside strings follows each key once; inside strings orjson writes
      each colon back raw. So when no colon was written ``\\u003a``, the body holds as many
      colons as the re-written one only if no key (with the strings of its value) was dropped
      for a repeat: the body's count is the re-written count plus keys lost plus their colons.
    """
    out = orjson.dumps(obj)
    if out == data:
        return True
    z = data.translate(_NUMBERISH)
    if _long_number(z) or _BIG_EXPONENT.search(z):
        return False
    if b"\\" in data and _ESCAPED_COLON in data:  # (a memchr first: most bodies have no "\")
        return False
    return data.count(b":") == out.count(b":")


def loads_checked(data: bytes) -> tuple[Any, bool]:
    """(parsed body, exact): ``exact`` is True when no value of ``data`` can change by re-writing.

    Fast path: orjson, then :func:`_surely_exact`'s byte scans. The slow path (any doubt, or a
    body orjson refuses) parses again with exact checks per value (:func:`strict_loads`).
    """
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        pass
    else:
        if (type(obj) is dict or type(obj) is list) and _surely_exact(data, obj):
            return obj, True
    try:
        return strict_loads(data), True
    except NotExact:
        return loads(data), False  # ValueError here means: not JSON at all


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
        if get("type") not in SEGMENT_TYPES:
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
