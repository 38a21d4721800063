"""The golden simulator at ``loihi2`` precision: the same walk as the float one, integer behaviours.

Inputs are quantised at the input encoder's exponent; every node then computes 24-bit integer
payloads with its population exponent (:mod:`.fixed_registry`).  Outputs, kept values and probes
are returned as float64 values ``q 2**exp`` (exact: every one is an integer scaled by a power of
two), and ``saturations`` counts the clamped values per node.

Padding tokens (mask false) are not part of the computation on a chip (they are never sent), but a
batched simulation still computes something at their positions: here they carry a copy of their
sequence's first real token, so their values stay in the calibrated ranges and no saturation is
counted for a token that does not exist.  Their outputs are meaningless (as in the float simulator)
and real tokens never see them (padding is never written into a circuit).
"""

from __future__ import annotations

import numpy as np

from compiler.interpret import interpret
from hardware_sim.fixed_point import STATE_BITS, SaturationCounter, quantize
from hardware_sim.golden import fixed_circuit, fixed_features, fixed_neurons  # noqa: F401  (register behaviours)
from hardware_sim.golden.fixed_registry import FIXED_BEHAVIOURS, FixedRun, Fx, qexp
from hardware_sim.golden.interventions import normalise


def _float(value):
    return value.value() if isinstance(value, Fx) else value


def stand_in_padding(x, mask) -> np.ndarray:
    """``x`` with every padding token replaced by its sequence's first real token (module docstring)."""
    if mask.all():
        return x
    first = np.argmax(mask, axis=1)
    stand_in = x[np.arange(x.shape[0]), first][:, None, :]
    return np.where(mask[..., None], x, stand_in)


def simulate_fixed(net, x, mask=None, probes=(), interventions=None, keep=(), stream=None, positions=None):
    """Run ``net`` (compiled with precision loihi2) in integer arithmetic; see
    :func:`hardware_sim.golden.simulator.simulate` for the arguments."""
    from hardware_sim.golden.simulator import GoldenResult, advanced, check, stream_context

    entry, x, mask, kinds = check(net, x, mask, "float64", set(probes))
    B, T = mask.shape
    stream, positions = stream_context(stream, positions, B, T)
    run = FixedRun(net=net, dtype=np.float64, mask=mask, positions=positions, probe_kinds=kinds,
                   interventions=normalise(net, interventions, B, np.float64), stream=stream)
    e_in = qexp(net.node(entry))
    quantize(x[mask], e_in, STATE_BITS, run.counter, entry)  # saturations of the real tokens
    values = {entry: Fx(quantize(stand_in_padding(x, mask), e_in, STATE_BITS, SaturationCounter(), entry), e_in)}
    decoders = {op.role: op.name for op in net.of_kind("output_decoder")}
    values = interpret(net, values, lambda op, args: FIXED_BEHAVIOURS[op.kind](op, args, run),
                       set(keep) | set(decoders.values()), "golden loihi2")
    outputs = {role: values[name].value() for role, name in decoders.items()}
    return GoldenResult(outputs=outputs, values={n: _float(values[n]) for n in keep if n in values},
                        probes=run.probes, saturations=run.counter.to_dict(), stream=advanced(stream, T, run.final))
