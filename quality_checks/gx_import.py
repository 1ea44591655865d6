"""Great Expectations, imported safely in any process.

GX imports `pyspark.sql.connect` when pyspark is installed (it is, for the Spark path). That module
takes a process whose `__main__` has neither `__spec__` nor `__file__` (`python -c`, pytest-xdist
workers, embedded interpreters) for pyspark's own doctest runner and, without Spark Connect's extras,
calls `sys.exit(0)`: a run would end in the middle of its quality checks with exit status 0. While GX
loads, such a `__main__` is given a placeholder `__file__`.

GX also imports, when they are installed, the SDKs of its other backends (pyspark, Azure, Google Cloud
and its auth, whose service-account module loads `cryptography.x509`: ~0.2 s alone; boto3; SQLAlchemy
for its SQL data sources, ~0.2 s, through its compatibility module): ~0.8 CPU-s
of a run's ~2.2 s GX import, for data sources trackplan never gives it (its suite
validates a DuckDB table through pandas). Those imports, made by GX's own modules, are refused as if
the SDK were absent (GX's documented behaviour then: the backend is unavailable); the same SDKs
imported by anything else (the Spark engine, an object-store landing) load as usual, in any thread.
Pandera's import of pyspark.pandas is refused the same way (NOT_FOR_PANDERA), and GX's import of
altair, which only its Data Docs charts use, loads altair on first use (LAZY)."""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import threading

_LOCK = threading.RLock()  # (import_gx installs the finder while it holds it)

# the backends' SDKs GX would import for data sources trackplan does not use
NOT_FOR_GX = ("pyspark", "azure", "google", "boto3", "botocore", "sqlalchemy")
# pandera imports pyspark.pandas, when pyspark is installed, only so that its pandas type hints survive
# pandas-on-Spark's patching of pandas (~0.1 CPU-s of each run); trackplan never uses pandas-on-Spark
NOT_FOR_PANDERA = ("pyspark",)
REFUSED = {"great_expectations": NOT_FOR_GX, "pandera": NOT_FOR_PANDERA}
# loaded on first use only when GX imports it: one expectation module imports altair to draw its charts
# in rendered Data Docs, which trackplan's suite never draws (~0.25 CPU-s of each run: altair's
# `packaging.specifiers` alone compiles its version regex for ~0.15 s)
LAZY = {"great_expectations": ("altair",)}
_ALL = tuple(sorted({r for rs in [*REFUSED.values(), *LAZY.values()] for r in rs}))


class _ImportPolicy(importlib.abc.MetaPathFinder):
    """Refuses REFUSED[package] to an import statement in a module of that package, and only there;
    gives such a statement a lazily loaded LAZY[package] module."""

    def find_spec(self, name, path, target=None):
        if not name.startswith(_ALL) or not any(name == r or name.startswith(r + ".") for r in _ALL):
            return
        f = sys._getframe(1)
        while f is not None:  # the first frame outside the import machinery made the import
            mod = f.f_globals.get("__name__") or ""
            if not mod.startswith(("importlib", "_frozen_importlib")):
                package = mod.split(".", 1)[0]
                if any(name == r or name.startswith(r + ".") for r in REFUSED.get(package, ())):
                    raise ModuleNotFoundError(f"No module named {name!r} (not loaded for {package})", name=name)
                if name in LAZY.get(package, ()):
                    # the module object now, its code on the first attribute read (by anyone)
                    spec = importlib.machinery.PathFinder.find_spec(name, path)
                    if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                        spec.loader = importlib.util.LazyLoader(spec.loader)
                    return spec
                return
            f = f.f_back
        return


_FINDER = _ImportPolicy()


def refuse_unused_backends() -> None:
    """Install the import policy: the refusals and the lazy modules (once; kept: both libraries import
    some modules lazily, later)."""
    with _LOCK:
        if _FINDER not in sys.meta_path:
            sys.meta_path.insert(0, _FINDER)


def import_gx():
    """`import great_expectations`, with no usage statistics (no network) and no pyspark doctest exit."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
    with _LOCK:
        main = sys.modules.get("__main__")
        patch = (
            main is not None
            and getattr(main, "__spec__", None) is None
            and not hasattr(main, "__file__")
            and not hasattr(sys, "ps1")
        )
        if patch:
            main.__file__ = "<trackplan>"
        refuse_unused_backends()
        try:
            import great_expectations as gx
        finally:
            if patch and getattr(main, "__file__", None) == "<trackplan>":
                del main.__file__
    return gx
