"""Pointwise activations by gate lookup tables: ``act(x) = x g(x)``.

=============  ===========================================  =============  =============
function       gate ``g``                                   clamped range  table
=============  ===========================================  =============  =============
gelu_erf       ``(1 + erf(x / sqrt 2)) / 2``                ``[-8, 8]``    2**11 steps
gelu_tanh      ``(1 + tanh(sqrt(2/pi)(x + 0.044715 x**3)))/2``  ``[-8, 8]``    2**11 steps
silu           ``1 / (1 + exp(-x))``                        ``[-16, 16]``  2**11 steps
relu           ``x >= 0``                                   --             --
=============  ===========================================  =============  =============

The gate is tabulated at ``2**11 + 1`` points of its range (Q1.22 entries) and linearly
interpolated with 16 position bits (:mod:`.tables`); outside the range it is clamped to the end
entries (``g = 1`` above, ``g = 0`` below: gelu's ``|x Phi(x)| < 5e-15`` below -8, silu's
``|x sigmoid(x)| < 2e-6`` below -16).  Then ``y = saturate24(shift(x g, e_x - 22 - e_y))``.
Interpolation error of the gate ``<= h**2/8 max|g''|``: gelu ``h = 1/128``, ``1.8e-6``; silu
``h = 1/64``, ``2.9e-6``; the output error is ``|x|`` times that plus output rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.special import erf

from hardware_sim.fixed_point.formats import INT, STATE_BITS, TABLE_FRAC
from hardware_sim.fixed_point.saturation import SaturationCounter, saturate
from hardware_sim.fixed_point.shifts import shift
from hardware_sim.fixed_point.tables import POS_FRAC, interpolate, make_table


@dataclass(frozen=True)
class GateTable:
    """Gate ``g`` tabulated over ``[-2**range_log2, 2**range_log2]`` in ``2**index_bits`` steps."""

    range_log2: int
    index_bits: int
    table: np.ndarray

    @classmethod
    def build(cls, gate, range_log2: int, index_bits: int) -> GateTable:
        xs = np.linspace(-(2.0**range_log2), 2.0**range_log2, (1 << index_bits) + 1)
        return cls(range_log2, index_bits, make_table(gate, xs))

    def gate(self, x, x_exp: int) -> np.ndarray:
        """Interpolated Q1.22 gate at ``x 2**x_exp``."""
        step_log2 = self.range_log2 + 1 - self.index_bits
        centre = INT(1) << (self.index_bits - 1 + POS_FRAC)
        pos = shift(np.asarray(x, dtype=INT), x_exp - step_log2 + POS_FRAC) + centre
        return interpolate(self.table, pos)


def _phi(x):
    return 0.5 * (1.0 + erf(x / math.sqrt(2.0)))


def _tanh_gate(x):
    return 0.5 * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


GATES = {
    "gelu_erf": GateTable.build(_phi, 3, 11),
    "gelu_tanh": GateTable.build(_tanh_gate, 3, 11),
    "silu": GateTable.build(_sigmoid, 4, 11),
}


def activation_fixed(function: str, x, x_exp: int, y_exp: int, counter: SaturationCounter | None = None,
                     name: str = "", bits: int = STATE_BITS) -> np.ndarray:
    """Integer ``function(x 2**x_exp)`` at exponent ``y_exp``; ``function`` one of
    ``gelu_erf``, ``gelu_tanh``, ``silu``, ``relu``, ``identity``."""
    x = saturate(x, bits, counter, name)
    if function == "identity":
        return saturate(shift(x, x_exp - y_exp), bits, counter, name)
    if function == "relu":
        return saturate(shift(np.maximum(x, 0), x_exp - y_exp), bits, counter, name)
    try:
        table = GATES[function]
    except KeyError:
        raise ValueError(f"unknown activation {function!r}; known: relu, identity, {', '.join(GATES)}") from None
    g = table.gate(x, x_exp)
    return saturate(shift(x * g, x_exp - TABLE_FRAC - y_exp), bits, counter, name)
