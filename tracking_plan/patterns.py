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

# ECMA-262 WhiteSpace and LineTerminator (code points), and its line terminators
_SPACES = [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0xA0, 0x1680, (0x2000, 0x200A), 0x2028, 0x2029, 0x202F, 0x205F]
_SPACES += [0x3000, 0xFEFF]
_LINE_ENDS = [0x0A, 0x0D, 0x2028, 0x2029]


def _char(code: int, target: str) -> str:
    """One character as an escape of `target`'s syntax (RE2 `\\x{e9}`, Python `\\U000000e9`)."""
    return f"\\x{{{code:x}}}" if target == "re2" else f"\\U{code:08x}"


def _body(codes: list, target: str) -> str:
    """The body of a character class holding `codes` (code points and (first, last) ranges)."""
    return "".join(
        f"{_char(c[0], target)}-{_char(c[1], target)}" if isinstance(c, tuple) else _char(c, target) for c in codes
    )


_ECMA_LETTERS = set("dDwWsSbBfnrtvcxupP")  # the escapes of a letter ECMA-262 has (\\k<..> apart)
_HEX4 = re.compile(r"[0-9A-Fa-f]{4}")
_BRACED = re.compile(r"\{(0*(?:10|[0-9A-Fa-f])?[0-9A-Fa-f]{1,4})\}")  # a code point up to 10FFFF


class PatternError(ValueError):
    """A pattern RE2 cannot run with its ECMA-262 meaning (a user's error: one line, exit 2)."""

    user_error = True
    exit_code = 2


def _unicode_escape(p: str, i: int, target: str) -> tuple[str, int]:
    """`\\uXXXX` at p[i] (the backslash): one character, a surrogate pair joined into its character."""
    code = int(p[i + 2 : i + 6], 16)
    if 0xD800 <= code < 0xDC00 and p[i + 6 : i + 8] == "\\u" and _HEX4.fullmatch(p[i + 8 : i + 12] or ""):
        low = int(p[i + 8 : i + 12], 16)
        if 0xDC00 <= low < 0xE000:
            return _char(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00), target), i + 12
    if 0xD800 <= code < 0xE000:
        raise PatternError(f"\\u{code:04x} is half of a surrogate pair: write the pair, or the character")
    return _char(code, target), i + 6


@lru_cache(maxsize=1024)
def re2_pattern(p: str) -> str:
    """The RE2 pattern that matches what ECMA-262 pattern `p` matches (see the module docstring).
    Raises PatternError for what RE2 cannot express."""
    return _translate(p, "re2")


@lru_cache(maxsize=1024)
def python_pattern(p: str) -> str:
    """The same for Python's `re`, compiled with `re.ASCII` (so that `\\d`, `\\w`, `\\b` are ECMA-262's):
    what the generated Python module runs (tracking_plan/codegen.py). Also: `$` is the end of the
    string (Python's also matches before a final newline)."""
    return _translate(p, "python")


@lru_cache(maxsize=1024)
def regex_pattern(p: str) -> str:
    """The same for the `regex` module (PyPI), compiled without flags: Python's `re` with Unicode
    property classes (`\\p{L}`, `\\P{Lu}`), which the generated Python module runs for a pattern that
    has one (`re` has none, so `python_pattern` refuses it). `\\d`, `\\w` and `\\b` are written as
    ECMA-262's ASCII ones (the ASCII flag would make `\\p{L}` ASCII too)."""
    return _translate(p, "regex")


_ASCII = {"d": "0-9", "w": "A-Za-z0-9_"}


def _ascii_class(e: str, in_class: bool) -> str:
    """ECMA-262's `\\d \\D \\w \\W \\b \\B` in the `regex` module's syntax without its ASCII flag."""
    if e in "bB":
        if in_class and e == "b":  # ([\\b] is a backspace in both)
            return "\\b"
        if in_class:
            raise PatternError("\\B inside a character class is not ECMA-262")
        return f"(?a:\\{e})"
    body = _ASCII[e.lower()]
    if in_class:
        if e.isupper():
            raise PatternError(f"\\{e} inside a character class has no form for the regex module: write [^...]")
        return body
    return f"[{body}]" if e.islower() else f"[^{body}]"


def _translate(p: str, target: str) -> str:
    space, ends = _body(_SPACES, target), _body(_LINE_ENDS, target)
    out: list[str] = []
    i, n, in_class = 0, len(p), False
    while i < n:
        c = p[i]
        if c == "\\":
            if i + 1 >= n:
                raise PatternError("a pattern cannot end with a backslash")
            e = p[i + 1]
            if e == "u" and (m := _BRACED.match(p, i + 2)):  # \u{1F600}, the u flag's form
                out.append(_char(int(m.group(1), 16), target))
                i = m.end()
                continue
            if e == "u" and _HEX4.fullmatch(p[i + 2 : i + 6]):
                text, i = _unicode_escape(p, i, target)
                out.append(text)
                continue
            if e == "s":
                out.append(space if in_class else f"[{space}]")
            elif e == "S":
                if in_class:
                    raise PatternError("\\S inside a character class has no RE2 form: write [^...] of what to exclude")
                out.append(f"[^{space}]")
            elif e == "c" and i + 2 < n and p[i + 2].isascii() and p[i + 2].isalpha():
                out.append(_char(ord(p[i + 2]) % 32, target))
                i += 3
                continue
            elif e == "0" and not (i + 2 < n and p[i + 2].isdigit()):
                out.append(_char(0, target))
            elif (e.isdigit() and not in_class) or e == "k":
                raise PatternError(f"back-reference \\{e}: RE2 has no back-references")
            elif e in "pP" and not p.startswith("{", i + 2):
                raise PatternError(f"\\{e} without {{...}} is not ECMA-262 (write \\{e}{{L}})")
            elif e in "pP" and target == "python":
                raise PatternError(f"\\{e}{{...}}: Python's re has no Unicode property classes")
            elif e in "dDwWbB" and target == "regex":
                # (no regex.ASCII, which would make \\p{L} ASCII too: ECMA-262's ASCII classes spelled out)
                out.append(_ascii_class(e, in_class))
            elif e.isascii() and e.isalpha() and e not in _ECMA_LETTERS:
                # (RE2 and Python give \\A, \\z, \\Q... meanings ECMA-262 does not have; its u flag refuses them)
                raise PatternError(f"\\{e} is not an ECMA-262 escape")
            else:
                out.append(c + e)
            i += 2
            continue
        if in_class:
            if c == "]":
                in_class = False
            # a [ in a class is itself in ECMA-262: RE2 and Python would read [[:alpha:]] as a POSIX class
            out.append("\\[" if c == "[" else c)
            i += 1
            continue
        if c == "[":
            if p.startswith("[^]", i):  # ECMA-262: any character
                out.append(f"[{_char(0, target)}-{_char(0x10FFFF, target)}]")
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
            if p.startswith("(?<", i) and not p.startswith("(?<=", i) and not p.startswith("(?<!", i):
                out.append("(?P<")
                i += 3
                continue
            if not p.startswith("(?:", i):
                raise PatternError(f"{p[i : i + 4]!r}...: inline flags and (?P...) are not ECMA-262")
        if c == ".":
            out.append(f"[^{ends}]")
            i += 1
            continue
        if c == "$" and target != "re2":
            out.append(r"\Z")
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
