"""YAML reading that remembers where every value came from, so errors can name file and line."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


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
        super().__init__(f"{file}:{line}: {message}")
        self.file, self.line, self.message = file, line, message


class _Loader(yaml.SafeLoader):
    """SafeLoader whose timestamps stay strings: dates in a plan are compared as ISO text, and a
    date that YAML silently turned into a datetime would not round-trip into JSON Schema."""


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
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise YamlError(name, line, f"YAML syntax: {exc.problem or exc}") from None
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


def _construct(node: yaml.Node, path: tuple, lines: dict, loader: yaml.SafeLoader, active: set) -> Any:
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        if id(node) in active:  # an anchor that contains its own alias would never end
            raise YamlError("", node.start_mark.line + 1, "YAML anchor refers to itself (a loop)")
        active = active | {id(node)}
    if isinstance(node, yaml.MappingNode):
        out: dict = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.MappingNode | yaml.SequenceNode):
                raise YamlError("", key_node.start_mark.line + 1, "a mapping key must be a scalar")
            key = loader.construct_object(key_node)
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
    return loader.construct_object(node)
