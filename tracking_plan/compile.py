"""`trackplan compile`: one JSON Schema (draft 2020-12) per event version, from the plan.

Each schema describes the whole Segment message: the envelope (type, event name, ids, timestamps,
context) and the event's properties (or traits, for identify and group calls). The plan stays the
single source; schemas are generated, never edited (a change bumps the event's SchemaVer, and with
it the `$id`).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .formats import PINNED
from .model import Event, Plan, Property

DIALECT = "https://json-schema.org/draft/2020-12/schema"

SCALARS = {
    "string": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "timestamp": "string",
    "object": "object",
    "array": "array",
}
# an id is a non-empty string or an integer (stored as its digits)
ID = {"type": ["string", "integer"], "minLength": 1}
# userId/anonymousId: null or "" is no id; one of the two must be an id
MAYBE_ID = {"type": ["string", "integer", "null"]}
TIMESTAMP = {"type": ["string", "null"], "format": "date-time"}  # null: no timestamp
# Where the payload lives for each call type (Segment spec).
PAYLOAD = {
    "track": "properties",
    "page": "properties",
    "screen": "properties",
    "identify": "traits",
    "group": "traits",
    "alias": None,
}


def slug(text: str) -> str:
    """'Order Completed' -> 'order-completed'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unnamed"


def _num(v: float) -> int | float:
    """A plan bound as JSON: an int stays exact (never through float); 10.0 is written 10."""
    return v if isinstance(v, int) else int(v) if v.is_integer() else v


class SchemaCollision(ValueError):
    """Two events whose names make one schema file: the plan's error (one line, exit 2), not a defect."""

    user_error = True
    exit_code = 2


def property_schema(prop: Property, closed: bool) -> dict[str, Any]:
    """JSON Schema of one plan property; ``closed`` is the event's reject-unexpected policy,
    inherited by nested objects that do not say otherwise."""
    s: dict[str, Any] = {}
    if prop.description:
        s["description"] = prop.description
    t = prop.type
    if t is not None:
        s["type"] = [SCALARS[t], "null"] if prop.nullable else SCALARS[t]
    if t == "timestamp":
        s["format"] = "date-time"
    if prop.format is not None:
        if prop.format == "currency":  # JSON Schema has no currency format: the pattern says it
            pass
        elif "format" in s and s["format"] != prop.format:  # a timestamp's date-time and this one: both apply
            s.setdefault("allOf", []).append({"format": prop.format})
        else:
            s["format"] = prop.format
        if prop.format in PINNED:  # validators read these formats differently: the pattern is ours
            s.setdefault("allOf", []).append({"pattern": PINNED[prop.format]})
    if prop.enum is not None:
        s["enum"] = list(prop.enum) + ([None] if prop.nullable and None not in prop.enum else [])
    if prop.pattern is not None:
        s["pattern"] = prop.pattern
    if prop.minimum is not None:
        s["minimum"] = _num(prop.minimum)
    if prop.maximum is not None:
        s["maximum"] = _num(prop.maximum)
    # the plan has one length vocabulary; JSON Schema splits it between strings and arrays
    lo, hi = ("minItems", "maxItems") if t == "array" else ("minLength", "maxLength")
    if prop.min_length is not None:
        s[lo] = prop.min_length
    if prop.max_length is not None:
        s[hi] = prop.max_length
    if prop.items is not None:
        s["items"] = property_schema(prop.items, closed)
    if t == "object":
        # an object that lists no properties is free-form unless it says additional_properties: false
        s.update(
            _object(
                prop.properties or {},
                (closed and bool(prop.properties))
                if prop.additional_properties is None
                else not prop.additional_properties,
            )
        )
    if prop.pii:
        s["x-pii"] = True  # an annotation: 2020-12 ignores unknown keywords, our tools read it
    if prop.examples:
        s["examples"] = list(prop.examples)
    return s


def _object(props: dict[str, Property], closed: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"properties": {k: property_schema(v, closed) for k, v in props.items()}}
    required = [k for k, v in props.items() if v.is_required]
    if required:
        out["required"] = required
    out["additionalProperties"] = not closed
    return out


def event_schema(plan: Plan, ev: Event) -> dict[str, Any]:
    """The JSON Schema of a whole Segment message for one event version."""
    policy = ev.unexpected_properties or plan.header.defaults.unexpected_properties
    closed = policy == "reject"
    props: dict[str, Any] = {
        "type": {"const": ev.type},
        **({"event": {"const": ev.name}} if ev.type == "track" else {}),
        "messageId": ID,
        "anonymousId": MAYBE_ID,
        "userId": ID if ev.type == "alias" else MAYBE_ID,
        "timestamp": TIMESTAMP,
        "originalTimestamp": TIMESTAMP,
        "sentAt": TIMESTAMP,
        "receivedAt": TIMESTAMP,
    }
    required = ["type", "messageId"]
    if ev.type == "track":
        required.append("event")
    elif ev.type == "group":
        props["groupId"] = ID
        required.append("groupId")
    elif ev.type == "alias":
        props["previousId"] = ID
        required += ["previousId", "userId"]
    payload = PAYLOAD[ev.type]
    if payload is not None:
        props[payload] = {"type": "object", **_object(ev.properties, closed)}
        if any(p.is_required for p in ev.properties.values()):
            required.append(payload)
    schema: dict[str, Any] = {
        "$schema": DIALECT,
        "$id": f"trackplan://{slug(plan.header.name)}/{slug(ev.name)}/{ev.version}",
        "title": ev.name,
    }
    if ev.description:
        schema["description"] = ev.description
    if ev.status == "deprecated":
        schema["deprecated"] = True
    schema |= {
        "type": "object",
        "properties": props,
        "required": required,
        # Segment: every message names the person, by userId or anonymousId (null or "" is no id)
        "anyOf": [{"required": [k], "properties": {k: ID}} for k in ("userId", "anonymousId")],
        # the envelope stays open: SDKs add fields of their own (channel, version, _metadata)
        "additionalProperties": True,
        "x-trackplan": {
            "plan": plan.header.name,
            "plan_version": plan.header.version,
            "event": ev.name,
            "event_version": ev.version,
            "consent": ev.consent,
            "owner": ev.owner,
            "unexpected_properties": policy,
        },
    }
    return schema


def schema_key(ev: Event) -> str:
    return f"{slug(ev.name)}/{ev.version}"


def compile_plan(plan: Plan) -> dict[str, dict]:
    """One schema per event version, keyed ``<event slug>/<version>``."""
    out: dict[str, dict] = {}
    for name in sorted(plan.events):
        ev = plan.events[name]
        key = schema_key(ev)
        if key in out:  # two names with one slug ("Sign-up Done" / "Sign Up Done") would overwrite
            raise SchemaCollision(
                f"events {out[key]['title']!r} and {name!r} compile to the same file {key}.json: rename one "
                "(`trackplan lint` reports the pair as L120)"
            )
        out[key] = event_schema(plan, ev)
    return out


def write_schemas(plan: Plan, out_dir: Path | str) -> list[Path]:
    """Write ``<out>/<event slug>/<version>.json`` for every event plus ``<out>/index.json``."""
    out_dir = Path(out_dir)
    written = []
    index = []
    for key, schema in compile_plan(plan).items():
        path = out_dir / f"{key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dump(schema), encoding="utf-8")
        written.append(path)
        meta = schema["x-trackplan"]
        index.append(
            {
                "event": meta["event"],
                "version": meta["event_version"],
                "type": schema["properties"]["type"]["const"],
                "id": schema["$id"],
                "path": f"{key}.json",
                "deprecated": schema.get("deprecated", False),
            }
        )
    idx = out_dir / "index.json"
    idx.write_text(dump({"plan": plan.header.name, "version": plan.header.version, "schemas": index}), encoding="utf-8")
    written.append(idx)
    return written


def dump(obj: Any) -> str:
    """Stable JSON text (the form the golden files and the written schemas share)."""
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"
