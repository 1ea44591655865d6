"""Great Expectations, imported safely in any process.

GX imports `pyspark.sql.connect` when pyspark is installed (it is, for the Spark path). That module
takes a process whose `__main__` has neither `__spec__` nor `__file__` (`python -c`, pytest-xdist
workers, embedded interpreters) for pyspark's own doctest runner and, without Spark Connect's extras,
calls `sys.exit(0)`: a run would end in the middle of its quality checks with exit status 0. While GX
loads, such a `__main__` is given a placeholder `__file__`, and nothing else changes."""

from __future__ import annotations

import os
import sys
import threading

_LOCK = threading.Lock()


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
        try:
            import great_expectations as gx
        finally:
            if patch and getattr(main, "__file__", None) == "<trackplan>":
                del main.__file__
    return gx
