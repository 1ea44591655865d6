"""The import contract of the one-way layout, checked on the source (AST), function-level imports included.

    trackplan/  ->  pipelines/  ->  quality_checks/, schemas/, models/  ->  tracking_plan/

A package may import its own layer and the layers below it, never one above. Dagster belongs to
pipelines/ (and the app shell that drives it); tracking_plan/ also keeps the heavy analytics
libraries out of its import time, so `trackplan lint` and `diff` start in about a second.
Run by `make lint` and by the test suite (tests/test_layers.py).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# from the top down; a layer may import itself and anything after it
LAYERS: list[tuple[str, ...]] = [
    ("trackplan",),
    ("pipelines",),
    ("quality_checks", "schemas", "models"),
    ("tracking_plan",),
]
PACKAGES = [p for layer in LAYERS for p in layer]
DAGSTER = ("dagster", "dagster_duckdb", "dagster_webserver")
# every package below pipelines/: Dagster nowhere, not even inside a function
NO_DAGSTER = ("quality_checks", "schemas", "models", "tracking_plan")
# libraries tracking_plan/ may import only inside the function that needs them (each costs 0.3-7 s)
HEAVY = ("pandas", "statsmodels", "sklearn", "scipy", "great_expectations", "pandera", "altair")


@dataclass(frozen=True)
class Violation:
    path: str
    line: int
    module: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: imports {self.module} ({self.rule})"


def _layer(pkg: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if pkg in layer)


def imports(tree: ast.Module, parts: list[str]) -> list[tuple[int, str, bool]]:
    """(line, absolute module, at import time) of every import in the module at path `parts`
    (`["a", "b", "__init__"]` for a/b/__init__.py), relative imports resolved."""
    out = []
    top = set()
    # module-level statements, including those nested in if/try blocks, run at import time
    stack = list(tree.body)
    while stack:
        node = stack.pop()
        top.add(id(node))
        if isinstance(node, (ast.If, ast.Try, ast.With)):
            for field in ("body", "orelse", "finalbody", "handlers"):
                stack.extend(getattr(node, field, []) or [])
        if isinstance(node, ast.ExceptHandler):
            stack.extend(node.body)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            # `from a import b` may import the module a.b: name it (the cycle search falls back to a)
            names = [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        out.extend((node.lineno, n, id(node) in top) for n in names)
    return out


def check(root: Path = ROOT) -> list[Violation]:
    """Every import in the layered packages under `root` that runs against the contract."""
    found = []
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            rel = path.relative_to(root)
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(rel))
            for line, module, at_import in imports(tree, list(rel.with_suffix("").parts)):
                target = module.split(".")[0]
                if target in PACKAGES and _layer(target) < _layer(pkg):
                    found.append(Violation(str(rel), line, module, f"{pkg}/ is below {target}/"))
                elif target in DAGSTER and pkg in NO_DAGSTER:
                    found.append(Violation(str(rel), line, module, f"only pipelines/ imports Dagster, not {pkg}/"))
                elif target in HEAVY and pkg == "tracking_plan" and at_import:
                    found.append(
                        Violation(
                            str(rel),
                            line,
                            module,
                            "tracking_plan/ imports heavy libraries inside the function using them",
                        )
                    )
    return found


def cycles(root: Path = ROOT) -> list[list[str]]:
    """Import cycles between modules (function-level imports included), each as the modules in order.

    A package's __init__ importing its own submodules (and them importing a name back) is Python's
    usual re-export, not a cycle between two pieces of logic, and is left out.
    """
    graph: dict[str, set[str]] = {}
    modules: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in (root / pkg).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            modules[name] = path
    for name, path in modules.items():
        deps = set()
        for _, module, _ in imports(
            ast.parse(path.read_text(encoding="utf-8")), list(path.relative_to(root).with_suffix("").parts)
        ):
            while module and module not in modules:
                module = module.rpartition(".")[0]
            if module and module != name:
                deps.add(module)
        graph[name] = deps

    def inits_own(a: str, b: str) -> bool:
        return (modules[a].name == "__init__.py" and b.startswith(a + ".")) or (
            modules[b].name == "__init__.py" and a.startswith(b + ".")
        )

    found, seen = [], set()
    for start in sorted(graph):
        # depth-first search for a path back to `start` through modules sorted after it (each cycle once)
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in sorted(graph[node]):
                if nxt == start and len(path) > 1:
                    pairs = list(zip(path, [*path[1:], start], strict=True))
                    key = frozenset(path)
                    if key not in seen and not all(inits_own(a, b) for a, b in pairs):
                        seen.add(key)
                        found.append([*path, start])
                elif nxt > start and nxt not in path and len(path) < 6:
                    stack.append((nxt, [*path, nxt]))
    return found


if __name__ == "__main__":  # pragma: no cover
    import sys

    problems = [str(v) for v in check()] + [" -> ".join(c) + " (import cycle)" for c in cycles()]
    print("\n".join(problems) or "import contract: ok")
    sys.exit(1 if problems else 0)
