"""The golden simulator: runs a process graph with the circuit's own dynamics, vectorised with numpy."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from compiler.errors import InputError
from compiler.interpret import interpret
from compiler.process import ProcessGraph
from hardware_sim.golden import circuit, features, neurons  # noqa: F401  (register behaviours)
from hardware_sim.golden.interventions import normalise
from hardware_sim.golden.registry import BEHAVIOURS, PROBE_KINDS, Run
from hardware_sim.golden.stream import StreamState
from hardware_sim.inputs import check_token_inputs

DTYPES = {"float64": np.float64, "float32": np.float32}


@dataclass
class GoldenResult:
    """Outputs by role (B, T, size); values of kept nodes; probes ``"node/var"`` -> array, token axis 1;
    ``stream``: the circuit state after the run, to continue from (:mod:`.stream`)."""

    outputs: dict[str, np.ndarray]
    values: dict[str, np.ndarray] = field(default_factory=dict)
    probes: dict[str, np.ndarray] = field(default_factory=dict)
    saturations: dict[str, int] = field(default_factory=dict)
    stream: StreamState | None = None


def stream_context(stream: StreamState | None, positions, B: int, T: int):
    """The state a run starts from and its token positions (default ``start + t``)."""
    stream = stream or StreamState()
    if positions is None:
        positions = np.broadcast_to(stream.start + np.arange(T), (B, T))
    elif np.shape(positions) != (B, T):
        raise InputError(f"positions must have shape {(B, T)}, got {np.shape(positions)}")
    return stream, positions


def advanced(stream: StreamState, T: int, final: dict) -> StreamState:
    """The state after a run of ``T`` tokens that started from ``stream`` and left ``final``."""
    return StreamState(start=stream.start + T, nodes=final, cache=stream.cache)


def check(net: ProcessGraph, x, mask, precision, probes):
    if precision not in DTYPES:
        raise InputError(f"golden simulator runs float64, float32 or loihi2, not {precision!r}")
    unknown = set(probes) - set(PROBE_KINDS) - {"all"}
    if unknown:
        raise InputError(f"unknown probe(s) {sorted(unknown)}; choose from {', '.join(PROBE_KINDS)} or all")
    entry, x, mask = check_token_inputs(net, x, mask, "golden")
    kinds = frozenset(PROBE_KINDS) if "all" in probes else frozenset(probes)
    return entry.name, x, mask, kinds


def simulate(net: ProcessGraph, x, mask=None, precision: str = "float64", probes=(), interventions=None,
             keep=(), stream: StreamState | None = None, positions=None) -> GoldenResult:
    """Run ``net`` on token vectors ``x`` (B, T, width) with padding ``mask`` (B, T).

    Parameters
    ----------
    probes : probe kinds to record: calcium (astrocyte process calcium seen by each read,
        (B, T, H, m)), soma (soma sum ``z`` and exact offset ``s``, (B, T, H); norm gains), weights
        (Hebbian weights after all writes, (B, G, v_head_dim, m)), activity (every population and
        feature population, (B, T, ...)); ``all`` for every kind.
    interventions : node name -> {action: array}; see :mod:`hardware_sim.golden.interventions`.
    keep : process node names whose values to return.
    precision : float64, float32, or loihi2 (integer arithmetic, :mod:`.fixed_simulator`).
    stream : the circuit state to continue from (:mod:`.stream`; the result's ``stream`` is the
        state after this run); None starts from scratch.
    positions : (B, T) token positions for rotary populations; default ``stream.start + t``.
    """
    if precision == "loihi2":
        from hardware_sim.golden.fixed_simulator import simulate_fixed

        return simulate_fixed(net, x, mask, probes, interventions, keep, stream, positions)
    entry, x, mask, kinds = check(net, x, mask, precision, set(probes))
    dtype = DTYPES[precision]
    B, T = mask.shape
    stream, positions = stream_context(stream, positions, B, T)
    run = Run(net=net, dtype=dtype, mask=mask, positions=positions, probe_kinds=kinds,
              interventions=normalise(net, interventions, B, dtype), stream=stream)
    decoders = {op.role: op.name for op in net.of_kind("output_decoder")}
    values = interpret(net, {entry: x.astype(dtype)}, lambda op, args: BEHAVIOURS[op.kind](op, args, run),
                       set(keep) | set(decoders.values()), "golden")
    outputs = {role: values[name] for role, name in decoders.items()}
    return GoldenResult(outputs=outputs, values={n: values[n] for n in keep if n in values}, probes=run.probes,
                        stream=advanced(stream, T, run.final))
