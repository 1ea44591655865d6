"""A pytest plugin that runs the suite on other seeds: every seeded generator (numpy's default_rng,
RandomState and legacy seed; the stdlib's Random and seed) gets its integer seed plus
TRACKPLAN_SEED_SHIFT, so each test's data are a fresh draw and a statement that held only on the
seed it was written with fails. `make test-seeds` (TRACKPLAN_SEED_SHIFT=1000 by default):

    TRACKPLAN_SEED_SHIFT=2000 PYTHONPATH=tests .venv/bin/python -m pytest -p support.seedshift tests/

Tests marked `fixed_seed` reproduce one reported scenario (an issue's own command) and are skipped,
with their reason, rather than shifted. Generators seeded with a list or entropy are left alone.
"""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

SHIFT = int(os.environ.get("TRACKPLAN_SEED_SHIFT", "1000"))


def _shift(seed):
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        return int(seed) + SHIFT
    return seed


_default_rng, _np_seed, _RandomState = np.random.default_rng, np.random.seed, np.random.RandomState
_py_seed, _Random = random.seed, random.Random


def _rng(seed=None, *args, **kwargs):
    return _default_rng(_shift(seed), *args, **kwargs)


class _ShiftedRandomState(_RandomState):
    def __init__(self, seed=None):
        super().__init__(_shift(seed))


class _ShiftedRandom(_Random):
    def seed(self, a=None, *args, **kwargs):  # (Random.__init__ seeds through this too)
        return super().seed(_shift(a), *args, **kwargs)


def pytest_configure(config):
    config.addinivalue_line("markers", "fixed_seed(reason): reproduces one seed's scenario; not shifted")
    np.random.default_rng = _rng
    np.random.RandomState = _ShiftedRandomState
    np.random.seed = lambda seed=None: _np_seed(_shift(seed))
    random.Random = _ShiftedRandom
    random.seed = lambda a=None, *args, **kwargs: _py_seed(_shift(a), *args, **kwargs)


def pytest_unconfigure(config):
    np.random.default_rng, np.random.seed, np.random.RandomState = _default_rng, _np_seed, _RandomState
    random.seed, random.Random = _py_seed, _Random


def pytest_report_header(config):
    return f"seedshift: every integer seed + {SHIFT} (TRACKPLAN_SEED_SHIFT)"


def pytest_runtest_setup(item):
    marker = item.get_closest_marker("fixed_seed")
    if marker is not None:
        pytest.skip(f"fixed_seed, not shifted: {marker.args[0] if marker.args else 'one scenario'}")
