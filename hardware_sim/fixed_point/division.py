"""Reciprocal ``1/z`` and inverse square root ``1/sqrt(v)``: normalised table seed + one Newton step.

Both normalise the input by its leading one to a mantissa ``m`` with ``F = 24`` fraction bits,
look up a seed ``y0`` at the midpoint of the table interval containing ``m`` (10 index bits; entries
Q1.22, promoted to Q.24), refine it by one Newton step in integer arithmetic with round-half-up
shifts, then shift the result to the output exponent and saturate to 24 bits.

Reciprocal, ``m in [1, 2)``: ``y1 = y0 (2 - m y0)``.  Seed relative error ``<= 2**-11``, after the
step ``<= 2**-22 = 2.4e-7`` (plus rounding ``~2**-23``).

Inverse square root, ``m in [1, 4)`` (the exponent made even; 1024 entries for ``[1, 2)`` and
1024 for ``[2, 4)``): ``y1 = y0 (3 - m y0**2) / 2``.  Seed relative error ``<= 2**-12``, after the
step ``<= 1.5 2**-24 = 9e-8`` (plus rounding).

Non-positive inputs (``z <= 0`` for the reciprocal, ``v <= 0`` for the square root) have no finite
result: they give the largest 24-bit value and are counted as saturations.
"""

from __future__ import annotations

import numpy as np

from compiler.errors import SimulationError
from hardware_sim.fixed_point.formats import INT, STATE_BITS, TABLE_FRAC, int_range
from hardware_sim.fixed_point.saturation import SaturationCounter, saturate
from hardware_sim.fixed_point.shifts import rshift_round, shift
from hardware_sim.fixed_point.tables import floor_log2

F = 24
SEED_BITS = 10
_MID = (np.arange(1 << SEED_BITS) + 0.5) / (1 << SEED_BITS)
RECIP_TABLE = np.floor(np.ldexp(1.0 / (1.0 + _MID), TABLE_FRAC) + 0.5).astype(INT)
RSQRT_TABLE = np.floor(
    np.ldexp(np.concatenate([1.0 / np.sqrt(1.0 + _MID), 1.0 / np.sqrt(2.0 + 2.0 * _MID)]), TABLE_FRAC) + 0.5
).astype(INT)


def _normalise(x, p, target) -> np.ndarray:
    """``x 2**(target - p)``: exact left shift, or truncating right shift (keeps ``m < 2**(target+1)``)."""
    s = target - p
    return np.where(s >= 0, np.left_shift(x, np.maximum(s, 0)), np.right_shift(x, np.maximum(-s, 0)))


def _finish(y, valid, s, counter, name, bits) -> np.ndarray:
    out = saturate(shift(np.where(valid, y, 0), s), bits, counter, name)  # invalid inputs are counted once, below
    bad = ~valid
    if np.any(bad):
        if counter is None:
            raise SimulationError(
                f"{int(np.count_nonzero(bad))} non-positive input(s) to {name or 'a division'} and no "
                "saturation counter was given; pass a SaturationCounter"
            )
        counter.add(name or "?", int(np.count_nonzero(bad)))
        out = np.where(bad, int_range(bits)[1], out)
    return out


def reciprocal_fixed(z, z_exp: int, y_exp: int, counter: SaturationCounter | None = None, name: str = "",
                     bits: int = STATE_BITS) -> np.ndarray:
    """Integer ``1 / (z 2**z_exp)`` at exponent ``y_exp`` (see module docstring)."""
    z = np.asarray(z, dtype=INT)
    valid = z > 0
    zp = np.where(valid, z, 1)
    p = floor_log2(zp)
    m = _normalise(zp, p, F)  # [2**F, 2**(F+1))
    y0 = RECIP_TABLE[(m - (INT(1) << F)) >> (F - SEED_BITS)] << (F - TABLE_FRAC)
    t = (INT(2) << F) - rshift_round(m * y0, F)
    y1 = rshift_round(y0 * t, F)
    return _finish(y1, valid, -F - p - z_exp - y_exp, counter, name, bits)


def rsqrt_fixed(v, v_exp: int, y_exp: int, counter: SaturationCounter | None = None, name: str = "",
                bits: int = STATE_BITS) -> np.ndarray:
    """Integer ``1 / sqrt(v 2**v_exp)`` at exponent ``y_exp`` (see module docstring)."""
    v = np.asarray(v, dtype=INT)
    valid = v > 0
    vp = np.where(valid, v, 1)
    p = floor_log2(vp)
    odd = (p + v_exp) % 2  # value = m 2**q, q = p + v_exp - odd even, m in [1, 4)
    q = p + v_exp - odd
    m = _normalise(vp, p - odd, F)  # [2**F, 2**(F+2))
    hi = m >= (INT(1) << (F + 1))
    idx = np.where(hi, (1 << SEED_BITS) + ((m - (INT(2) << F)) >> (F + 1 - SEED_BITS)),
                   (m - (INT(1) << F)) >> (F - SEED_BITS))
    y0 = RSQRT_TABLE[idx] << (F - TABLE_FRAC)
    b = rshift_round(m * rshift_round(y0 * y0, F), F)
    y1 = rshift_round(y0 * ((INT(3) << F) - b), F + 1)
    return _finish(y1, valid, -F - q // 2 - y_exp, counter, name, bits)
