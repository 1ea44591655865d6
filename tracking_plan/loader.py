"""Load a plan directory into a typed Plan, reporting every problem with file and line.

Limits (each an E004 at the line where it is crossed, naming the property or the reference): a
property may nest objects and arrays `MAX_PROPERTY_DEPTH` (16) levels deep, counted after shared
references are resolved, and one property path may follow at most `MAX_REF_CHAIN` (16) references.
The validator's DuckDB SQL grows faster than the nesting (`trackplan validate`, peak memory, sample plan
plus one such property: 0.2 GB without it, 0.32 GB at 16 levels, 1.1 GB at 32, 1.5 GB at 40, out of
memory past 8.8 GB at 100), and the compiler, code generator and linter recurse once per level (a
RecursionError past about 200). YAML nesting itself is bounded by `yamlio.MAX_DEPTH`.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pydantic import BaseModel, ValidationError

from .model import Consent, Event, Identity, Metrics, Plan, PlanHeader, Property
from .yamlio import Located, YamlError, load_yaml, yaml_scalar

DEFAULT_PLAN = Path(__file__).parent / "plan"
MAX_PROPERTY_DEPTH = 16  # objects and arrays inside one property, its own level included (see above)
MAX_REF_CHAIN = 16  # shared-property references followed along one property path


def default_plan_dir() -> Path:
    return Path(os.environ.get("TRACKPLAN_PLAN") or DEFAULT_PLAN)


@dataclass
class Problem:
    file: str
    line: int
    code: str
    message: str
    severity: str = "error"  # error | warning

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.code} {self.message}"

    def to_dict(self) -> dict:
        return asdict(self)


class PlanError(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass
class LoadResult:
    plan: Plan | None
    problems: list[Problem] = field(default_factory=list)
    sources: dict[str, Located] = field(default_factory=dict)  # file → located YAML
    event_files: dict[str, str] = field(default_factory=dict)  # event name → file
    shared_files: dict[str, str] = field(default_factory=dict)  # shared property → file
    # event name → file of an event file that did not load (its errors are in `problems`): what refers
    # to that name is not a reference to a missing event (lint says so rather than a second error)
    unloaded_events: dict[str, str] = field(default_factory=dict)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def line_of(self, file: str, path: tuple = ()) -> int:
        src = self.sources.get(file)
        return src.line(path) if src else 1


def _validation_problems(exc: ValidationError, src: Located, prefix: tuple = ()) -> list[Problem]:
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        where = ".".join(str(x) for x in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            code, msg = "E002", f"unknown key {loc[-1]!r} at {where}"
        elif err["type"] == "missing":
            code, msg = "E003", f"missing required key {where}"
        elif err["type"] == "string_type" and (made := yaml_scalar(err.get("input"))):
            # YAML, not the writer, made it a number or a boolean (`version: 1.10`, `name: on`); a mapping's
            # key too (`on:` as a property name: pydantic numbers the key True as 1)
            if loc[-1:] == ("[key]",):
                where = ".".join(str(x) for x in loc[:-2]) or "(top level)"
                code, msg = "E004", f"{where}: a key YAML reads as {made}, not text: quote it"
            else:
                code, msg = "E004", f"{where}: YAML reads this value as {made}, not text: quote it"
        elif err["type"] == "value_error" and isinstance(err.get("ctx", {}).get("error"), ValueError):
            code, msg = "E004", f"{where}: {err['ctx']['error']}"  # our validator's words, not "Value error, ..."
        else:
            code, msg = "E004", f"{where}: {err['msg']}"
        out.append(Problem(src.file, src.line(prefix + loc), code, msg))
    return out


def _model(cls: type[BaseModel], src: Located, problems: list[Problem], prefix: tuple = ()):
    data = src.data
    for key in prefix:
        data = data[key]
    if not isinstance(data, dict):
        problems.append(Problem(src.file, src.line(prefix), "E001", f"expected a mapping, got {type(data).__name__}"))
        return None
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        problems.extend(_validation_problems(exc, src, prefix))
        return None


def _read(path: Path, res: LoadResult) -> Located | None:
    try:
        src = load_yaml(path)
    except YamlError as exc:
        res.problems.append(Problem(exc.file, exc.line, "E001", exc.message))
        return None
    res.sources[src.file] = src
    return src


def read_plan(root: Path | str | None = None) -> LoadResult:
    """Read and type-check every file of a plan directory. Never raises for bad content."""
    root = Path(root) if root else default_plan_dir()
    res = LoadResult(plan=None)
    if not root.is_dir():
        res.problems.append(Problem(str(root), 1, "E001", "plan directory not found"))
        return res
    header_path = root / "plan.yaml"
    if not header_path.exists():
        res.problems.append(Problem(str(header_path), 1, "E001", "plan.yaml is missing"))
        return res
    hsrc = _read(header_path, res)
    header = _model(PlanHeader, hsrc, res.problems) if hsrc else None

    shared: dict[str, Property] = {}
    for path in sorted((root / "properties").glob("*.y*ml")):
        src = _read(path, res)
        if src is None:
            continue
        if not isinstance(src.data, dict):
            res.problems.append(Problem(src.file, 1, "E001", "a shared properties file maps names to definitions"))
            continue
        for name in src.data:
            if name in shared:
                res.problems.append(
                    Problem(
                        src.file,
                        src.line((name,)),
                        "E010",
                        f"shared property {name!r} is also defined in {res.shared_files[name]}",
                    )
                )
                continue
            prop = _model(Property, src, res.problems, (name,))
            if prop is not None:
                shared[name] = prop
                res.shared_files[name] = src.file

    events: dict[str, Event] = {}
    for path in sorted((root / "events").glob("*.y*ml")):
        src = _read(path, res)
        if src is None:
            continue
        ev = _model(Event, src, res.problems)
        if ev is None:
            name = src.data.get("name") if isinstance(src.data, dict) else None
            if isinstance(name, str):
                res.unloaded_events.setdefault(name, src.file)
            continue
        if ev.name in events:
            res.problems.append(
                Problem(
                    src.file,
                    src.line(("name",)),
                    "E011",
                    f"event {ev.name!r} is also defined in {res.event_files[ev.name]}",
                )
            )
            continue
        ev.source_file = src.file
        events[ev.name] = ev
        res.event_files[ev.name] = src.file

    parts = {}
    for fname, cls in (("identity.yaml", Identity), ("consent.yaml", Consent), ("metrics.yaml", Metrics)):
        path = root / fname
        if path.exists():
            src = _read(path, res)
            parts[fname] = _model(cls, src, res.problems) if src else None
        else:
            parts[fname] = cls()

    if header is None or any(v is None for v in parts.values()):
        return res
    resolved = _resolve_events(events, shared, res)
    res.plan = Plan(
        root=str(root),
        header=header,
        events=resolved,
        shared_properties=shared,
        identity=parts["identity.yaml"],
        consent=parts["consent.yaml"],
        metrics=parts["metrics.yaml"],
    )
    return res


def load_plan(root: Path | str | None = None) -> Plan:
    """Load a plan or raise PlanError listing every error (file:line: CODE message)."""
    res = read_plan(root)
    if res.errors or res.plan is None:
        raise PlanError(res.errors or [Problem(str(root), 1, "E001", "plan could not be loaded")])
    return res.plan


def _resolve_events(events: dict[str, Event], shared: dict[str, Property], res: LoadResult) -> dict[str, Event]:
    out = {}
    for name, ev in events.items():
        file = res.event_files[name]
        props = {}
        for pname, prop in ev.properties.items():
            resolved = _resolve(prop, shared, res, file, ("properties", pname), [], (name, pname))
            if resolved is not None:
                props[pname] = resolved
        out[name] = ev.model_copy(update={"properties": props})
    return out


def _resolve(
    prop: Property,
    shared: dict[str, Property],
    res: LoadResult,
    file: str,
    path: tuple,
    chain: list[str],
    trail: tuple[str, ...],
) -> Property | None:
    """Replace `ref` by the shared definition; local keys (required, description, ...) override.

    ``path`` is where ``prop`` is in ``file``; ``trail`` the event's name, then the property path from
    the event, one name (or `[]` for an array's items) per level, so its length is the nesting depth
    plus one; ``chain`` the references followed on the way."""
    if len(trail) - 1 > MAX_PROPERTY_DEPTH:
        res.problems.append(
            Problem(
                file,
                res.line_of(file, path),
                "E004",
                f"event {trail[0]!r} property {_show(trail[1:])} nests objects and arrays deeper than {MAX_PROPERTY_DEPTH} levels",
            )
        )
        return None
    if prop.ref is not None:
        if prop.ref in chain:
            loop = " -> ".join([*chain, prop.ref])
            res.problems.append(Problem(file, res.line_of(file, path), "E021", f"reference loop: {loop}"))
            return None
        if len(chain) >= MAX_REF_CHAIN:
            res.problems.append(
                Problem(
                    file,
                    res.line_of(file, (*path, "ref")),
                    "E004",
                    f"event {trail[0]!r} property {_show(trail[1:])}: reference {prop.ref!r} makes a chain of more than {MAX_REF_CHAIN} "
                    f"references ({chain[0]} -> {chain[1]} -> ... -> {chain[-1]} -> {prop.ref})",
                )
            )
            return None
        target = shared.get(prop.ref)
        if target is None:
            res.problems.append(
                Problem(
                    file,
                    res.line_of(file, (*path, "ref")),
                    "E020",
                    f"reference to undefined shared property {prop.ref!r}",
                )
            )
            return None
        tfile = res.shared_files[prop.ref]
        base = _resolve(target, shared, res, tfile, (prop.ref,), [*chain, prop.ref], trail)
        if base is None:
            return None
        local = prop.model_dump(exclude_unset=True, exclude={"ref"})
        merged = base.model_dump(exclude_unset=True, exclude={"ref"}) | local
        return Property.model_validate(merged | {"ref": prop.ref})
    update = {}
    if prop.items is not None:
        update["items"] = _resolve(prop.items, shared, res, file, (*path, "items"), chain, (*trail, "[]"))
    if prop.properties:
        update["properties"] = {
            k: r
            for k, v in prop.properties.items()
            if (r := _resolve(v, shared, res, file, (*path, "properties", k), chain, (*trail, k))) is not None
        }
    return prop.model_copy(update=update) if update else prop


def _show(trail: tuple[str, ...]) -> str:
    """A property path for a message: `products[].name`, its middle elided when long."""

    def join(parts) -> str:
        return "".join(p if p == "[]" or i == 0 else f".{p}" for i, p in enumerate(parts))

    return join(trail) if len(trail) <= 8 else f"{join(trail[:4])} ... {join(trail[-3:])}"
