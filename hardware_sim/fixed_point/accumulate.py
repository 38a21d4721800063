"""Synaptic accumulation: exact wide sums, then one rounding shift and 24-bit saturation.

For a group with mantissas ``M`` (post x pre, exponent ``e_w``, scalar or one per post row), input
payloads ``x`` (24-bit, exponent ``e_x``) and output exponent ``e_y``::

    acc_i = sum_j M_ij x_j                       (exact integer, value acc_i 2**(e_w + e_x))
    y_i   = saturate24(shift(acc_i, e_w + e_x - e_y) + b_i)

with ``shift`` rounding half up (:mod:`.shifts`) and ``b`` the bias already quantised at ``e_y``.

Exactness: ``|M_ij x_j| <= 2**7 2**23 = 2**30``, so for a fan-in ``n <= 2**22`` every partial sum
is an integer below ``2**52`` in magnitude.  Such sums are exact in float64 in any order, so the
product is computed by a float64 matrix multiply (BLAS-fast) and converted back to int64 -- the
result is bit-identical to an int64 sum regardless of the summation order.
"""

from __future__ import annotations

import numpy as np

from hardware_sim.fixed_point.formats import INT, STATE_BITS
from hardware_sim.fixed_point.saturation import SaturationCounter, saturate
from hardware_sim.fixed_point.shifts import shift

MAX_EXACT_FAN_IN = 1 << 22


def exact_matmul(x, mantissa) -> np.ndarray:
    """``x @ mantissa.T`` for integer ``x`` (..., pre) and ``mantissa`` (post, pre), exactly, int64."""
    x = np.asarray(x, dtype=INT)
    m = np.asarray(mantissa, dtype=INT)
    if m.shape[-1] > MAX_EXACT_FAN_IN:
        raise ValueError(f"fan-in {m.shape[-1]} exceeds the exact-accumulation bound {MAX_EXACT_FAN_IN}")
    if np.abs(x).max(initial=0) >= (1 << 23) or np.abs(m).max(initial=0) > (1 << 7):
        return np.einsum("...j,ij->...i", x, m)  # operands wider than the Loihi words: int64 sum
    return np.rint(x.astype(np.float64) @ m.astype(np.float64).T).astype(INT)


def _max_abs(x: np.ndarray) -> float:
    """``max |x|`` (0 for an empty array) from two reductions, without a temporary ``|x|``."""
    return float(max(-int(x.min()), int(x.max()))) if x.size else 0.0


class FloatProduct:
    """``x @ mantissa.T`` for a fixed integer ``mantissa`` (post, pre), by a float64 matrix multiply
    on mantissas converted once.

    Calling it with integer ``x`` (..., pre) returns the exact int64 product when
    ``max|x| max|M| pre < 2**53`` (every partial sum an exactly representable integer, so the
    float result is the integer one in any summation order), else None: the caller then uses
    :func:`exact_matmul`.
    """

    def __init__(self, mantissa):
        m = np.asarray(mantissa, dtype=INT)
        self.fan_in = m.shape[-1]
        self.m_max = float(np.abs(m).max(initial=0))
        self.m64 = m.astype(np.float64)

    def __call__(self, x) -> np.ndarray | None:
        acc = self.as_float(x)
        return None if acc is None else acc.astype(INT).reshape(np.shape(x)[:-1] + (-1,))

    def as_float(self, x) -> np.ndarray | None:
        """The exact product as float64 (integer values), or None (see the class docstring)."""
        x = np.asarray(x, dtype=INT)
        if not x.size or _max_abs(x) * self.m_max * max(self.fan_in, 1) >= 2.0**53:
            return None
        return x.reshape(-1, x.shape[-1]).astype(np.float64) @ self.m64.T


def synaptic_accumulate(
    x,
    mantissa,
    w_exp,
    x_exp: int,
    y_exp: int,
    bias=None,
    counter: SaturationCounter | None = None,
    name: str = "",
    bits: int = STATE_BITS,
) -> np.ndarray:
    """Integer ``y = saturate(shift(M x, e_w + e_x - e_y) + b)`` (see module docstring).

    ``mantissa=None`` means one-to-one synapses of mantissa 1 and exponent ``w_exp`` (usually 0).
    """
    x = np.asarray(x, dtype=INT)
    acc = x if mantissa is None else exact_matmul(x, mantissa)
    y = shift(acc, np.asarray(w_exp, dtype=INT) + x_exp - y_exp)
    if bias is not None:
        y = y + np.asarray(bias, dtype=INT)
    return saturate(y, bits, counter, name)


def rescale(x, x_exp: int, y_exp: int, counter: SaturationCounter | None = None, name: str = "",
            bits: int = STATE_BITS) -> np.ndarray:
    """Move integers from exponent ``x_exp`` to ``y_exp``: ``saturate(shift(x, x_exp - y_exp))``."""
    return saturate(shift(x, x_exp - y_exp), bits, counter, name)


def exact_product(a, b) -> np.ndarray:
    """``a @ b`` (numpy matmul broadcasting) of int64 arrays, exactly.

    Uses a float64 product when ``max|a| max|b| K < 2**53`` (``K`` the summed axis; every partial
    sum is then an exactly representable integer), else an int64 product, refusing sums that could
    leave 63 bits.
    """
    a = np.asarray(a, dtype=INT)
    b = np.asarray(b, dtype=INT)
    k = a.shape[-1]
    bound = _max_abs(a) * _max_abs(b) * max(k, 1)
    if bound < 2.0**53:  # the float64 product is the exact integer one: no rounding needed
        return (a.astype(np.float64) @ b.astype(np.float64)).astype(INT)
    if bound >= 2.0**63:
        raise ValueError(f"integer product of {k} terms may exceed 63 bits (bound {bound:.3g})")
    return a @ b
