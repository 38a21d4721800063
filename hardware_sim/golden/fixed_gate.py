"""Gate-table activations (gelu, silu) in fewer integer passes, bit for bit :func:`activation_fixed`.

:func:`~hardware_sim.fixed_point.activation_fixed` computes ``y = sat(shift(x g, e_x - 22 - e_y))``
with the gate ``g`` interpolated from a table ``T`` (``2**K`` steps of ``2**h``, ``D = diff(T)``) at
the position ``pos = shift(x, s) + C``, ``s = e_x - h + 16``, ``C = 2**(K - 1 + 16)``, clamped to
``[0, 2**K 2**16]``::

    i = pos >> 16,  r = pos & (2**16 - 1),  g = T[i] + ((D[i] r + 2**15) >> 16)

When ``0 <= s <= 15`` (the position is a left shift of ``x`` by fewer than 16 bits; ``k = 16 - s``),
``C`` and ``2**K 2**16`` are multiples of ``2**s``, so with ``x_c = clip(x, -C 2**-s, (2**K 2**16 - C)
2**-s)`` (the clamp of ``pos``, moved to ``x``)::

    i = (x_c >> k) + (C >> 16),   r = (x_c & (2**k - 1)) 2**s,
    g = T[i] + ((D[i] (x_c & (2**k - 1)) + 2**(k-1)) >> k) = (T'[i] + D[i] (x_c & (2**k - 1))) >> k

with ``T' = T 2**k + 2**(k-1)`` (floor division by ``2**k`` of an integer plus ``T[i] 2**k``).  The
integers and the saturation counts are the general path's; other exponents take the general path.
"""

from __future__ import annotations

import numpy as np

from hardware_sim.fixed_point import INT, STATE_BITS, TABLE_FRAC, activation_fixed, saturate, shift
from hardware_sim.fixed_point.activations import GATES
from hardware_sim.fixed_point.tables import POS_FRAC

_MADE: dict = {}


def gate_tables(function: str, x_exp: int):
    """``(k, lo, hi, offset, T', D)`` of the module docstring for ``function`` at input exponent
    ``x_exp``, or None when the position is not a left shift of ``x`` by 0..15 bits (made once per
    gate table and exponent)."""
    table = GATES.get(function)
    hit = _MADE.get((function, x_exp))
    if hit is None or hit[0] is not table:
        hit = _MADE[(function, x_exp)] = (table, None if table is None else _derived(table, x_exp))
    return hit[1]


def _derived(table, x_exp: int):
    s = x_exp - (table.range_log2 + 1 - table.index_bits) + POS_FRAC
    if not 0 <= s < POS_FRAC:
        return None
    k = POS_FRAC - s
    centre = 1 << (table.index_bits - 1 + POS_FRAC)
    top = (table.table.shape[0] - 2) << POS_FRAC
    values = table.table.astype(INT)
    scaled = (values << INT(k)) + INT(1 << (k - 1))
    return k, -(centre >> s), (top - centre) >> s, centre >> POS_FRAC, scaled, np.diff(values)


def gate_activation(function: str, x, x_exp: int, y_exp: int, counter, name: str) -> np.ndarray:
    """``activation_fixed(function, x, x_exp, y_exp)`` (24-bit), by the fused passes when they apply."""
    tables = gate_tables(function, int(x_exp))
    if tables is None:
        return activation_fixed(function, x, x_exp, y_exp, counter, name)
    k, lo, hi, offset, scaled, diff = tables
    x = saturate(x, STATE_BITS, counter, name)
    xc = np.clip(x, lo, hi)
    i = xc >> INT(k)
    i += INT(offset)
    xc &= INT((1 << k) - 1)
    g = np.take(diff, i)
    g *= xc
    g += np.take(scaled, i)
    g >>= INT(k)
    g *= x
    return saturate(shift(g, x_exp - TABLE_FRAC - y_exp), STATE_BITS, counter, name)
