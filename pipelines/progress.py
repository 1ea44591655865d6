"""A hook the CLI sets so that assets running in-process can drive its progress bars."""

from __future__ import annotations

from collections.abc import Callable

_callback: Callable[[str, int, int], None] | None = None


def set_callback(fn: Callable[[str, int, int], None] | None) -> None:
    global _callback
    _callback = fn


def report(stage: str, done: int, total: int) -> None:
    if _callback is not None:
        _callback(stage, done, total)
