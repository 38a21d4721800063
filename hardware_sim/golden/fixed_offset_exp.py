"""Slot responses ``exp_fixed(-d)`` for offsets ``d = s - l >= 0`` in a few fused integer passes.

:func:`~hardware_sim.fixed_point.exp_fixed` of ``x = -d`` at exponent ``e_x``, output ``e_y``
(:mod:`hardware_sim.fixed_point.exp2`, ``L = round(log2(e) 2**30)``, ``T`` the 1025-entry table of
``2**(i/1024)`` in Q1.22 and ``D = diff(T)``), for ``0 <= d <= 2**31`` (no input saturation),
``e_x <= 3`` (the first shift is a right shift by ``k_1 = 4 - e_x``) and ``e_y >= -21``::

    u = (2**(k_1-1) - d L) >> k_1        (u <= 0)
    n = u >> 26,  f = u & (2**26 - 1),  i = f >> 16,  r = f & (2**16 - 1)
    p = T[i] + ((D[i] r + 2**15) >> 16)  (2**22 <= p <= 2**23)
    y = (p + 2**(k-1)) >> k,   k = min(22 + e_y - n, 62) >= 1

(``n >= -200`` for every such ``d``, so the clip of ``n`` does nothing; ``y <= 2**22``, so nothing
saturates).  The two rounding shifts nest into one (``A = T[i] 2**16 + D[i] r``,
``floor((floor((A + 2**15)/2**16) + h)/2**k) = floor((A + 2**15 + h 2**16)/2**(16+k))``)::

    y = (T'[i] + D[i] r + 2**(m-1)) >> m,   T' = T 2**16 + 2**15,  m = min(16 + k, 62)

(for ``k >= 25`` both forms give 0: ``p < 2**24`` and ``T'[i] + D[i] r < 2**40``).  Every step is a
streaming pass over the block with a table of 1025 entries, where a table of ``exp`` over every
offset (millions of entries) is one gather that misses the cache on most elements.
"""

from __future__ import annotations

import numpy as np

from hardware_sim.fixed_point import INT, TABLE_FRAC
from hardware_sim.fixed_point.exp2 import EXP2_TABLE, LOG2E, LOG2E_FRAC, U_FRAC
from hardware_sim.fixed_point.tables import POS_FRAC

_SCALED = (EXP2_TABLE.astype(INT) << INT(POS_FRAC)) + INT(1 << (POS_FRAC - 1))
_DIFF = np.diff(EXP2_TABLE.astype(INT))
MAX_OFFSET = 1 << 31


def applies(x_exp: int, y_exp: int) -> bool:
    """The exponents for which :func:`exp_of_offsets` is ``exp_fixed(-d)``."""
    return LOG2E_FRAC - U_FRAC - x_exp >= 1 and y_exp >= 1 - TABLE_FRAC


def exp_of_offsets(d: np.ndarray, x_exp: int, y_exp: int) -> np.ndarray:
    """``exp_fixed(-d, x_exp, y_exp)`` (int64) for int64 offsets ``0 <= d <= 2**31`` when
    :func:`applies` (module docstring; the caller guarantees the range)."""
    k1 = LOG2E_FRAC - U_FRAC - x_exp
    u = d * INT(LOG2E)
    np.subtract(INT(1 << (k1 - 1)), u, out=u)
    u >>= INT(k1)
    m = u >> INT(U_FRAC)  # n
    np.subtract(INT(TABLE_FRAC + y_exp + POS_FRAC), m, out=m)  # 16 + k
    np.minimum(m, INT(62), out=m)
    u &= INT((1 << U_FRAC) - 1)  # f
    i = u >> INT(POS_FRAC)
    u &= INT((1 << POS_FRAC) - 1)  # r
    y = np.take(_DIFF, i)
    y *= u
    y += np.take(_SCALED, i)
    m -= INT(1)
    half = np.left_shift(INT(1), m)
    y += half
    m += INT(1)
    y >>= m
    return y
