"""JSON that is kept exactly: parsed only when no value can change by being written again.

Shared by the collector (Segment and Snowplow bodies) and the landing reader (Snowplow's enriched
TSV, whose JSON columns go through the same tp2 mapping). Moved here from pipelines/collector/segment.py
so that tracking_plan/ (a lower layer) can use it; the collector imports it from here.
"""

from __future__ import annotations

import json
import math
import re
from decimal import Decimal
from typing import Any

import orjson


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


_TINY = 2.2250738585072014e-308  # below this a double is subnormal: fewer digits survive
_TO_ZERO = bytes.maketrans(b"0123456789.", b"00000000000")
_SPACED_KEY = re.compile(rb'"\s+:')


def _walk(obj: Any, _dict=dict, _list=list, _float=float) -> tuple[int, bool]:
    """(keys of every object in ``obj``, True if some float might not be exact: 0.0 (an underflow
    looks the same), infinite, or subnormal)."""
    n = 0
    odd = False
    stack = [obj]
    pop, push = stack.pop, stack.append
    while stack:
        o = pop()
        values = o.values() if type(o) is _dict else o
        if type(o) is _dict:
            n += len(o)
        for v in values:
            tv = type(v)
            if tv is _dict or tv is _list:
                push(v)
            elif tv is _float and not (_TINY <= abs(v) < math.inf):
                odd = True
    return n, odd


def loads_checked(data: bytes) -> tuple[Any, bool]:
    """(parsed body, exact): ``exact`` is True when no value of ``data`` can change by re-writing.

    Fast path: orjson already refuses NaN/Infinity and out-of-range integers. What it would
    silently change is ruled out by cheap scans that can only err towards the slow path: no run
    of 16 digits/dots (every double keeps 15 significant digits), no float that is 0.0, infinite
    or subnormal (where an over- or underflow hides), and as many ``":`` in the bytes as keys in
    the parsed objects with no key written ``"k" :`` (so no key was given twice). The slow path
    parses again with exact checks per value.
    """
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        obj = None
    else:
        if (type(obj) is dict or type(obj) is list) and data.translate(_TO_ZERO).find(b"0" * 16) < 0 \
                and not _SPACED_KEY.search(data):
            keys, odd = _walk(obj)
            if not odd and data.count(b'":') == keys:
                return obj, True
    try:
        return strict_loads(data), True
    except NotExact:
        return loads(data), False  # ValueError here means: not JSON at all
