r"""Random plans, one meaning (issue 14): on seeded random tracking plans, `trackplan validate`, the
ingest `Validator` and an independent oracle (Python `jsonschema`, Draft 2020-12 with format checking,
on the schemas `trackplan compile` writes) give the same verdict on every line.

A port of the fuzzer that found the bugs named below: where tests/test_validate_differential.py checks
one plan on thousands of messages, this checks many plans on a few dozen each. A plan: 1-3 track events
and maybe an identify, page and group event, each a random property tree using every constraint at
any depth, under plain and odd names (`*`, "", `a.b`, `a/b`, `q"x`, `é`). A message: a valid payload
changed 0-3 times anywhere (a number near a bound, an enum member written another way, a format's
near miss, a key added, dropped or doubled...) in an always valid envelope; among the changes, those
that once disagreed: integers beyond 64 bits and near 1e38 against bounds and enums, 3.0 and 3e0, enum
members that are objects or arrays (keys reordered, 1 as 1.0 or 1e0), `type: timestamp` with a
`format`, `\s`/`\S` patterns on U+00A0, U+2003 and ASCII spaces.

The oracle reads a line as RFC 8259 JSON (the differential test's `_strict_loads`). The only
disagreements allowed are documented (README, "What each constraint checks"), each recognized in the
line, trackplan rejecting what the oracle accepts: a string holding an unpaired surrogate escape
(`"\ud800"`: no I-JSON, RFC 7493) is rule `json` at `$` and nothing else; an integer beyond the double
range (400 digits; a `1e400` the oracle rejects too) is rule `json`, other rules failing only at its
own path. Kept out of the generated plans and strings instead, as the oracle's `re` is no ECMA-262
engine (trackplan follows ECMA-262): `\d`, `\w`, `\b` (Unicode in Python), a string ending in a
newline (Python's `$` matches before it), U+001C-U+001F, U+0085, U+FEFF (white space to only one of
Python's `\s` and ECMA-262's), `\r`, U+2028, U+2029 (Python's `.` matches them), inline flags.
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
from collections import Counter

import duckdb
import pytest
import yaml
from jsonschema import Draft202012Validator
from test_validate_differential import DupKey, Raw, _line, _oracle

from tracking_plan.compile import compile_plan
from tracking_plan.loader import load_plan
from tracking_plan.reader import read_files
from tracking_plan.validate import Validator, validate_files

SEEDS = range(6)
PLANS = 20  # per seed
MESSAGES = 60  # per plan
FORMAT_CHECKER = Draft202012Validator.FORMAT_CHECKER
T0 = "2026-03-02T10:00:00.000Z"

# -- what plans are made of ------------------------------------------------------------------------
TYPES = ["string", "number", "integer", "boolean", "object", "array", "timestamp", None]
NAMES = ["a", "b", "c", "id", "n", "x", "val", "tag"]
ODD_NAMES = ["*", "", "a.b", 'q"x', "é", "a b", "$", "0", "a[0]", "a'b", "a\\b", "a/b", "~1", "userId"]
POLICIES = ["allow", "warn", "reject"]
BIG = [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64 - 1, 2**64, 2**64 + 1, 2**53 + 1, 10**20 + 1, 10**37 + 1]
BIG += [99999999999999997748809823456034029567, -(10**38) + 1]  # (1e38 as a double is ...029568)
BOUNDS = [0, 1, -1, 3, -3, 10, 0.5, 2.5, -2.5, 1.0, 3.0, 0.1, 1e-300, 1e300, 1e20, *BIG]
WS = [" ", "\t", "\x0b", "\x0c", "\u00a0", "\u1680", "\u2003", "\u202f", "\u3000"]  # \s to both
NOT_WS = ["\u200b", "\u180e", "x"]  # \s to neither
# pattern: strings it matches (`\s`, `\S`: ECMA-262's white space, beyond ASCII; RE2's is ASCII)
PATTERNS = {"^[a-z]+$": ["abc", "a"], "^o_[a-z0-9]+$": ["o_1", "o_ab"], "ab": ["xaby", "ab"], "^$": [""]}
PATTERNS |= {"^.{2,4}$": ["ab", "日本", "😀😀"], "^.$": ["x", "😀", "é"], "^😀+$": ["😀"], "^[a-zé]{1,3}$": ["é", "aé"]}
PATTERNS |= {"^(?:red|blue)$": ["red", "blue"], "\\s": [" ", "a\u3000"], "^[\\s,]+$": [" ,", "\u2003"]}
PATTERNS |= {"^a\\sb$": ["a b", "a\u00a0b", "a\u2003b", "a\tb"], "^\\S+$": ["x", "é\u200b"], "^[^\\s]*$": ["ab", ""]}
FORMAT_GOOD = {"date": ["2026-03-02", "2024-02-29"], "ipv4": ["1.2.3.4", "255.255.255.255"], "currency": ["USD", "EUR"]}
FORMAT_GOOD |= {"email": ["a@b.co", "first.last+tag@sub.example.org"]}
FORMAT_GOOD |= {"date-time": [T0, "2026-03-02T10:00:00+05:30", "2026-03-02t10:00:00z"]}
FORMAT_GOOD |= {"uri": ["https://example.com/a?b=1#c", "mailto:a@example.com", "urn:isbn:0451450523"]}
FORMAT_GOOD |= {"uuid": ["123e4567-e89b-12d3-a456-426614174000", "123E4567-E89B-12D3-A456-426614174000"]}
FORMAT_BAD = {
    "email": ["a@b", "@b.co", "a b@c.de", "a@@b.co", "ü@b.co", "a\u00a0@b.co", "a@b..c"],
    "uri": ["example.com", "http://exa mple.com", "http://[::1]:8080/", "a:", "http://x/%zz", "//x", "http://é.com"],
    "uuid": ["123e4567e89b12d3a456426614174000", "{123e4567-e89b-12d3-a456-426614174000}", "g23e4567-e89b-12d3"],
    "date": ["2023-02-29", "2024-13-01", "0000-01-01", "20240101", "2024-01-01T00:00:00Z", "١٢٣٤-01-01"],
    "date-time": ["2026-03-02 10:00:00", "2026-03-02T24:00:00Z", "2026-02-29T10:00:00Z", "2026-03-02T10:00:60Z"]
    + ["0000-01-01T00:00:00Z", "2026-03-02T10:00:00+24:00", "2026-03-02T10:00Z", "2026-03-02T10:00:00,5Z"],
    "ipv4": ["256.1.1.1", "01.2.3.4", "1.2.3", " 1.2.3.4", "::1", "١.2.3.4"],
    "currency": ["usd", "US", "USDD", "ÜSD"],
}
ENUMS = {
    "string": ["a", "red", "Red", "", "é", "😀", "1", "null", "e\u0301", "a b"],
    "integer": [0, 1, 3, -1, 1.0, 3.0, *BIG[:7]],
    "number": [0, 1, 1.0, 2.5, -0.5, 0.1, 1e300, *BIG[:7]],
    "boolean": [True, False],
    "timestamp": [T0, "2026-03-02T10:00:00Z"],
    "object": [{"a": 1}, {"a": 1, "b": [1, 2]}, {}, {"a": 1.0}, {"a": True}, {"b": "é"}, {"a": {"c": 2, "d": [1.0]}}],
    "array": [[1], [1, 2], [], ["a"], [1.0], [True], [None], [[1]], [{"a": 1, "b": 2}]],
    None: ["a", 1, 1.0, 2.5, True, False, None, "1", [1], {"a": 1}, 0, "", [1.0, {"k": 2}]],
}
# -- what values are made of -----------------------------------------------------------------------
LONE_SURROGATES = [Raw('"\\ud800"'), Raw('"a\\udc00b"')]  # documented (rule json)
STRINGS = ["", "a", "aa", "abc", "ABC", "red", "1", "true", "null", "héllo", "日本語", "😀", "e\u0301", "a\u0000b"]
STRINGS += [" ", "a\u00a0b", "a@b.co", "USD", "2026-03-02", T0, "ab" * 10]
NUMS = [0, -1, 1, 1.0, 2.5, -0.0, 0.5, 3, 3.0, -3, 10, 1e300, 1e-300, Raw("3e0"), Raw("1E1"), Raw("2.50"), Raw("-0")]
NUMS += [Raw("1.0e0"), Raw("1e38"), Raw("1e400"), Raw("NaN"), *BIG, 10**30, Raw("1" + "0" * 400)]  # (documented)
ANY = [None, True, False, 0, 1, 1.0, 2.5, Raw("3e0"), "a", "", "red", "日本語", [], {}, [1], {"a": 1}, [None], [[1]]]
ANY += [{"": None}, {"*": 1}]


def gen_props(rng: random.Random, n: int, depth: int = 0) -> dict:
    names = [rng.choice(ODD_NAMES) if rng.random() < 0.12 else name for name in rng.sample(NAMES, n)]
    return {name: gen_prop(rng, depth) for name in dict.fromkeys(names)}


def gen_prop(rng: random.Random, depth: int = 0) -> dict:
    t = rng.choice(TYPES)
    if depth >= 3 and t in ("object", "array"):
        t = rng.choice(["string", "integer", "number"])
    p: dict = {} if t is None else {"type": t}
    r = rng.random
    p |= {"nullable": r() < 0.85} if r() < 0.3 else {}
    p |= {"required": r() < 0.85} if r() < 0.35 else {}
    odd = r() < 0.1  # constraints that do not apply to the type
    if (t in ("string", "timestamp") or (t is None and r() < 0.3) or odd) and r() < 0.5:
        p |= {"format": rng.choice(list(FORMAT_GOOD))} if r() < 0.4 else {"pattern": rng.choice(list(PATTERNS))}
    if (t in ("string", "array", "timestamp", None) or odd) and r() < 0.4:
        lo = rng.randint(0, 4)
        p |= {"min_length": lo} if r() < 0.7 else {}
        p |= {"max_length": lo + rng.choice([0, 0, 1, 2, 5])} if r() < 0.7 else {}
    if (t in ("number", "integer", None) or odd) and r() < 0.6:
        lo, hi = sorted(rng.sample(BOUNDS, 2))
        p |= {"minimum": lo} if r() < 0.7 else {}
        p |= {"maximum": hi} if r() < 0.7 else {}
    if r() < 0.25:
        pool = ENUMS[t] + (ENUMS[None] if r() < 0.2 else [])
        p["enum"] = copy.deepcopy(rng.sample(pool, rng.randint(1, min(4, len(pool)))))
    if (t == "array" or (odd and t is None)) and r() < 0.85:
        p["items"] = gen_prop(rng, depth + 1)
    if t == "object" or (odd and r() < 0.3):
        p |= {"properties": gen_props(rng, rng.randint(1, 3), depth + 1)} if r() < 0.8 else {}
        p |= {"additional_properties": r() < 0.5} if r() < 0.6 else {}
    return p


def write_plan(rng: random.Random, d) -> dict[str, dict]:
    """A random plan in directory `d`; returns its events' specs by name."""
    (d / "events").mkdir(parents=True)
    header = {"name": "Random", "version": "1.0.0", "conventions": {"event_name": "any", "property_name": "any"}}
    header["defaults"] = {"unexpected_properties": rng.choice(POLICIES)}
    (d / "plan.yaml").write_text(yaml.safe_dump(header, sort_keys=False))
    specs, kinds = {}, ["track"] * rng.randint(1, 3) + [t for t in ("identify", "page", "group") if rng.random() < 0.4]
    for k, t in enumerate(kinds):
        ev = {"name": f"Ev{k} Done" if t == "track" else f"{t.title()} Call", "type": t}
        ev |= {"status": "deprecated"} if rng.random() < 0.1 else {}
        ev |= {"unexpected_properties": rng.choice(POLICIES)} if rng.random() < 0.7 else {}
        specs[ev["name"]] = ev | {"properties": gen_props(rng, rng.randint(1, 5))}
        (d / "events" / f"e{k}.yaml").write_text(yaml.safe_dump(specs[ev["name"]], sort_keys=False, allow_unicode=True))
    return specs


# -- valid values, then changes to them (`prop`: the loaded plan Property describing the value) ------
def gen_string(rng: random.Random, prop) -> str:
    cands = FORMAT_GOOD[prop.format] if prop.format else []
    if prop.pattern:
        cands = [s for s in PATTERNS[prop.pattern] if s in cands] or PATTERNS[prop.pattern]
    if prop.type == "timestamp":
        cands = [s for s in cands if s in FORMAT_GOOD["date-time"]] or FORMAT_GOOD["date-time"]
    if cands:
        return rng.choice(cands)
    lo, hi = prop.min_length or 0, prop.max_length
    return "".join(rng.choice("abé日😀 ") for _ in range(rng.randint(lo, max(lo, lo + 5 if hi is None else hi))))


def gen_number(rng: random.Random, prop, integer: bool):
    lo, hi = prop.minimum, prop.maximum
    opts = [b for b in (lo, hi) if b is not None]
    if lo is not None and hi is not None:
        opts.append((lo + hi) // 2 if isinstance(lo + hi, int) else (lo + hi) / 2)
    v = rng.choice(opts or ([0, 1, 7, -2] if integer else [0, 1.5, -2.25, 7]))
    return (math.ceil(v) if v is lo else math.floor(v)) if integer and isinstance(v, float) else v


def gen_value(rng: random.Random, prop):
    if prop.enum and rng.random() < 0.9:
        return copy.deepcopy(rng.choice(prop.enum))
    t = prop.type
    if t in ("string", "timestamp") or (t is None and (prop.pattern or prop.format)):
        return gen_string(rng, prop)
    if t in ("integer", "number") or (t is None and (prop.minimum is not None or prop.maximum is not None)):
        return gen_number(rng, prop, t == "integer")
    if t == "boolean":
        return rng.random() < 0.5
    if t == "object":
        return {k: gen_value(rng, p) for k, p in (prop.properties or {}).items() if p.required or rng.random() < 0.7}
    if t == "array":
        lo = prop.min_length or 0
        n = rng.randint(lo, lo + min(3, max(0, (lo + 3 if prop.max_length is None else prop.max_length) - lo)))
        return [gen_value(rng, prop.items) if prop.items else copy.deepcopy(rng.choice(ANY)) for _ in range(n)]
    return copy.deepcopy(rng.choice(ANY))


def near_numbers(b) -> list:
    if isinstance(b, int):
        return [b, b + 1, b - 1, float(b), Raw(f"{b}.0"), Raw(f"{b}e0"), Raw(f"{b}.5")]
    near = [b, math.nextafter(b, math.inf), math.nextafter(b, -math.inf), Raw(repr(b).replace("e+", "E"))]
    return near + ([int(b), int(b) + 1, int(b) - 1] if b.is_integer() and abs(b) < 1e30 else [])


def rewrite(v, how: str):
    """`v` with its objects' keys in reverse order and its numbers written another way, at any depth."""
    if isinstance(v, dict):
        return {k: rewrite(x, how) for k, x in reversed(v.items())}
    if isinstance(v, list):
        return [rewrite(x, how) for x in v]
    if isinstance(v, bool) or not isinstance(v, int | float):  # (a boolean: as a number, "unbool")
        return int(v) if how == "unbool" and isinstance(v, bool) else v
    if how == "int":
        return int(v) if isinstance(v, float) and v.is_integer() else v
    return float(v) if how == "float" else Raw(f"{v}e0") if how == "e0" and isinstance(v, int) else v


def near_enum(m) -> list:
    if isinstance(m, bool):
        return [m, int(m), float(m), not m, None]
    if isinstance(m, int):
        return [m, m + 1, m - 1, float(m), Raw(f"{m}e0"), Raw(f"{m}.0"), str(m)]
    if isinstance(m, float):
        return [m, str(m), Raw(repr(m) + "0")] + ([int(m), int(m) + 1] if m.is_integer() and abs(m) < 1e30 else [])
    if isinstance(m, str):
        return [m, m.upper(), m + " ", m + "\u00a0", m[:-1], "e\u0301" if m == "é" else "é"]
    if isinstance(m, dict | list):
        return [m, [] if isinstance(m, list) else {}, m[::-1] if isinstance(m, list) else m | {"zz": 1}] + [
            rewrite(m, how) for how in ("int", "float", "e0", "unbool", "keep")
        ]
    return [None, "null", 0, False, [], {}]


def local_mutation(rng: random.Random, prop, value):
    """A new value for a slot described by `prop` (None: undescribed)."""
    kinds = ["any", "null"]
    if prop is not None:
        kinds += ["bound"] * 3 if prop.minimum is not None or prop.maximum is not None else []
        kinds += ["length"] * 3 if prop.min_length is not None or prop.max_length is not None else []
        kinds += ["enum"] * 3 if prop.enum else []
        kinds += ["format"] * 2 if prop.format or prop.type == "timestamp" else []
        kinds += ["pattern"] * 2 if prop.pattern else []
        kinds += ["num"] * 2 if prop.type in ("number", "integer") else []
        kinds += ["str"] if prop.type in ("string", "timestamp", None) else []
    kinds += ["object"] * 2 if isinstance(value, dict) or (prop and prop.type == "object") else []
    kinds += ["array"] * 2 if isinstance(value, list) or (prop and prop.type == "array") else []
    k = rng.choice(kinds)
    if k == "any":
        return copy.deepcopy(rng.choice(ANY + NUMS + STRINGS + LONE_SURROGATES))
    if k == "bound":
        return rng.choice(near_numbers(rng.choice([b for b in (prop.minimum, prop.maximum) if b is not None])))
    if k == "enum":
        return copy.deepcopy(rng.choice(near_enum(rng.choice(prop.enum))))
    if k == "format":
        return rng.choice(FORMAT_BAD[prop.format or "date-time"] + FORMAT_GOOD[prop.format or "date-time"])
    if k == "pattern":
        s, w = rng.choice(PATTERNS[prop.pattern]), rng.choice(WS + NOT_WS)
        return rng.choice([s, s.upper(), s + "x", "x" + s, s[:-1], w, f"a{w}b", s + w, w + s, "١٢٣", "\u212a", "ab\0"])
    if k in ("num", "str"):
        return copy.deepcopy(rng.choice(NUMS if k == "num" else STRINGS + LONE_SURROGATES))
    if k == "length":
        n = max(0, rng.choice([b for b in (prop.min_length, prop.max_length) if b is not None]) + rng.randint(-1, 1))
        if prop.type == "array" or isinstance(value, list):
            item = value[0] if isinstance(value, list) and value else gen_value(rng, prop.items) if prop.items else 1
            return [copy.deepcopy(item) for _ in range(n)]
        return "".join(rng.choice(["a", "é", "😀", "e\u0301", "日", "\0", "\u200b", "\\", '"']) for _ in range(n))
    if k == "object" and isinstance(value, dict) and value and rng.random() < 0.7:
        op = rng.choice(["extra", "drop", "dup"])
        if op == "dup":
            return DupKey(value, rng.choice(ANY))
        value = dict(value)
        if op == "drop":
            value.pop(rng.choice(list(value)))
        else:
            value[rng.choice(["zz", "a", "é", "a.b", "*", ""])] = rng.choice([1, None, "s", {"q": 1}])
        return value
    if k == "array" and isinstance(value, list) and value and rng.random() < 0.7:
        return rng.choice([[], value + [copy.deepcopy(value[0])], value + [copy.deepcopy(rng.choice(ANY))], value[1:]])
    return None if k == "null" else rng.choice([{}, {"a": 1}, [], [None], "{}"])


def mutate(rng: random.Random, prop, value):
    """Change something somewhere inside `value` (described by `prop`, which may be None)."""
    if isinstance(value, dict) and prop is not None and prop.properties and rng.random() < 0.6:
        k = rng.choice(list(prop.properties))
        if k in value or rng.random() < 0.5:
            value[k] = mutate(rng, prop.properties[k], value[k]) if k in value else gen_value(rng, prop.properties[k])
            return value
    if isinstance(value, list) and value and prop is not None and prop.items is not None and rng.random() < 0.6:
        i = rng.randrange(len(value))
        value[i] = mutate(rng, prop.items, value[i])
        return value
    return local_mutation(rng, prop, value)


def payload_mutation(rng: random.Random, ev, payload: dict):
    r = rng.random()
    if r < 0.05:
        return rng.choice(["__drop__", None, [], "x", {}])
    if r < 0.15:
        payload[rng.choice(["zz", "é", "a.b", "", "*", 'q"x', "x"])] = copy.deepcopy(rng.choice(ANY + NUMS))
    elif r < 0.25 and payload:
        payload.pop(rng.choice(list(payload)))
    elif r < 0.27 and payload:
        return DupKey(payload, rng.choice(ANY))
    else:
        k = rng.choice(list(ev.properties))
        payload[k] = mutate(rng, ev.properties[k], payload[k]) if k in payload else gen_value(rng, ev.properties[k])
    return payload


def message(ev, i: int, payload) -> dict:
    msg = {"type": ev.type, "messageId": f"m-{i}", "anonymousId": f"a-{i % 7}", "timestamp": T0, "sentAt": T0}
    msg |= {"receivedAt": T0, "context": {"library": {"name": "analytics.js"}}}
    msg |= {"event": ev.name} if ev.type == "track" else {"userId": "u-1"}
    msg |= {"name": "Home"} if ev.type == "page" else {"groupId": "g-1"} if ev.type == "group" else {}
    if not isinstance(payload, str) or payload != "__drop__":
        msg["traits" if ev.type in ("identify", "group") else "properties"] = payload
    return msg


# -- the documented differences, recognized in the line ---------------------------------------------
LONE_ESCAPE = re.compile(r"\\u[dD][89abAB]..(?!\\u[dD][c-fC-F])|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F]")


def huge_paths(line: str) -> set[str]:
    """Where the line's payload holds an integer beyond the double range, as trackplan shows paths."""
    big = object()
    msg = json.loads(line, parse_int=lambda s: big if math.isinf(float(s)) else int(s))
    key = "traits" if msg.get("type") in ("identify", "group") else "properties"

    def walk(v, path):
        if v is big:
            yield path
        for k, x in v.items() if isinstance(v, dict) else ((None, x) for x in v) if isinstance(v, list) else ():
            yield from walk(x, f"{path}[*]" if k is None else f"{path}.{k}")

    return set(walk(msg.get(key), f"$.{key}"))


def documented(line: str, rules: set[tuple[str, str]]) -> str | None:
    """The documented difference by which trackplan rejects a line the oracle accepts, if it is one."""
    if LONE_ESCAPE.search(line):
        return "unpaired surrogate" if rules == {("json", "$")} else None
    huge = huge_paths(line)
    if huge and ("json" in {r for r, _ in rules}) and all(r == "json" or p in huge for r, p in rules):
        return "integer beyond the double range"
    return None


def check_plan(seed: int, d, seen: Counter) -> list[str]:
    """Plan `seed` in directory `d` and its messages: the lines whose verdicts differ undocumented."""
    rng = random.Random(seed)
    specs = write_plan(rng, d)
    plan = load_plan(d)
    schemas = {s["title"]: Draft202012Validator(s, format_checker=FORMAT_CHECKER) for s in compile_plan(plan).values()}
    by_type: dict[str, str] = {}  # the first plan event of each call type validates its calls (README)
    for e in plan.events.values():
        if e.type != "track":
            by_type.setdefault(e.type, e.name)
    events, lines, names = list(plan.events.values()), [], []
    for i in range(MESSAGES):
        ev = rng.choice(events)
        payload = {k: gen_value(rng, p) for k, p in ev.properties.items() if p.required or rng.random() < 0.8}
        for _ in range(0 if rng.random() < 0.15 else rng.choice([1, 1, 1, 2, 3])):
            payload = payload_mutation(rng, ev, payload) if isinstance(payload, dict) else payload
        lines.append(_line(message(ev, i, payload)))
        names.append(ev.name)
    f = d / "events.jsonl"
    f.write_bytes("".join(line + "\n" for line in lines).encode())
    try:
        (rep,) = validate_files(plan, [str(f)], max_errors=10**6)
        con = duckdb.connect(config={"threads": 1})
        con.register("inp", next(read_files([str(f)])))
        Validator(plan).run(con, "inp", "out")
        ingest = [v for _, v in con.execute("select line_no, valid from out order by line_no").fetchall()]
    except duckdb.Error as exc:  # (one plan's crash is reported with the plan, not instead of the others)
        return [f"plan {seed}: {type(exc).__name__}: {str(exc).splitlines()[0]}\n  {json.dumps(specs)}"]
    rules: dict[int, set] = {}
    for e in rep.errors:
        rules.setdefault(e["line"], set()).add((e["rule"], e["path"]))
    problems = []
    for i, line in enumerate(lines):
        ours, theirs = i + 1 not in rules, _oracle(line, schemas, by_type)
        seen["oracle valid" if theirs else "oracle invalid"] += 1
        if ours == theirs == ingest[i]:
            continue
        if ours == ingest[i] and not ours and theirs and (why := documented(line, rules[i + 1])):
            seen[why] += 1
        else:
            says = "accepts" if ours else f"rejects {sorted(rules[i + 1])}"
            problems.append(
                f"plan {seed} line {i + 1}: trackplan {says}, ingest {'accepts' if ingest[i] else 'rejects'}, "
                f"oracle {'accepts' if theirs else 'rejects'}\n  {line}\n  {json.dumps(specs[names[i]])}"
            )
    return problems


@pytest.mark.parametrize("seed", SEEDS)
def test_random_plans_validate_ingest_and_jsonschema_agree(seed, tmp_path):
    assert {"email", "uri", "uuid", "date", "date-time", "ipv4"} <= set(FORMAT_CHECKER.checkers)
    seen: Counter = Counter()
    # plan n: random.Random(n), n = seed * PLANS + k (0..119; `make test-seeds` shifts them all)
    problems = [p for k in range(PLANS) for p in check_plan(seed * PLANS + k, tmp_path / f"plan{k}", seen)]
    assert not problems, f"{len(problems)} undocumented disagreements:\n" + "\n".join(problems[:12])
    # the messages test something: both verdicts, in numbers. Over seeds 0-159 the oracle's valid share
    # was 0.28 on average (sd 0.035, 0.19-0.37); the bound of 0.2 it had failed on seeds 21 and 123,
    # 2.3 sd from the mean. These are over 5 sd from it.
    assert 0.1 < seen["oracle valid"] / (PLANS * MESSAGES) < 0.6, seen
