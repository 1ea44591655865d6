"""YAML reading that remembers where every value came from, so errors can name file and line.

Whatever a file holds, reading it ends in data or in one `YamlError(file, line, message)`: a control
character, an explicit tag other than plain data (`!!int abc`, `!!python/name:...`, `!!binary`), a
merge key, or nesting deeper than `MAX_DEPTH` (64) levels of mappings and lists is an error at its line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MAX_DEPTH = 64
"""Deepest nesting of mappings and lists a plan file may have. A plan is hand-written and shallow (an
event file's deepest property sits about 2 levels per property level down; the loader refuses
properties nested more than `loader.MAX_PROPERTY_DEPTH` = 16 levels, well inside this); PyYAML's
composer recurses once per level, so without a bound a file of a thousand `[` ends in a RecursionError."""

_CORE = "tag:yaml.org,2002:"
# the tags a plan's values may carry, implicit or written out (`!!str 5`): plain data, nothing else
_SCALAR_TAGS = {_CORE + t for t in ("str", "int", "float", "bool", "null")}
_COLLECTION_TAGS = {_CORE + "map", _CORE + "seq"}


def yaml_scalar(value) -> str | None:
    """What YAML made of an unquoted scalar that was meant as text ("the number 1.0", "the boolean
    true" of `yes` or `on`), or None for anything else (dates stay text: _Loader)."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    return None


@dataclass
class Located:
    """Parsed YAML data plus the line (1-based) of every key path inside it."""

    data: Any
    file: str
    lines: dict[tuple, int] = field(default_factory=dict)

    def line(self, path: tuple = ()) -> int:
        """Line of the deepest known prefix of ``path`` (a pydantic ``loc`` works as-is)."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), 1)


class YamlError(Exception):
    def __init__(self, file: str, line: int, message: str):
        message = " ".join(str(message).split())  # one line, whatever the YAML library said
        super().__init__(f"{file}:{line}: {message}")
        self.file, self.line, self.message = file, line, message


def _show_path(path) -> str:
    """A key path for a message, its middle elided when long: `zz.0.0 ... 0.0`."""
    parts = [str(p) for p in path]
    return ".".join(parts) if len(parts) <= 6 else ".".join(parts[:3]) + " ... " + ".".join(parts[-2:])


def _too_deep(path, column: int | None = None) -> str:
    at = f", column {column}" if column else ""
    return f"nested deeper than {MAX_DEPTH} levels of mappings and lists (at {_show_path(path)}{at})"


def _tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_CORE) if tag.startswith(_CORE) else tag


class _Loader(yaml.SafeLoader):
    """SafeLoader whose timestamps stay strings: dates in a plan are compared as ISO text, and a
    date that YAML silently turned into a datetime would not round-trip into JSON Schema.

    It also refuses nesting deeper than `MAX_DEPTH` while composing (see there)."""

    def __init__(self, stream):
        super().__init__(stream)
        self._trail: list = []  # the key (or list index) of every node being composed

    def compose_node(self, parent, index):
        if index is not None:
            self._trail.append(index.value if isinstance(index, yaml.ScalarNode) else index)
        try:
            if len(self._trail) >= MAX_DEPTH and self.check_event(yaml.CollectionStartEvent):
                mark = self.peek_event().start_mark
                raise YamlError("", mark.line + 1, _too_deep(self._trail, mark.column + 1))
            return super().compose_node(parent, index)
        finally:
            if index is not None:
                self._trail.pop()


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

MAX_YAML_BYTES = 5 << 20  # a plan file is hand-written; 5 MB means something went wrong


def load_yaml(path: Path | str) -> Located:
    """Read one YAML file; raise YamlError(file, line, message) on anything unreadable."""
    path = Path(path)
    name = str(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise YamlError(name, 1, f"cannot read file: {exc.strerror or exc}") from None
    if len(raw) > MAX_YAML_BYTES:
        raise YamlError(name, 1, f"file is {len(raw)} bytes, more than a plan file should be")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise YamlError(name, line, f"not UTF-8 (byte 0x{raw[exc.start]:02x})") from None
    try:
        node = yaml.compose(text, Loader=_Loader)
    except YamlError as exc:  # nested too deep
        raise YamlError(name, exc.line, exc.message) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise YamlError(name, line, f"YAML syntax: {exc.problem or exc}") from None
    except yaml.reader.ReaderError as exc:  # a control character: the reader knows only its offset
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        what = f"character #x{exc.character:04x}" if isinstance(exc.character, int) else "character"
        raise YamlError(name, line, f"YAML syntax: unacceptable {what} at column {column}: {exc.reason}") from None
    except yaml.YAMLError as exc:
        raise YamlError(name, 1, f"YAML syntax: {exc}") from None
    loc = Located(data=None, file=name)
    if node is None:
        loc.data = {}
        return loc
    loc.lines[()] = node.start_mark.line + 1
    loader = _Loader("")
    try:
        loc.data = _construct(node, (), loc.lines, loader, set())
    except YamlError as exc:
        raise YamlError(name, exc.line, exc.message) from None
    return loc


def _scalar(node: yaml.ScalarNode, loader: yaml.SafeLoader) -> Any:
    """A scalar's value; an explicit tag other than plain data, or one its text does not fit
    (`!!int abc`), is an error at its line, never a crash or a Python object."""
    where = node.start_mark.line + 1
    if node.tag not in _SCALAR_TAGS:
        raise YamlError(
            "",
            where,
            f"YAML tag {_tag(node.tag)} is not supported (a plan holds plain strings, numbers, "
            "booleans, lists and mappings)",
        )
    try:
        return loader.construct_object(node)
    except (ValueError, KeyError, TypeError, yaml.YAMLError):
        raise YamlError("", where, f"{node.value!r} is not a valid {_tag(node.tag)}") from None


def _construct(node: yaml.Node, path: tuple, lines: dict, loader: yaml.SafeLoader, active: set) -> Any:
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        if id(node) in active:  # an anchor that contains its own alias would never end
            raise YamlError("", node.start_mark.line + 1, "YAML anchor refers to itself (a loop)")
        if node.tag not in _COLLECTION_TAGS:
            raise YamlError("", node.start_mark.line + 1, f"YAML tag {_tag(node.tag)} is not supported")
        if len(path) >= MAX_DEPTH:  # aliases can stack what the composer saw as shallow
            raise YamlError("", node.start_mark.line + 1, _too_deep(path))
        active = active | {id(node)}
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.MappingNode | yaml.SequenceNode):
                raise YamlError("", key_node.start_mark.line + 1, "a mapping key must be a scalar")
            if key_node.tag == _CORE + "merge":
                raise YamlError("", key_node.start_mark.line + 1, "YAML merge keys are not supported")
            key = _scalar(key_node, loader)
            if key == "<<":
                raise YamlError("", key_node.start_mark.line + 1, "YAML merge keys are not supported")
            if key in out:
                raise YamlError("", key_node.start_mark.line + 1, f"duplicate key {key!r}")
            sub = (*path, key)
            lines[sub] = key_node.start_mark.line + 1
            out[key] = _construct(value_node, sub, lines, loader, active)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for i, item in enumerate(node.value):
            sub = (*path, i)
            lines[sub] = item.start_mark.line + 1
            items.append(_construct(item, sub, lines, loader, active))
        return items
    return _scalar(node, loader)
