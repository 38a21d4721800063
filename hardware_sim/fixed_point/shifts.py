"""Power-of-two rescaling of integers with one rounding rule: round half up.

``shift(x, s)`` computes ``x * 2**s``: for ``s >= 0`` an exact left shift, for ``s < 0`` an
arithmetic right shift by ``k = -s`` with rounding to nearest, ties toward +infinity::

    shift(x, -k) = floor((x + 2**(k-1)) / 2**k)      (k >= 1)

(e.g. 2.5 -> 3, -2.5 -> -2, -2.6 -> -3).  Right shifts of 62 or more bits give 0 (or -1 never:
the rounding term keeps ``|x| < 2**61`` inputs at 0).  Left shifts that would leave int64 are
clamped to +-2**62, which any later :func:`saturate` counts.
"""

from __future__ import annotations

import numpy as np

from hardware_sim.fixed_point.formats import INT

_BIG = 1 << 62


def rshift_round(x, k) -> np.ndarray:
    """``round_half_up(x / 2**k)`` for ``k >= 0`` (arrays broadcast)."""
    x = np.asarray(x, dtype=INT)
    if np.ndim(k) == 0 and x.ndim and 0 <= k:  # one shift for all: add the half and shift in place
        k = min(int(k), 62)
        if k == 0:
            return x
        y = x + INT(1 << (k - 1))
        y >>= k
        return y
    k = np.minimum(np.asarray(k, dtype=INT), 62)
    y = x + (np.left_shift(INT(1), k) >> 1)  # half = 2**(k-1), or 0 for k = 0
    return np.right_shift(y, k, out=y) if isinstance(y, np.ndarray) else np.right_shift(y, k)


def lshift_clamped(x, k) -> np.ndarray:
    """``x * 2**k`` for ``k >= 0``, clamped to +-2**62 where it would overflow."""
    x = np.asarray(x, dtype=INT)
    k = np.minimum(np.asarray(k, dtype=INT), 62)
    limit = np.right_shift(INT(_BIG), k)
    if k.ndim == 0 and x.size and -limit < x.min() and x.max() < limit:  # nothing to clamp: two reductions
        return x if k == 0 else np.left_shift(x, k)
    y = np.left_shift(x, k)
    return np.where(np.abs(x) >= limit, np.where(x >= 0, _BIG, -_BIG), y)


def _within(x, limit: int) -> bool:
    """Every ``|x| < limit`` (two reductions, no temporaries)."""
    x = np.asarray(x)
    return bool(x.size == 0 or (-limit < x.min() and x.max() < limit))


def shift(x, s) -> np.ndarray:
    """``x * 2**s`` with round-half-up for negative ``s`` (scalar or broadcastable array)."""
    s = np.asarray(s, dtype=INT)
    if s.ndim == 0:
        return lshift_clamped(x, s) if s >= 0 else rshift_round(x, -s)
    top = s.max() if s.size else 0
    if top < 0 or (top == 0 and _within(x, _BIG)):  # right shifts only (a shift by 0 has nothing to clamp)
        return rshift_round(x, -s)
    return np.where(s >= 0, lshift_clamped(x, np.maximum(s, 0)), rshift_round(x, np.maximum(-s, 0)))


def quantize(x, exponent, bits: int = 24, counter=None, name: str = "") -> np.ndarray:
    """Float ``x`` to integers at ``exponent``: ``saturate(round_half_up(x / 2**exponent))``."""
    from hardware_sim.fixed_point.saturation import saturate

    scaled = np.ldexp(np.asarray(x, dtype=np.float64), -np.asarray(exponent, dtype=INT))
    q = np.floor(scaled + 0.5)
    q = np.clip(q, -float(_BIG), float(_BIG)).astype(INT)
    return saturate(q, bits, counter, name)
