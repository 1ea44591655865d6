"""`trackplan coverage SRC_DIR`: which plan events a codebase sends, which calls name events the plan
does not know, and which planned events nobody sends.

A static scan of .ts/.tsx/.js/.jsx/.mjs/.cjs/.py files. Two kinds of call count as sending an event:
- a function `trackplan codegen` generates (`orderCompleted(...)`, `order_completed(...)`), found by
  its name followed by `(` (not its definition);
- a raw Segment call whose event name is a string literal: `analytics.track('Order Completed', ...)`,
  `track("Order Completed")`, Node's `analytics.track({ event: 'Order Completed', ... })`, Python's
  `analytics.track(user_id, "Order Completed", ...)` or `track(..., event="Order Completed")`.
A `track(` call whose event name is not a literal cannot be resolved statically: it is listed as
dynamic, with its file and line, never dropped. Files the generator wrote (first line carries
`trackplan-generated`) define the functions rather than call them and are skipped, and listed.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .codegen import MARKER, function_names, generated_events
from .model import Plan

JS_SUFFIXES = {".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs", ".mts", ".cts"}
PY_SUFFIXES = {".py"}
SKIP_DIRS = {
    "node_modules",
    ".git",
    ".venv",
    "venv",
    "__pycache__",
    ".mypy_cache",
    ".pytest_cache",
    "dist",
    "build",
    ".next",
    "coverage",
}
STRING = r"""(?:"((?:[^"\\\n]|\\.)*)"|'((?:[^'\\\n]|\\.)*)'|`([^`$\\]*)`)"""
STRING_RE = re.compile(STRING)
TRACK_RE = re.compile(r"(?<![\w$])track\s*\(")
DEF_BEFORE = re.compile(r"(?:\bdef|\bfunction|\basync\s+def)\s+$")


@dataclass
class Site:
    file: str
    line: int
    call: str  # the function or `track` form that named the event

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class CoverageResult:
    plan: str
    version: str
    root: str
    files_scanned: int = 0
    skipped: list[dict] = field(default_factory=list)  # {"file", "reason"}
    called: dict[str, list[Site]] = field(default_factory=dict)  # plan event -> call sites
    unknown: dict[str, list[Site]] = field(default_factory=dict)  # event name not in the plan -> sites
    dynamic: list[Site] = field(default_factory=list)  # track( calls without a literal name
    never_sent: list[str] = field(default_factory=list)  # active plan events nobody calls
    deprecated_called: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unknown

    def to_dict(self) -> dict:
        def sites(d: dict[str, list[Site]]) -> list[dict]:
            return [{"event": k, "sites": [asdict(s) for s in v]} for k, v in sorted(d.items())]

        return {
            "plan": self.plan,
            "version": self.version,
            "root": self.root,
            "files_scanned": self.files_scanned,
            "called": sites(self.called),
            "unknown": sites(self.unknown),
            "never_sent": self.never_sent,
            "deprecated_called": self.deprecated_called,
            "dynamic": [asdict(s) for s in self.dynamic],
            "skipped": self.skipped,
            "ok": self.ok,
        }


def _unescape(m: re.Match) -> str:
    raw = next(g for g in m.groups() if g is not None)
    return re.sub(r"\\(.)", r"\1", raw)


def _strip_comments(text: str, python: bool) -> str:
    """Blank out comments (keeping offsets and newlines) so commented-out calls do not count."""
    pattern = STRING + (r"|#[^\n]*" if python else r"|//[^\n]*|/\*.*?\*/")

    def blank(m: re.Match) -> str:
        s = m.group(0)
        if s.startswith(("#", "//", "/*")):
            return re.sub(r"[^\n]", " ", s)
        return s

    return re.sub(pattern, blank, text, flags=re.DOTALL)


def _mask_strings(code: str) -> str:
    """``code`` with the contents of string literals blanked (same offsets): a call written inside a
    string is no call."""

    def blank(m: re.Match) -> str:
        t = m.group(0)
        return t[0] + re.sub(r"[^\n]", " ", t[1:-1]) + t[-1]

    return STRING_RE.sub(blank, code)


def _call_args(text: str, start: int) -> str:
    """The text between the `(` at ``start - 1`` and its matching `)` (strings skipped), at most 4 kB."""
    depth, i, end = 1, start, min(len(text), start + 4096)
    while i < end:
        c = text[i]
        if c in "\"'`":
            m = STRING_RE.match(text, i)
            i = m.end() if m else i + 1
            continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return text[start:i]
        i += 1
    return text[start:end]


def _top_level_args(args: str) -> list[str]:
    out, depth, cur, i = [], 0, [], 0
    while i < len(args):
        c = args[i]
        if c in "\"'`":
            m = STRING_RE.match(args, i)
            if m:
                cur.append(m.group(0))
                i = m.end()
                continue
        if c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        if c == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(c)
        i += 1
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


def _literal(arg: str) -> str | None:
    m = STRING_RE.fullmatch(arg.strip())
    return _unescape(m) if m else None


def track_event_name(args: str, python: bool) -> str | None:
    """The event a raw `track(...)` call names, or None when it is not a literal."""
    keyed = re.search(r"(?<![\w$])event\s*" + ("=" if python else ":") + r"\s*" + STRING, args)
    if keyed:
        return _unescape(keyed)
    parts = [a for a in _top_level_args(args) if not re.match(r"[A-Za-z_]\w*\s*=(?!=)", a)]  # positional only
    if python:
        # segment-analytics-python: track(user_id, event, properties); a one-string wrapper: track("Name")
        if len(parts) >= 2 and _literal(parts[1]) is not None:
            return _literal(parts[1])
        if parts and _literal(parts[0]) is not None and (len(parts) == 1 or parts[1].lstrip().startswith("{")):
            return _literal(parts[0])
        return None
    return _literal(parts[0]) if parts else None


def _line(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def scan(plan: Plan, root: Path | str) -> CoverageResult:
    root = Path(root)
    res = CoverageResult(plan=plan.header.name, version=plan.header.version, root=str(root))
    names = function_names(plan)
    events = generated_events(plan)
    ts_fns = {names[e.name][0]: e.name for e in events}
    py_fns = {names[e.name][1]: e.name for e in events}
    fn_re = {
        False: re.compile(r"(?<![\w$])(" + "|".join(map(re.escape, sorted(ts_fns, key=len, reverse=True))) + r")\s*\(")
        if ts_fns
        else None,
        True: re.compile(r"(?<![\w$])(" + "|".join(map(re.escape, sorted(py_fns, key=len, reverse=True))) + r")\s*\(")
        if py_fns
        else None,
    }
    files: list[Path] = []
    if root.is_file():
        files = [root]
    else:
        for dirpath, dirnames, filenames in os.walk(root):
            kept = []
            for d in sorted(dirnames):
                if d in SKIP_DIRS:
                    res.skipped.append(
                        {"file": str((Path(dirpath) / d).relative_to(root)), "reason": "dependency/build folder"}
                    )
                else:
                    kept.append(d)
            dirnames[:] = kept
            files += [Path(dirpath) / f for f in sorted(filenames)]
    for path in files:
        suffix = path.suffix.lower()
        if suffix not in JS_SUFFIXES | PY_SUFFIXES or path.name.endswith(".d.ts"):
            if root.is_file():  # the one file asked for: say why nothing was scanned
                res.skipped.append({"file": str(path), "reason": "not a .ts/.tsx/.js/.py source file"})
            continue
        python = suffix in PY_SUFFIXES
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            res.skipped.append({"file": str(path), "reason": f"unreadable: {exc.__class__.__name__}"})
            continue
        shown = str(path.relative_to(root)) if root.is_dir() else str(path)
        if MARKER in text[:200]:
            res.skipped.append({"file": shown, "reason": "generated by trackplan codegen (defines the functions)"})
            continue
        res.files_scanned += 1
        code = _strip_comments(text, python)
        masked = _mask_strings(code)
        table = py_fns if python else ts_fns
        rx = fn_re[python]
        if rx is not None:
            for m in rx.finditer(masked):
                if DEF_BEFORE.search(masked[max(0, m.start() - 20) : m.start()]):
                    continue  # a definition, not a call
                res.called.setdefault(table[m.group(1)], []).append(Site(shown, _line(code, m.start()), m.group(1)))
        for m in TRACK_RE.finditer(masked):
            if DEF_BEFORE.search(masked[max(0, m.start() - 20) : m.start()]):
                continue
            args = _call_args(code, m.end())
            name = track_event_name(args, python)
            site = Site(shown, _line(code, m.start()), "track")
            if name is None:
                res.dynamic.append(site)
            elif name in plan.events:
                res.called.setdefault(name, []).append(site)
            else:
                res.unknown.setdefault(name, []).append(site)
    res.never_sent = sorted(n for n, e in plan.events.items() if e.status == "active" and n not in res.called)
    res.deprecated_called = sorted(n for n in res.called if plan.events[n].status == "deprecated")
    return res


def render(res: CoverageResult, format: str = "text") -> str:
    if format == "json":
        return json.dumps(res.to_dict(), indent=2)
    if format != "text":
        raise ValueError(f"unknown format {format!r} (text or json)")
    lines = [f"plan {res.plan} {res.version}: {res.files_scanned} source files scanned under {res.root}"]
    for name in sorted(res.called):
        sites = res.called[name]
        more = f" (+{len(sites) - 3} more)" if len(sites) > 3 else ""
        lines.append(f"called      {name}: {', '.join(str(s) for s in sites[:3])}{more}")
    for name in sorted(res.unknown):
        for s in res.unknown[name]:
            lines.append(f"{s}: unknown event {name!r} is not in the plan")
    for s in res.dynamic:
        lines.append(f"{s}: dynamic track() call: the event name is not a literal, not counted")
    for name in res.deprecated_called:
        lines.append(f"deprecated  {name} is still called")
    for name in res.never_sent:
        lines.append(f"never sent  {name}")
    for s in res.skipped:
        lines.append(f"skipped     {s['file']}: {s['reason']}")
    lines.append(
        f"{len(res.called)} plan events called, {len(res.never_sent)} active events never sent, "
        f"{sum(len(v) for v in res.unknown.values())} calls to unknown events, {len(res.dynamic)} dynamic calls"
    )
    return "\n".join(lines)
