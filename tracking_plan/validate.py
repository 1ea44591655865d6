"""The one validation engine: the plan compiled into set-based DuckDB SQL.

`trackplan validate` and the ingestion assets both call `Validator.run`, so the CLI and the
pipeline can never disagree about an event. A line is parsed once for its envelope (a typed struct)
and its properties once more, inside its own event's dense second pass; every rule is a vectorized
expression: no per-event Python.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from fractions import Fraction

import duckdb

from .formats import DATE_TIME, format_ok
from .model import PII_COLUMNS, Event, Plan, Property
from .patterns import PatternError, re2_pattern

ENVELOPE_TYPES = ("track", "page", "screen", "identify", "group", "alias")
NULLISH_IDS = ("", "null", "undefined", "none", "nil", "[object Object]")
NULLISH_RE = r"(?i)\s*(" + "|".join(re.sub(r"([\[\](){}.*+?^$|\\])", r"\\\1", x) for x in NULLISH_IDS) + r")\s*"
# the line without the byte-order mark that may start a file or a batch body (it is no part of the JSON)
BOMLESS = "(case when starts_with(raw, chr(65279)) then raw[2:] else raw end)"
# the ids of a message: (column, JSON key); each must be a JSON string or integer when it is there
ID_COLS = {
    "message_id": "messageId",
    "anonymous_id": "anonymousId",
    "user_id": "userId",
    "previous_id": "previousId",
    "group_id": "groupId",
}
# the timestamps of a message: (column, (JSON key, parsed column)); each must be RFC 3339 when there
TIMESTAMP_COLS = {
    "ts_raw": ("timestamp", "ts_in"),
    "original_ts_raw": ("originalTimestamp", "original_ts"),
    "sent_at_raw": ("sentAt", "sent_at"),
    "received_at_raw": ("receivedAt", "received_at_in"),
}
_DT = DATE_TIME.removeprefix("^").removesuffix("$")
TIMESTAMPS_RE = f"(?:{_DT}(?:\\|{_DT})*)?"


def _stamp(col: str) -> str:
    """SQL: the RFC 3339 date-time in text column `col` as a UTC timestamp; NULL when it is not one
    (the cast is the calendar check: 2026-02-29 does not cast; year 0000 is no RFC 3339 year).

    A time in UTC (`Z`, as SDKs send it) is cast to a plain timestamp, which reads the `Z` as UTC:
    the same value as through timestamptz whenever either casts (tests/test_validate_timestamps.py
    compares the two over every shape), at half the CPU of the time zone's conversions."""
    return (
        f"case when _ts_shape or regexp_matches({col}, {lit(DATE_TIME)}) "
        f"then coalesce(case when right({col}, 1) = 'Z' then try_cast({col} as timestamp) end, "
        # RFC 3339 allows a lowercase t and z, which DuckDB's cast does not read
        f"coalesce(try_cast({col} as timestamptz), try_cast(upper({col}) as timestamptz))::timestamp) end"
    )


def _year_one(col: str, parsed: str) -> str:
    """SQL: `parsed` unless its text says year 0000 (DuckDB reads it as 1 BC; RFC 3339 has no year 0)."""
    return f"case when {parsed} < timestamp '0001-01-02' and left({col}, 4) = '0000' then null else {parsed} end"


# SQL true when JSON text {x} (already valid) holds a NaN or Infinity token outside its strings; run
# only on the rare lines that contain either word
NON_FINITE = (
    "len(regexp_extract_all(regexp_replace(json({x}), '\"(?:[^\"\\\\]|\\\\.)*\"', '', 'g'), '(?:NaN|Infinity)')) > 0"
)

GENERAL = " (somewhere in it)"  # the message of a payload-wide rule

# a number whose double is infinite has an exponent of 3+ digits or a run of 300+ digits: a payload
# text without a 3-digit exponent or a run of 24 digits cannot hold one (a cheap test before the exact
# one; a counted repetition of 300 costs RE2 more to compile)
HUGE_NUMBER_HINT = r"[0-9][eE]\+?[0-9][0-9][0-9]|[0-9]{24}"
# SQL true when JSON text {x} holds a number token (outside strings) whose double is not finite
NOT_FINITE_NUMBER = (
    "len(list_filter(regexp_extract_all(regexp_replace({x}, '\"(?:[^\"\\\\]|\\\\.)*\"', '', 'g'), "
    "'-?[0-9]+(?:\\.[0-9]+)?(?:[eE][+-]?[0-9]+)?'), lambda n: not isfinite(try_cast(n as double)))) > 0"
)
_PAYLOAD = "(case when type in ('identify', 'group') then traits else properties end)"
# Checks of the whole payload at every depth, described by the plan or not, computed once per row
# (not once per plan event: their regexes cost RE2 ~2 ms to compile per query) as pass 2 sorts its
# rows, each behind a cheap test of the payload's minified text
PAYLOAD_WIDE = {
    # a key given twice in an object nested in it: only a text that opens an object after a ':'
    # or '[' can hold a nested object
    "_nested_dup": (
        f"coalesce(case when contains({_PAYLOAD}::varchar, ':{{') or contains({_PAYLOAD}::varchar, '[{{') then "
        f"len(list_filter(json_keys({_PAYLOAD}, '$..*'), lambda k: len(k) > len(list_distinct(k)))) > 0 end, false)"
    ),
    "_huge_number": (
        f"coalesce(case when regexp_matches({_PAYLOAD}::varchar, '{HUGE_NUMBER_HINT}') "
        f"then {NOT_FINITE_NUMBER.format(x=_PAYLOAD + '::varchar')} end, false)"
    ),
}

# Envelope fields read for every event: (output column, JSON path)
ENVELOPE = [
    ("type", "$.type"),
    ("event", "$.event"),
    ("name", "$.name"),
    ("message_id", "$.messageId"),
    ("anonymous_id", "$.anonymousId"),
    ("user_id", "$.userId"),
    ("previous_id", "$.previousId"),
    ("group_id", "$.groupId"),
    ("ts_raw", "$.timestamp"),
    ("original_ts_raw", "$.originalTimestamp"),
    ("sent_at_raw", "$.sentAt"),
    ("received_at_raw", "$.receivedAt"),
    ("library_name", "$.context.library.name"),
    ("library_version", "$.context.library.version"),
    ("utm_source", "$.context.campaign.source"),
    ("utm_medium", "$.context.campaign.medium"),
    ("utm_campaign", "$.context.campaign.name"),
    ("utm_term", "$.context.campaign.term"),
    ("utm_content", "$.context.campaign.content"),
    ("page_url", "$.context.page.url"),
    ("page_path", "$.context.page.path"),
    ("page_referrer", "$.context.page.referrer"),
    ("session_id", "$.context.sessionId"),
    ("region", "$.context.location.region"),
]


HUGE = 10**37  # inside HUGEINT's range (1.7e38): a 64-bit integer compares exactly with a bound clamped to it


def _int_text_beyond(v: str, bound: int, side: str) -> str:
    """SQL true when the integer literal `v` (JSON text: -?[0-9]+, no leading zero) is below (`side`
    'min') or above ('max') the integer `bound`, exactly at any size: by sign, digit count, then digits."""
    mag = f"ltrim({v}, '-')"
    neg = f"(starts_with({v}, '-') and {mag} <> '0')"
    digits = str(abs(bound))
    n = len(digits)
    above = f"(length({mag}) > {n} or (length({mag}) = {n} and {mag} > '{digits}'))"  # |v| > |bound|
    below = f"(length({mag}) < {n} or (length({mag}) = {n} and {mag} < '{digits}'))"  # |v| < |bound|
    if side == "max":
        return f"(not {neg} and {above})" if bound >= 0 else f"(not {neg} or {below})"
    return f"({neg} or {below})" if bound > 0 else f"({neg} and {above})"


def _beyond(t: str, v: str, bound: float, side: str) -> str:
    """SQL true when the JSON number (type `t`, text `v`) is below (`side` 'min') or above ('max')
    `bound`, compared exactly as numbers: an integer literal at any size (9223372036854775807 is not
    9223372036854775808, nor 18446744073709551617 ...618: DuckDB keeps a literal beyond 64 bits as its
    text), a number written with a fraction or an exponent as the double it parses to (as JSON parsers
    read it: 1.0 is 1), compared with the bound exactly, as Python compares a float with an int (a
    bound of 38 digits is not rounded to the double nearest it)."""
    d = f"try_cast({v} as double)"
    if side == "min":
        ib, op = math.ceil(bound), "<"
    else:
        ib, op = math.floor(bound), ">"
    try:
        b = float(bound)
    except OverflowError:  # an integer bound beyond the doubles: every double is inside it
        b = math.copysign(sys.float_info.max, bound)
    if not math.isfinite(b):
        b = math.copysign(sys.float_info.max, b)
    # where the value's double equals the bound's nearest double, the bound's rounding decides
    tie = Fraction(b) < Fraction(bound) if side == "min" else Fraction(b) > Fraction(bound)
    return (
        f"(case when {t} in ('BIGINT', 'UBIGINT') then try_cast({v} as hugeint) {op} "
        f"{max(-HUGE, min(HUGE, ib))}::hugeint "
        f"when regexp_full_match({v}, '-?[0-9]+') then {_int_text_beyond(v, ib, side)} "
        f"else {d} {op} {b!r} or ({d} = {b!r} and {str(tie).lower()}) end)"
    )


def _json_equals(x: str, m, t: str | None = None, v: str | None = None) -> str:
    """SQL true when the JSON value `x` equals the plan value `m` as JSON values (NULL where a key of
    `m` is missing: callers coalesce): numbers exactly (`_beyond`), objects key by key in any order,
    arrays item by item. `t`, `v`: the value's JSON type and text when the caller has them already."""
    t, v = t or f"json_type({x})", v or f"({x} ->> '$')"
    if m is None:
        return f"({t} = 'NULL')"
    if isinstance(m, bool):
        return f"({t} = 'BOOLEAN' and {v} = {lit(str(m).lower())})"
    if isinstance(m, int | float):
        return f"({t} in ('BIGINT', 'UBIGINT', 'DOUBLE') and not {_beyond(t, v, m, 'min')} and not {_beyond(t, v, m, 'max')})"
    if isinstance(m, str):
        return f"({t} = 'VARCHAR' and {v} = {lit(m)})"
    if isinstance(m, list):
        items = [_json_equals(f"json_extract({x}, '$[{i}]')", e) for i, e in enumerate(m)]
        return "(" + " and ".join([f"{t} = 'ARRAY'", f"json_array_length({x}) = {len(m)}", *items]) + ")"
    keys = [_json_equals(f"json_extract({x}, {lit(json_path(k))})", e) for k, e in m.items()]
    return "(" + " and ".join([f"{t} = 'OBJECT'", f"len(json_keys({x})) = {len(m)}", *keys]) + ")"


def lit(value) -> str:
    """A SQL literal for a plan value. Plan text never reaches SQL any other way."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(float(value)) if isinstance(value, float) else str(value)
    return "'" + str(value).replace("'", "''") + "'"


def ident(name: str) -> str:
    """A SQL identifier for any name (a table, column or schema), quoted."""
    return '"' + name.replace('"', '""') + '"'


def json_path(*parts: str) -> str:
    """DuckDB's path to the value under object keys `parts`: `$.a.b` when every key is a plain name,
    else a JSON Pointer (RFC 6901: `/a~1b/*`), which names any key as it is (in DuckDB's `$."*"` the
    star is a wildcard, and `$.""` does not parse)."""
    if all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", p) for p in parts):
        return "$" + "".join("." + p for p in parts)
    return "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


def _consent_pref(plan: Plan, j: int, category: str) -> str:
    """The row's answer for consent `category` (lower-case text; NULL: not asked, the plan's default
    holds), over pass 1's row (`_pref_{j}`: the category's value as the context struct read it, NULL
    when absent). Read ignoring the key's case (OneTrust and Segment send "Analytics"), and failing
    closed: preferences that are not an object ("denied", []) are no grant for any category, and a
    value that is not true (false, "denied", [], 0) is none either (pipelines/ingest/load.py:
    granted only when it is 'true'). The common row (the exact key) costs nothing more; the JSON is
    read again only where the line names the field and the exact key gave nothing."""
    field = plan.consent.field.split(".")
    # (the preferences parsed out of the line once: a one-element list's lambda names them)
    answer = (
        "case when p is null or json_type(p) = 'NULL' then null "
        "when json_type(p) <> 'OBJECT' then 'not an object' "
        f"else lower(json_extract_string(lower(p::varchar), {lit(json_path(category.lower()))})) end"
    )
    return (
        f"case when _pref_{j} is not null then lower(_pref_{j}) "
        f"when not _is_obj or not contains(raw, {lit(field[-1])}) then null "
        f"else list_transform([json_extract({BOMLESS}, {lit(json_path(*field))})], lambda p: {answer})[1] end"
    )


def pii_identifiers(plan: Plan, column: str) -> list[str]:
    """The top-level keys of `column` (one of model.PII_COLUMNS) that identity.yaml names as the source
    of a `pii: true` identifier: stored as their keyed hash on every event (with hash_pii_identifiers,
    the default), whether or not an event's own property says pii."""
    assert column in PII_COLUMNS, column
    if not plan.identity.hash_pii_identifiers:
        return []
    prefix = column + "."
    return sorted({i.source[len(prefix) :] for i in plan.identity.identifiers if i.pii and i.source.startswith(prefix)})


def hashed_keys(plan: Plan, column: str, kind: str) -> set[str]:
    """The top-level keys of stored `column` hashed on every call of `kind` (pii_identifiers): an
    identify or group call's properties are its traits, so the traits' keys there too. What the
    ingest hashes (pipelines/ingest/load.py) and the gates therefore leave out (quality_checks.rules)."""
    keys = set(pii_identifiers(plan, column))
    if column == "properties" and kind in ("identify", "group"):
        keys |= set(pii_identifiers(plan, "traits"))
    return keys


def context_pii_traits(plan: Plan) -> list[str]:
    """PII traits of the identify call, which SDKs also copy into context.traits of later events, and
    the traits a pii identifier is read from (pii_identifiers)."""
    return sorted(
        {n for ev in plan.events.values() if ev.type == "identify" for n, p in ev.properties.items() if p.pii}
        | set(pii_identifiers(plan, "traits"))
        | set(pii_identifiers(plan, "context.traits"))
    )


def validated_events(plan: Plan) -> list[Event]:
    """The plan events rows are checked against, in key order: every track event, then the first
    event of each other call type (it validates every call of that type). The gates read it too."""
    track = [e for e in plan.events.values() if e.type == "track"]
    other: dict[str, Event] = {}
    for e in plan.events.values():
        if e.type != "track":
            other.setdefault(e.type, e)
    return [*track, *other.values()]


def loadable_event_names(plan: Plan) -> list[str]:
    """Every event_name a valid row can carry: a validated plan event's name, or the call type's own
    name (Alias, Screen, ...) for a call type the plan has no event for."""
    keyed = validated_events(plan)
    covered = {e.type for e in keyed}
    return sorted(
        {e.name for e in keyed} | {t[0].upper() + t[1:] for t in ENVELOPE_TYPES if t != "track" and t not in covered}
    )


# The receipt day of a landing file: its date=YYYY-MM-DD folder (NULL for a file outside one)
# (the regex runs on every row: a path without 'date=' in it, a file outside any such folder, skips it)
PARTITION_DAY = (
    r"case when contains(source_file, 'date=') then "
    r"try_cast(regexp_extract(source_file, 'date=(\d{4}-\d{2}-\d{2})[/\\][^/\\]+$', 1) as date) end"
)
# ... or, when the relation has a partition_day column, the day the landing layout gave the file
# (tracking_plan.landing: Segment's received-day folder, Snowplow's loader folder, date=YYYY-MM-DD)
PARTITION_DAY_COLUMN = f"coalesce(try_cast(partition_day as date), {PARTITION_DAY})"


def _split_path(path: str) -> list[str]:
    """'$.context.campaign.source' -> ['context', 'campaign', 'source'] (quoted parts as json_path writes them)."""
    return [
        a or b.replace('\\"', '"').replace("\\\\", "\\")
        for a, b in re.findall(r'\.(?:([A-Za-z_][A-Za-z0-9_]*)|"((?:[^"\\]|\\.)*)")', path)
    ]


REASONS = "struct(rule varchar, path varchar, message varchar)[]"  # the type of reasons and warnings
# a property rule's reason as pass 2 keeps it (Validator._event_pass): its message in parts (Message),
# `arg` the position of the value it reads among its event's, `warn` whether it is a warning
REASON_PARTS = {
    "rule": "VARCHAR",
    "path": "VARCHAR",
    "before": "VARCHAR",
    "arg": "INTEGER",
    "after": "VARCHAR",
    "warn": "BOOLEAN",
}
EMPTY = f"[]::{REASONS}"


def _any(rules: list[tuple[str, str]]) -> str:
    """SQL true when at least one rule fails (a NULL condition does not fail)."""
    return "(" + " or ".join(f"coalesce({c}, false)" for c, _ in rules) + ")" if rules else "false"


def _listed(rules: list[tuple[str, str]]) -> str:
    """SQL list of the reasons of the failing rules (NULL for the others)."""
    return "[" + ", ".join(f"case when {c} then {r} end" for c, r in rules) + "]"


def _reason(rule: str, path: str, message_sql: str) -> str:
    return f"{{'rule': {lit(rule)}, 'path': {lit(path)}, 'message': {message_sql}}}"


@dataclass(frozen=True)
class Message:
    """The message of a Check's reason: `before`, then the text of SQL `arg` (a value read from the
    row) when there is one, then `after`. A NULL `arg` makes the message NULL, as SQL's || does."""

    before: str
    arg: str | None = None
    after: str = ""


@dataclass(frozen=True)
class Check:
    """One rule of the plan on one value, compiled to SQL: the single definition the validator
    quarantines by and the row-level gates on ingest.events are compiled from
    (quality_checks.rules.plan_rules), so the two can never disagree about a value."""

    rule: str  # the code a quarantined line names: required, type, enum, pattern, minimum, ...
    path: str  # where, as the reason shows it: $.properties.products[*].price
    fails: str  # SQL true when the value breaks the rule (over the property columns, see property_columns)
    message: Message  # what the reason says
    null: bool = False  # the rule is "this value is not null" (a non-nullable type given null)
    prop: str | None = None  # the top-level plan property it checks (None: the payload as a whole)


def property_columns(source: str, cols: dict[str, int], reads: str | None = None) -> str:
    """SQL adding, to every row of `source` (a select with a JSON column `_props`), the columns the
    property Checks read: per plan property `name` numbered i in `cols`, `_t{i}` its JSON type (NULL
    when the key is not there, 'NULL' when it holds null), `_x{i}` its text and `_p{i}` its JSON; and
    `_keys`, the payload's keys. `reads`: the SQL that reads them; `_p{i}` and `_keys` are made only
    where it names them (None: all). The validator's second pass (Validator._event_pass) and the
    gates on ingest.events (quality_checks.rules) both read these columns: one definition of them.

    The payload is parsed once for the JSON types of all the properties (one `json_type` over a list
    of paths) and once for their texts (one `json_extract_string`); a property's JSON itself is
    extracted only where a rule reads it (objects, arrays, enums of objects), and the key list only
    where a rule needs it. Measured on Page Viewed rows: 2x cheaper than a struct of JSON values with
    a `json_type` and a `->>` per property (the gates' form until then: 1M events, ~0.4 CPU-s more)."""

    def read(name: str) -> bool:
        return reads is None or re.search(rf"\b{name}\b", reads) is not None

    parsed = ""
    if cols:
        paths = "[" + ", ".join(lit(json_path(n)) for n in cols) + "]"
        parsed = f", json_type(_props, {paths}) as _tl, json_extract_string(_props, {paths}) as _xl"
        parsed += "".join(
            f", json_extract(_props, {lit(json_path(n))}) as _p{i}" for n, i in cols.items() if read(f"_p{i}")
        )
    if read("_keys"):
        parsed += ", coalesce(json_keys(_props), []) as _keys"
    # (a list's positions are the order of `cols`, whatever numbers its properties have)
    typed = "".join(f", _tl[{j + 1}] as _t{i}, _xl[{j + 1}] as _x{i}" for j, i in enumerate(cols.values()))
    return f"select *{typed} from (select *{parsed} from ({source}))"


PARSED_KEPT = 16  # parsed statements a Validator keeps (see Validator._execute)


class Validator:
    """Compiles a plan into SQL once; `run` applies it to a relation of
    (source_file, line_no, raw, pre_reason). Planning the second pass costs ~0.15 s, so callers
    validate many files in one run (a whole partition), not one run per file."""

    def __init__(self, plan: Plan, unexpected: str | None = None, verdicts_only: bool = False):
        """`verdicts_only` compiles the variant `trackplan validate` runs: the same rules and the
        same verdicts, without the outputs only loading needs (the verbatim line, the context and the
        fields read from it), which are returned as NULL."""
        self.plan = plan
        self.defaults = plan.header.defaults
        self.unexpected_default = unexpected or self.defaults.unexpected_properties
        self.verdicts_only = verdicts_only
        self._hoist: list[tuple[str, str]] | None = None  # (column, SQL) computed once per row (see _event_pass)
        self.sql_template = self._compile()
        self._parsed: dict[str, duckdb.Statement] = {}  # (see _execute)
        self._parsing = threading.Lock()

    # -- compile -------------------------------------------------------------------------------
    # Pass 1 parses each row once for the envelope (json_transform into a struct: 1.6x faster than
    # json_extract_string over a list of paths) and writes every row. Pass 2 is one select per plan
    # event over pass 1's table: only that event's rows, dense; its properties parsed once into a
    # struct of exactly its plan properties, each property's JSON type and text computed once, each
    # rule's condition computed once. Measured on the sample traffic (800k events, one core): one
    # query with a UNION ALL branch per event over a materialized CTE, 71k ev/s; one CASE per event
    # over mixed rows, 65k ev/s (DuckDB evaluates every branch on fragments of each vector); the two
    # passes, 104k ev/s. A MAP of the properties instead of a struct was 2x slower.

    def _value_rules(
        self, x: str, t: str, v: str, prop: Property, shown: str, closed: bool, depth: int = 0
    ) -> list[Check]:
        """The Checks of `prop` on a value that is there (the key exists): `x` is the SQL of its JSON,
        `t` its JSON type ('NULL' for null), `v` its text. `closed`: objects without an
        `additional_properties` of their own reject keys the plan does not list (the event's
        `unexpected_properties: reject`, inherited). The README's table "What each constraint
        checks" is this function in words; compile.property_schema emits the same meaning."""
        out: list[Check] = []
        ptype = prop.type

        def msg(before: str, arg: str, after: str, static: str) -> Message:
            # inside an array the value is a lambda's variable, which the reason (built outside) cannot read
            return Message(before, arg, after) if depth == 0 else Message(static + " (in at least one item)")

        def add(rule: str, fails: str, message: Message, path: str = shown, null: bool = False) -> None:
            out.append(Check(rule, path, fails, message, null))

        d = f"try_cast({v} as double)"
        is_num = f"{t} in ('BIGINT', 'UBIGINT', 'DOUBLE')"
        # 1e400 and other numbers past the double range are not JSON numbers (NaN/Infinity are caught
        # for the whole line); an integer beyond 64 bits is fine (it is kept as its text)
        if ptype is None:  # (a typed number's type rule says so)
            add(
                "json",
                f"{t} = 'DOUBLE' and not isfinite({d})",
                msg(
                    "number ", v, " is out of range (not a JSON number)", "a number is out of range (not a JSON number)"
                ),
            )
        if ptype is not None:
            ok = {
                "string": f"{t} = 'VARCHAR'",
                "timestamp": f"{t} = 'VARCHAR'",
                "boolean": f"{t} = 'BOOLEAN'",
                "object": f"{t} = 'OBJECT'",
                "array": f"{t} = 'ARRAY'",
                "number": f"({t} in ('BIGINT', 'UBIGINT') or ({t} = 'DOUBLE' and isfinite({d})))",
                # JSON has one number type: 3.0 and 3e0 are the integer 3 (as in JSON Schema)
                "integer": f"({t} in ('BIGINT', 'UBIGINT') or ({t} = 'DOUBLE' and isfinite({d}) and {d} = floor({d})))",
            }[ptype]
            if prop.nullable:
                add(
                    "type",
                    f"{t} <> 'NULL' and not {ok}",
                    msg(f"expected {ptype} or null, got ", f"lower({t})", "", f"expected {ptype} or null"),
                )
            else:
                got = msg(f"expected {ptype}, got ", f"lower({t})", "", f"expected {ptype}")
                # null and a wrong type are one rule in two parts: the gates check "not null" apart
                add("type", f"{t} = 'NULL'", got, null=True)
                add("type", f"{t} <> 'NULL' and not {ok}", got)
        else:
            ok = "true"
        if ptype == "timestamp":
            add(
                "format",
                f"{ok} and not {format_ok('date-time', v, lit)}",
                msg("value ", v, " is not an RFC 3339 date-time", "not an RFC 3339 date-time"),
            )
        if prop.enum is not None:
            members = self._enum_sql(x, t, v, list(prop.enum) + ([None] if prop.nullable else []))
            listed = ", ".join(map(str, prop.enum))
            add(
                "enum",
                f"{ok} and not {members}",
                msg("value ", f"coalesce({v}, 'null')", f" is not one of {listed}", f"not one of {listed}"),
            )
        is_str = f"{t} = 'VARCHAR'"
        if prop.pattern is not None:
            try:
                rx = re2_pattern(prop.pattern)  # (the plan's ECMA-262 meaning, in RE2: tracking_plan/patterns.py)
            except PatternError as exc:
                raise PatternError(f"{shown}: pattern {prop.pattern!r} cannot run: {exc} (lint L154)") from None
            add(
                "pattern",
                f"{is_str} and not regexp_matches({v}, {lit(rx)})",
                msg("value ", v, f" does not match {prop.pattern}", f"does not match {prop.pattern}"),
            )
        if prop.format is not None:
            add("format", f"{is_str} and not {format_ok(prop.format, v, lit)}", Message(f"not a valid {prop.format}"))
        if prop.minimum is not None:
            add(
                "minimum",
                f"{is_num} and {_beyond(t, v, prop.minimum, 'min')}",
                msg("value ", v, f" is below the minimum {prop.minimum}", f"below the minimum {prop.minimum}"),
            )
        if prop.maximum is not None:
            add(
                "maximum",
                f"{is_num} and {_beyond(t, v, prop.maximum, 'max')}",
                msg("value ", v, f" is above the maximum {prop.maximum}", f"above the maximum {prop.maximum}"),
            )
        if ptype == "array":  # the plan has one length vocabulary: items of an array, characters of a string
            n, unit, is_len = f"json_array_length({x})", "items", f"{t} = 'ARRAY'"
        else:
            n, unit, is_len = f"length({v})", "characters", is_str
        if prop.min_length is not None:
            add("min_length", f"{is_len} and {n} < {prop.min_length}", Message(f"fewer than {prop.min_length} {unit}"))
        if prop.max_length is not None:
            add("max_length", f"{is_len} and {n} > {prop.max_length}", Message(f"more than {prop.max_length} {unit}"))
        if prop.items is not None:
            # the array is parsed once for all its item rules: one lambda over its items computes a
            # bit per rule, OR-ed over the items (a lambda and a parse per rule cost 5x more)
            y = f"_y{depth}"
            sub = self._value_rules(
                y, f"json_type({y})", f"({y} ->> '$')", prop.items, shown + "[*]", closed, depth + 1
            )
            for g in range(0, len(sub), 62):
                part = sub[g : g + 62]
                bits = " + ".join(f"(case when {c.fails} then {1 << j} else 0 end)" for j, c in enumerate(part))
                mask = (
                    f"(case when {t} = 'ARRAY' then "
                    f"list_aggregate(list_transform(json_extract({x}, '$[*]'), lambda {y}: {bits}), 'bit_or') end)"
                )
                if self._hoist is not None and depth == 0:  # (in the validator's pass; the gates inline it)
                    self._hoist.append((f"_m{len(self._hoist)}", mask))
                    mask = self._hoist[-1][0]
                for j, c in enumerate(part):
                    out.append(replace(c, fails=f"({mask} & {1 << j}) <> 0"))
        if ptype == "object":
            subs = prop.properties or {}
            # an object that lists no properties is free-form unless it says additional_properties: false
            shut = (
                (not prop.additional_properties) if prop.additional_properties is not None else (closed and bool(subs))
            )
            is_obj = f"{t} = 'OBJECT'"
            for sub, sp in subs.items():
                path = lit(json_path(sub))
                sx = f"json_extract({x}, {path})"
                st = f"json_type({x}, {path})"  # NULL: the key is not there; 'NULL': it holds null
                if sp.required:
                    add(
                        "required",
                        f"{is_obj} and {st} is null",
                        Message("required property is missing"),
                        f"{shown}.{sub}",
                    )
                for c in self._value_rules(sx, st, f"({x} ->> {path})", sp, f"{shown}.{sub}", shut, depth):
                    out.append(replace(c, fails=f"{is_obj} and {st} is not null and ({c.fails})"))
            keys = f"json_keys({x})"
            add(
                "duplicate_key",
                f"{is_obj} and len({keys}) > len(list_distinct({keys}))",
                Message("an object has the same key twice"),
            )
            if shut:
                known = "[" + ", ".join(lit(k) for k in subs) + "]"
                add(
                    "unexpected_property",
                    f"{is_obj} and not list_has_all({known}, {keys})",
                    msg(
                        "not in the plan: ",
                        f"array_to_string(list_filter({keys}, lambda k: not list_contains({known}, k)), ', ')",
                        "",
                        "a key that is not in the plan",
                    ),
                )
        return out

    @staticmethod
    def _enum_sql(x: str, t: str, v: str, members: list) -> str:
        """SQL true when the value equals one of `members` as JSON values (JSON Schema's `enum`): 1,
        1.0 and 1e0 are one number; true is not 1; objects compare key by key whatever their order,
        arrays item by item, their values again as JSON values."""
        conds = []
        strings = [m for m in members if isinstance(m, str)]
        if strings:  # (one IN list for the strings)
            conds.append(f"({t} = 'VARCHAR' and {v} in ({', '.join(lit(s) for s in strings)}))")
        for m in members:
            if not isinstance(m, str):
                conds.append(f"coalesce({_json_equals(x, m, t, v)}, false)")
        return "(" + " or ".join(conds) + ")" if conds else "false"

    def event_checks(self, ev: Event, prop_cols: dict[str, int]) -> tuple[list[Check], list[Check]]:
        """(error Checks, warning Checks) of one plan event over the property columns numbered by
        `prop_cols` (see property_columns). The quality gates on ingest.events are compiled from
        the error Checks of the properties (quality_checks.rules.plan_rules)."""
        shown_base = "$.traits" if ev.type in ("identify", "group") else "$.properties"
        policy = ev.unexpected_properties or self.unexpected_default
        present = " + ".join(f"(_t{i} is not null)::integer" for i in prop_cols.values()) or "0"
        # n keys that include n distinct plan properties are distinct plan properties: the set-based
        # checks of the keys (costly: list_distinct, list_has_all ~0.25 µs a row) run only on
        # payloads with other keys, or the same key twice
        beyond = f"len(_keys) <> {present}"

        def whole(rule: str, fails: str, message: Message, path: str = shown_base) -> Check:
            return Check(rule, path, fails, message)

        checks: list[Check] = (
            []
            if ev.type == "alias"
            else [  # an alias call has no payload
                # the payload is an object when it is there (null is not an object)
                whole(
                    "type",
                    "_payload_null or (_props is not null and left(_props::varchar, 1) <> '{')",
                    Message("expected an object"),
                ),
                whole(
                    "duplicate_key",
                    f"case when {beyond} then len(_keys) > len(list_distinct(_keys)) else false end",
                    Message("an object has the same key twice"),
                ),
                # any object nested in the payload, described or not (computed once for all events
                # as pass 2 sorts its rows: see PAYLOAD_WIDE)
                whole("duplicate_key", "_nested_dup", Message("an object has the same key twice" + GENERAL)),
                # a number past the double range (1e400) anywhere in the payload, described or not
                whole("json", "_huge_number", Message("a number is out of range (not a JSON number)" + GENERAL)),
            ]
        )
        for name, prop in ev.properties.items():
            i = prop_cols[name]
            shown = f"{shown_base}.{name}"
            if prop.required:
                checks.append(
                    replace(
                        whole("required", f"_t{i} is null", Message("required property is missing"), shown), prop=name
                    )
                )
            try:
                rules = self._value_rules(f"_p{i}", f"_t{i}", f"_x{i}", prop, shown, policy == "reject")
            except PatternError as exc:
                raise PatternError(f"event {ev.name!r}: {exc}") from None
            for c in rules:
                checks.append(replace(c, fails=f"_t{i} is not null and ({c.fails})", prop=name))
        known = "[" + ", ".join(lit(k) for k in ev.properties) + "]"
        extra = f"list_filter(_keys, lambda k: not list_contains({known}, k))"
        warns: list[Check] = []
        unexpected = whole(
            "unexpected_property",
            f"case when {beyond} then not list_has_all({known}, _keys) else false end",
            Message("not in the plan: ", f"array_to_string({extra}, ', ')"),
        )
        if policy == "reject":
            checks.append(unexpected)
        elif policy == "warn":
            warns.append(unexpected)
        if ev.status == "deprecated":
            msg = f"event is deprecated{' (sunset ' + ev.sunset + ')' if ev.sunset else ''}" + (
                f"; use {ev.replaced_by!r}" if ev.replaced_by else ""
            )
            warns.append(whole("deprecated", "true", Message(msg), "$.event"))
        return checks, warns

    def _event_pass(self, ev: Event, k: int) -> tuple[str, list[dict]]:
        """SQL over the first pass's output table ({relation}): the rows of plan event number `k`
        only, dense; returns (row id `_rid`, `_k` = k, `_r`) per row, and the event's reasons in rule
        order (rule, path, message parts, warning or not). `_r` is NULL where no rule fails, else
        {'f': whether each rule fails, 'a': the values its messages read}: the reasons themselves
        are built from them once for every event (REASONS_SQL), not by SQL of their own per rule
        (planning that SQL cost ~0.1 CPU-s per run).

        The payload is parsed once for the JSON types of all its plan properties and once for
        their texts (property_columns, the columns the gates on ingest.events read too)."""
        local = {name: i for i, name in enumerate(ev.properties)}
        self._hoist = []  # expressions several rules read (an array's item bits), as columns
        try:
            errs, warns = self.event_checks(ev, local)
            hoisted = self._hoist
        finally:
            self._hoist = None
        if not errs and not warns:
            return "", []
        rules = [*errs, *warns]
        props = "case when type in ('identify', 'group') then traits else properties end"
        text = " ".join(f"{c.fails} {c.message.arg}" for c in rules) + " ".join(e for _, e in hoisted)
        rows = f"select _rid, _payload_null, {', '.join(PAYLOAD_WIDE)}, {props} as _props from {{relation}} where _ekey = {k}"
        inner = property_columns(rows, local, text)
        if hoisted:
            inner = f"select *, {', '.join(f'{e} as {n}' for n, e in hoisted)} from ({inner})"
        # each rule's condition is computed once, as a column (NULL, like false, is no failure)
        flags = ", ".join(f"({c.fails}) as _c{j}" for j, c in enumerate(rules))
        says = [f"_c{j}" for j in range(len(rules))]  # when each rule's reason is given
        # a payload-wide rule (GENERAL) says nothing more when a rule of the same name at a
        # property's own path already failed
        for j, c in enumerate(errs):
            if GENERAL in c.message.before:
                same = [f"_c{i}" for i, o in enumerate(errs) if i != j and o.rule == c.rule]
                if same:
                    says[j] = f"(_c{j} and not coalesce({' or '.join(same)}, false))"
        args: dict[str, int] = {}  # the values messages read, each once: SQL -> its position in 'a'
        reasons = [
            {
                "rule": c.rule,
                "path": c.path,
                "before": c.message.before,
                "arg": None if c.message.arg is None else args.setdefault(c.message.arg, len(args) + 1),
                "after": c.message.after,
                "warn": j >= len(errs),
            }
            for j, c in enumerate(rules)
        ]
        # no WHERE on the flags: DuckDB would push it below their projection and inline (recompute)
        # every parse into the filter; a CASE keeps each expression evaluated once
        failing = (
            f"case when {' or '.join(f'_c{j}' for j in range(len(rules)))} then "
            f"{{'f': [{', '.join(says)}], 'a': [{', '.join(args)}]::varchar[]}} end"
        )
        return f"select _rid, {k} as _k, {failing} as _r from (select *, {flags} from ({inner}))", reasons

    def _compile(self) -> str:
        plan = self.plan
        # -- one parse of the line: the envelope as a typed struct, properties/traits/context as JSON
        slim = self.verdicts_only
        top: dict = (
            {"properties": "JSON", "traits": "JSON"}
            if slim
            else {"properties": "JSON", "traits": "JSON", "context": "JSON"}
        )
        ctx: dict = {}
        consent_cats = list(plan.consent.categories)
        env_fields = [(c, p) for c, p in ENVELOPE] + [
            (f"_pref_{j}", json_path(*plan.consent.field.split("."), c)) for j, c in enumerate(consent_cats)
        ]
        env_cols = []
        for col, path in env_fields:
            parts = _split_path(path)
            if slim and (parts[0] == "context" or col == "name"):  # no rule reads the context or a page's name
                env_cols.append(f"null::varchar as {col}")
                continue
            node, root, expr = (ctx, "_c", "") if parts[0] == "context" else (top, "_e", "")
            keys = parts[1:] if parts[0] == "context" else parts
            for k in keys[:-1]:
                node = node.setdefault(k, {})
            expr = root + "".join(f"[{lit(k)}]" for k in keys)
            node[keys[-1]] = "VARCHAR"
            env_cols.append(f"{expr} as {col}" + (f", {expr} as _v_{col}" if col in ID_COLS else ""))
        if not slim:  # read for loading: the IP to truncate, whether context.traits holds PII to hash
            ctx["ip"] = "VARCHAR"
            pii_traits = context_pii_traits(plan)
            if pii_traits:
                ctx["traits"] = {n: "VARCHAR" for n in pii_traits}
            env_cols.append("_c['ip'] as _ctx_ip")
            env_cols.append(
                "("
                + (" or ".join(f"_c['traits'][{lit(n)}] is not null" for n in pii_traits) or "false")
                + ") as _ctx_pii"
            )
        # (kept: what the first pass reads of each line and of its context, for benchmarks/ingest_cost.py)
        self.envelope_struct, self.context_struct = top, ctx
        env_struct = lit(json.dumps(top))
        ctx_struct = lit(json.dumps(ctx))
        pref_case = " ".join(f"when {lit(c)} then {_consent_pref(plan, j, c)}" for j, c in enumerate(consent_cats))

        d = self.defaults

        def id_bad(col: str) -> str:
            # an id must be a JSON string or integer: not an object, array, boolean or a number with a
            # fraction or exponent. The struct reads every id as text (a non-string as its JSON text);
            # only a text that could be such JSON (it starts like one) is looked up again.
            x = f"_v_{col}"
            suspect = f"regexp_full_match({x}, {lit(r'[[{].*|true|false|-?[0-9][0-9.eE+-]*')})"
            return (
                f"case when {x} is null or not _is_obj then false when {suspect} "
                f"then coalesce(json_type({BOMLESS}, {lit('$.' + ID_COLS[col])}) not in ('VARCHAR', 'BIGINT', 'UBIGINT'), false) "
                f"else false end"
            )

        def real_id(col: str) -> str:
            # one case-insensitive RE2 match: 4x faster than lower(trim()) IN (...), which DuckDB plans
            # as a hash join per column
            return f"not coalesce(regexp_full_match({col}, {lit(NULLISH_RE)}), false)"

        def id_ok(col: str) -> str:
            return f"({col} is not null and not _bad_{col} and {real_id(col)})"

        r = _reason
        q = chr(39)
        # the time window holds for every event: against receivedAt, or the file's partition day when
        # there is none (or it is absurd: see _recv)
        future = f"ts_fixed > _recv_hi + to_seconds({d.max_future_hours * 3600:.0f})"
        envelope_rules = [
            *[
                (
                    f"_bad_{col}",
                    r("identity", f"$.{key}", lit(f"{key} must be a string or an integer, not ") + f" || _v_{col}"),
                )
                for col, key in ID_COLS.items()
            ],
            *[
                (
                    f"{col} is not null and {parsed} is null",
                    r("timestamp", f"$.{key}", q + "not an RFC 3339 date-time: " + q + f" || {col}"),
                )
                for col, (key, parsed) in TIMESTAMP_COLS.items()
            ],
            ("_type is null", r("envelope", "$.type", lit("type is missing"))),
            (
                # (a list position: DuckDB plans an IN list of 6, and list_contains, as a hash join per use)
                f"list_position([{', '.join(lit(t) for t in ENVELOPE_TYPES)}], _type) is null and _type is not null",
                r("envelope", "$.type", q + "unknown type " + q + " || _type"),
            ),
            ("not _ok_mid", r("envelope", "$.messageId", lit("messageId is missing or empty"))),
            (
                "_type = 'alias' and not (_ok_uid and _ok_pid)",
                r("identity", "$.userId", lit("alias needs userId and previousId")),
            ),
            (
                "_type <> 'alias' and not (_ok_uid or _ok_aid)",
                r("identity", "$.userId", lit("needs a userId or an anonymousId that is not empty, null or undefined")),
            ),
            (
                "_type = 'track' and (_event is null or trim(_event) = '')",
                r("envelope", "$.event", lit("track call without an event name")),
            ),
            (
                future,
                r(
                    "timestamp_future",
                    "$.timestamp",
                    q
                    + "event time "
                    + q
                    + " || ts_fixed || "
                    + lit(f" is more than {d.max_future_hours:g} h after it was received"),
                ),
            ),
            (
                f"not ({future}) and ts_fixed < _recv_lo - to_days({d.max_age_days})",
                r(
                    "timestamp_past",
                    "$.timestamp",
                    q
                    + "event time "
                    + q
                    + " || ts_fixed || "
                    + lit(f" is more than {d.max_age_days} days before it was received"),
                ),
            ),
        ]

        # -- which plan event a row is: a small integer (its position in the plan), found by one list
        # lookup rather than a CASE of string comparisons
        self.keyed: list[Event] = validated_events(plan)
        track = [e for e in self.keyed if e.type == "track"]
        other = {e.type: e for e in self.keyed if e.type != "track"}
        track_names = "[" + ", ".join(lit(e.name) for e in track) + "]"
        other_types = "[" + ", ".join(lit(t) for t in other) + "]"
        ekey = (
            (
                f"case when not _is_obj then null when _type = 'track' then list_position({track_names}, _event) - 1 "
                f"else list_position({other_types}, _type) - 1 + {len(track)} end"
            )
            if self.keyed
            else "null::integer"
        )
        names = "[" + ", ".join(lit(e.name) for e in self.keyed) + "]"
        consents = "[" + ", ".join(lit(e.consent) for e in self.keyed) + "]"
        fallback_name = (
            "case when _type = 'track' then _event when _type is not null then upper(_type[1]) || _type[2:] end"
        )
        event_name = f"coalesce({names}[_ekey + 1], {fallback_name})" if self.keyed else fallback_name
        consent_category = f"{consents}[_ekey + 1]" if self.keyed else "null::varchar"
        unknown = r(
            "unknown_event",
            "$.event",
            "'event ' || coalesce('\"' || _event || '\"', '(missing)') || ' is not in the plan'",
        )
        unknown_rule = ("_ekey is null and _type = 'track'", unknown)
        self.event_sql, self.event_reasons = [], []
        for k, e in enumerate(self.keyed):
            sql, reasons = self._event_pass(e, k)
            self.event_sql.append(sql)
            self.event_reasons.append(reasons)
        if slim:  # only what `trackplan validate` reports and the second pass reads
            final = (
                f"select source_file, line_no, null::varchar as raw, reasons, {EMPTY} as warnings, "
                "len(reasons) = 0 as valid, message_id, _type as type, event_name, "
                "_props as properties, _traits as traits, _payload_null, _ekey"
            )
        else:
            final = f"""select source_file, line_no,
       -- the verbatim line (NULL when the caller reads it from its relation: see `run`)
       {{raw_out}} as raw, reasons, {EMPTY} as warnings, len(reasons) = 0 as valid,
       message_id, _type as type, event_name, _event as event, name as page_name,
       -- an id that says null/undefined is no id: stored as NULL so no join or session picks it up
       case when _ok_aid then anonymous_id end as anonymous_id,
       case when _ok_uid then user_id end as user_id,
       case when _ok_pid then previous_id end as previous_id,
       case when _ok_gid then group_id end as group_id,
       ts_fixed as "timestamp", coalesce(original_ts, ts_in) as original_timestamp, sent_at, received_at,
       _context as context,
       _props as properties,
       _traits as traits,
       library_name, library_version, utm_source, utm_medium, utm_campaign, utm_term, utm_content,
       -- a server-side page call carries url/path/referrer only in its properties (Segment spec)
       coalesce(page_url, case when _type = 'page' then _props ->> '$.url' end) as page_url,
       coalesce(page_path, case when _type = 'page' then _props ->> '$.path' end) as page_path,
       coalesce(page_referrer, case when _type = 'page' then _props ->> '$.referrer' end) as page_referrer,
       session_id, region,
       consent_category, {f"case consent_category {pref_case} else null end" if pref_case else "null"} as consent_pref,
       _ctx_ip as context_ip, coalesce(_ctx_pii, false) as context_pii,
       _payload_null, _ekey"""
        return f"""
with parsed as (
    select source_file, line_no, raw, pre_reason, _is_json,
           -- (ltrim copies the whole line: only a line that does not start with its brace pays it)
           _is_json and (case when left({BOMLESS}, 1) = '{{' then true else ltrim({BOMLESS})[1] = '{{' end) as _is_obj,
           case when _is_json then json_transform({BOMLESS}, {env_struct}) end as _e, _pday_in
    from (select source_file, line_no, raw, pre_reason,
                 -- NaN and Infinity are not JSON (RFC 8259), though the parser takes them
                 case when pre_reason is not null or not json_valid({BOMLESS}) then false
                      when contains(raw, 'NaN') or contains(raw, 'Infinity') then not {NON_FINITE.format(x=BOMLESS)}
                      else true end as _is_json,
                 {{partition_day}} as _pday_in
          from {{relation}})
), env as (
    select source_file, line_no, raw, pre_reason, _is_json, _is_obj, _pday_in, {", ".join(env_cols)},
        case when _e.type in ('identify', 'group') then _e.traits else _e.properties end as _props,
        -- a payload that holds null (SQL NULL in the struct, as a missing one) is no object
        case when _is_obj and _e.type <> 'alias' and (case when _e.type in ('identify', 'group') then _e.traits else _e.properties end) is null
             then json_exists({BOMLESS}, case when _e.type in ('identify', 'group') then '$.traits' else '$.properties' end)
             else false end as _payload_null,
        _e.traits as _traits, {"null::json" if slim else "_e.context"} as _context,
        _e.type as _type, _e.event as _event
    from (select *{"" if slim else ", json_transform(_e.context, " + ctx_struct + ") as _c"} from parsed)
), ids as (
    select *, {", ".join(id_bad(c) + " as _bad_" + c for c in ID_COLS)},
        -- one RE2 match over all the timestamps of the line (4x cheaper than one each); a value
        -- checked only that way is still cast on its own below
        regexp_full_match(concat_ws('|', {", ".join(TIMESTAMP_COLS)}), {lit(TIMESTAMPS_RE)}) as _ts_shape
    from env
), stamped as (
    select * replace ({", ".join(f"{_year_one(c, p)} as {p}" for c, (_, p) in TIMESTAMP_COLS.items())})
    from (select *, {", ".join(f"{_stamp(c)} as {TIMESTAMP_COLS[c][1]}" for c in TIMESTAMP_COLS)},
                 _pday_in::timestamp as _pday
          from ids)
), received as (
    -- the receipt the time window is judged by: receivedAt, unless it is missing or further than
    -- max_age_days from the file's partition day (a receivedAt of 9999 is not a receipt)
    select *, case when _pday is null or received_at_in between _pday - to_days({self.defaults.max_age_days})
                   and _pday + to_days({self.defaults.max_age_days}) then received_at_in end as _recv
    from stamped
), fixed as (
    select *,
        -- without receivedAt or sentAt the receipt time is the file's partition day
        coalesce(received_at_in, sent_at, _pday, ts_in, original_ts) as received_at,
        coalesce(_recv, _pday + interval 1 day, sent_at, ts_in, original_ts) as _recv_hi,
        coalesce(_recv, _pday, sent_at, ts_in, original_ts) as _recv_lo,
        {ekey} as _ekey,
        {id_ok("message_id")} as _ok_mid, {id_ok("user_id")} as _ok_uid, {id_ok("anonymous_id")} as _ok_aid,
        {id_ok("previous_id")} as _ok_pid, {id_ok("group_id")} as _ok_gid,
        -- Segment's clock-skew correction: the device clock's error is sentAt - receivedAt
        case when coalesce(ts_in, original_ts) is not null and sent_at is not null and received_at_in is not null
             then received_at_in - (sent_at - coalesce(ts_in, original_ts))
             else coalesce(ts_in, original_ts, received_at_in, sent_at, _pday) end as ts_fixed
    from received
), checked as (
    select *,
        case when pre_reason is not null then [{{'rule': split_part(pre_reason, ':', 1), 'path': '$', 'message': pre_reason}}]
             when not _is_json then [{r("json", "$", lit("not valid JSON"))}]
             when not _is_obj then [{r("json", "$", lit("not a JSON object"))}]
             when {_any([*envelope_rules, unknown_rule])}
                 then list_filter({_listed([*envelope_rules, unknown_rule])}, lambda x: x is not null)
             else [] end as reasons,
        {event_name} as event_name, {consent_category} as consent_category
    from fixed
)
{final}
from checked
"""

    def sql(self, relation: str, partition_day: bool = False, raw: bool = True) -> str:
        """The first pass over `relation`; with `partition_day` the relation has that column (the day
        the landing layout gave each line's file), else the day comes from a date=YYYY-MM-DD folder.
        Without `raw` the output's raw column is NULL (the caller reads the line from `relation`)."""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", relation):
            raise ValueError(f"bad relation name {relation!r}")
        day = PARTITION_DAY_COLUMN if partition_day else PARTITION_DAY
        return (
            self.sql_template.replace("{relation}", relation)
            .replace("{partition_day}", day)
            .replace("{raw_out}", "raw" if raw else "null::varchar")
        )

    def _execute(self, con: duckdb.DuckDBPyConnection, sql: str) -> None:
        """Run `sql`, parsed once per Validator: DuckDB's parser costs ~6 µs a node, 0.1 CPU-s for pass
        2's ~190 KB of rules, which every run (every ingest group) paid again. A parsed statement is
        copied at each execution (on any connection or cursor), not parsed again."""
        with self._parsing:  # (the collector validates from several threads)
            stmt = self._parsed.get(sql)
            if stmt is None:
                if len(self._parsed) >= PARSED_KEPT:  # (pass 2 has a statement per set of events present)
                    del self._parsed[next(iter(self._parsed))]
                stmt = self._parsed[sql] = duckdb.extract_statements(sql)[0]
        con.execute(stmt).fetchall()

    def run(self, con: duckdb.DuckDBPyConnection, relation: str, into: str, raw: bool = True) -> None:
        """Validate every row of `relation` (source_file, line_no, raw, pre_reason[, partition_day]) into
        temp table `into`. Without `raw`, `into`'s raw column is NULL: a caller that keeps `relation`
        reads the few lines it needs (the quarantined ones) from there, by (source_file, line_no),
        rather than having every line copied into `into` (at 10M events, 5.7 GB of text).

        Two passes. The first parses each line once, checks the envelope and writes every row. The
        second takes each plan event's rows densely (one scan of a small integer column per event),
        checks its properties and returns only the rows that break a rule, which are then updated in
        place. Evaluating all events' rules in one CASE over mixed rows was 2x slower: DuckDB runs
        every branch on fragments of each vector."""
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", into):
            raise ValueError(f"bad table name {into!r}")
        con.execute("set TimeZone = 'UTC'")
        sql = self.sql(relation, raw=raw)  # (checks the relation's name before it is queried)
        if "partition_day" in {c[0] for c in con.execute(f"select * from {relation} limit 0").description}:
            sql = self.sql(relation, partition_day=True, raw=raw)
        self._execute(con, f"create or replace temp table {into} as {sql}")
        if not any(self.event_sql):
            return
        # the rows pass 2 reads, ordered by plan event: each event's select then scans its own few
        # row groups (zone maps) and gets dense vectors. Over pass 1's table in line order, a rare
        # event's rows came a few per vector and every rule paid its per-vector cost on each:
        # measured 1.35 s -> 0.8 s of pass 2 on 307k generated events, the sort included.
        self._execute(
            con,
            f"create or replace temp table {into}__by_event as select rowid as _rid, _ekey, type, properties, "
            f"traits, _payload_null, {', '.join(f'{e} as {c}' for c, e in PAYLOAD_WIDE.items())} "
            f"from {into} where _ekey is not null order by _ekey",
        )
        # only the selects of the events the rows have: planning one costs ~0.2 ms a rule, and a small
        # batch (the collector's, a file's) has a few of the plan's events
        present = {k for (k,) in con.execute(f"select distinct _ekey from {into}__by_event").fetchall()}
        passes = [
            p.replace("{relation}", f"{into}__by_event") for k, p in enumerate(self.event_sql) if p and k in present
        ]
        if not passes:
            con.execute(f"drop table {into}__by_event")
            return
        # each row's reasons, from its event's rules that fail (see _event_pass), for all events at once
        table = f"from_json({lit(json.dumps(self.event_reasons))}, {lit(json.dumps([[REASON_PARTS]]))})[_k + 1]"

        def reasons(warn: bool) -> str:
            return (
                f"case when _r is not null then list_transform(list_filter({table}, "
                f"lambda m, i: _r.f[i] and {'' if warn else 'not '}m.warn), lambda m: {{'rule': m.rule, "
                "'path': m.path, 'message': m.before || case when m.arg is null then '' else _r.a[m.arg] end "
                "|| m.after}) end"
            )

        self._execute(
            con,
            f"create or replace temp table {into}__rules as select _rid, {reasons(False)} as _perr, "
            f"{reasons(True)} as _pwarn from (" + "\nunion all\n".join(passes) + ")",
        )
        con.execute(f"drop table {into}__by_event")
        self._execute(
            con,
            f"""update {into} set reasons = list_concat({into}.reasons, coalesce(c._perr, [])),
                         warnings = coalesce(c._pwarn, []), valid = len({into}.reasons) = 0 and len(coalesce(c._perr, [])) = 0
                         from {into}__rules c where {into}.rowid = c._rid
                           and (c._perr is not null or c._pwarn is not null)""",
        )
        con.execute(f"drop table {into}__rules")


# Lines validated per DuckDB run by `trackplan validate`: each run costs ~0.15 s of planning, so
# fewer, larger runs; memory stays bounded by this many lines (~400 MB of typical Segment events).
CLI_BATCH_LINES = 500_000


@dataclass
class FileReport:
    file: str
    total: int = 0
    valid: int = 0
    invalid: int = 0
    warnings: int = 0
    file_error: str | None = None
    errors: list[dict] = field(default_factory=list)


def validate_files(
    plan: Plan, files: Iterable[str], unexpected: str | None = None, max_errors: int = 1000, progress=None
) -> list[FileReport]:
    """Validate files in bounded memory: lines of many files share one DuckDB run, at most
    BATCH_LINES at a time."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from .reader import prefetched, read_files

    validator = Validator(plan, unexpected=unexpected, verdicts_only=True)
    con = duckdb.connect()
    # DuckDB sizes its pool from the machine, not from the CPUs this process may use (taskset, cgroups)
    con.execute(f"set threads = {max(1, len(os.sched_getaffinity(0)))}")
    con.execute("set TimeZone = 'UTC'")
    files = [str(f) for f in files]
    reports = {f: FileReport(file=f) for f in files}
    batches = read_files(
        files,
        max_bytes=plan.header.defaults.max_event_bytes,
        batch_lines=CLI_BATCH_LINES,
        strip=False,
        on_file_done=lambda f, st: setattr(reports[f], "file_error", st.file_error),
    )
    # each file's partition day, computed once per file by the validator's own rule (PARTITION_DAY)
    # rather than once per line, and handed over as the partition_day column
    days = pa.array(
        [
            con.execute(f"select ({PARTITION_DAY})::varchar from (select ? as source_file)", [f]).fetchall()[0][0]
            for f in files
        ],
        pa.string(),
    )
    for batch in prefetched(batches):
        at = pc.index_in(batch.column("source_file"), value_set=pa.array(files, pa.string()))
        batch = batch.append_column("partition_day", pc.take(days, at))
        con.register("batch_in", batch)
        validator.run(con, "batch_in", "checked_batch")
        con.unregister("batch_in")
        for f, n, ok, warned in con.execute(
            "select source_file, count(*), count(*) filter (where valid), "
            "count(*) filter (where len(warnings) > 0) from checked_batch group by 1"
        ).fetchall():
            rep = reports[f]
            rep.total += n
            rep.valid += ok
            rep.invalid += n - ok
            rep.warnings += warned
        room = max_errors * len(files) - sum(len(r.errors) for r in reports.values())
        if room > 0:
            rows = con.execute(
                f"select source_file, line_no, message_id, event_name, reasons from checked_batch "
                f"where not valid order by source_file, line_no limit {room}"
            ).fetchall()
            for f, line_no, mid, ev, reasons in rows:
                rep = reports[f]
                if len(rep.errors) >= max_errors:
                    continue
                for r in reasons:
                    rep.errors.append(
                        {
                            "file": f,
                            "line": line_no,
                            "message_id": mid,
                            "event": ev,
                            "rule": r["rule"],
                            "path": r["path"],
                            "message": r["message"],
                        }
                    )
        if progress:
            progress(batch.num_rows)
    return [reports[f] for f in files]


def collector_validator(plan_dir: str):
    """For `trackplan serve --validate`: a callable checking a list of messages with this same
    engine, returning (event name, [rule codes]) per message. Runs after the 200 is sent."""
    import orjson
    import pyarrow as pa

    from .loader import load_plan

    plan = load_plan(plan_dir)
    validator = Validator(plan)
    con = duckdb.connect()

    def check(messages: list[dict]) -> list[tuple[str, list[str]]]:
        raws = [orjson.dumps(m).decode() for m in messages]
        table = pa.table(
            {
                "source_file": pa.array(["collector"] * len(raws), pa.string()),
                "line_no": pa.array(range(len(raws)), pa.int64()),
                "raw": pa.array(raws, pa.string()),
                "pre_reason": pa.nulls(len(raws), pa.string()),
            }
        )
        # the collector calls this from several threads at once: a cursor per call has its own
        # registered views and temp tables, so calls never share _edge_in/_edge_out
        cur = con.cursor()
        try:
            cur.register("_edge_in", table)
            validator.run(cur, "_edge_in", "_edge_out")
            cur.unregister("_edge_in")
            rows = cur.execute(
                "select line_no, coalesce(event_name, '(unknown)'), "
                "list_transform(reasons, lambda r: r.rule) from _edge_out order by line_no"
            ).fetchall()
        finally:
            cur.close()
        return [(name, list(rules)) for _, name, rules in rows]

    return check
