"""`trackplan diff`: every change between two plans, classed major / minor / patch.

The rules are Snowplow SchemaVer's and OpenTrackPlan's, made automatic: a change that can make a
previously valid event invalid (or a consumer's query wrong) is major; one that only accepts more
is minor; documentation is patch. The plan header's semver must bump at least as much as the
largest change. A base plan comes from a directory or from a git ref (read with `git archive`,
no worktree).
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .loader import PlanError, Problem, load_plan
from .model import SEMVER, Event, Plan, Property

BUMPS = ("none", "patch", "minor", "major")
RANK = {b: i for i, b in enumerate(BUMPS)}


@dataclass
class Change:
    kind: str  # major | minor | patch
    code: str  # stable snake_case name of the rule
    event: str | None  # event name, or None for plan-level (metrics, identity, consent, header)
    path: str  # dotted path inside the event or the file
    message: str

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DiffResult:
    changes: list[Change] = field(default_factory=list)
    base_version: str = "0.0.0"
    head_version: str = "0.0.0"
    # events that changed without moving their own SchemaVer: reported, not failing (the plan
    # version is the contract CI checks; see event_version_problems)
    event_versions: list[str] = field(default_factory=list)
    # generated tracking functions (`trackplan codegen`) whose existing calls stop compiling
    breaks: list[Any] = field(default_factory=list)

    @property
    def required_bump(self) -> str:
        return max((c.kind for c in self.changes), key=RANK.__getitem__, default="none")

    @property
    def declared_bump(self) -> str:
        return declared_bump(self.base_version, self.head_version)

    @property
    def ok(self) -> bool:
        """True when the declared version bump is at least the required one."""
        if self.declared_bump == "invalid":
            return False
        return RANK[self.declared_bump] >= RANK[self.required_bump]

    def to_dict(self) -> dict:
        return {
            "base_version": self.base_version,
            "head_version": self.head_version,
            "required_bump": self.required_bump,
            "declared_bump": self.declared_bump,
            "ok": self.ok,
            "changes": [c.to_dict() for c in self.changes],
            "event_versions": self.event_versions,
            "breaking_functions": [b.to_dict() for b in self.breaks],
        }


def declared_bump(base: str, head: str) -> str:
    """major | minor | patch | none from two semver strings; "invalid" when head goes backwards
    or does not reset the lower parts (1.2.3 -> 2.0.1 is fine by semver's precedence, so only
    going backwards is invalid)."""
    if not (SEMVER.match(base) and SEMVER.match(head)):
        return "invalid"
    b = tuple(int(x) for x in base.split("."))
    h = tuple(int(x) for x in head.split("."))
    if h < b:
        return "invalid"
    for i, name in enumerate(("major", "minor", "patch")):
        if h[i] != b[i]:
            return name
    return "none"


# --------------------------------------------------------------------------------- properties


class _Out:
    def __init__(self) -> None:
        self.changes: list[Change] = []

    def add(self, kind: str, code: str, event: str | None, path: str, message: str) -> None:
        self.changes.append(Change(kind, code, event, path, message))


DOC_FIELDS = ("description", "examples")
# bounds: (field, which direction tightens)
LOWER_BOUNDS = ("minimum", "min_length")
UPPER_BOUNDS = ("maximum", "max_length")


def _diff_property(out: _Out, ev: str, path: str, a: Property, b: Property, closed: bool) -> None:
    """Compare one property definition recursively (nested properties, array items)."""
    if a.type != b.type:
        out.add("major", "type_changed", ev, path, f"{path}: type {a.type} -> {b.type}")
    if a.nullable != b.nullable:
        if b.nullable:
            out.add("minor", "made_nullable", ev, path, f"{path}: now accepts null")
        else:
            out.add("major", "made_not_nullable", ev, path, f"{path}: no longer accepts null")
    _diff_enum(out, ev, path, a.enum, b.enum)
    for key in LOWER_BOUNDS + UPPER_BOUNDS:
        va, vb = getattr(a, key), getattr(b, key)
        if va == vb:
            continue
        lower = key in LOWER_BOUNDS
        if va is None:
            tighter = True
        elif vb is None:
            tighter = False
        else:
            tighter = vb > va if lower else vb < va
        word = "tightened" if tighter else "loosened"
        out.add(
            "major" if tighter else "minor",
            f"bound_{word}",
            ev,
            f"{path}.{key}",
            f"{path}: {key} {_fmt(va)} -> {_fmt(vb)} ({word})",
        )
    for key in ("pattern", "format"):
        va, vb = getattr(a, key), getattr(b, key)
        if va == vb:
            continue
        if vb is None:
            out.add("minor", f"{key}_removed", ev, f"{path}.{key}", f"{path}: {key} {va!r} removed")
        else:
            # whether one regex accepts a superset of another is undecidable in general: a new or
            # changed pattern is treated as tightening
            out.add("major", f"{key}_tightened", ev, f"{path}.{key}", f"{path}: {key} {_fmt(va)} -> {vb!r}")
    if a.pii != b.pii:
        out.add("minor", "pii_changed", ev, path, f"{path}: pii {a.pii} -> {b.pii}")
    for key in DOC_FIELDS:
        if getattr(a, key) != getattr(b, key):
            out.add("patch", f"{key}_changed", ev, f"{path}.{key}", f"{path}: {key} changed")
    if a.ref != b.ref and a.type == b.type:
        out.add("patch", "ref_changed", ev, path, f"{path}: shared definition {a.ref} -> {b.ref}")
    if a.type == "object" or b.type == "object":
        ca = a.additional_properties is False or (a.additional_properties is None and closed)
        cb = b.additional_properties is False or (b.additional_properties is None and closed)
        _diff_additional(out, ev, path, ca, cb)
        _diff_props(out, ev, f"{path}.properties", a.properties or {}, b.properties or {}, cb)
    if a.items is not None and b.items is not None:
        _diff_property(out, ev, f"{path}.items", a.items, b.items, closed)
    elif a.items is not None or b.items is not None:
        kind = "minor" if b.items is None else "major"
        out.add(
            kind, "items_changed", ev, f"{path}.items", f"{path}: items {'removed' if b.items is None else 'added'}"
        )


def _fmt(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return repr(v) if isinstance(v, str) else str(v)


def _diff_enum(out: _Out, ev: str, path: str, a: list | None, b: list | None) -> None:
    if a == b:
        return
    if a is None:
        out.add("major", "enum_added", ev, f"{path}.enum", f"{path}: now restricted to {b}")
        return
    if b is None:
        out.add("minor", "enum_removed", ev, f"{path}.enum", f"{path}: enum restriction removed")
        return
    ka, kb = [json.dumps(v) for v in a], [json.dumps(v) for v in b]
    gone = [v for v, k in zip(a, ka, strict=True) if k not in kb]
    new = [v for v, k in zip(b, kb, strict=True) if k not in ka]
    if gone:
        out.add("major", "enum_value_removed", ev, f"{path}.enum", f"{path}: enum values removed {gone}")
    if new:
        out.add("minor", "enum_value_added", ev, f"{path}.enum", f"{path}: enum values added {new}")
    if not gone and not new:
        out.add("patch", "enum_reordered", ev, f"{path}.enum", f"{path}: enum values reordered")


def _diff_additional(out: _Out, ev: str, path: str, closed_a: bool, closed_b: bool) -> None:
    if closed_a == closed_b:
        return
    if closed_b:
        out.add("major", "additional_properties_closed", ev, path, f"{path}: unexpected properties now rejected")
    else:
        out.add("minor", "additional_properties_opened", ev, path, f"{path}: unexpected properties now accepted")


def _diff_props(out: _Out, ev: str, path: str, a: dict[str, Property], b: dict[str, Property], closed: bool) -> None:
    for name, pa in a.items():
        here = f"{path}.{name}"
        if name not in b:
            if pa.is_required:
                out.add("major", "required_property_removed", ev, here, f"required property {here} removed")
            elif closed:
                out.add(
                    "major",
                    "property_removed",
                    ev,
                    here,
                    f"optional property {here} removed while unexpected properties are rejected",
                )
            else:
                out.add("minor", "property_removed", ev, here, f"optional property {here} removed")
            continue
        pb = b[name]
        if pa.is_required != pb.is_required:
            if pb.is_required:
                out.add("major", "made_required", ev, here, f"{here}: optional -> required")
            else:
                out.add("minor", "made_optional", ev, here, f"{here}: required -> optional")
        _diff_property(out, ev, here, pa, pb, closed)
    for name, pb in b.items():
        if name not in a:
            here = f"{path}.{name}"
            if pb.is_required:
                out.add("major", "required_property_added", ev, here, f"required property {here} added")
            else:
                out.add("minor", "property_added", ev, here, f"optional property {here} added")
    common_a = [n for n in a if n in b]
    common_b = [n for n in b if n in a]
    if common_a != common_b:
        out.add("patch", "properties_reordered", ev, path, f"{path}: properties reordered")


# ------------------------------------------------------------------------------------- events


def _policy(plan: Plan, ev: Event) -> str:
    return ev.unexpected_properties or plan.header.defaults.unexpected_properties


def _signature(ev: Event) -> str:
    """Properties without documentation: two events with equal signatures hold the same data."""

    def strip(p: dict) -> dict:
        p = {k: v for k, v in p.items() if k not in ("description", "examples", "ref")}
        if p.get("properties"):
            p["properties"] = {k: strip(v) for k, v in p["properties"].items()}
        if p.get("items"):
            p["items"] = strip(p["items"])
        return p

    props = {k: strip(v.model_dump(exclude_none=True)) for k, v in ev.properties.items()}
    return json.dumps([ev.type, props], sort_keys=True)


def _diff_event(out: _Out, base: Plan, head: Plan, a: Event, b: Event) -> None:
    ev = b.name
    if a.type != b.type:
        out.add("major", "event_type_changed", ev, "type", f"call type {a.type} -> {b.type}")
    pa, pb = _policy(base, a), _policy(head, b)
    if pa != pb:
        if pb == "reject":
            out.add(
                "major",
                "additional_properties_closed",
                ev,
                "unexpected_properties",
                f"unexpected properties {pa} -> reject",
            )
        elif pa == "reject":
            out.add(
                "minor",
                "additional_properties_opened",
                ev,
                "unexpected_properties",
                f"unexpected properties reject -> {pb}",
            )
        else:
            out.add(
                "patch",
                "unexpected_policy_changed",
                ev,
                "unexpected_properties",
                f"unexpected properties {pa} -> {pb} (both accept the event)",
            )
    if a.status != b.status:
        if b.status == "deprecated":
            note = f" (sunset {b.sunset})" if b.sunset else " without a sunset date"
            out.add("minor", "event_deprecated", ev, "status", f"deprecated{note}")
        else:
            out.add("minor", "event_undeprecated", ev, "status", "active again")
    elif a.sunset != b.sunset:
        out.add("minor", "sunset_changed", ev, "sunset", f"sunset {a.sunset} -> {b.sunset}")
    if a.consent != b.consent:
        out.add("minor", "consent_changed", ev, "consent", f"consent {a.consent} -> {b.consent}")
    for key in ("description", "owner", "tags", "examples", "replaced_by"):
        if getattr(a, key) != getattr(b, key):
            out.add("patch", f"{key}_changed", ev, key, f"{key} changed")
    _diff_props(out, ev, "properties", a.properties, b.properties, pb == "reject")


def _diff_events(out: _Out, base: Plan, head: Plan) -> None:
    removed = [n for n in base.events if n not in head.events]
    added = [n for n in head.events if n not in base.events]
    sig_added: dict[str, list[str]] = {}
    for n in added:
        sig_added.setdefault(_signature(head.events[n]), []).append(n)
    renamed: dict[str, str] = {}
    for n in removed:
        cands = sig_added.get(_signature(base.events[n]))
        if cands:
            renamed[n] = cands.pop(0)
    for n in sorted(base.events):
        if n in renamed:
            out.add("major", "event_renamed", n, "name", f"event {n!r} renamed to {renamed[n]!r}")
        elif n in removed:
            out.add("major", "event_removed", n, "", f"event {n!r} removed")
        else:
            _diff_event(out, base, head, base.events[n], head.events[n])
    for n in sorted(added):
        if n not in renamed.values():
            out.add("minor", "event_added", n, "", f"event {n!r} added")


# ------------------------------------------------------------------------------------ plan-wide

# Fields of metrics entries that only document; anything else changes what a number means.
METRIC_DOC_FIELDS = {"name", "description", "owner", "hypothesis"}


def _diff_keyed(out: _Out, what: str, a: list, b: list, keyattr: str = "key") -> None:
    da = {getattr(x, keyattr): x.model_dump() for x in a}
    db = {getattr(x, keyattr): x.model_dump() for x in b}
    for k, va in da.items():
        if k not in db:
            out.add("major", f"{what}_removed", None, f"{what}s.{k}", f"{what} {k!r} removed")
            continue
        changed = sorted(f for f in set(va) | set(db[k]) if va.get(f) != db[k].get(f))
        if not changed:
            continue
        meaning = [f for f in changed if f not in METRIC_DOC_FIELDS]
        kind = "minor" if meaning else "patch"
        out.add(kind, f"{what}_changed", None, f"{what}s.{k}", f"{what} {k!r}: {', '.join(changed)} changed")
    for k in db:
        if k not in da:
            out.add("minor", f"{what}_added", None, f"{what}s.{k}", f"{what} {k!r} added")
    if [k for k in da if k in db] != [k for k in db if k in da]:
        out.add("patch", f"{what}s_reordered", None, f"{what}s", f"{what}s reordered")


def _diff_plan_level(out: _Out, base: Plan, head: Plan) -> None:
    ma, mb = base.metrics, head.metrics
    for key in ("signup", "activation", "purchase", "costs_file"):
        va, vb = getattr(ma, key), getattr(mb, key)
        va = va.model_dump() if hasattr(va, "model_dump") else va
        vb = vb.model_dump() if hasattr(vb, "model_dump") else vb
        if va != vb:
            kind = "major" if vb is None else "minor"
            out.add(kind, f"{key}_changed", None, f"metrics.{key}", f"metrics {key}: {va} -> {vb}")
    _diff_keyed(out, "objective", ma.objectives, mb.objectives)
    _diff_keyed(out, "kpi", ma.kpis, mb.kpis)
    _diff_keyed(out, "funnel", ma.funnels, mb.funnels)
    _diff_keyed(out, "experiment", ma.experiments, mb.experiments)
    _diff_keyed(out, "initiative", ma.initiatives, mb.initiatives)
    _diff_keyed(out, "identifier", base.identity.identifiers, head.identity.identifiers, "name")
    ia = base.identity.model_dump(exclude={"identifiers"})
    ib = head.identity.model_dump(exclude={"identifiers"})
    for k in ia:
        if ia[k] != ib[k]:
            out.add("minor", "identity_changed", None, f"identity.{k}", f"identity {k}: {ia[k]} -> {ib[k]}")
    ca, cb = base.consent, head.consent
    for k in ("field", "default"):
        if getattr(ca, k) != getattr(cb, k):
            out.add(
                "minor",
                "consent_setting_changed",
                None,
                f"consent.{k}",
                f"consent {k}: {getattr(ca, k)} -> {getattr(cb, k)}",
            )
    for k, cat in ca.categories.items():
        if k not in cb.categories:
            out.add(
                "major", "consent_category_removed", None, f"consent.categories.{k}", f"consent category {k!r} removed"
            )
        elif cat != cb.categories[k]:
            only_doc = cat.model_copy(update={"description": None}) == cb.categories[k].model_copy(
                update={"description": None}
            )
            out.add(
                "patch" if only_doc else "minor",
                "consent_category_changed",
                None,
                f"consent.categories.{k}",
                f"consent category {k!r} changed",
            )
    for k in cb.categories:
        if k not in ca.categories:
            out.add("minor", "consent_category_added", None, f"consent.categories.{k}", f"consent category {k!r} added")
    ha, hb = base.header, head.header
    for k in ("description", "owners", "name"):
        if getattr(ha, k) != getattr(hb, k):
            out.add("patch", f"plan_{k}_changed", None, f"plan.{k}", f"plan {k} changed")
    if ha.conventions != hb.conventions:
        out.add("minor", "conventions_changed", None, "plan.conventions", "naming conventions changed")
    da = ha.defaults.model_dump(exclude={"unexpected_properties"})
    db = hb.defaults.model_dump(exclude={"unexpected_properties"})
    for k in da:
        if da[k] != db[k]:
            out.add("minor", "default_changed", None, f"plan.defaults.{k}", f"default {k}: {da[k]} -> {db[k]}")


def diff_plans(base: Plan, head: Plan) -> DiffResult:
    """Every change from ``base`` to ``head`` with its class, and the version check."""
    out = _Out()
    _diff_events(out, base, head)
    _diff_plan_level(out, base, head)
    order = {"major": 0, "minor": 1, "patch": 2}
    changes = sorted(out.changes, key=lambda c: (order[c.kind], c.event or "", c.path, c.code))
    result = DiffResult(changes=changes, base_version=base.header.version, head_version=head.header.version)
    result.event_versions = event_version_problems(base, head, result)
    from .codegen import signature_breaks

    result.breaks = signature_breaks(base, head)
    return result


def event_version_problems(base: Plan, head: Plan, result: DiffResult) -> list[str]:
    """Events whose own SchemaVer (MODEL-REVISION-ADDITION) did not move although they changed:
    a released schema is never edited (Iglu's rule), so the compiled $id must change too."""
    need: dict[str, str] = {}
    for c in result.changes:
        if c.event and c.event in base.events and c.event in head.events and c.kind != "patch":
            need[c.event] = max(need.get(c.event, "none"), c.kind, key=RANK.__getitem__)
    out = []
    for ev, kind in sorted(need.items()):
        va = tuple(int(x) for x in base.events[ev].version.split("-"))
        vb = tuple(int(x) for x in head.events[ev].version.split("-"))
        if vb <= va:
            out.append(f"{ev}: {kind} change but version stays {head.events[ev].version}")
    return out


# ------------------------------------------------------------------------------------ base plan


def load_base(spec: str | Path, plan_dir: str | Path | None = None) -> Plan:
    """The base plan: ``spec`` is a plan directory, or a git ref (branch, tag, commit) at which
    the plan directory ``plan_dir`` (default: the head plan's directory) is read via `git archive`.
    Raises PlanError with a clear message when neither works."""
    if not str(spec).strip():  # Path("") is ".": the working directory would be read as the base plan
        raise PlanError([Problem("(empty)", 1, "E001", "the base plan is empty: give a plan directory or a git ref")])
    path = Path(spec)
    if path.is_dir():
        return load_plan(path)
    from .loader import default_plan_dir

    plan_dir = Path(plan_dir) if plan_dir else default_plan_dir()
    ref = str(spec)
    if ref.startswith("-"):  # would reach git as an option
        raise PlanError([Problem(ref, 1, "E001", f"{ref!r} is neither a plan directory nor a git ref")])

    def fail(msg: str) -> PlanError:
        return PlanError([Problem(ref, 1, "E001", msg)])

    try:
        top = subprocess.run(
            ["git", "-C", str(plan_dir), "rev-parse", "--show-toplevel"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        raise fail(f"{ref!r} is not a directory, and {plan_dir} is not inside a git repository") from None
    rel = Path(plan_dir).resolve().relative_to(Path(top).resolve()).as_posix()
    proc = subprocess.run(
        ["git", "-C", top, "archive", "--format=tar", ref, "--", rel], capture_output=True, check=False
    )
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise fail(f"cannot read {rel} at git ref {ref!r}: {err[-1] if err else 'git archive failed'}")
    with tempfile.TemporaryDirectory(prefix="trackplan-base-") as tmp:
        with tarfile.open(fileobj=io.BytesIO(proc.stdout)) as tar:
            tar.extractall(tmp, filter="data")
        base_dir = Path(tmp) / rel

        # the files vanish with the temp dir: name each the way a reader finds it (`git show REF:path`)
        def named(file: str) -> str:
            try:
                inner = Path(file).relative_to(base_dir).as_posix()
            except ValueError:
                return file
            return f"{ref}:{inner}" if rel == "." else f"{ref}:{rel}/{inner}"

        try:
            plan = load_plan(base_dir)
        except PlanError as exc:
            raise PlanError(
                [Problem(named(p.file), p.line, p.code, p.message, p.severity) for p in exc.problems]
            ) from None
    events = {
        n: e.model_copy(update={"source_file": named(e.source_file) if e.source_file else None})
        for n, e in plan.events.items()
    }
    return plan.model_copy(update={"root": f"{ref}:{rel}", "events": events})


# -------------------------------------------------------------------------------------- render


def render_diff(result: DiffResult, format: str = "text", replay: Any = None) -> str:
    """Text, Markdown (a pull-request comment) or JSON.

    ``replay`` (optional, from `trackplan diff --replay`) is appended as is: its ``to_dict()`` in
    JSON, its ``render(format)`` (or ``str``) in text and Markdown."""
    body = _render(result, format)
    if replay is None:
        return body
    if format == "json":
        data = json.loads(body)
        data["replay"] = replay.to_dict() if hasattr(replay, "to_dict") else replay
        return json.dumps(data, indent=2, default=str)
    extra = replay.render(format) if hasattr(replay, "render") else str(replay)
    return body.rstrip("\n") + "\n\n" + extra + ("\n" if format == "markdown" else "")


def _render(result: DiffResult, format: str) -> str:
    if format == "json":
        return json.dumps(result.to_dict(), indent=2)
    verdict = _verdict(result)
    if format == "text":
        lines = [f"{c.kind:<5} {c.code:<30} {_where(c)}{c.message}" for c in result.changes] or ["no changes"]
        lines += [f"note  event version not bumped       {m}" for m in result.event_versions]
        lines += [
            f"break {'generated_function':<30} [{b.event}] {b.typescript}() / {b.python}(): "
            f"{b.path + ': ' if b.path else ''}{b.reason}"
            for b in result.breaks
        ]
        lines.append(verdict)
        return "\n".join(lines)
    if format != "markdown":
        raise ValueError(f"unknown format {format!r} (text, markdown or json)")
    icon = "✅" if result.ok else "❌"
    md = [f"### {icon} Tracking plan: {verdict}", ""]
    counts = {k: sum(c.kind == k for c in result.changes) for k in ("major", "minor", "patch")}
    md.append(" · ".join(f"**{n}** {k}" for k, n in counts.items()))
    md.append("")
    for kind in ("major", "minor", "patch"):
        rows = [c for c in result.changes if c.kind == kind]
        if not rows:
            continue
        md += [f"#### {kind.capitalize()} ({len(rows)})", "", "| event | change | rule |", "|---|---|---|"]
        md += [f"| {_md(c.event or '(plan)')} | {_md(c.message)} | `{c.code}` |" for c in rows]
        md.append("")
    md += [
        "#### Version check",
        "",
        "| base | head | declared bump | required bump |",
        "|---|---|---|---|",
        f"| {result.base_version} | {result.head_version} | {result.declared_bump} | {result.required_bump} |",
    ]
    if result.event_versions:
        md += [
            "",
            (
                "Events changed without a new SchemaVer (bump `version:` in their file, a released "
                "schema is never edited):"
            ),
            "",
        ]
        md += [f"- {_md(m)}" for m in result.event_versions]
    if result.breaks:
        md += [
            "",
            f"#### Generated tracking functions this breaks ({len(result.breaks)})",
            "",
            "Calls to these `trackplan codegen` functions stop compiling after regenerating:",
            "",
            "| event | TypeScript | Python | where | why |",
            "|---|---|---|---|---|",
        ]
        md += [
            f"| {_md(b.event)} | `{b.typescript}()` | `{b.python}()` | {_md(b.path or '(function)')} | {_md(b.reason)} |"
            for b in result.breaks
        ]
    return "\n".join(md) + "\n"


def _where(c: Change) -> str:
    return f"[{c.event}] " if c.event else ""


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _verdict(result: DiffResult) -> str:
    v = f"{result.base_version} -> {result.head_version}"
    if result.declared_bump == "invalid":
        return f"version {v} goes backwards or is not semver; {result.required_bump} bump required"
    if result.ok:
        return f"version {v} ({result.declared_bump}) covers the changes (required: {result.required_bump})"
    return f"version {v} is a {result.declared_bump} bump, but the changes require {result.required_bump}"


def exit_code(result: DiffResult) -> int:
    """What `trackplan diff` exits with: 1 when the declared bump is too small."""
    return 0 if result.ok else 1
