"""Cheap deterministic randomness for the per-event hot path.

numpy's scalar draws cost about a microsecond each; the generator makes several per event, so it
draws uniforms in blocks from one seeded `numpy.random.Generator` and hands them out from a list.
Every draw comes from that single generator in a fixed order, which is what makes the output
byte-identical for a seed.
"""

from __future__ import annotations

import math

import numpy as np

BLOCK = 1 << 16


class Stream:
    """Uniforms handed out one by one from blocks drawn with `rng`."""

    __slots__ = ("_buf", "_i", "rng")

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self._buf: list[float] = []
        self._i = 0

    def u(self) -> float:
        i = self._i
        if i >= len(self._buf):
            self._buf = self.rng.random(BLOCK).tolist()
            i = 0
        self._i = i + 1
        return self._buf[i]

    def ch(self, seq):
        """A uniformly chosen element of a sequence."""
        return seq[int(self.u() * len(seq))]

    def wch(self, seq, cum):
        """An element chosen with cumulative weights `cum` (last == 1.0)."""
        x = self.u()
        for item, c in zip(seq, cum):
            if x < c:
                return item
        return seq[-1]

    def i(self, lo: int, hi: int) -> int:
        """An integer in [lo, hi]."""
        return lo + int(self.u() * (hi - lo + 1))

    def uni(self, lo: float, hi: float) -> float:
        return lo + (hi - lo) * self.u()

    def exp(self, mean: float) -> float:
        return -mean * math.log(1.0 - self.u())

    def poisson(self, lam: float) -> int:
        """Knuth's method: fine for the small means used per session."""
        limit, k, p = math.exp(-lam), 0, self.u()
        while p > limit:
            k += 1
            p *= self.u()
        return k

    def hex(self, n: int) -> str:
        return self.rng.bytes((n + 1) // 2).hex()[:n]


def cumulative(weights) -> list[float]:
    """Cumulative, normalised weights for `Stream.wch`."""
    w = np.asarray(weights, dtype=float)
    c = np.cumsum(w / w.sum()).tolist()
    c[-1] = 1.0
    return c


def uuids(rng: np.random.Generator, n: int) -> list[str]:
    """`n` version-4-shaped UUID strings from the seeded generator (one bulk draw)."""
    raw = bytearray(rng.bytes(16 * n))
    raw[6::16] = bytes((b & 0x0F) | 0x40 for b in raw[6::16])  # version 4
    raw[8::16] = bytes((b & 0x3F) | 0x80 for b in raw[8::16])  # RFC 4122 variant
    h = raw.hex()
    out = []
    for o in range(0, 32 * n, 32):
        out.append(f"{h[o : o + 8]}-{h[o + 8 : o + 12]}-{h[o + 12 : o + 16]}-{h[o + 16 : o + 20]}-{h[o + 20 : o + 32]}")
    return out
