"""Saturation to a signed width, counted per population: overflow is never silent."""

from __future__ import annotations

from collections import Counter

import numpy as np

from compiler.errors import SimulationError
from hardware_sim.fixed_point.formats import INT, STATE_BITS, int_range


class SaturationCounter:
    """Number of saturated values per population (or synapse group) name.

    Each backend keeps one counter per run; ``verify`` and ``run`` print :meth:`summary`.
    """

    def __init__(self):
        self.counts: Counter[str] = Counter()

    def add(self, name: str, n: int) -> None:
        if n:
            self.counts[name] += int(n)

    def merge(self, other: SaturationCounter | dict) -> None:
        items = other.counts.items() if isinstance(other, SaturationCounter) else dict(other).items()
        for name, n in items:
            self.add(name, n)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))

    def summary(self) -> str:
        if not self.counts:
            return "no saturation"
        parts = ", ".join(f"{k}: {v}" for k, v in self.counts.most_common())
        return f"{self.total} saturated values ({parts})"

    def __repr__(self) -> str:
        return f"SaturationCounter({self.to_dict()})"


def saturate(x, bits: int = STATE_BITS, counter: SaturationCounter | None = None, name: str = "") -> np.ndarray:
    """Clamp integers ``x`` to ``bits``-bit signed range and count the clamped values.

    ``y = min(max(x, -2**(bits-1)), 2**(bits-1) - 1)``.  The number of elements with ``y != x`` is
    added to ``counter[name]``.  With ``counter=None`` a saturation raises :class:`SimulationError`
    instead (nothing may overflow unnoticed).
    """
    x = np.asarray(x, dtype=INT)
    lo, hi = int_range(bits)
    if x.size == 0 or (lo <= x.min() and x.max() <= hi):  # the usual case, two reductions and no temporaries
        return x
    over = (x < lo) | (x > hi)
    n = int(np.count_nonzero(over))
    if n:
        if counter is None:
            raise SimulationError(
                f"{n} value(s) of {name or 'an unnamed quantity'} overflow {bits} bits and no "
                "saturation counter was given; pass a SaturationCounter"
            )
        counter.add(name or "?", n)
        return np.clip(x, lo, hi)
    return x
