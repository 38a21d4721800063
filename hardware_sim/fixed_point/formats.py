"""Word widths and fixed-point formats of the Loihi-class (``loihi2``) precision mode.

A fixed-point quantity is an integer ``q`` and an exponent ``e`` (shared by a whole population or
synapse group): ``value = q * 2**e``.  A format with ``e = -f`` is the Q format with ``f`` fraction
bits.  Widths (all signed two's complement):

=================  =====  =========================================================
quantity           bits   range of ``q``
=================  =====  =========================================================
weight mantissa      8    [-128, 127]
state / payload     24    [-2**23, 2**23 - 1]  (graded spikes, neuron state, calcium)
accumulator         64    products summed exactly; see :mod:`.accumulate`
lookup table        24    entries in Q1.22 (``TABLE_FRAC`` fraction bits)
=================  =====  =========================================================

Every integer array is held as ``numpy.int64``.
"""

from __future__ import annotations

import math

import numpy as np

WEIGHT_BITS = 8
STATE_BITS = 24
TABLE_FRAC = 22
INT = np.int64


def int_range(bits: int) -> tuple[int, int]:
    """Smallest and largest ``bits``-bit signed integers: ``(-2**(bits-1), 2**(bits-1) - 1)``."""
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def exponent_for(max_abs: float, bits: int = STATE_BITS, headroom: float = 1.0) -> int:
    """The smallest exponent ``e`` whose ``bits``-bit format holds ``headroom * max_abs``.

    ``e = ceil(log2(headroom max_abs / (2**(bits-1) - 1)))``; a zero range gives the exponent of
    a unit range.
    """
    top = float(max_abs) * float(headroom)
    if not np.isfinite(top) or top <= 0.0:
        top = 1.0
    e = math.ceil(math.log2(top / ((1 << (bits - 1)) - 1)))
    while top > ((1 << (bits - 1)) - 1) * 2.0**e:  # guard log2 rounding
        e += 1
    return e


def to_float(q, exponent) -> np.ndarray:
    """``q * 2**exponent`` as float64 (exponent a scalar or broadcastable array)."""
    return np.ldexp(np.asarray(q, dtype=np.float64), np.asarray(exponent, dtype=np.int64))
