"""`trackplan codegen`: typed tracking functions generated from the plan (Segment Typewriter's and
Avo Codegen's idea, for this plan format).

One function per event: the plan's properties become a typed parameter (required and optional keys,
enums as literal unions, nested objects and arrays as their own types), the function's doc comes
from the event's description, owner and constraints, and deprecated events carry the language's
deprecation marker with their replacement. The functions wrap the real Segment libraries:
`segment-analytics-python` (Python), `@segment/analytics-next` (browser) and `@segment/analytics-node`
(Node). Every call carries the plan's name and version in ``context.trackingPlan``: the validator
and the collector keep unknown context keys (the envelope's `context` is an open object), so
ingest stores which plan an event was coded against in `ingest.events.context`.

Format and bound rules are not types; in development mode (``configure(..., development=True)``)
the generated code checks them at run time with the same rule tree both languages embed
(`rules`), taken from the plan like the validator's, so the two cannot drift apart.

`signatures` and `signature_breaks` tell `trackplan diff` which generated functions a plan change
breaks: a call that compiled against the base plan's code no longer compiles against the head's.
"""

from __future__ import annotations

import json
import keyword
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .model import Event, Plan, Property

LANGS = ("typescript", "python")
MARKER = "trackplan-generated"  # first lines of every generated file: `trackplan coverage` skips them
PAYLOAD_WORD = {
    "track": "Properties",
    "page": "Properties",
    "screen": "Properties",
    "identify": "Traits",
    "group": "Traits",
}
TS_RESERVED = {
    "break",
    "case",
    "catch",
    "class",
    "const",
    "continue",
    "debugger",
    "default",
    "delete",
    "do",
    "else",
    "enum",
    "export",
    "extends",
    "false",
    "finally",
    "for",
    "function",
    "if",
    "import",
    "in",
    "instanceof",
    "new",
    "null",
    "return",
    "super",
    "switch",
    "this",
    "throw",
    "true",
    "try",
    "typeof",
    "var",
    "void",
    "while",
    "with",
    "let",
    "static",
    "yield",
    "await",
    "implements",
    "interface",
    "package",
    "private",
    "protected",
    "public",
    # names the generated modules define or import themselves
    "configure",
    "analytics",
    "opts",
    "client",
    "development",
    "checkEvent",
    "withPlan",
    "problems",
    "objectProblems",
    "PLAN",
    "RULES",
    "T",
}
PY_RESERVED = set(keyword.kwlist) | {"configure", "datetime", "re", "sys", "deprecated"}


class CodegenError(ValueError):
    """The plan cannot be turned into code (e.g. two events map to one function name)."""


# ------------------------------------------------------------------------------------- names


def _words(name: str) -> list[str]:
    return re.findall(r"[A-Za-z0-9]+", name)


def ts_function(name: str) -> str:
    """'Order Completed' -> 'orderCompleted'."""
    w = _words(name) or ["event"]
    out = w[0][:1].lower() + w[0][1:] + "".join(x[:1].upper() + x[1:] for x in w[1:])
    if out[0].isdigit() or out in TS_RESERVED:
        out = "track" + out[:1].upper() + out[1:]
    return out


def py_function(name: str) -> str:
    """'Order Completed' -> 'order_completed'."""
    out = "_".join(x.lower() for x in _words(name)) or "event"
    if out[0].isdigit() or out in PY_RESERVED:
        out = "track_" + out
    return out


def type_name(*parts: str) -> str:
    """PascalCase of the words of all parts: ('Order Completed', 'products', 'Item') -> 'OrderCompletedProductsItem'."""
    out = "".join(w[:1].upper() + w[1:] for p in parts for w in _words(p)) or "Payload"
    return "Event" + out if out[0].isdigit() else out


def function_names(plan: Plan) -> dict[str, tuple[str, str]]:
    """Event name -> (TypeScript, Python) function name; raises CodegenError on collisions."""
    out: dict[str, tuple[str, str]] = {}
    seen: dict[str, str] = {}
    for name in sorted(plan.events):
        ts, py = ts_function(name), py_function(name)
        for fn in (ts, py):
            if fn in seen and seen[fn] != name:
                raise CodegenError(
                    f"{plan.events[name].source_file or name}:1: events {seen[fn]!r} and {name!r} "
                    f"both generate the function {fn}(): rename one"
                )
            seen[fn] = name
        out[name] = (ts, py)
    return out


def generated_events(plan: Plan) -> list[Event]:
    """The events that get a function: every call type but alias (which has no payload)."""
    return [plan.events[n] for n in sorted(plan.events) if plan.events[n].type in PAYLOAD_WORD]


# ---------------------------------------------------------------------------------- type model


@dataclass(frozen=True)
class TypeRef:
    """A property's type as the generated code declares it (language-neutral)."""

    kind: str  # string | integer | number | boolean | timestamp | enum | object | array
    nullable: bool = False
    values: tuple = ()  # enum
    fields: tuple = ()  # object: ((name, required, TypeRef), ...); empty and open -> any mapping
    item: TypeRef | None = None  # array
    name: str | None = None  # generated name of an object type

    def to_dict(self) -> dict:
        return asdict(self)


def type_of(prop: Property, name: str) -> TypeRef:
    t = prop.type or "string"
    if prop.enum is not None:
        return TypeRef("enum", prop.nullable, values=tuple(prop.enum))
    if t == "object":
        fields = tuple((k, v.is_required, type_of(v, type_name(name, k))) for k, v in (prop.properties or {}).items())
        return TypeRef("object", prop.nullable, fields=fields, name=name if fields else None)
    if t == "array":
        item = type_of(prop.items, type_name(name, "Item")) if prop.items is not None else None
        return TypeRef("array", prop.nullable, item=item)
    return TypeRef(t, prop.nullable)


def payload_type(ev: Event) -> TypeRef:
    name = type_name(ev.name, PAYLOAD_WORD.get(ev.type, "Properties"))
    fields = tuple((k, v.is_required, type_of(v, type_name(ev.name, k))) for k, v in ev.properties.items())
    return TypeRef("object", fields=fields, name=name)


def _named_objects(t: TypeRef, out: list[TypeRef]) -> None:
    """Every named object type inside ``t``, innermost first (a type is declared before its use)."""
    for _, _, ft in t.fields:
        _named_objects(ft, out)
    if t.item is not None:
        _named_objects(t.item, out)
    if t.kind == "object" and t.name and t not in out:
        out.append(t)


# --------------------------------------------------------------------------------- run-time rules


def _rule(prop: Property) -> dict[str, Any]:
    """The checks of one property, as a JSON tree both languages embed (development mode)."""
    r: dict[str, Any] = {"type": prop.type or "string"}
    for key in ("required", "nullable"):
        if getattr(prop, key):
            r[key] = True
    for key in ("enum", "pattern", "format", "minimum", "maximum", "min_length", "max_length"):
        v = getattr(prop, key)
        if v is not None:
            r[key] = v
    if prop.pattern is not None:
        from .patterns import PatternError, python_pattern, regex_pattern  # the plan's ECMA-262 meaning

        try:
            r["pattern_py"] = python_pattern(prop.pattern)
        except PatternError:  # (\p{L}: no form in re: the regex module's, which has Unicode properties)
            try:
                r["pattern_rx"] = regex_pattern(prop.pattern)
            except PatternError:  # (what the plan's lint refuses anyway)
                pass
    if prop.format is not None:
        from .formats import REGEX  # the validator's own definitions: one meaning of each format

        if prop.format in REGEX:
            r["format_regex"] = REGEX[prop.format]
    if prop.items is not None:
        r["items"] = _rule(prop.items)
    if prop.properties:
        r["properties"] = {k: _rule(v) for k, v in prop.properties.items()}
    return r


def rules(plan: Plan) -> dict[str, dict[str, Any]]:
    """Event name -> {"closed": bool, "properties": {...}}: what development mode checks."""
    out = {}
    for ev in generated_events(plan):
        policy = ev.unexpected_properties or plan.header.defaults.unexpected_properties
        out[ev.name] = {"closed": policy == "reject", "properties": {k: _rule(v) for k, v in ev.properties.items()}}
    return out


def _constraints(prop: Property) -> str:
    """The rules of a property that are no type, for the doc comment."""
    bits = []
    if prop.format:
        bits.append(f"format {prop.format}")
    if prop.pattern:
        bits.append(f"pattern {prop.pattern}")
    if prop.minimum is not None or prop.maximum is not None:
        lo = "" if prop.minimum is None else f"{_num(prop.minimum)} <= "
        hi = "" if prop.maximum is None else f" <= {_num(prop.maximum)}"
        bits.append(f"{lo}value{hi}")
    if prop.min_length is not None or prop.max_length is not None:
        unit = "items" if prop.type == "array" else "characters"
        bits.append(f"{prop.min_length or 0}..{'' if prop.max_length is None else prop.max_length} {unit}")
    if prop.pii:
        bits.append("PII")
    return "; ".join(bits)


def _num(v: float) -> int | float:
    return int(v) if float(v).is_integer() else v


def _doc_lines(plan: Plan, ev: Event, names: dict[str, tuple[str, str]], lang: str) -> list[str]:
    lines = [ev.description or ev.name, ""]
    meta = f'Event "{ev.name}" ({ev.type}, version {ev.version})'
    if ev.owner:
        meta += f", owner: {ev.owner}"
    if ev.consent:
        meta += f", consent: {ev.consent}"
    lines.append(meta + ".")
    if ev.source_file:
        lines.append(f"Plan file: {_rel(plan, ev.source_file)}")
    return lines


def _rel(plan: Plan, file: str) -> str:
    try:
        return Path(file).resolve().relative_to(Path(plan.root).resolve()).as_posix()
    except (ValueError, OSError):
        return Path(file).name


def _deprecation(plan: Plan, ev: Event, names: dict[str, tuple[str, str]], lang: str) -> str | None:
    if ev.status != "deprecated":
        return None
    msg = f'"{ev.name}" is deprecated'
    if ev.replaced_by:
        fn = names.get(ev.replaced_by)
        call = (fn[0] if lang == "typescript" else fn[1]) + "()" if fn else None
        msg += f": use {call} ({ev.replaced_by})" if call else f": use {ev.replaced_by}"
    if ev.sunset:
        msg += f"; sunset {ev.sunset}"
    return msg


def _prop_docs(t: TypeRef, ev: Event, py: bool) -> list[str]:
    out = []
    for name, required, ft in t.fields:
        prop = ev.properties[name]
        extra = _constraints(prop)
        desc = prop.description or ""
        what = ("required" if required else "optional") + (", nullable" if ft.nullable else "")
        text = f"{name} ({what}): {desc}".rstrip(": ") + (f" [{extra}]" if extra else "")
        out.append(("    " if py else "") + text)
    return out


# ------------------------------------------------------------------------------------- Python


def _py_type(t: TypeRef) -> str:
    if t.kind == "enum":
        s = f"Literal[{', '.join(json.dumps(v) if not isinstance(v, bool) else repr(v) for v in t.values)}]"
    elif t.kind == "object":
        s = t.name if t.name else "Mapping[str, object]"
    elif t.kind == "array":
        s = f"Sequence[{_py_type(t.item) if t.item else 'object'}]"
    else:
        s = {
            "string": "str",
            "integer": "int",
            "number": "float",
            "boolean": "bool",
            "timestamp": "str | datetime.datetime",
        }[t.kind]
    return f"{s} | None" if t.nullable else s


def _doc_text(text: str) -> str:
    """Text for inside a generated docstring: a pattern's backslashes escaped (a `\\d` would be an
    invalid escape sequence) and no closing triple quote."""
    return text.replace("\\", "\\\\").replace('"""', "'''")


def _py_typeddict(t: TypeRef, doc: str) -> str:
    rows = [(n, f"{'Required' if req else 'NotRequired'}[{_py_type(ft)}]") for n, req, ft in t.fields]
    if all(n.isidentifier() and not keyword.iskeyword(n) for n, _ in rows):
        body = "\n".join(f"    {n}: {ty}" for n, ty in rows) or "    pass"
        return f'class {t.name}(TypedDict):\n    """{_doc_text(doc)}"""\n\n{body}\n'
    items = ", ".join(f"{json.dumps(n)}: {ty}" for n, ty in rows)
    return f"{t.name} = TypedDict({t.name!r}, {{{items}}})\n"


PY_HEADER = '''\
# {marker}: {meta}
"""Typed tracking calls for the tracking plan "{plan}" {version}.

Generated by `trackplan codegen --lang python`; do not edit: change the plan and generate again.
Each function sends one planned event through segment-analytics-python (`segment.analytics`, or a
`segment.analytics.Client` given to `configure`) and adds the plan's name and version to the event's
context (`context.trackingPlan`). With `configure(development=True)` every call is also checked
against the plan's formats and bounds and raises TrackingPlanError when it breaks one.
"""

from __future__ import annotations

import datetime
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, Literal, NotRequired, Protocol, Required, TypedDict

if sys.version_info >= (3, 13):
    from warnings import deprecated
else:  # PEP 702 before Python 3.13
    from typing_extensions import deprecated

PLAN: dict[str, str] = {plan_json}
'''

PY_RUNTIME = '''

class SegmentClient(Protocol):
    """What the functions send through: the `segment.analytics` module or a `segment.analytics.Client`."""

    def track(self, *args: Any, **kwargs: Any) -> Any: ...
    def page(self, *args: Any, **kwargs: Any) -> Any: ...
    def screen(self, *args: Any, **kwargs: Any) -> Any: ...
    def identify(self, *args: Any, **kwargs: Any) -> Any: ...
    def group(self, *args: Any, **kwargs: Any) -> Any: ...


class TrackingPlanError(ValueError):
    """A call breaks a rule of the plan (raised in development mode only)."""


_client: SegmentClient | None = None
_development = False


def configure(client: SegmentClient | None = None, *, development: bool = False) -> None:
    """Send through ``client`` (default: the `segment.analytics` module, configured as usual with
    `analytics.write_key` and `analytics.host`); ``development`` checks every call against the plan."""
    global _client, _development
    _client = client
    _development = development


def _get_client() -> SegmentClient:
    global _client
    if _client is None:
        import segment.analytics as analytics  # type: ignore[import-untyped,import-not-found,unused-ignore]

        _client = analytics
    assert _client is not None
    return _client


def _regex(path: str) -> Any:
    """The `regex` module (PyPI), for a pattern with Unicode property classes (\\\\p{L}), which re has not."""
    try:
        import regex  # type: ignore[import-untyped,import-not-found,unused-ignore]
    except ImportError:
        raise ImportError(f"{path}: its pattern has \\\\p{{...}}, which Python's re cannot run: pip install regex") from None
    return regex


def _problems(path: str, value: object, rule: Mapping[str, Any]) -> list[str]:
    if value is None:
        return [] if rule.get("nullable") else [f"{path}: null is not allowed"]
    kind = rule["type"]
    ok = {
        "string": isinstance(value, str),
        "timestamp": isinstance(value, (str, datetime.datetime)),
        "boolean": isinstance(value, bool),
        "integer": not isinstance(value, bool) and (isinstance(value, int) or (isinstance(value, float) and value.is_integer())),
        "number": not isinstance(value, bool) and isinstance(value, (int, float)),
        "object": isinstance(value, Mapping),
        "array": isinstance(value, (list, tuple)),
    }[kind]
    if not ok:
        return [f"{path}: expected {kind}, got {type(value).__name__}"]
    out = []
    if "enum" in rule and value not in rule["enum"]:
        out.append(f"{path}: value {value!r} is not one of {rule['enum']}")
    if isinstance(value, str):
        if kind == "timestamp":
            try:
                datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                out.append(f"{path}: expected an ISO-8601 timestamp")
        if "pattern_py" in rule and not re.search(rule["pattern_py"], value, re.ASCII):
            out.append(f"{path}: value {value!r} does not match {rule['pattern']}")
        if "pattern_rx" in rule and not _regex(path).search(rule["pattern_rx"], value):
            out.append(f"{path}: value {value!r} does not match {rule['pattern']}")
        if "format_regex" in rule and not re.search(rule["format_regex"], value):
            out.append(f"{path}: not a valid {rule['format']}")
        if kind == "string" and "min_length" in rule and len(value) < rule["min_length"]:
            out.append(f"{path}: shorter than {rule['min_length']} characters")
        if kind == "string" and "max_length" in rule and len(value) > rule["max_length"]:
            out.append(f"{path}: longer than {rule['max_length']} characters")
    if kind in ("integer", "number") and isinstance(value, (int, float)):
        if "minimum" in rule and value < rule["minimum"]:
            out.append(f"{path}: value {value} is below the minimum {rule['minimum']:g}")
        if "maximum" in rule and value > rule["maximum"]:
            out.append(f"{path}: value {value} is above the maximum {rule['maximum']:g}")
    if isinstance(value, Mapping) and "properties" in rule:
        out += _object_problems(path, value, rule["properties"], False)
    if isinstance(value, (list, tuple)) and "items" in rule:
        for i, item in enumerate(value):
            out += _problems(f"{path}[{i}]", item, rule["items"])
    return out


def _object_problems(path: str, value: Mapping[str, object], props: Mapping[str, Any], closed: bool) -> list[str]:
    out = []
    for key, rule in props.items():
        if key not in value:
            if rule.get("required"):
                out.append(f"{path}.{key}: required property is missing")
            continue
        out += _problems(f"{path}.{key}", value[key], rule)
    if closed:
        out += [f"{path}.{key}: not in the plan" for key in value if key not in props]
    return out


def _send(kind: str, event: str, payload: Mapping[str, object] | None, *, user_id: str | None,
          anonymous_id: str | None, context: Mapping[str, object] | None,
          timestamp: datetime.datetime | None, integrations: Mapping[str, object] | None,
          message_id: str | None, **call: str | None) -> Any:
    data = dict(payload or {})
    if _development:
        rule = RULES[event]
        where = "$.traits" if kind in ("identify", "group") else "$.properties"
        problems = _object_problems(where, data, rule["properties"], rule["closed"])
        if problems:
            raise TrackingPlanError(f"{event}: " + "; ".join(problems))
    common: dict[str, Any] = {
        "user_id": user_id, "anonymous_id": anonymous_id, "timestamp": timestamp, "message_id": message_id,
        "integrations": dict(integrations or {}), "context": {**(context or {}), "trackingPlan": dict(PLAN)},
    }
    client = _get_client()
    if kind == "track":
        return client.track(event=event, properties=data, **common)
    if kind in ("page", "screen"):
        send = client.page if kind == "page" else client.screen
        return send(name=call.get("name"), category=call.get("category"), properties=data, **common)
    if kind == "identify":
        return client.identify(traits=data, **common)
    return client.group(group_id=call.get("group_id"), traits=data, **common)
'''

PY_COMMON = [
    "user_id: str | None = None",
    "anonymous_id: str | None = None",
    "context: Mapping[str, object] | None = None",
    "timestamp: datetime.datetime | None = None",
    "integrations: Mapping[str, object] | None = None",
    "message_id: str | None = None",
]
PY_PASS = (
    "user_id=user_id, anonymous_id=anonymous_id, context=context,\n"
    "        timestamp=timestamp, integrations=integrations, message_id=message_id"
)


def _check_type_names(plan: Plan) -> None:
    """Two generated types with one name (e.g. event "Order" property "completed_properties" and
    event "Order Completed") would silently merge: refuse, naming both."""
    seen: dict[str, str] = {}
    for ev in generated_events(plan):
        objs: list[TypeRef] = []
        _named_objects(payload_type(ev), objs)
        for t in objs:
            if t.name in seen and seen[t.name] != ev.name:
                raise CodegenError(
                    f"{ev.source_file or ev.name}:1: events {seen[t.name]!r} and {ev.name!r} both "
                    f"generate the type {t.name}: rename a property or an event"
                )
            seen[t.name] = ev.name


def generate_python(plan: Plan) -> dict[str, str]:
    names = function_names(plan)
    _check_type_names(plan)
    meta = json.dumps({"plan": plan.header.name, "version": plan.header.version, "lang": "python"})
    parts = [
        PY_HEADER.format(
            marker=MARKER,
            meta=meta,
            plan=plan.header.name,
            version=plan.header.version,
            plan_json=json.dumps({"name": plan.header.name, "version": plan.header.version}),
        )
    ]
    parts.append(PY_RUNTIME)
    for ev in generated_events(plan):
        pt = payload_type(ev)
        objs: list[TypeRef] = []
        _named_objects(pt, objs)
        for t in objs:
            doc = (
                f'{"Properties" if PAYLOAD_WORD[ev.type] == "Properties" else "Traits"} of "{ev.name}".'
                if t is pt
                else f'A nested object of "{ev.name}".'
            )
            parts.append("\n\n" + _py_typeddict(t, doc))
        fn = names[ev.name][1]
        payload = "traits" if ev.type in ("identify", "group") else "properties"
        any_required = any(r for _, r, _ in pt.fields)
        params = [f"{payload}: {pt.name}" + ("" if any_required else " | None = None")]
        if ev.type == "group":
            params.insert(0, "group_id: str")
        extra = ""
        if ev.type in ("page", "screen"):
            params += ["*", "name: str | None = None", "category: str | None = None"]
            extra = ", name=name, category=category"
        elif ev.type == "group":
            extra = ", group_id=group_id"
        if "*" not in params:
            params.append("*")
        sig = "".join(f"\n    {x}," for x in [*params, *PY_COMMON]) + "\n"
        doc = _doc_lines(plan, ev, names, "python")
        dep = _deprecation(plan, ev, names, "python")
        if dep:
            doc += ["", f"Deprecated: {dep}."]
        doc += ["", f"{payload.capitalize()}:", *_prop_docs(pt, ev, True)] if pt.fields else []
        doc += ["", "Returns what the Segment client returns (segment-analytics-python: ``(ok, message)``)."]
        docstring = _doc_text("\n    ".join(doc)).replace("\n    \n", "\n\n")
        deco = f"@deprecated({json.dumps(dep)})\n" if dep else ""
        parts.append(
            f'\n\n{deco}def {fn}({sig}) -> Any:\n    """{docstring}\n    """\n'
            f"    return _send(\n        {ev.type!r}, {json.dumps(ev.name)}, {payload}, {PY_PASS}{extra},\n    )\n"
        )
    parts.append(
        "\n\n# What development mode checks, per event (from the plan, like the validator's rules).\n"
        "RULES: dict[str, Any] = {\n" + "".join(f"    {k!r}: {v!r},\n" for k, v in rules(plan).items()) + "}\n"
    )
    parts.append(
        "\n\n__all__ = "
        + json.dumps(
            [
                "configure",
                "SegmentClient",
                "TrackingPlanError",
                "PLAN",
                *[names[e.name][1] for e in generated_events(plan)],
            ],
            indent=1,
        )
        + "\n"
    )
    return {"trackplan_events.py": "".join(parts)}


# --------------------------------------------------------------------------------- TypeScript


def _ts_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z_$][A-Za-z0-9_$]*", k) else json.dumps(k)


def _ts_type(t: TypeRef) -> str:
    if t.kind == "enum":
        s = " | ".join(json.dumps(v) for v in t.values) or "never"
    elif t.kind == "object":
        s = t.name if t.name else "Record<string, unknown>"
    elif t.kind == "array":
        inner = _ts_type(t.item) if t.item else "unknown"
        s = f"ReadonlyArray<{inner}>"
    else:
        s = {
            "string": "string",
            "integer": "number",
            "number": "number",
            "boolean": "boolean",
            "timestamp": "string | Date",
        }[t.kind]
    return f"{s} | null" if t.nullable else s


def _ts_comment(lines: list[str], indent: str = "") -> str:
    body = "\n".join(f"{indent} * {x}".rstrip() for x in lines).replace("*/", "*\\/")
    return f"{indent}/**\n{body}\n{indent} */\n"


def _ts_object(t: TypeRef, ev: Event, top: bool) -> str:
    rows = []
    for name, required, ft in t.fields:
        prop = ev.properties.get(name) if top else None
        doc = []
        if prop is not None:
            doc = [x for x in [prop.description or "", _constraints(prop)] if x]
        rows.append(
            (_ts_comment(doc, "  ") if doc else "") + f"  {_ts_key(name)}{'' if required else '?'}: {_ts_type(ft)}"
        )
    body = "\n".join(rows)
    return f"export type {t.name} = {{\n{body}\n}}\n" if rows else f"export type {t.name} = Record<string, never>\n"


TS_PLAN = """\
// {marker}: {meta}
/**
 * Types and rules of the tracking plan "{plan}" {version}, shared by ./browser.ts and ./node.ts.
 * Generated by `trackplan codegen --lang typescript`; do not edit: change the plan and generate again.
 */

export const PLAN = {plan_json} as const

/** A call breaks a rule of the plan (thrown in development mode only). */
export class TrackingPlanError extends Error {{
  constructor(message: string) {{
    super(message)
    this.name = 'TrackingPlanError'
  }}
}}

type Rule = {{
  type: string
  required?: boolean
  nullable?: boolean
  enum?: ReadonlyArray<unknown>
  pattern?: string
  pattern_py?: string  // (the Python module's form of the pattern)
  pattern_rx?: string  // (the same for the regex module, when it has \\p{{...}})
  format?: string
  format_regex?: string
  minimum?: number
  maximum?: number
  min_length?: number
  max_length?: number
  items?: Rule
  properties?: Record<string, Rule>
}}

export const RULES: Record<string, {{ closed: boolean; properties: Record<string, Rule> }}> = {rules}

// a plan pattern as JSON Schema reads it: ECMA-262 with the u flag (without it where the u grammar refuses it)
function ecma(pattern: string): RegExp {{
  try {{
    return new RegExp(pattern, 'u')
  }} catch {{
    return new RegExp(pattern)
  }}
}}

function problems(path: string, value: unknown, rule: Rule): string[] {{
  if (value === null || value === undefined) return rule.nullable ? [] : [`${{path}}: null is not allowed`]
  const kind = rule.type
  const ok =
    kind === 'string' ? typeof value === 'string'
    : kind === 'timestamp' ? typeof value === 'string' || value instanceof Date
    : kind === 'boolean' ? typeof value === 'boolean'
    : kind === 'integer' ? typeof value === 'number' && Number.isInteger(value)
    : kind === 'number' ? typeof value === 'number' && Number.isFinite(value)
    : kind === 'array' ? Array.isArray(value)
    : typeof value === 'object' && !Array.isArray(value) && !(value instanceof Date)
  if (!ok) return [`${{path}}: expected ${{kind}}, got ${{Array.isArray(value) ? 'array' : typeof value}}`]
  const out: string[] = []
  if (rule.enum && !rule.enum.includes(value)) out.push(`${{path}}: value ${{String(value)}} is not one of ${{rule.enum.join(', ')}}`)
  if (typeof value === 'string') {{
    if (kind === 'timestamp' && Number.isNaN(Date.parse(value))) out.push(`${{path}}: expected an ISO-8601 timestamp`)
    if (rule.pattern !== undefined && !ecma(rule.pattern).test(value)) out.push(`${{path}}: value ${{value}} does not match ${{rule.pattern}}`)
    if (rule.format_regex !== undefined && !new RegExp(rule.format_regex).test(value)) out.push(`${{path}}: not a valid ${{rule.format ?? 'value'}}`)
    // characters are code points, as JSON Schema counts them (value.length counts UTF-16 units: an emoji is 2)
    const chars = [...value].length
    if (kind === 'string' && rule.min_length !== undefined && chars < rule.min_length) out.push(`${{path}}: shorter than ${{rule.min_length}} characters`)
    if (kind === 'string' && rule.max_length !== undefined && chars > rule.max_length) out.push(`${{path}}: longer than ${{rule.max_length}} characters`)
  }}
  if (typeof value === 'number') {{
    if (rule.minimum !== undefined && value < rule.minimum) out.push(`${{path}}: value ${{value}} is below the minimum ${{rule.minimum}}`)
    if (rule.maximum !== undefined && value > rule.maximum) out.push(`${{path}}: value ${{value}} is above the maximum ${{rule.maximum}}`)
  }}
  if (Array.isArray(value) && rule.items) value.forEach((item, i) => out.push(...problems(`${{path}}[${{i}}]`, item, rule.items as Rule)))
  else if (rule.properties && typeof value === 'object') out.push(...objectProblems(path, value as Record<string, unknown>, rule.properties, false))
  return out
}}

function objectProblems(path: string, value: Record<string, unknown>, props: Record<string, Rule>, closed: boolean): string[] {{
  const out: string[] = []
  for (const [key, rule] of Object.entries(props)) {{
    if (!(key in value) || value[key] === undefined) {{
      if (rule.required) out.push(`${{path}}.${{key}}: required property is missing`)
      continue
    }}
    out.push(...problems(`${{path}}.${{key}}`, value[key], rule))
  }}
  if (closed) for (const key of Object.keys(value)) if (!(key in props)) out.push(`${{path}}.${{key}}: not in the plan`)
  return out
}}

/** Throws TrackingPlanError when `payload` breaks a rule of `event` (what development mode runs). */
export function checkEvent(event: string, kind: string, payload: object | undefined): void {{
  const rule = RULES[event]
  if (rule === undefined) throw new TrackingPlanError(`${{event}}: not in the plan`)
  const where = kind === 'identify' || kind === 'group' ? '$.traits' : '$.properties'
  const found = objectProblems(where, (payload ?? {{}}) as Record<string, unknown>, rule.properties, rule.closed)
  if (found.length > 0) throw new TrackingPlanError(`${{event}}: ${{found.join('; ')}}`)
}}

/** The caller's context with the plan's name and version added (`context.trackingPlan`). */
export function withPlan<C extends object>(context: C | undefined): C & {{ trackingPlan: {{ name: string; version: string }} }} {{
  return {{ ...(context ?? ({{}} as C)), trackingPlan: {{ ...PLAN }} }}
}}
"""

TS_BROWSER_HEAD = """\
// {marker}: {meta}
/**
 * Typed tracking calls of the plan "{plan}" {version} for the browser, through
 * `@segment/analytics-next` (an `AnalyticsBrowser` or a loaded `Analytics`).
 * Generated by `trackplan codegen --lang typescript`; do not edit: change the plan and generate again.
 *
 *   import {{ AnalyticsBrowser }} from '@segment/analytics-next'
 *   import {{ configure, {example} }} from './tracking/browser'
 *   configure(AnalyticsBrowser.load({{ writeKey: 'KEY' }}), {{ development: import.meta.env.DEV }})
 */
import type {{ Options }} from '@segment/analytics-next'
import {{ checkEvent, withPlan }} from './plan.js'
import type * as T from './plan.js'

export {{ PLAN, TrackingPlanError }} from './plan.js'
export type * from './plan.js'

/** What the functions call: the methods of `AnalyticsBrowser` / `Analytics` they use. */
export interface BrowserAnalytics {{
  track(event: string, properties?: object, options?: Options): Promise<unknown>
  page(category: string | null, name: string | null, properties?: object, options?: Options): Promise<unknown>
  screen(category: string | null, name: string | null, properties?: object, options?: Options): Promise<unknown>
  identify(userId: string | null, traits?: object, options?: Options): Promise<unknown>
  group(groupId: string, traits?: object, options?: Options): Promise<unknown>
}}

let client: BrowserAnalytics | undefined
let development = false

/** Send through `analytics`; `development: true` checks every call against the plan's formats and bounds. */
export function configure(analytics: BrowserAnalytics, settings: {{ development?: boolean }} = {{}}): void {{
  client = analytics
  development = settings.development ?? false
}}

function analytics(): BrowserAnalytics {{
  if (client === undefined) throw new Error('call configure(analytics) from the generated tracking module first')
  return client
}}

function opts(options: Options | undefined): Options {{
  return {{ ...options, context: withPlan(options?.context) }}
}}
"""

TS_NODE_HEAD = """\
// {marker}: {meta}
/**
 * Typed tracking calls of the plan "{plan}" {version} for Node, through `@segment/analytics-node`.
 * Generated by `trackplan codegen --lang typescript`; do not edit: change the plan and generate again.
 *
 *   import {{ Analytics }} from '@segment/analytics-node'
 *   import {{ configure, {example} }} from './tracking/node'
 *   configure(new Analytics({{ writeKey: 'KEY' }}))
 */
import type {{ Analytics, TrackParams }} from '@segment/analytics-node'
import {{ checkEvent, withPlan }} from './plan.js'
import type * as T from './plan.js'

export {{ PLAN, TrackingPlanError }} from './plan.js'
export type * from './plan.js'

/** Who the event is about: Segment needs a userId or an anonymousId. */
export type Identity = {{ userId: string; anonymousId?: string }} | {{ userId?: string; anonymousId: string }}
/** What every call may add, as in @segment/analytics-node. */
export type Common = Pick<TrackParams, 'context' | 'timestamp' | 'integrations' | 'messageId'>

let client: Pick<Analytics, 'track' | 'page' | 'screen' | 'identify' | 'group'> | undefined
let development = false

/** Send through `analytics`; `development: true` checks every call against the plan's formats and bounds. */
export function configure(analytics: Pick<Analytics, 'track' | 'page' | 'screen' | 'identify' | 'group'>,
                          settings: {{ development?: boolean }} = {{}}): void {{
  client = analytics
  development = settings.development ?? false
}}

function analytics(): Pick<Analytics, 'track' | 'page' | 'screen' | 'identify' | 'group'> {{
  if (client === undefined) throw new Error('call configure(analytics) from the generated tracking module first')
  return client
}}
"""


def _ts_fn_doc(plan: Plan, ev: Event, names: dict, pt: TypeRef) -> str:
    doc = _doc_lines(plan, ev, names, "typescript")
    if pt.fields:
        doc += ["", f"{PAYLOAD_WORD[ev.type]}:", *[f"- {x}" for x in _prop_docs(pt, ev, False)]]
    dep = _deprecation(plan, ev, names, "typescript")
    if dep:
        doc += ["", f"@deprecated {dep}."]
    return _ts_comment(doc)


def generate_typescript(plan: Plan) -> dict[str, str]:
    names = function_names(plan)
    _check_type_names(plan)
    meta = json.dumps({"plan": plan.header.name, "version": plan.header.version, "lang": "typescript"})
    fmt = {"marker": MARKER, "meta": meta, "plan": plan.header.name, "version": plan.header.version}
    events = generated_events(plan)
    types = [
        TS_PLAN.format(
            **fmt,
            plan_json=json.dumps({"name": plan.header.name, "version": plan.header.version}),
            rules="{\n" + "".join(f"  {json.dumps(k)}: {json.dumps(v)},\n" for k, v in rules(plan).items()) + "}",
        )
    ]
    example = names[events[0].name][0] if events else "PLAN"
    browser = [TS_BROWSER_HEAD.format(**fmt, example=example)]
    node = [TS_NODE_HEAD.format(**fmt, example=example)]
    for ev in events:
        pt = payload_type(ev)
        objs: list[TypeRef] = []
        _named_objects(pt, objs)
        for t in objs:
            types.append(
                "\n"
                + (_ts_comment([f'{PAYLOAD_WORD[ev.type]} of "{ev.name}".']) if t is pt else "")
                + _ts_object(t, ev, t is pt)
            )
        fn = names[ev.name][0]
        doc = _ts_fn_doc(plan, ev, names, pt)
        req = any(r for _, r, _ in pt.fields)
        p = f"payload{'' if req else '?'}: T.{pt.name}"
        e = json.dumps(ev.name)
        chk = f"  if (development) checkEvent({e}, {ev.type!r}, payload)\n"
        if ev.type == "track":
            b_sig, b_call = f"{p}, options?: Options", f"analytics().track({e}, payload ?? {{}}, opts(options))"
            n_sig = f"message: Identity & Common & {{ properties{'' if req else '?'}: T.{pt.name} }}"
            n_call = (
                f"analytics().track({{ ...message, event: {e}, properties: message.properties ?? {{}}, "
                f"context: withPlan(message.context) }})"
            )
            n_pay = "message.properties"
        elif ev.type in ("page", "screen"):
            b_sig = f"{p}, options?: Options, page: {{ category?: string; name?: string }} = {{}}"
            b_call = f"analytics().{ev.type}(page.category ?? null, page.name ?? null, payload ?? {{}}, opts(options))"
            n_sig = (
                f"message: Identity & Common & {{ properties{'' if req else '?'}: T.{pt.name}; "
                "category?: string; name?: string }"
            )
            n_call = (
                f"analytics().{ev.type}({{ ...message, properties: message.properties ?? {{}}, "
                "context: withPlan(message.context) })"
            )
            n_pay = "message.properties"
        elif ev.type == "identify":
            b_sig = f"userId: string | null, {p}, options?: Options"
            b_call = "analytics().identify(userId, payload ?? {}, opts(options))"
            n_sig = f"message: Identity & Common & {{ traits{'' if req else '?'}: T.{pt.name} }}"
            n_call = (
                "analytics().identify({ ...message, traits: message.traits ?? {}, context: withPlan(message.context) })"
            )
            n_pay = "message.traits"
        else:  # group
            b_sig = f"groupId: string, {p}, options?: Options"
            b_call = "analytics().group(groupId, payload ?? {}, opts(options))"
            n_sig = f"message: Identity & Common & {{ groupId: string; traits{'' if req else '?'}: T.{pt.name} }}"
            n_call = (
                "analytics().group({ ...message, traits: message.traits ?? {}, context: withPlan(message.context) })"
            )
            n_pay = "message.traits"
        browser.append(f"\n{doc}export function {fn}({b_sig}): Promise<unknown> {{\n{chk}  return {b_call}\n}}\n")
        node.append(
            f"\n{doc}export function {fn}({n_sig}): void {{\n"
            + chk.replace("payload)", f"{n_pay})")
            + f"  {n_call}\n}}\n"
        )
    return {"plan.ts": "".join(types), "browser.ts": "".join(browser), "node.ts": "".join(node)}


def generate(plan: Plan, lang: str) -> dict[str, str]:
    """File name -> text of the generated code for ``lang`` (typescript | python)."""
    if lang == "python":
        return generate_python(plan)
    if lang == "typescript":
        return generate_typescript(plan)
    raise CodegenError(f"--lang {lang!r}: expected one of {', '.join(LANGS)}")


def write_code(plan: Plan, lang: str, out_dir: Path | str) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in generate(plan, lang).items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


# ------------------------------------------------------------------------------ signature breaks


@dataclass
class SignatureBreak:
    event: str
    typescript: str  # the generated function names
    python: str
    path: str  # where in the payload, '' for the whole function
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def signatures(plan: Plan) -> dict[str, tuple[str, TypeRef]]:
    """Event name -> (call type, payload type) of every generated function."""
    return {ev.name: (ev.type, payload_type(ev)) for ev in generated_events(plan)}


def _accepts(old: TypeRef, new: TypeRef, path: str, out: list[tuple[str, str]]) -> None:
    """Append (path, reason) for every value the old type allowed in source code and the new one does not."""
    if old.nullable and not new.nullable:
        out.append((path, "no longer accepts null"))
    if new.kind == "enum":
        if old.kind != "enum":
            out.append((path, f"narrowed from {old.kind} to the values {list(new.values)}"))
            return
        gone = [v for v in old.values if v not in new.values]
        if gone:
            out.append((path, f"enum values {gone} removed"))
        return
    if old.kind == "enum":  # an enum widened to its base type is fine; to another type it is not
        kinds = {type(v).__name__ for v in old.values}
        fits = {
            "string": {"str"},
            "timestamp": {"str"},
            "number": {"int", "float"},
            "integer": {"int"},
            "boolean": {"bool"},
        }.get(new.kind, set())
        if not kinds <= fits:
            out.append((path, f"type enum -> {new.kind}"))
        return
    if old.kind != new.kind:
        widened = (old.kind, new.kind) in (("integer", "number"), ("string", "timestamp"))
        if not widened:
            out.append((path, f"type {old.kind} -> {new.kind}"))
        return
    if old.kind == "object":
        if not new.fields:
            return  # any mapping
        if not old.fields:
            out.append((path, "an open object now has declared properties"))
            return
        _fields({n: (r, t) for n, r, t in old.fields}, {n: (r, t) for n, r, t in new.fields}, path, out)
    elif old.kind == "array":
        if old.item is not None and new.item is not None:
            _accepts(old.item, new.item, f"{path}[]", out)
        elif new.item is not None:
            out.append((path, "array items now typed"))


def _fields(old: dict, new: dict, path: str, out: list[tuple[str, str]]) -> None:
    for name, (req, t) in old.items():
        here = f"{path}.{name}" if path else name
        if name not in new:
            out.append((here, "property removed: calls that pass it no longer compile"))
            continue
        _accepts(t, new[name][1], here, out)
    for name, (req, _) in new.items():
        here = f"{path}.{name}" if path else name
        if req and not old.get(name, (False,))[0]:
            out.append((here, "required property added" if name not in old else "optional -> required"))


def signature_breaks(base: Plan, head: Plan) -> list[SignatureBreak]:
    """The generated functions whose existing calls stop compiling from ``base`` to ``head``."""
    a, b = signatures(base), signatures(head)
    out: list[SignatureBreak] = []
    for name in sorted(a):
        ts, py = ts_function(name), py_function(name)
        if name not in b:
            out.append(SignatureBreak(name, ts, py, "", "function removed (the event left the plan)"))
            continue
        (ka, ta), (kb, tb) = a[name], b[name]
        if ka != kb:
            out.append(SignatureBreak(name, ts, py, "", f"call type {ka} -> {kb}: parameters change"))
            continue
        found: list[tuple[str, str]] = []
        _fields({n: (r, t) for n, r, t in ta.fields}, {n: (r, t) for n, r, t in tb.fields}, "", found)
        out += [SignatureBreak(name, ts, py, p, r) for p, r in found]
    return out
