"""Python's cyclic garbage collector in the `trackplan` console script's own process.

A `trackplan run` loads Dagster, the definitions, pandas, statsmodels and Great Expectations: ~460k
objects the collector tracks, nearly all alive until the process ends. While they load the heap keeps
growing, and each time the oldest generation has grown by a quarter CPython walks all of it: a
1M-event run made 8 such full collections of 0.04-0.24 s each (~1 CPU-s, 3% of the run; measured with
`gc.callbacks`), for garbage it hardly ever found.

So in that process, and only there (the console script ends with its command: not a library caller,
a test's CliRunner or a server), a run pauses collection while it loads its modules (`pause_while_loading`)
and, once the definitions and the Dagster instance are loaded (`loaded`), freezes what is then alive
(`gc.freeze`: left out of every later collection) and collects again as usual: the run's own objects,
its frames and results, are collected as before. Frozen objects are unfrozen at exit, so the
interpreter's final collection still frees them (extension types count leaks otherwise)."""

from __future__ import annotations

import atexit
import gc

_state = {"console_script": False, "paused": False}


def console_script() -> None:
    """Mark this process as the console script's: it ends when its command does."""
    _state["console_script"] = True


def pause_while_loading() -> None:
    """Pause the cyclic collector until `loaded` (in the console script's process only)."""
    if _state["console_script"] and gc.isenabled():
        gc.disable()
        _state["paused"] = True


def loaded() -> None:
    """The modules are loaded: freeze the objects alive now and collect again (if paused)."""
    if not _state["paused"]:
        return
    _state["paused"] = False
    gc.freeze()
    atexit.register(gc.unfreeze)
    gc.enable()
