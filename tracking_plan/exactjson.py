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
