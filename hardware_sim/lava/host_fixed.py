"""Host ends of a ``fixed_pt`` run: the input encoder's quantisation and the output decoders'
rescaling, with the golden simulator's functions and saturation counting.

- input encoder: ``q = sat(round(x 2**-e_in))``; saturations are counted over real tokens only, and
  padding tokens carry their sequence's first real token
  (:func:`hardware_sim.golden.fixed_simulator.stand_in_padding`), as in the golden simulator;
- output decoder: ``y = sat(shift(x, e_x - e_y))``, returned as values ``y 2**e_y``.
"""

from __future__ import annotations

import numpy as np

from hardware_sim.fixed_point import INT, STATE_BITS, SaturationCounter, quantize, rescale, to_float
from hardware_sim.golden.fixed_registry import qexp
from hardware_sim.golden.fixed_simulator import stand_in_padding


def encode_inputs(net, x: np.ndarray, mask: np.ndarray, counter: SaturationCounter) -> np.ndarray:
    """Integer payloads (B, T, width) the source streams, as float64."""
    entry = net.of_kind("input_encoder")[0]
    e_in = qexp(entry)
    quantize(x[mask], e_in, STATE_BITS, counter, entry.name)
    q = quantize(stand_in_padding(x, mask), e_in, STATE_BITS, SaturationCounter(), entry.name)
    return q.astype(np.float64)


def decode_outputs(net, rows: dict[str, np.ndarray], counter: SaturationCounter) -> dict[str, np.ndarray]:
    """Output values by role from the integer payloads (B, T, width) the sinks read."""
    outputs = {}
    for op in net.of_kind("output_decoder"):
        src = net.inputs_of(op.name)["x"]
        q = np.rint(rows[op.role]).astype(INT)
        y = rescale(q, qexp(net.node(src)), qexp(op), counter, op.name)
        outputs[op.role] = to_float(y, qexp(op))
    return outputs
