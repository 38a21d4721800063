"""Integer exponential: ``exp(x) = 2**(x log2 e)``, integer part a shift, fraction a table.

For ``x`` at exponent ``e_x`` (value ``x 2**e_x``) and output exponent ``e_y``:

1. ``u = shift(x L, e_x - 30 + 26)`` with ``L = round(log2(e) 2**30)``: ``u 2**-26 = x 2**e_x log2 e``
   (``x`` first saturated to 32 bits so ``x L`` fits in int64).
2. ``n = u >> 26`` (floor), ``f = u & (2**26 - 1)``: ``2**(u 2**-26) = 2**n 2**(f 2**-26)``.
3. ``p = interp(T, f)`` with ``T[i] = round(2**(i/1024) 2**22)``, ``i = 0..1024`` (a 1025-entry table,
   10 index bits, 16 interpolated bits): ``p 2**-22 ~ 2**(f 2**-26)`` in ``[1, 2]``.
4. ``y = saturate24(shift(p, n - 22 - e_y))``.

Error: the interpolation error of ``2**t`` on a step ``h = 1/1024`` is at most
``h**2/8 max (ln 2)**2 2**t = 1.2e-7`` (relative ``<= 1.2e-7``), table rounding ``2**-23``; plus the
input and output quantisation (``2**e_x`` on ``x``, half an output step ``2**(e_y-1)`` absolute).
The map ``x -> y`` is monotonically non-decreasing.
"""

from __future__ import annotations

import math

import numpy as np

from hardware_sim.fixed_point.formats import INT, STATE_BITS, TABLE_FRAC
from hardware_sim.fixed_point.saturation import SaturationCounter, saturate
from hardware_sim.fixed_point.shifts import shift
from hardware_sim.fixed_point.tables import POS_FRAC, interpolate, make_table

LOG2E_FRAC = 30
LOG2E = int(round(math.log2(math.e) * (1 << LOG2E_FRAC)))
EXP_INDEX_BITS = 10
U_FRAC = EXP_INDEX_BITS + POS_FRAC
EXP2_TABLE = make_table(lambda t: np.exp2(t), np.arange((1 << EXP_INDEX_BITS) + 1) / (1 << EXP_INDEX_BITS))


def exp2_fixed(u, u_frac: int, y_exp: int, counter: SaturationCounter | None = None, name: str = "",
               bits: int = STATE_BITS) -> np.ndarray:
    """``2**(u 2**-u_frac)`` at output exponent ``y_exp`` (steps 2-4 of the module docstring)."""
    u = shift(np.asarray(u, dtype=INT), U_FRAC - u_frac)
    n = u >> U_FRAC
    f = u & ((INT(1) << U_FRAC) - 1)
    p = interpolate(EXP2_TABLE, f)
    n = np.minimum(np.maximum(n, -200), 200)
    return saturate(shift(p, n - TABLE_FRAC - y_exp), bits, counter, name)


def exp_fixed(x, x_exp: int, y_exp: int, counter: SaturationCounter | None = None, name: str = "",
              bits: int = STATE_BITS) -> np.ndarray:
    """Integer ``exp(x 2**x_exp)`` at exponent ``y_exp`` (see module docstring).

    Arrays whose every ``x`` lies in ``[-2**31, 0]`` (softmax-like arguments) are read from a table
    of this function's own values once it has been asked for as many values as the table holds
    (:func:`exp_nonpositive`): the same integers, several times faster.
    """
    x = np.asarray(x, dtype=INT)
    if x.ndim and x.size and -(1 << 31) <= x.min() and x.max() <= 0:
        return exp_nonpositive(x, x_exp, y_exp, counter, name, bits)
    return exp_direct(x, x_exp, y_exp, counter, name, bits)


def exp_direct(x, x_exp: int, y_exp: int, counter: SaturationCounter | None = None, name: str = "",
               bits: int = STATE_BITS) -> np.ndarray:
    """:func:`exp_fixed` by its arithmetic (steps 1-4 of the module docstring), no table of values."""
    x = saturate(x, 32, counter, name)
    u = shift(x * LOG2E, x_exp - LOG2E_FRAC + U_FRAC)
    return exp2_fixed(u, U_FRAC, y_exp, counter, name, bits)


MEMO_MAX_ENTRIES = 1 << 23
_MEMOS: dict = {}


class _ExpMemo:
    """``exp_direct(-i, x_exp, y_exp)`` for ``i = 0 .. N``, tabulated once enough values were asked for.

    ``N`` lies an octave beyond the input where the output rounds to 0; the table's last entry is
    checked to be 0.  The table is made only after callers asked for ``N`` values of this
    ``(x_exp, y_exp, bits)`` (so it costs at most what it saves), and never when making it counts a
    saturation or its last entry is not 0.
    """

    def __init__(self, x_exp: int, y_exp: int, bits: int):
        self.key = (x_exp, y_exp, bits)
        n = math.ceil((2 - y_exp) * math.log(2) * 2.0 ** (-x_exp))
        self.n = max(n, 1) if n <= MEMO_MAX_ENTRIES else None
        self.asked = 0
        self.table = None

    def lookup(self, size: int) -> np.ndarray | None:
        if self.n is None or self.table is not None:
            return self.table
        self.asked += size
        if self.asked >= self.n:
            own = SaturationCounter()
            table = exp_direct(-np.arange(self.n + 1, dtype=INT), *self.key[:2], own, "memo", self.key[2])
            if own.total or table[-1] != 0:
                self.n = None
                return None
            self.table = table.astype(np.int32) if table.max(initial=0) < 2**31 else table
        return self.table


def exp_nonpositive(x, x_exp: int, y_exp: int, counter: SaturationCounter | None = None, name: str = "",
                    bits: int = STATE_BITS) -> np.ndarray:
    """:func:`exp_direct` bit for bit for ``x`` in ``[-2**31, 0]``, by one table lookup once the table exists.

    On that range ``exp_direct`` counts no input saturation, is non-negative and non-decreasing, so
    every input below ``-N`` gives ``exp_direct(-N) = 0`` and ``y = table[min(-x, N)]``
    (:class:`_ExpMemo`).  Other inputs, and calls before the table exists, go to :func:`exp_direct`.
    """
    x = np.asarray(x, dtype=INT)
    key = (int(x_exp), int(y_exp), int(bits))
    memo = _MEMOS.get(key)
    if memo is None:
        memo = _MEMOS[key] = _ExpMemo(*key)
    if x.size and -(1 << 31) <= x.min() and x.max() <= 0:
        table = memo.lookup(x.size)
        if table is not None:
            return np.take(table, np.negative(x), mode="clip").astype(INT)  # index min(-x, N)
    return exp_direct(x, x_exp, y_exp, counter, name, bits)
