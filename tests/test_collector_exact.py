"""The collector's exactness check (values kept exactly or landed as unkept): its fast path.

``segment.loads_checked`` first proves most bodies exact with C-speed scans of the raw bytes
(``_surely_exact``) and only parses again value by value when in doubt. These tests hold it to an
oracle written here from the stdlib (``json`` + ``Decimal``), on hand-picked edge cases and on
seeded random bodies built to be near-misses, and check that realistic SDK bodies take the fast
path (else the load target is lost silently).
"""

from __future__ import annotations

import json
import random
import uuid
from decimal import Decimal

import orjson
import pytest

from tracking_plan import exactjson as segment  # the exact-JSON code the collector re-exports


class _Unexact(Exception):
    pass


def _pairs(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _Unexact("repeated key")
    return dict(pairs)


def _int(text):
    value = int(text)
    if not -(2**63) <= value <= 2**64 - 1:
        raise _Unexact("int range")
    return value


def _float(text):
    d = Decimal(text)
    f = float(text)
    if f in (float("inf"), float("-inf")) or Decimal(repr(f)) != d:
        raise _Unexact("float digits")
    return f


def _const(text):
    raise _Unexact(text)


def oracle(data: bytes) -> bool:
    """Independent statement of "exact": no repeated key, no NaN/Infinity, every integer within
    64 bits, every float written back (shortest repr) as the same decimal number."""
    try:
        json.loads(data.decode(), object_pairs_hook=_pairs, parse_int=_int, parse_float=_float, parse_constant=_const)
    except _Unexact:
        return False
    return True


def fast(data: bytes) -> bool:
    """Did the byte scans alone prove the body exact?"""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return isinstance(obj, (dict, list)) and segment._surely_exact(data, obj)


def typed(x):
    """A value with its types spelled out (1 == 1.0 == True in Python)."""
    if isinstance(x, dict):
        return {k: typed(v) for k, v in x.items()}
    if isinstance(x, list):
        return [typed(v) for v in x]
    return (type(x).__name__, x)


CASES = [
    # (body, exact, proven by the fast path)
    ('{"a":"NaN","b":"Infinity","c":"-Infinity","d":"nan"}', True, True),
    ('{"a":"say \\"NaN\\": Infinity"}', True, True),
    ('{"a":"x\\":y","b":"\\":\\":","c":1}', True, True),  # escaped quotes before colons
    ('{"a":1,"b":{"a":2,"b":[{"a":3}]}}', True, True),  # same key in different objects
    ('{"id":"123456789012345678901234567890","n":"-18446744073709551616"}', True, True),  # big ints in strings
    ('{"t":"1764790000123456789","u":"3e-1234-5e678-9e0400-1E+300"}', True, True),  # ids, uuid-like text
    ('{"x":1.5e2,"y":-2.5E-7,"z":1e+21,"w":0.0,"v":-0.0,"u":1e99}', True, True),
    ('{"u":0.30000000000000004}', True, True),  # 17 digits, but exactly as re-writing gives them
    ('{"u": 0.30000000000000004}', True, False),  # not compact: 17 digits go to the slow path
    ('{\n  "a" : 1,\n  "b" :\t[1, 2.5, "c : d"]\n}', True, True),  # whitespace before colons
    ('{"a":"caf\\u00e9 \\u2013 \\/ \\n"}', True, True),
    ('{"a":NaN}', False, False),
    ('{"a":[1,{"b":-Infinity}]}', False, False),
    ('{"a":1208925819614629174706176}', False, False),
    ('{"a":18446744073709551616}', False, False),  # 2**64: orjson reads it as a float
    ('{"a":-9223372036854775809}', False, False),
    ('{"a":18446744073709551615,"b":-9223372036854775808}', True, None),  # the 64-bit edges
    ('{"a":0.1000000000000000000001}', False, False),
    ('{"a":[ 1234567890.123456789 ]}', False, False),
    ('{"a":1e400}', False, False),
    ('{"a":1e-400}', False, False),  # underflows to 0.0
    ('{"a":[1E-0400 ]}', False, False),
    ('{"a":4e-324}', False, False),  # a subnormal: written back as 5e-324
    ('{"a":5e-324,"b":1E+308}', True, None),
    ('{"a":1,"a":2}', False, False),
    ('{"a" : 1, "a" : 2}', False, False),
    ('{"a":1,"b":"x:y","a":2}', False, False),
    ('{"a":"p:q","a":"r"}', False, False),  # the dropped value held a colon
    ('{"a":1,"a":2,"b":"\\u003a"}', False, False),  # an escaped colon must not hide a repeat
    ('{"a":1,"a":2,"b":"\\u0022:"}', False, False),
    ('{"batch":[{"properties":{"p":{"q":{"r":[{"s":1,"s":1}]}}}}]}', False, False),  # a repeat at depth
    ('[{"type":"track"},{"type":"track","type":"page"}]', False, False),
]


@pytest.mark.parametrize("text,exact,proven", CASES)
def test_edge_cases_against_the_oracle(text, exact, proven):
    data = text.encode()
    assert oracle(data) is exact  # the case itself is stated right
    body, verdict = segment.loads_checked(data)
    assert verdict is exact
    if exact:
        assert typed(body) == typed(json.loads(text))
    if proven is not None:
        assert fast(data) is proven
    if not exact:
        assert not fast(data)


# -- seeded near-misses ------------------------------------------------------------------------------
_NUMBERS = ["0", "-0", "1", "12.5", "-0.0", "0.0", "1e5", "2.5E-7", "1E+308", "1e400", "1e-400", "4e-324",
            "5e-324", "9223372036854775807", "18446744073709551615", "18446744073709551616",
            "-9223372036854775809", "0.30000000000000004", "0.1000000000000000000001", "123456789012345.6",
            "12345678901234.5", "1.5e-0300", "7e99", "7e100"]  # fmt: skip
_STRINGS = ['"NaN"', '"Infinity"', '"x\\":y"', '"\\u0022:"', '"a:b"', '"\\u003a"', '"123456789012345678901"',
            '"3e-1234-5e678"', '"caf\\u00e9"', '"e-400,"', '" : "', '"\\\\"', '"1e400"']  # fmt: skip
_KEYS = ["a", "b", "c", "x:y", 'q\\"', "NaN"]


def _space(rng: random.Random) -> str:
    return rng.choice(["", "", "", " ", "\n  ", "\t"])


def _value(rng: random.Random, depth: int) -> str:
    r = rng.random()
    if depth < 4 and r < 0.25:
        n = rng.randrange(4)
        keys = [rng.choice(_KEYS) for _ in range(n)]
        if n and rng.random() < 0.15:
            keys.append(rng.choice(keys))  # a repeated key
        s = _space
        return "{" + ",".join(f'{s(rng)}"{k}"{s(rng)}:{s(rng)}{_value(rng, depth + 1)}{s(rng)}' for k in keys) + "}"
    if depth < 4 and r < 0.4:
        return "[" + ",".join(_space(rng) + _value(rng, depth + 1) for _ in range(rng.randrange(4))) + "]"
    if r < 0.7:
        return rng.choice(_STRINGS)
    if r < 0.72:
        return rng.choice(["NaN", "-Infinity", "Infinity"])
    if r < 0.75:
        return rng.choice(["true", "false", "null"])
    # mostly harmless numbers, some that must fail
    return (
        rng.choice(_NUMBERS)
        if rng.random() < 0.3
        else str(rng.choice([rng.randrange(-999, 10**6), round(rng.uniform(-1e4, 1e4), rng.randrange(6))]))
    )


@pytest.mark.parametrize("seed", range(8))
def test_random_near_misses_agree_with_the_oracle(seed):
    rng = random.Random(seed)
    seen = {True: 0, False: 0}
    proven = 0
    for _ in range(400):
        text = "{" + f'"batch":[{",".join(_value(rng, 1) for _ in range(rng.randrange(1, 5)))}]' + "}"
        data = text.encode()
        exact = oracle(data)
        body, verdict = segment.loads_checked(data)
        assert verdict is exact, text
        if fast(data):
            proven += 1
            assert exact, text  # the fast path never vouches for a body that is not exact
        if exact:
            assert typed(body) == typed(json.loads(text)), text
        seen[exact] += 1
    assert seen[True] > 40 and seen[False] > 40  # both kinds were really exercised
    assert proven > 20


# -- realistic bodies take the fast path -----------------------------------------------------------------
def _sdk_messages(rng: random.Random, n: int) -> list[dict]:
    return [
        {
            "type": "track",
            "event": "Order Completed",
            "anonymousId": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "messageId": f"ajs-next-1764790000{i:03d}-{uuid.UUID(int=rng.getrandbits(128), version=4)}",
            "timestamp": "2026-11-22T19:23:45.137123+00:00",
            "properties": {
                "order_id": str(1764790000123456789 + i),
                "revenue": 18.99,
                "discount": 0.0,
                "name": "Crème brûlée – 2",
                "quantity": 1 + i % 3,
            },
            "context": {
                "library": {"name": "analytics-python", "version": "2.3.3"},
                "page": {"url": "https://shop.example.com/p?q=a:b", "title": 'x "y": z'},
            },
        }
        for i in range(n)
    ]


@pytest.mark.parametrize("seed", range(3))
def test_sdk_bodies_are_proven_exact_by_the_scans_alone(seed, monkeypatch):
    rng = random.Random(seed)
    body = {"batch": _sdk_messages(rng, 100), "sentAt": "2026-11-22T19:23:45.200Z"}
    bodies = {
        "orjson": orjson.dumps(body),
        "python json.dumps (analytics-python)": json.dumps(body).encode(),
        "JSON.stringify": json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode(),
        "indented": json.dumps(body, indent=2, ensure_ascii=False).encode(),
    }

    def no_slow_path(_):
        raise AssertionError("slow path taken")

    monkeypatch.setattr(segment, "strict_loads", no_slow_path)
    for name, data in bodies.items():
        parsed, exact = segment.loads_checked(data)
        assert exact and parsed == body, name
