"""Run a :class:`~compiler.process.ProcessGraph` on the Brian2 backend.

``loihi2`` networks run with their dequantized weights (each synapse group's 8-bit mantissas times
its per-row exponents) in float64 arithmetic: the weights are the chip's, the arithmetic is not.
"""

from __future__ import annotations

import numpy as np

from compiler.errors import InputError, SimulationError
from hardware_sim.fixed_point import dequantize_weights
from hardware_sim.golden.fixed_neurons import mantissas
from hardware_sim.inputs import check_token_inputs


def chip_weights(op, arrays: dict) -> dict:
    """The weights a ``loihi2`` synapse group holds on chip, as floats: mantissa * 2**exponent
    (one exponent per post-synaptic row, or the group's)."""
    if op.kind != "synapses" or arrays.get("weight") is None:
        return arrays
    exps = op.quant.get("w_row_exp", op.quant.get("w_exp"))
    if exps is None:
        return arrays
    rows = np.broadcast_to(np.asarray(exps, dtype=np.int64), (arrays["weight"].shape[0],))
    return {**arrays, "weight": dequantize_weights(mantissas(arrays["weight"], rows), rows, axis=0)}


def records(net, precision: str = "float64"):
    """The graph's nodes as plain records in topological order (loihi2: dequantized weights)."""
    from hardware_sim.brian2.model import NodeRecord

    out = []
    for name in net.order():
        op = net.node(name)
        attrs, arrays = op.to_record()
        if precision == "loihi2":
            arrays = chip_weights(op, arrays)
        out.append(NodeRecord(name, op.kind, attrs, arrays, net.inputs_of(name)))
    return out


def simulate_brian2(net, x, mask=None, precision: str = "float64", probes=(), keep=(), progress=None):
    """Outputs by role and values of the ``keep`` nodes, each (B, T, size), of ``net`` simulated in
    Brian2 (float64 arithmetic); ``progress(tokens_done, tokens_total)`` about once a second."""
    if probes:
        raise InputError("the brian2 backend records outputs only; run --probe with the golden or lava backend")
    if precision not in ("float64", "float32", "loihi2"):
        raise InputError(f"brian2 runs float64 arithmetic for float64, float32 and loihi2 networks, not {precision!r}")
    _, x, mask = check_token_inputs(net, x, mask, "brian2")
    from hardware_sim.brian2.model import simulate_records

    try:
        return simulate_records(records(net, precision), x, mask, keep, progress)
    except (ValueError, KeyError, MemoryError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise SimulationError(f"brian2: {message}") from exc
