"""Lookup tables with linear interpolation, and integer leading-one detection.

A table holds ``2**K + 2`` integer entries in Q1.22 (``TABLE_FRAC`` fraction bits; 24-bit signed
words).  A position ``pos`` carries ``POS_FRAC = 16`` fraction bits below the entry index::

    i = pos >> 16,  r = pos & 0xFFFF
    value = T[i] + round_half_up((T[i+1] - T[i]) r / 2**16)

Positions are clamped to ``[0, 2**K << 16]``; the last entry is repeated so ``i = 2**K`` is valid.
"""

from __future__ import annotations

import numpy as np

from hardware_sim.fixed_point.formats import INT, TABLE_FRAC
from hardware_sim.fixed_point.shifts import rshift_round

POS_FRAC = 16


def make_table(fn, xs: np.ndarray) -> np.ndarray:
    """Entries ``round(fn(xs) 2**22)`` with the last one repeated (for interpolation at the end)."""
    t = np.floor(np.ldexp(np.asarray(fn(xs), dtype=np.float64), TABLE_FRAC) + 0.5).astype(INT)
    return np.append(t, t[-1])


def interpolate(table: np.ndarray, pos) -> np.ndarray:
    """Linearly interpolated table value at fixed-point position ``pos`` (16 fraction bits)."""
    n = table.shape[0] - 2
    pos = np.asarray(pos, dtype=INT)
    if pos.size and (pos.min() < 0 or pos.max() > n << POS_FRAC):
        pos = np.minimum(np.maximum(pos, 0), n << POS_FRAC)
    i = pos >> POS_FRAC
    r = pos & ((1 << POS_FRAC) - 1)
    step = np.take(np.diff(table), i)  # T[i+1] - T[i], gathered from the small table of differences
    step *= r
    return np.take(table, i) + rshift_round(step, POS_FRAC)


def floor_log2(x) -> np.ndarray:
    """``floor(log2 x)`` of positive int64 ``x`` by a binary search of shifts (``-1`` for ``x <= 0``)."""
    y = np.asarray(x, dtype=INT).copy()
    y[y < 0] = 0
    r = np.zeros(y.shape, dtype=INT)
    for s in (32, 16, 8, 4, 2, 1):
        big = y >= (INT(1) << s)
        r += np.where(big, s, 0)
        y = np.where(big, y >> s, y)
    return np.where(y > 0, r, -1)
