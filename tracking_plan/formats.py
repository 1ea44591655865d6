"""What each `format` (and the `timestamp` type) means: one definition, read by `validate` (as RE2
regular expressions inside DuckDB SQL) and by `compile` (which emits a `pattern` next to `format`
where JSON Schema validators disagree with each other). README: "What each constraint checks".

Every regex here is written in the common subset of RE2, Python `re` and ECMA-262: ASCII classes
only, no look-around, no `\\d`/`\\s` (they are Unicode-aware in Python).
"""

from __future__ import annotations

# not-an-@, not a space or control character: local@domain.tld, nothing more (JSON Schema's "email"
# is RFC 5321, which validators check anywhere from "has an @" to a full grammar; we say exactly this)
_ADDR = r"[^@\x00-\x20\x7f]"
EMAIL = rf"^{_ADDR}+@{_ADDR}+\.{_ADDR}+$"
# RFC 4122's textual form, either case
UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
CURRENCY = r"^[A-Z]{3}$"  # ISO 4217 codes are three capital letters; JSON Schema has no such format
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"  # 0-255, no leading zero (RFC 2673)
IPV4 = rf"^(?:{_OCTET}\.){{3}}{_OCTET}$"
DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"  # plus: a real calendar day of years 0001-9999
# RFC 3339 section 5.6 date-time: 4-digit year, `T` or `t`, hours 00-23 (no 24:00), no leap second,
# `Z`/`z` or a +hh:mm/-hh:mm offset; plus: a real calendar day of years 0001-9999
DATE_TIME = (
    r"^[0-9]{4}-(?:0[1-9]|1[0-2])-[0-9]{2}[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])$"
)

# RFC 3986 `URI` (scheme ":" hier-part ["?" query] ["#" fragment], appendix A), the grammar of the
# rfc3986-validator package that Python `jsonschema` checks "uri" with, written without its verbose
# mode and with {0,n} for {,n} (RE2 has no {,n})
_H16 = "[0-9A-Fa-f]{1,4}"
_DEC = "(?:25[0-5]|2[0-4][0-9]|[01]?[0-9][0-9]?)"
_LS32 = rf"(?:{_H16}:{_H16}|(?:{_DEC}\.){{3}}{_DEC})"
_IPV6 = (
    "(?:"
    + "|".join(
        [
            rf"(?:{_H16}:){{6}}{_LS32}",
            rf"::(?:{_H16}:){{5}}{_LS32}",
            rf"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
            rf"(?:(?:{_H16}:)?{_H16})?::(?:{_H16}:){{3}}{_LS32}",
            rf"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
            rf"(?:(?:{_H16}:){{0,3}}{_H16})?::(?:{_H16}:){_LS32}",
            rf"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
            rf"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
            rf"(?:(?:{_H16}:){{0,6}}{_H16})?::",
        ]
    )
    + ")"
)
_PCT = "%[0-9A-Fa-f]{2}"
_AUTHORITY = (
    rf"(?:(?:[a-zA-Z0-9_.~\-!$&'()*+,;=:]|{_PCT})*@)?"
    rf"(?:\[(?:{_IPV6}|v[0-9A-Fa-f]+\.[a-zA-Z0-9_.~\-!$&'()*+,;=:]+)\]"
    rf"|(?:{_DEC}\.){{3}}{_DEC}"
    rf"|(?:[a-zA-Z0-9_.~\-!$&'()*+,;=]|{_PCT})*)"
    r"(?::[0-9]*)?"
)
_PCHAR = rf"(?:[a-zA-Z0-9_.~\-!$&'()*+,;=:@]|{_PCT})"
_QUERY = rf"(?:[a-zA-Z0-9_.~\-!$&'()*+,;=:@/?]|{_PCT})*"
URI = (
    rf"^[a-zA-Z][a-zA-Z0-9+.\-]*:(?://{_AUTHORITY}(?:/{_PCHAR}*)*|/(?:{_PCHAR}+(?:/{_PCHAR}*)*)?"
    rf"|{_PCHAR}+(?:/{_PCHAR}*)*|)(?:\?{_QUERY})?(?:#{_QUERY})?$"
)

# formats whose meaning compile pins with a `pattern` (validators differ on them); the others
# (date, date-time, ipv4, uri) are checked exactly so by Python jsonschema's format checker
PINNED = {"email": EMAIL, "uuid": UUID, "currency": CURRENCY}
REGEX = {
    "email": EMAIL,
    "uuid": UUID,
    "currency": CURRENCY,
    "ipv4": IPV4,
    "uri": URI,
    "date": DATE,
    "date-time": DATE_TIME,
}


def _calendar_day(v: str) -> str:
    """SQL: the first 10 characters of text `v` are a real day of years 0001-9999."""
    return f"(try_cast(left({v}, 10) as date) is not null and left({v}, 4) <> '0000')"


def format_ok(fmt: str, v: str, lit) -> str:
    """SQL true when text `v` is a valid `fmt`."""
    ok = f"regexp_matches({v}, {lit(REGEX[fmt])})"
    if fmt in ("date", "date-time"):
        ok = f"({ok} and {_calendar_day(v)})"
    return ok
