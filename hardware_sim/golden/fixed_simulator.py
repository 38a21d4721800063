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

from compiler.errors import SimulationError
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


def simulate_fixed(net, x, mask=None, probes=(), interventions=None, keep=()):
    """Run ``net`` (compiled with precision loihi2) in integer arithmetic; see
    :func:`hardware_sim.golden.simulator.simulate` for the arguments."""
    from hardware_sim.golden.simulator import GoldenResult, check

    entry, x, mask, kinds = check(net, x, mask, "float64", set(probes))
    B, T = mask.shape
    run = FixedRun(net=net, dtype=np.float64, mask=mask, positions=np.broadcast_to(np.arange(T), (B, T)),
                   probe_kinds=kinds, interventions=normalise(net, interventions, B, np.float64))
    e_in = qexp(net.node(entry))
    quantize(x[mask], e_in, STATE_BITS, run.counter, entry)  # saturations of the real tokens
    values = {entry: Fx(quantize(stand_in_padding(x, mask), e_in, STATE_BITS, SaturationCounter(), entry), e_in)}
    users = {n: net.g.out_degree(n) for n in net.g.nodes}
    kept = set(keep)
    outputs = {}
    for name in net.order():
        op = net.node(name)
        inputs = net.inputs_of(name)
        if name != entry:
            try:
                values[name] = FIXED_BEHAVIOURS[op.kind](op, {p: values[s] for p, s in inputs.items()}, run)
            except (ValueError, FloatingPointError, MemoryError, OverflowError) as exc:
                raise SimulationError(f"golden loihi2: node {name!r} ({op.kind}) failed: {exc}") from exc
        if op.kind == "output_decoder":
            outputs[op.role] = values[name].value()
        for src in inputs.values():
            users[src] -= 1
            if users[src] == 0 and src not in kept:
                del values[src]
    return GoldenResult(outputs=outputs, values={n: _float(values[n]) for n in kept if n in values},
                        probes=run.probes, saturations=run.counter.to_dict())
