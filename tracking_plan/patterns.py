"""A plan's `pattern` is JSON Schema's: an ECMA-262 regular expression (what `trackplan compile` writes
and the generated TypeScript validators run with `new RegExp`). The validator runs it in DuckDB, whose
regular expressions are RE2. `re2_pattern` writes the ECMA-262 meaning in RE2 where the two read the
same text differently:

- `\\s` / `\\S`: ECMA-262's white space and line terminators (U+00A0, U+2003, U+FEFF, ...), not RE2's
  ASCII six;
- `.`: any character but a line terminator (`\\n`, `\\r`, U+2028, U+2029), not only `\\n`;
- `\\uXXXX` (a surrogate pair as its one character), `\\cX`, `\\0`, `(?<name>...)`, `[^]`;

and `pattern_error` says why a pattern cannot run at all (a lookaround or a back-reference, which RE2
does not have; `\\S` inside a class, which RE2 cannot write; or what RE2 itself rejects). `\\d`, `\\w`
and `\\b` are ASCII in both; `^` and `$` are the ends of the string in both.
"""

from __future__ import annotations

import re
from functools import lru_cache

# ECMA-262 WhiteSpace and LineTerminator, as the body of an RE2 class
_SPACE = r"\t\n\x{0b}\f\r \x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}\x{feff}"
_NOT_LINE_END = r"[^\n\r\x{2028}\x{2029}]"
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")


class PatternError(ValueError):
    """A pattern RE2 cannot run with its ECMA-262 meaning (a user's error: one line, exit 2)."""

    user_error = True
    exit_code = 2


def _unicode_escape(p: str, i: int) -> tuple[str, int]:
    """`\\uXXXX` at p[i] (the backslash): RE2's `\\x{...}`, a surrogate pair joined into its character."""
    code = int(p[i + 2 : i + 6], 16)
    if 0xD800 <= code < 0xDC00 and p[i + 6 : i + 8] == "\\u" and _HEX4.fullmatch(p[i + 8 : i + 12] or ""):
        low = int(p[i + 8 : i + 12], 16)
        if 0xDC00 <= low < 0xE000:
            return f"\\x{{{0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00):x}}}", i + 12
    if 0xD800 <= code < 0xE000:
        raise PatternError(f"\\u{code:04x} is half of a surrogate pair: write the pair, or the character")
    return f"\\x{{{code:x}}}", i + 6


@lru_cache(maxsize=1024)
def re2_pattern(p: str) -> str:
    """The RE2 pattern that matches what ECMA-262 pattern `p` matches (see the module docstring).
    Raises PatternError for what RE2 cannot express."""
    out: list[str] = []
    i, n, in_class = 0, len(p), False
    while i < n:
        c = p[i]
        if c == "\\":
            if i + 1 >= n:
                raise PatternError("a pattern cannot end with a backslash")
            e = p[i + 1]
            if e == "u" and _HEX4.fullmatch(p[i + 2 : i + 6]):
                text, i = _unicode_escape(p, i)
                out.append(text)
                continue
            if e == "s":
                out.append(_SPACE if in_class else f"[{_SPACE}]")
            elif e == "S":
                if in_class:
                    raise PatternError("\\S inside a character class has no RE2 form: write [^...] of what to exclude")
                out.append(f"[^{_SPACE}]")
            elif e == "c" and i + 2 < n and p[i + 2].isascii() and p[i + 2].isalpha():
                out.append(f"\\x{{{ord(p[i + 2]) % 32:02x}}}")
                i += 3
                continue
            elif e == "0" and not (i + 2 < n and p[i + 2].isdigit()):
                out.append("\\x{0}")
            elif e.isdigit() and not in_class:
                raise PatternError(f"back-reference \\{e}: RE2 has no back-references")
            else:
                out.append(c + e)
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
            out.append(c)
            i += 1
            continue
        if c == "[":
            if p.startswith("[^]", i):  # ECMA-262: any character
                out.append(r"[\x{0}-\x{10ffff}]")
                i += 3
                continue
            in_class = True
            out.append(c)
            i += 1
            if i < n and p[i] == "^":
                out.append("^")
                i += 1
            if i < n and p[i] == "]":  # a leading ] is literal in RE2; ECMA's [] matches nothing
                raise PatternError("an empty character class [] matches nothing")
            continue
        if c == "(" and p.startswith("(?", i):
            if p.startswith(("(?=", "(?!", "(?<=", "(?<!"), i):
                raise PatternError("a lookaround (?= (?! (?<= (?<!: RE2 has none")
            if p.startswith("(?<", i):
                out.append("(?P<")
                i += 3
                continue
        if c == ".":
            out.append(_NOT_LINE_END)
            i += 1
            continue
        out.append(c)
        i += 1
    return "".join(out)


@lru_cache(maxsize=1024)
def pattern_error(p: str) -> str | None:
    """Why pattern `p` cannot be run with its ECMA-262 meaning (None: it can): what `re2_pattern`
    refuses, or what RE2 (DuckDB's regexp) rejects in its translation."""
    import duckdb

    try:
        translated = re2_pattern(p)
    except PatternError as exc:
        return str(exc)
    try:
        duckdb.connect().execute("select regexp_matches('', ?)", [translated]).fetchall()
    except duckdb.Error as exc:
        return str(exc).split("\n")[0].removeprefix("Invalid Input Error: ")
    return None
