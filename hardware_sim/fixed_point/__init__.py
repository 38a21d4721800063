"""Loihi-class integer arithmetic, written once for the golden simulator and the Lava ``fixed_pt``
models.  Formats, widths and rounding rules: docs/fixed_point.md."""

from hardware_sim.fixed_point.accumulate import exact_matmul, exact_product, rescale, synaptic_accumulate
from hardware_sim.fixed_point.activations import GATES, activation_fixed
from hardware_sim.fixed_point.division import reciprocal_fixed, rsqrt_fixed
from hardware_sim.fixed_point.exp2 import exp2_fixed, exp_fixed
from hardware_sim.fixed_point.formats import (
    INT,
    STATE_BITS,
    TABLE_FRAC,
    WEIGHT_BITS,
    exponent_for,
    int_range,
    to_float,
)
from hardware_sim.fixed_point.saturation import SaturationCounter, saturate
from hardware_sim.fixed_point.shifts import quantize, rshift_round, shift
from hardware_sim.fixed_point.weights import dequantize_weights, quantize_weights

__all__ = [
    "GATES", "INT", "STATE_BITS", "TABLE_FRAC", "WEIGHT_BITS", "SaturationCounter", "activation_fixed",
    "dequantize_weights", "exact_matmul", "exact_product", "exp2_fixed", "exp_fixed", "exponent_for", "int_range",
    "quantize", "quantize_weights", "reciprocal_fixed", "rescale", "rshift_round", "rsqrt_fixed",
    "saturate", "shift", "synaptic_accumulate", "to_float",
]
