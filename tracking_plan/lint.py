"""`trackplan lint`: every problem of a plan directory, with file, line, a stable code and a severity.

Structure errors come from the loader (E0xx); the conventions and cross-reference rules below
(L1xx) run on the typed plan. `RULES` documents every code; codes never change meaning.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from .loader import LoadResult, Problem, read_plan
from .model import Experiment, Plan, Property
from .patterns import pattern_error
from .yamlio import yaml_scalar

RULES: dict[str, str] = {
    # loader (structure)
    "E001": "file unreadable, not UTF-8, malformed YAML, or the plan directory / plan.yaml is missing",
    "E002": "unknown key (a typo such as `requried:` must not silently mean optional)",
    "E003": "missing required key",
    "E004": "invalid value (wrong type, bad semver, bad date, ...)",
    "E010": "shared property defined twice",
    "E011": "event defined twice",
    "E020": "reference to an undefined shared property",
    "E021": "shared property references loop",
    # naming and documentation
    "L100": "event name breaks the convention (Title Case 'Object Action', last word past tense)",
    "L101": "property name breaks the convention (snake_case by default)",
    "L110": "event without a description",
    "L111": "event without an owner",
    "L112": "property without a description",
    # duplicates and consistency
    "L120": "near-duplicate event names (same words after normalizing case, separators, stems, synonyms)",
    "L121": "near-duplicate property names",
    "L122": "the same property name has different types in different events",
    # references
    "L130": "reference to an event not in the plan",
    "L131": "reference to an undefined KPI",
    "L132": "reference to an undefined objective",
    "L133": "reference to an undefined experiment",
    "L134": "reference to a property the event does not define",
    "L135": "metrics reference a deprecated event",
    # lifecycle
    "L140": "deprecated event past its sunset date: remove it",
    "L141": "deprecated event without a sunset date",
    "L142": "active event with a sunset date (deprecate it or drop the date)",
    # property constraints
    "L150": "enum values of mixed types",
    "L151": "enum value or bound that does not match the property type",
    "L152": "minimum greater than maximum",
    "L153": "min_length greater than max_length",
    "L154": "pattern is not a valid regular expression",
    "L155": "constraint that does not apply to the property type",
    "L156": "property without a type",
    "L157": "duplicate enum values",
    # consent and identity
    "L160": "consent category not declared in consent.yaml",
    "L161": "event without a consent category",
    "L170": "identifier source is not a Segment field path",
    "L171": "identifier source names a trait/property no event defines",
    # KPIs (SMART: specific objective, owner, measurable target and unit, time-bound deadline)
    "L180": "KPI is not SMART: objective, owner, target, deadline or unit missing",
    "L181": "KPI deadline has passed",
    "L182": "more than five KPIs serve one objective",
    # experiments
    "L190": "experiment cannot reach its sample size within its planned horizon at current traffic",
    "L191": "sample size an experiment needs (info)",
    "L192": "experiment variants / allocation inconsistent",
    "L193": "experiment without a planned horizon (planned_days)",
}

MAX_KPIS_PER_OBJECTIVE = 5  # issue 10: beyond five, an objective has no focus

SEVERITIES = ("error", "warning", "info")


def _p(file: str, line: int, code: str, message: str, severity: str) -> Problem:
    return Problem(file, line, code, message, severity)


# ---------------------------------------------------------------------------------------- naming

# Irregular past tenses that show up in event names; regular ones end in -ed.
IRREGULAR_PAST = {
    "sent",
    "built",
    "made",
    "paid",
    "bought",
    "sold",
    "won",
    "lost",
    "left",
    "began",
    "begun",
    "chosen",
    "chose",
    "done",
    "drawn",
    "found",
    "given",
    "gave",
    "held",
    "kept",
    "known",
    "led",
    "met",
    "read",
    "run",
    "ran",
    "seen",
    "saw",
    "set",
    "shown",
    "spent",
    "taken",
    "took",
    "told",
    "thought",
    "understood",
    "withdrawn",
    "written",
    "wrote",
    "put",
    "cut",
    "shut",
    "quit",
    "hit",
    "reset",
    "upset",
    "split",
    "spun",
    "struck",
    "sought",
    "forgot",
    "forgotten",
    "got",
    "gotten",
    "hidden",
    "hid",
    "overridden",
    "rebuilt",
    "rewritten",
    "undone",
    "upheld",
    "bid",
    "broadcast",
    "cast",
    "forecast",
    "dealt",
    "meant",
    "felt",
    "heard",
    "sat",
    "stood",
    "swept",
}
PARTICLES = {"in", "out", "up", "down", "off", "on", "over", "back", "away", "through"}
TITLE_WORD = re.compile(r"^(?:[A-Z][a-z0-9]*|[A-Z0-9]{2,}s?)$")  # "Order", "A/B" no; "API", "URLs" ok
SNAKE = re.compile(r"^[a-z][a-z0-9]*(?:_[a-z0-9]+)*$")
CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")


def _is_past(word: str) -> bool:
    w = word.lower()
    return (w.endswith("ed") and len(w) > 3) or w in IRREGULAR_PAST


def event_name_problem(name: str) -> str | None:
    """Why ``name`` is not Title Case 'Object Action' with a past-tense action, or None."""
    words = name.split(" ")
    if len(words) < 2 or any(not w for w in words):
        return "needs at least two words separated by single spaces ('Object Action')"
    bad = [w for w in words if not TITLE_WORD.match(w)]
    if bad:
        return f"words must be capitalized: {', '.join(repr(b) for b in bad)}"
    last = words[-1].lower()
    if last in PARTICLES and len(words) >= 3 and _is_past(words[-2]):
        return None  # phrasal verb: "User Signed In"
    if last in PARTICLES and len(words) == 2 and _is_past(words[0]):
        return None  # "Signed In", "Logged Out": the object is the person
    if not _is_past(last):
        return f"the action (last word) should be a past-tense verb, got {words[-1]!r}"
    return None


def property_name_problem(name: str, convention: str) -> str | None:
    if convention == "snake_case" and not SNAKE.match(name):
        return "should be snake_case"
    if convention == "camel_case" and not CAMEL.match(name):
        return "should be camelCase"
    return None


# ------------------------------------------------------------------------------ near-duplicates

# Synonyms map to one canonical token list; "signup" ≈ "sign up" ≈ "signed up".
SYNONYMS: dict[str, tuple[str, ...]] = {
    "signup": ("sign", "up"),
    "signon": ("sign", "in"),
    "signin": ("sign", "in"),
    "login": ("sign", "in"),
    "log": ("sign",),
    "logged": ("sign",),
    "logout": ("sign", "out"),
    "signout": ("sign", "out"),
    "registered": ("create",),
    "register": ("create",),
    "registration": ("create",),
    "created": ("create",),
    "creation": ("create",),
    "purchased": ("order", "complete"),
    "purchase": ("order", "complete"),
    "bought": ("order", "complete"),
    "viewed": ("view",),
    "seen": ("view",),
    "opened": ("open",),
    "removed": ("delete",),
    "deleted": ("delete",),
    "canceled": ("cancel",),
    "cancelled": ("cancel",),
    "id": ("id",),
    "ids": ("id",),
    "sent": ("send",),
    "paid": ("pay",),
    "payed": ("pay",),
}
# Words that say "it happened" without naming what: "Signup Completed" = "Signed Up".
FILLER = {"completed", "complete", "completion", "done", "finished", "succeeded", "successful", "success", "event"}


def _words(name: str) -> list[str]:
    """Split any spelling (Title Case, snake_case, camelCase, kebab) into lowercase words."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def _stem(word: str) -> str:
    # A tiny suffix stripper: plan names are short English nouns and verbs, and only equality
    # after stemming matters (a full Porter stemmer would buy nothing here).
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    if len(word) > 3 and word[-1] == word[-2] and word[-1] not in "aeiou":
        word = word[:-1]  # "shipped" -> "shipp" -> "ship"
    return word.rstrip("e") if len(word) > 3 else word


def name_key(name: str, drop_filler: bool = True) -> tuple[str, ...]:
    """Normalized form of a name: words, synonyms unified, stemmed, filler dropped, sorted."""
    toks: list[str] = []
    for w in _words(name):
        toks.extend(SYNONYMS.get(w, (w,)))
    stems = [_stem(t) for t in toks]
    if drop_filler:
        kept = [s for s, t in zip(stems, toks, strict=True) if t not in FILLER]
        stems = kept or stems
    return tuple(sorted(stems))


# Two names whose joined keys are this similar differ by a typo ("Prodcut Viewed");
# 0.9 keeps "Task Created" / "Task Completed" (0.74) and "Page Viewed" / "Screen Viewed" apart.
TYPO_RATIO = 0.9


def near_duplicates(names: Iterable[str]) -> list[tuple[str, str, str]]:
    """Pairs (a, b, why) of distinct names that probably mean the same thing."""
    names = sorted(set(names))
    keys = {n: name_key(n) for n in names}
    out = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if keys[a] == keys[b]:
                out.append((a, b, "same words after normalizing"))
                continue
            ja, jb = "".join(name_key(a, False)), "".join(name_key(b, False))
            if min(len(ja), len(jb)) >= 8 and difflib.SequenceMatcher(None, ja, jb).ratio() >= TYPO_RATIO:
                out.append((a, b, "differ by a few letters"))
    return out


# ------------------------------------------------------------------------------------- checks


class _Ctx:
    """Where things are: file and line for events, their properties and metrics entries."""

    def __init__(self, res: LoadResult, root: Path):
        self.res, self.root = res, root
        self.plan: Plan = res.plan  # type: ignore[assignment]

    def ev(self, name: str, path: tuple = ()) -> tuple[str, int]:
        file = self.res.event_files.get(name, str(self.root / "events"))
        return file, self.res.line_of(file, path)

    def missing_event(
        self, name: str, where: tuple[str, int], code: str, says: str, absent: str = ", not in the plan"
    ) -> Problem:
        """A reference to event `name`, which the plan does not hold: an error (`says` + `absent`), or,
        when its file is there but did not load, a note pointing at that file's own error (not a
        second error)."""
        file = self.res.unloaded_events.get(name)
        if file is None:
            return _p(*where, code, says + absent, "error")
        return _p(*where, code, f"{says}, whose file {file} did not load (its error is there)", "info")

    def file(self, fname: str, path: tuple = ()) -> tuple[str, int]:
        file = str(self.root / fname)
        return file, self.res.line_of(file, path)


def _walk(props: Mapping[str, Property], path: tuple = ("properties",)) -> Iterator[tuple[tuple, str, Property]]:
    """Every property, nested ones and array items included, with its YAML path."""
    for name, prop in props.items():
        here = (*path, name)
        yield here, name, prop
        yield from _walk_inner(prop, here)


def _walk_inner(prop: Property, here: tuple) -> Iterator[tuple[tuple, str, Property]]:
    if prop.properties:
        yield from _walk(prop.properties, (*here, "properties"))
    if prop.items is not None:
        yield from _walk_inner(prop.items, (*here, "items"))
        # the items' own constraints are checked as an unnamed property
        yield (*here, "items"), "", prop.items


def _check_names(ctx: _Ctx) -> Iterator[Problem]:
    conv = ctx.plan.header.conventions
    for name, ev in ctx.plan.events.items():
        if conv.event_name == "title_case_object_action" and (why := event_name_problem(name)):
            # a deprecated event keeps its legacy name until sunset: warn, do not block
            sev = "warning" if ev.status == "deprecated" else "error"
            yield _p(*ctx.ev(name, ("name",)), "L100", f"event {name!r}: {why}", sev)
        if not ev.description:
            yield _p(*ctx.ev(name, ("name",)), "L110", f"event {name!r} has no description", "warning")
        if not ev.owner:
            yield _p(*ctx.ev(name, ("name",)), "L111", f"event {name!r} has no owner", "warning")
        for path, pname, prop in _walk(ev.properties):
            if not pname:
                continue
            if why := property_name_problem(pname, conv.property_name):
                yield _p(*ctx.ev(name, path), "L101", f"property {pname!r} of {name!r} {why}", "error")
            if not prop.description:
                yield _p(*ctx.ev(name, path), "L112", f"property {pname!r} of {name!r} has no description", "warning")


def _check_duplicates(ctx: _Ctx) -> Iterator[Problem]:
    events = ctx.plan.events
    for a, b, why in near_duplicates(events):
        ea, eb = events[a], events[b]
        if ea.replaced_by == b or eb.replaced_by == a:
            continue  # an old name kept on purpose until its sunset
        yield _p(*ctx.ev(b, ("name",)), "L120", f"event {b!r} looks like {a!r} ({why})", "error")
    seen: dict[str, list[tuple[str, tuple, Property]]] = defaultdict(list)
    for name, ev in events.items():
        for pname, prop in ev.properties.items():
            seen[pname].append((name, ("properties", pname), prop))
    for a, b, why in near_duplicates(seen):
        ev_b, path_b, _ = seen[b][0]
        ev_a = seen[a][0][0]
        yield _p(
            *ctx.ev(ev_b, path_b),
            "L121",
            f"property {b!r} (in {ev_b!r}) looks like {a!r} (in {ev_a!r}) ({why})",
            "warning",
        )
    for pname, uses in sorted(seen.items()):
        types = {u[2].type for u in uses if u[2].type}
        if len(types) > 1:
            first = {}
            for ev_name, _, prop in uses:
                first.setdefault(prop.type, ev_name)
            detail = ", ".join(f"{t} in {e!r}" for t, e in sorted(first.items()))
            ev_name, path, _ = next(u for u in uses if u[2].type != uses[0][2].type)
            yield _p(*ctx.ev(ev_name, path), "L122", f"property {pname!r} has different types: {detail}", "error")


def _date(text: str) -> dt.date | None:
    """The model checks the YYYY-MM-DD shape; 2026-02-30 has the shape but is no date."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        return None


def _check_lifecycle(ctx: _Ctx, today: dt.date) -> Iterator[Problem]:
    for name, ev in ctx.plan.events.items():
        if ev.sunset is not None and _date(ev.sunset) is None:
            yield _p(*ctx.ev(name, ("sunset",)), "E004", f"sunset {ev.sunset!r} is not a calendar date", "error")
        if ev.status == "deprecated":
            if ev.sunset is None:
                yield _p(
                    *ctx.ev(name, ("status",)), "L141", f"event {name!r} is deprecated without a sunset date", "warning"
                )
            elif (_date(ev.sunset) or dt.date.max) < today:
                yield _p(
                    *ctx.ev(name, ("sunset",)), "L140", f"event {name!r} was to be removed on {ev.sunset}", "error"
                )
        elif ev.sunset is not None:
            yield _p(
                *ctx.ev(name, ("sunset",)), "L142", f"event {name!r} is active but has sunset {ev.sunset}", "warning"
            )
        if ev.replaced_by and ev.replaced_by not in ctx.plan.events:
            yield ctx.missing_event(
                ev.replaced_by,
                ctx.ev(name, ("replaced_by",)),
                "L130",
                f"event {name!r} is replaced_by {ev.replaced_by!r}",
            )


PY_TYPES = {"string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,), "timestamp": (str,)}
STRING_ONLY = ("pattern", "format")
LENGTH_TYPES = ("string", "array", "timestamp")


def _type_ok(value, ptype: str) -> bool:
    if isinstance(value, bool) and ptype != "boolean":
        return False  # True is an int to Python, never to JSON Schema
    if ptype == "integer" and isinstance(value, float):
        return value.is_integer()
    return isinstance(value, PY_TYPES.get(ptype, (object,)))


def _unquoted(values: list, ptype: str | None) -> str:
    """A hint when an enum of text holds what YAML made of unquoted words: `yes`, `off` (booleans),
    `1.10` (a number)."""
    if ptype not in ("string", "timestamp"):
        return ""
    made = list(dict.fromkeys(m for v in values if (m := yaml_scalar(v))))  # (each once: `[no, off]` is false twice)
    return f" (YAML reads {', '.join(made[:3])}, not text: quote them)" if made else ""


def _check_property(ev_name: str, path: tuple, pname: str, prop: Property, ctx: _Ctx) -> Iterator[Problem]:
    where = ctx.ev(ev_name, path)
    label = f"{'.'.join(str(x) for x in path[1:])} of {ev_name!r}"
    t = prop.type
    if t is None:
        yield _p(*where, "L156", f"property {label} has no type", "error")
    if prop.enum is not None:
        kinds = {
            ("number" if isinstance(v, int | float) and not isinstance(v, bool) else type(v).__name__)
            for v in prop.enum
        }
        if len(kinds) > 1:
            yield _p(
                *ctx.ev(ev_name, (*path, "enum")),
                "L150",
                f"enum of {label} mixes {', '.join(sorted(kinds))}{_unquoted(prop.enum, t)}",
                "error",
            )
        elif t and t in PY_TYPES and (bad := [v for v in prop.enum if not _type_ok(v, t)]):
            yield _p(
                *ctx.ev(ev_name, (*path, "enum")),
                "L151",
                f"enum of {label} has values that are not {t}: {bad[:3]}{_unquoted(prop.enum, t)}",
                "error",
            )
        dup = sorted({json.dumps(v) for v in prop.enum if prop.enum.count(v) > 1})
        if dup:
            yield _p(*ctx.ev(ev_name, (*path, "enum")), "L157", f"enum of {label} repeats {', '.join(dup)}", "warning")
    if prop.minimum is not None and prop.maximum is not None and prop.minimum > prop.maximum:
        yield _p(
            *ctx.ev(ev_name, (*path, "minimum")),
            "L152",
            f"{label}: minimum {prop.minimum:g} > maximum {prop.maximum:g}",
            "error",
        )
    if prop.min_length is not None and prop.max_length is not None and prop.min_length > prop.max_length:
        yield _p(
            *ctx.ev(ev_name, (*path, "min_length")),
            "L153",
            f"{label}: min_length {prop.min_length} > max_length {prop.max_length}",
            "error",
        )
    if prop.pattern is not None and (why := pattern_error(prop.pattern)) is not None:
        # (the plan's ECMA-262 pattern as the validator runs it, in RE2: tracking_plan/patterns.py)
        yield _p(*ctx.ev(ev_name, (*path, "pattern")), "L154", f"{label}: pattern {prop.pattern!r}: {why}", "error")
    if t is None:
        return
    misplaced = []
    if t != "string":
        misplaced += [k for k in STRING_ONLY if getattr(prop, k) is not None]
    if t not in ("integer", "number"):
        misplaced += [k for k in ("minimum", "maximum") if getattr(prop, k) is not None]
    if t not in LENGTH_TYPES:
        misplaced += [k for k in ("min_length", "max_length") if getattr(prop, k) is not None]
    if t != "array" and prop.items is not None:
        misplaced.append("items")
    if t != "object":
        misplaced += [k for k in ("properties", "additional_properties") if getattr(prop, k) is not None]
    for key in misplaced:
        yield _p(*ctx.ev(ev_name, (*path, key)), "L155", f"{label}: `{key}` does not apply to type {t}", "error")
    if t == "array" and prop.items is None:
        yield _p(*where, "L155", f"{label}: an array needs `items`", "warning")


def _check_properties(ctx: _Ctx) -> Iterator[Problem]:
    for name, ev in ctx.plan.events.items():
        for path, pname, prop in _walk(ev.properties):
            yield from _check_property(name, path, pname, prop, ctx)


def _check_consent(ctx: _Ctx) -> Iterator[Problem]:
    declared = ctx.plan.consent.categories
    for name, ev in ctx.plan.events.items():
        if ev.consent is None:
            yield _p(*ctx.ev(name, ("name",)), "L161", f"event {name!r} has no consent category", "warning")
        elif ev.consent not in declared:
            known = ", ".join(sorted(declared)) or "none declared"
            yield _p(
                *ctx.ev(name, ("consent",)),
                "L160",
                f"event {name!r}: consent category {ev.consent!r} is not in consent.yaml ({known})",
                "error",
            )


# Envelope fields an identifier may come from; nested ones need a key after the dot.
ID_ROOTS = {"userId", "anonymousId", "previousId", "groupId"}
ID_NESTED = {"traits": "identify", "context.traits": "identify", "properties": None}


def _check_identity(ctx: _Ctx) -> Iterator[Problem]:
    for i, ident in enumerate(ctx.plan.identity.identifiers):
        where = ctx.file("identity.yaml", ("identifiers", i, "source"))
        src = ident.source
        if src in ID_ROOTS:
            continue
        prefix = next((p for p in sorted(ID_NESTED, key=len, reverse=True) if src.startswith(p + ".")), None)
        if prefix is None or not src[len(prefix) + 1 :]:
            yield _p(
                *where,
                "L170",
                f"identifier {ident.name!r}: source {src!r} is not one of "
                f"{', '.join(sorted(ID_ROOTS))} or traits.X / context.traits.X / properties.X",
                "error",
            )
            continue
        key = src[len(prefix) + 1 :].split(".")[0]
        kind = ID_NESTED[prefix]
        events = [e for e in ctx.plan.events.values() if kind is None or e.type in ("identify", "group")]
        if not any(key in e.properties for e in events):
            yield _p(*where, "L171", f"identifier {ident.name!r}: no event defines {key!r} ({src})", "warning")


def _check_metrics(ctx: _Ctx, today: dt.date) -> Iterator[Problem]:
    m, plan = ctx.plan.metrics, ctx.plan
    kpis = {k.key for k in m.kpis}
    objectives = {o.key for o in m.objectives}
    experiments = {e.key for e in m.experiments}

    def event(name: str | None, path: tuple, what: str) -> Iterator[Problem]:
        if name is None:
            return
        ev = plan.events.get(name)
        if ev is None:
            yield ctx.missing_event(name, ctx.file("metrics.yaml", path), "L130", f"{what} names event {name!r}")
        elif ev.status == "deprecated":
            yield _p(*ctx.file("metrics.yaml", path), "L135", f"{what} names deprecated event {name!r}", "warning")

    def prop(ev_name: str | None, pname: str | None, path: tuple, what: str) -> Iterator[Problem]:
        ev = plan.events.get(ev_name or "")
        if ev is not None and pname is not None and pname not in ev.properties:
            yield _p(
                *ctx.file("metrics.yaml", path),
                "L134",
                f"{what} uses property {pname!r}, which {ev_name!r} does not define",
                "error",
            )

    for key in ("signup", "purchase", "activation"):
        ref = getattr(m, key)
        if ref is not None:
            yield from event(ref.event, (key, "event"), key)
            for pname in getattr(ref, "where", None) or {}:
                yield from prop(ref.event, pname, (key, "where", pname), key)
    for i, f in enumerate(m.funnels):
        for j, step in enumerate(f.steps):
            yield from event(step, ("funnels", i, "steps", j), f"funnel {f.key!r} step {j + 1}")
        for j, ex in enumerate(f.exclusions):
            yield from event(ex.event, ("funnels", i, "exclusions", j, "event"), f"funnel {f.key!r} exclusion")
    yield from _check_kpis(ctx, today, objectives, event, prop)
    if m.costs_file:  # resolved like the pipeline does (models/staging/plan_tables.costs_path)
        costs = Path(m.costs_file) if Path(m.costs_file).is_absolute() else ctx.root / m.costs_file
        where = ctx.file("metrics.yaml", ("costs_file",))
        if costs.exists() and not costs.is_file():
            yield _p(*where, "E004", f"costs_file {m.costs_file!r} is not a file ({costs})", "error")
        elif not costs.exists():  # the pipeline reads it as no spend: every CAC would be empty
            yield _p(
                *where, "E004", f"costs_file {m.costs_file!r} does not exist ({costs}): no marketing spend", "warning"
            )
    for i, x in enumerate(m.experiments):
        yield from event(x.exposure_event, ("experiments", i, "exposure_event"), f"experiment {x.key!r}")
        for j, metric in enumerate([x.primary_metric, *x.guardrail_metrics]):
            path = ("experiments", i, "primary_metric") if j == 0 else ("experiments", i, "guardrail_metrics", j - 1)
            if metric not in kpis and metric not in plan.events:
                yield ctx.missing_event(
                    metric,
                    ctx.file("metrics.yaml", path),
                    "L131",
                    f"experiment {x.key!r} metric {metric!r}",
                    absent=" is neither a KPI nor an event",
                )
    for i, ini in enumerate(m.initiatives):
        what = f"initiative {ini.key!r}"
        for path, k in [
            (("initiatives", i, "kpi"), ini.kpi),
            *((("initiatives", i, "non_financial_kpis", j), k) for j, k in enumerate(ini.non_financial_kpis)),
        ]:
            if k not in kpis:
                yield _p(*ctx.file("metrics.yaml", path), "L131", f"{what} names KPI {k!r}, not defined", "error")
        ev_ = ini.evaluation
        if ev_.method == "ab_test":
            if ev_.experiment is None:
                yield _p(
                    *ctx.file("metrics.yaml", ("initiatives", i, "evaluation")),
                    "L133",
                    f"{what} is evaluated by A/B test but names no experiment",
                    "error",
                )
            elif ev_.experiment not in experiments:
                yield _p(
                    *ctx.file("metrics.yaml", ("initiatives", i, "evaluation", "experiment")),
                    "L133",
                    f"{what} names experiment {ev_.experiment!r}, not defined",
                    "error",
                )
        elif ev_.experiment is not None and ev_.experiment not in experiments:
            yield _p(
                *ctx.file("metrics.yaml", ("initiatives", i, "evaluation", "experiment")),
                "L133",
                f"{what} names experiment {ev_.experiment!r}, not defined",
                "error",
            )
        yield from event(ev_.treatment_event, ("initiatives", i, "evaluation", "treatment_event"), what)


def _check_kpis(ctx: _Ctx, today: dt.date, objectives: set[str], event, prop) -> Iterator[Problem]:
    per_objective: dict[str, list[int]] = defaultdict(list)
    for i, k in enumerate(ctx.plan.metrics.kpis):
        what = f"KPI {k.key!r}"
        yield from event(k.event, ("kpis", i, "event"), what)
        yield from prop(k.event, k.property, ("kpis", i, "property"), what)
        if k.objective is not None:
            per_objective[k.objective].append(i)
            if k.objective not in objectives:
                yield _p(
                    *ctx.file("metrics.yaml", ("kpis", i, "objective")),
                    "L132",
                    f"{what} serves objective {k.objective!r}, not defined",
                    "error",
                )
        missing = [f for f in ("objective", "owner", "target", "deadline", "unit") if getattr(k, f) is None]
        if not k.definition and not k.event:
            missing.append("definition or event")
        if missing:
            yield _p(
                *ctx.file("metrics.yaml", ("kpis", i, "key")),
                "L180",
                f"{what} is not SMART: no {', '.join(missing)}",
                "warning",
            )
        if k.deadline and _date(k.deadline) is None:
            yield _p(
                *ctx.file("metrics.yaml", ("kpis", i, "deadline")),
                "E004",
                f"{what} deadline {k.deadline!r} is not a calendar date",
                "error",
            )
        elif k.deadline and _date(k.deadline) < today:
            yield _p(
                *ctx.file("metrics.yaml", ("kpis", i, "deadline")),
                "L181",
                f"{what} deadline {k.deadline} has passed",
                "warning",
            )
    for obj, idx in per_objective.items():
        if len(idx) > MAX_KPIS_PER_OBJECTIVE:
            yield _p(
                *ctx.file("metrics.yaml", ("kpis", idx[MAX_KPIS_PER_OBJECTIVE], "objective")),
                "L182",
                f"objective {obj!r} has {len(idx)} KPIs (more than {MAX_KPIS_PER_OBJECTIVE})",
                "warning",
            )


# ---------------------------------------------------------------------------------- experiments

RATE_MEASURES = ("activation_rate", "conversion_rate", "retention")


def sample_size_per_arm(
    baseline: float, mde: float, alpha: float = 0.05, power: float = 0.8, ratio: float = 1.0
) -> tuple[int, int]:
    """Persons needed in control and in treatment to detect a relative lift ``mde`` on a rate.

    Two-sided test of two proportions on Cohen's arcsine effect size h (tracking_plan.power, the
    one implementation); ``ratio`` is treatment / control size.
    """
    from .power import normal_sample_size, proportion_effectsize

    treated = min(baseline * (1 + mde), 1.0)
    n1 = normal_sample_size(proportion_effectsize(treated, baseline), alpha, power, ratio)
    if not math.isfinite(n1):
        raise OverflowError(f"mde {mde:g} on a baseline of {baseline:g}: no finite sample size detects it")
    return math.ceil(n1), math.ceil(n1 * ratio)


def _baseline(x: Experiment, plan: Plan, baselines: Mapping[str, float] | None) -> tuple[float | None, str]:
    if baselines and x.primary_metric in baselines:
        return float(baselines[x.primary_metric]), "given baseline"
    kpi = next((k for k in plan.metrics.kpis if k.key == x.primary_metric), None)
    if kpi and kpi.measure in RATE_MEASURES and kpi.target is not None and 0 < kpi.target < 1:
        # No measured baseline yet: the KPI's target is the nearest declared rate.
        return float(kpi.target), f"KPI target {kpi.target:g} as baseline"
    return None, ""


def _check_experiments(
    ctx: _Ctx, traffic: Mapping[str, float] | None, baselines: Mapping[str, float] | None
) -> Iterator[Problem]:
    for i, x in enumerate(ctx.plan.metrics.experiments):
        where = ctx.file("metrics.yaml", ("experiments", i, "key"))
        what = f"experiment {x.key!r}"
        variants_at = ctx.file("metrics.yaml", ("experiments", i, "variants"))
        if len(set(x.variants)) < 2:
            yield _p(*variants_at, "L192", f"{what}: an experiment needs at least two variants", "error")
            continue
        if twice := sorted({v for v in x.variants if x.variants.count(v) > 1}):
            yield _p(*variants_at, "L192", f"{what}: variant {twice[0]!r} is listed twice", "error")
            continue
        if x.control not in x.variants:
            yield _p(*where, "L192", f"{what}: control {x.control!r} is not one of its variants", "error")
            continue
        alloc = x.allocation or {v: 1 / len(x.variants) for v in x.variants}
        if set(alloc) != set(x.variants):
            yield _p(
                *ctx.file("metrics.yaml", ("experiments", i, "allocation")),
                "L192",
                f"{what}: allocation keys {sorted(alloc)} differ from variants {sorted(x.variants)}",
                "error",
            )
            continue
        if abs(sum(alloc.values()) - 1) > 1e-6 or min(alloc.values()) <= 0:  # float sums of shares like 1/3
            yield _p(
                *ctx.file("metrics.yaml", ("experiments", i, "allocation")),
                "L192",
                f"{what}: allocation shares must be positive and sum to 1",
                "error",
            )
            continue
        if x.planned_days is None:
            yield _p(*where, "L193", f"{what} has no planned_days: its horizon is open-ended", "warning")
        base, source = _baseline(x, ctx.plan, baselines)
        if base is None:
            yield _p(
                *where,
                "L191",
                f"{what}: sample size not computed (primary metric {x.primary_metric!r} "
                "has no baseline rate; pass one)",
                "info",
            )
            continue
        # the binding comparison is control against the smallest treatment arm
        arm = min((v for v in x.variants if v != x.control), key=lambda v: alloc[v])
        ratio = alloc[arm] / alloc[x.control]
        try:
            n_c, n_t = sample_size_per_arm(base, x.mde, x.alpha, x.power, ratio)
        except (ValueError, OverflowError):  # the lift rounds to nothing at this baseline: no n detects it
            yield _p(
                *ctx.file("metrics.yaml", ("experiments", i, "mde")),
                "L190",
                f"{what}: mde {x.mde:g} on a baseline of {base:g} ({source}) is too small a change for any "
                "sample size to detect",
                "error",
            )
            continue
        need = f"{n_c:,} in {x.control} and {n_t:,} in {arm} (mde {x.mde:g} relative, {source})"
        daily = (traffic or {}).get(x.key, (traffic or {}).get(x.exposure_event))
        if daily is None:
            yield _p(*where, "L191", f"{what} needs {need}", "info")
            continue
        days = math.ceil(max(n_c / (daily * alloc[x.control]), n_t / (daily * alloc[arm]))) if daily > 0 else math.inf
        if x.planned_days is not None and days > x.planned_days:
            yield _p(
                *where,
                "L190",
                f"{what} needs {need}: {days} days at {daily:g} persons/day, planned {x.planned_days}",
                "warning",
            )
        else:
            yield _p(*where, "L191", f"{what} needs {need}: {days} days at {daily:g} persons/day", "info")


# ------------------------------------------------------------------------------------- driver


def lint(
    plan_dir: Path | str | None = None,
    traffic: Mapping[str, float] | None = None,
    today: dt.date | None = None,
    baselines: Mapping[str, float] | None = None,
) -> list[Problem]:
    """Every problem of the plan in ``plan_dir``, sorted by file and line.

    ``traffic`` maps an event name (or an experiment key) to daily persons, used to tell whether an
    experiment reaches its sample size within ``planned_days``; ``baselines`` maps a primary metric
    to its current rate. ``today`` fixes the date sunsets and deadlines are compared with.
    """
    res = read_plan(plan_dir)
    problems = list(res.problems)
    if res.plan is not None:
        root = Path(res.plan.root)
        ctx = _Ctx(res, root)
        today = today or dt.date.today()
        for rule in (
            _check_names(ctx),
            _check_duplicates(ctx),
            _check_lifecycle(ctx, today),
            _check_properties(ctx),
            _check_consent(ctx),
            _check_identity(ctx),
            _check_metrics(ctx, today),
            _check_experiments(ctx, traffic, baselines),
        ):
            problems.extend(rule)
    order = {s: i for i, s in enumerate(SEVERITIES)}
    return sorted(problems, key=lambda p: (p.file, p.line, order.get(p.severity, 9), p.code, p.message))


def has_errors(problems: Iterable[Problem]) -> bool:
    return any(p.severity == "error" for p in problems)


def exit_code(problems: Iterable[Problem]) -> int:
    """What `trackplan lint` exits with: 1 if any error, else 0 (warnings do not fail CI)."""
    return 1 if has_errors(problems) else 0


def render_lint(problems: list[Problem], format: str = "text", relative_to: Path | str | None = None) -> str:
    """Text (`file:line: CODE message (severity)`) or JSON (`{"errors", "warnings", "info", "problems"}`)."""

    def rel(file: str) -> str:
        if relative_to is None:
            return file
        try:
            return str(Path(file).resolve().relative_to(Path(relative_to).resolve()))
        except ValueError:
            return file

    counts = {s: sum(p.severity == s for p in problems) for s in SEVERITIES}
    if format == "json":
        rows = [p.to_dict() | {"file": rel(p.file)} for p in problems]
        return json.dumps(
            {"errors": counts["error"], "warnings": counts["warning"], "info": counts["info"], "problems": rows},
            indent=2,
        )
    if format != "text":
        raise ValueError(f"unknown format {format!r} (text or json)")
    lines = [f"{rel(p.file)}:{p.line}: {p.code} {p.message} ({p.severity})" for p in problems]
    lines.append(f"{counts['error']} error(s), {counts['warning']} warning(s), {counts['info']} info")
    return "\n".join(lines)


def traffic_from_warehouse(
    warehouse: Path | str, plan_dir: Path | str | None = None, days: int = 28
) -> dict[str, float]:
    """Current traffic for the sample-size check: per experiment, the mean daily number of persons
    first exposed over the last ``days`` days of data; per event, its mean daily distinct persons."""
    import duckdb

    from .loader import load_plan

    plan = load_plan(plan_dir)
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        out = {
            name: float(n)
            for name, n in con.execute(f"""
with recent as (select * from stitch.events
                where "timestamp" > (select max("timestamp") from stitch.events) - to_days({int(days)}))
select event_name, count(distinct (person_id, "timestamp"::date)) / {int(days)}.0 from recent group by 1
""").fetchall()
        }
        for x in plan.metrics.experiments:
            rows = con.execute(
                f"""
with first as (select person_id, min("timestamp") as t from stitch.events
               where event_name = ? and properties ->> '$.experiment_id' = ? group by 1)
select count(*) / {int(days)}.0 from first where t > (select max("timestamp") from stitch.events) - to_days({int(days)})
""",
                [x.exposure_event, x.key],
            ).fetchall()
            if rows and rows[0][0]:
                out[x.key] = float(rows[0][0])
    finally:
        con.close()
    return out
