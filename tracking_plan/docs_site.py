"""`trackplan docs`: a static, browsable catalog of the tracking plan.

One index page (filter by owner, status, consent category, or free text) and one page per event:
properties with type, constraints, required and PII flags, owner, status, consent category, an
example payload that the plan itself accepts, where the event is used in KPIs, funnels, experiments
and initiatives, and its change history from git. Plain files, no CDN: open ``index.html`` from
disk or publish the folder anywhere.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from .compile import event_schema, slug
from .loader import load_plan
from .model import Event, Plan, Property

TEMPLATES = Path(__file__).parent / "templates"
BASE_CSS = TEMPLATES / "base.css"  # the look shared with the report (trackplan/report/)
EXAMPLE_TIME = "2026-01-15T12:00:00.000Z"

FORMAT_EXAMPLES = {
    "email": "jane@example.com",
    "uri": "https://example.com/",
    "date": "2026-01-15",
    "ipv4": "192.0.2.10",
    "uuid": "123e4567-e89b-42d3-a456-426614174000",
    "currency": "USD",
    "date-time": EXAMPLE_TIME,
}


# ---------------------------------------------------------------------------------- examples


def regex_example(pattern: str) -> str | None:
    """A short string matching ``pattern``, built from Python's own regex parse tree; None when the
    pattern uses constructs this walk does not cover (lookarounds, backreferences)."""
    import re._parser as sre  # the stdlib parser: the same reading of the pattern `re` uses

    def walk(items) -> str:
        out = []
        for op, av in items:
            name = str(op)
            if name == "LITERAL":
                out.append(chr(av))
            elif name == "IN":
                out.append(_pick(av))
            elif name == "ANY":
                out.append("a")
            elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                lo, _hi, sub = av
                out.append(walk(sub) * max(lo, 1))
            elif name == "SUBPATTERN":
                out.append(walk(av[-1]))
            elif name == "BRANCH":
                out.append(walk(av[1][0]))
            elif name == "AT":
                continue
            else:
                raise ValueError(name)
        return "".join(out)

    def _pick(av) -> str:
        for op, v in av:
            name = str(op)
            if name == "LITERAL":
                return chr(v)
            if name == "RANGE":
                return chr(v[0])
            if name == "CATEGORY":
                return {"CATEGORY_DIGIT": "0", "CATEGORY_WORD": "a", "CATEGORY_SPACE": " "}.get(str(v), "a")
        raise ValueError("negated class")

    try:
        s = walk(sre.parse(pattern))
    except (ValueError, re.error, TypeError):
        return None
    return s if re.search(pattern, s) else None


def example_value(prop: Property) -> Any:
    """A value the property's constraints accept (its first documented example when it has one)."""
    if prop.examples:
        return prop.examples[0]
    if prop.enum:
        return prop.enum[0]
    t = prop.type or "string"
    if t == "string":
        s = (
            FORMAT_EXAMPLES.get(prop.format or "")
            or (regex_example(prop.pattern) if prop.pattern else None)
            or "example"
        )
        if prop.min_length and len(s) < prop.min_length:
            s = s + "x" * (prop.min_length - len(s))
        if prop.max_length is not None:
            s = s[: prop.max_length]
        return s
    if t in ("integer", "number"):
        lo = prop.minimum if prop.minimum is not None else (1 if t == "integer" else 9.99)
        if prop.maximum is not None:
            lo = min(lo, prop.maximum)
        return int(-(-lo // 1)) if t == "integer" else float(lo)
    if t == "boolean":
        return True
    if t == "timestamp":
        return EXAMPLE_TIME
    if t == "object":
        return {k: example_value(p) for k, p in (prop.properties or {}).items()}
    if t == "array":
        return [example_value(prop.items)] if prop.items is not None else []
    return None


def example_payload(plan: Plan, ev: Event) -> dict:
    """A complete Segment message for ``ev`` that passes the plan's validation."""
    if ev.examples:
        return ev.examples[0]
    props = {k: example_value(p) for k, p in ev.properties.items()}
    msg: dict[str, Any] = {
        "type": ev.type,
        "messageId": "0d3c1a9e-6a55-4c4c-8f5e-0f4f2a8b7c11",
        "anonymousId": "a1b2c3d4-0000-4000-8000-000000000001",
        "userId": "user_1234",
    }
    if ev.type == "track":
        msg["event"] = ev.name
    if ev.type in ("identify", "group"):
        msg["traits"] = props
        if ev.type == "group":
            msg["groupId"] = "ws_example"
    else:
        msg["properties"] = props
    msg["context"] = {"library": {"name": "analytics.js", "version": "5.2.0"}}
    if ev.consent:
        msg["context"]["consent"] = {"categoryPreferences": {ev.consent: True}}
    msg.update({"timestamp": EXAMPLE_TIME, "sentAt": EXAMPLE_TIME, "receivedAt": EXAMPLE_TIME})
    return msg


# -------------------------------------------------------------------------------------- usage


def usages(plan: Plan, name: str) -> list[dict]:
    """Where ``name`` is used in metrics.yaml: KPIs, signup/activation/purchase, funnels, experiments,
    initiatives."""
    m = plan.metrics
    out = []
    for role in ("signup", "activation", "purchase"):
        ref = getattr(m, role)
        if ref is not None and ref.event == name:
            out.append({"kind": "metric", "key": role, "detail": f"the plan's {role} event"})
    for k in m.kpis:
        if k.event == name:
            out.append(
                {
                    "kind": "KPI",
                    "key": k.key,
                    "detail": f"{k.name or k.key} ({k.measure}"
                    + (f" of {k.property}" if k.property else "")
                    + f"; objective {k.objective})",
                }
            )
    for f in m.funnels:
        if name in f.steps:
            out.append({"kind": "funnel", "key": f.key, "detail": f"step {f.steps.index(name) + 1} of {len(f.steps)}"})
        for x in f.exclusions:
            if x.event == name:
                out.append({"kind": "funnel", "key": f.key, "detail": "exclusion event"})
    for x in m.experiments:
        if x.exposure_event == name:
            out.append({"kind": "experiment", "key": x.key, "detail": "exposure event"})
    kpi_events = {k.key: k.event for k in m.kpis}
    for i in m.initiatives:
        if i.evaluation.treatment_event == name:
            out.append({"kind": "initiative", "key": i.key, "detail": "treatment event (matching)"})
        if kpi_events.get(i.kpi) == name:
            out.append({"kind": "initiative", "key": i.key, "detail": f"measured by KPI {i.kpi}"})
    return out


def git_history(path: str | Path | None, limit: int = 50) -> list[dict] | None:
    """Commits touching ``path`` (following renames); None when git or the history is unavailable."""
    if not path:
        return None
    p = Path(path)
    if not p.exists():
        return None
    try:
        proc = subprocess.run(
            [
                "git",
                "-C",
                str(p.resolve().parent),
                "log",
                "--follow",
                f"-n{limit}",
                "--format=%h%x1f%ad%x1f%an%x1f%s",
                "--date=short",
                "--",
                p.name,
            ],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None
    rows = [line.split("\x1f") for line in proc.stdout.splitlines() if line.strip()]
    return [{"commit": c, "date": d, "author": a, "subject": s} for c, d, a, s in rows]


# ------------------------------------------------------------------------------------- render


def constraints(prop: Property) -> list[str]:
    out = []
    if prop.enum is not None:
        out.append("one of " + ", ".join(json.dumps(v) for v in prop.enum))
    for key, label in (("pattern", "matches"), ("format", "format")):
        if getattr(prop, key):
            out.append(f"{label} {getattr(prop, key)}")
    for key, label in (("minimum", "≥"), ("maximum", "≤"), ("min_length", "length ≥"), ("max_length", "length ≤")):
        v = getattr(prop, key)
        if v is not None:
            out.append(f"{label} {int(v) if float(v).is_integer() else v}")
    if prop.nullable:
        out.append("nullable")
    if prop.items is not None:
        out.append(f"items: {prop.items.type or 'any'}")
    return out


def property_rows(props: dict[str, Property], prefix: str = "") -> list[dict]:
    rows = []
    for name, p in props.items():
        rows.append(
            {
                "name": prefix + name,
                "type": p.type or "any",
                "required": p.is_required,
                "pii": p.pii,
                "constraints": constraints(p),
                "description": p.description or "",
                "shared": p.ref,
            }
        )
        if p.properties:
            rows += property_rows(p.properties, f"{prefix}{name}.")
        if p.items is not None and p.items.properties:
            rows += property_rows(p.items.properties, f"{prefix}{name}[].")
    return rows


def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _find_data_docs(out_dir: Path, data_docs: str | Path | None) -> str | None:
    if data_docs:
        return Path(data_docs).resolve().as_uri() if Path(data_docs).exists() else str(data_docs)
    for root in (out_dir.parent, Path.cwd()):
        idx = root / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
        if idx.is_file():
            return idx.resolve().as_uri()
    return None


def build_docs(plan_dir: str | Path, out_dir: str | Path, data_docs: str | Path | None = None) -> list[Path]:
    """Write the catalog of the plan in ``plan_dir`` to ``out_dir``; return the pages written.

    ``data_docs``: a path or URL of the Great Expectations Data Docs to link (default: found next to
    ``out_dir`` or in the working directory, if built)."""
    plan = load_plan(plan_dir)
    out = Path(out_dir)
    (out / "events").mkdir(parents=True, exist_ok=True)
    env = _env()
    css = Markup(BASE_CSS.read_text() + (TEMPLATES / "docs.css").read_text())
    docs_link = _find_data_docs(out, data_docs)
    events = sorted(plan.events.values(), key=lambda e: e.name)
    pages = []
    rows = []
    for ev in events:
        page = f"events/{slug(ev.name)}.html"
        used = usages(plan, ev.name)
        rows.append({"ev": ev, "page": page, "used": len(used), "props": len(ev.properties)})
        consent = plan.consent.categories.get(ev.consent) if ev.consent else None
        history = git_history(ev.source_file)
        payload = example_payload(plan, ev)
        html = env.get_template("docs_event.html.j2").render(
            ev=ev,
            plan=plan,
            css=css,
            props=property_rows(ev.properties),
            used=used,
            consent=consent,
            history=history,
            payload=json.dumps(payload, indent=2),
            docs_link=docs_link,
            schema=json.dumps(event_schema(plan, ev), indent=2),
            policy=ev.unexpected_properties or plan.header.defaults.unexpected_properties,
        )
        (out / page).write_text(html, encoding="utf-8")
        pages.append(out / page)
    facets = {k: sorted({getattr(e, k) or "" for e in events}) for k in ("owner", "status", "consent")}
    index = env.get_template("docs_index.html.j2").render(
        plan=plan, css=css, rows=rows, facets=facets, docs_link=docs_link
    )
    (out / "index.html").write_text(index, encoding="utf-8")
    return [out / "index.html", *pages]
