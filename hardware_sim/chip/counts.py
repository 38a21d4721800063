"""What each process-node kind costs on a chip: neurons, synapses, memory and per-token work.

One function per kind, registered in :data:`COUNTERS` (no isinstance chain).  The counts follow the
circuit equations of :mod:`compiler.process.nodes`; the per-kind table is in docs/chip_model.md.
A node also says how it may be split across cores: into ``units`` equal pieces (neurons of a
population, post-synaptic rows of a synapse group, heads of an attention circuit), each needing
``unit_axons`` input axons on its core.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields, replace

from compiler.errors import TripartiteError

COUNTERS: dict[str, Callable] = {}


@dataclass
class NodeCost:
    """Resources of one node (memory in bytes) and its work per token (both phases)."""

    neurons: int = 0
    synapses: int = 0
    synapse_bytes: int = 0
    state_bytes: int = 0
    synops: int = 0
    messages: int = 0
    plastic_updates: int = 0
    units: int = 1
    unit_axons: int = 0
    on_chip: bool = True

    def add(self, other: NodeCost) -> None:
        for f in fields(self):
            if f.name not in ("units", "unit_axons", "on_chip"):
                setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def per_unit(self) -> tuple[int, int]:
        """Neurons and synaptic bytes of one unit (rounded up)."""
        return math.ceil(self.neurons / self.units), math.ceil(self.synapse_bytes / self.units)


def counter(kind: str):
    """Register ``fn(node, chip) -> NodeCost`` for process kind ``kind``."""

    def register(fn):
        COUNTERS[kind] = fn
        return fn

    return register


def node_cost(node, chip) -> NodeCost:
    try:
        fn = COUNTERS[node.kind]
    except KeyError:
        raise TripartiteError(
            f"node {node.name!r}: the chip model has no resource count for kind {node.kind!r}; "
            "register one with hardware_sim.chip.counts.counter"
        ) from None
    return fn(node, chip)


def counted(net, name: str):
    """The node ``name`` as its resources are counted.  The Hebbian synapses and astrocyte of a learned
    circuit with a window also hold its W exact ring slots per head (their values, their processes):
    they are counted as ``m + W`` slots, so the circuit's memory per head is ``2m + W``."""
    node = net.node(name)
    if node.kind not in ("hebbian_synapses", "astrocyte"):
        return node
    inputs = net.inputs_of(name)
    window = getattr(net.node(inputs.get("pre") or inputs.get("features")), "window", 0) or 0
    return replace(node, m=node.m + window) if window else node


def _bytes(n_weights: int, bits: int) -> int:
    return math.ceil(n_weights * bits / 8)


def _state(neurons: int, chip) -> int:
    return _bytes(neurons, chip.state_bits)


@counter("schedule")
@counter("output_decoder")
def _host_sink(node, chip):
    return NodeCost(on_chip=False)


@counter("input_encoder")
def _encoder(node, chip):
    return NodeCost(messages=node.size, on_chip=False)


@counter("population")
def _population(node, chip):
    return NodeCost(neurons=node.size, state_bytes=_state(node.size, chip), messages=node.size,
                    units=node.size)  # input axons are counted by its synapse groups


@counter("synapses")
def _synapses(node, chip):
    n = node.post_size * (node.pre_size if node.weight is not None else 1)
    bits = int(node.quant.get("weight_bits", chip.weight_bits))
    bias = _state(node.post_size, chip) if node.bias is not None else 0
    axons = node.pre_size if node.weight is not None else 1
    return NodeCost(synapses=n, synapse_bytes=_bytes(n, bits), state_bytes=bias, synops=n,
                    units=node.post_size, unit_axons=axons)


@counter("norm_astrocyte")
def _norm(node, chip):
    # output neurons + one astrocyte; x -> astrocyte (mean and square), gain onto each output synapse
    n = 3 * node.size
    return NodeCost(neurons=node.size + 1, synapses=n, synapse_bytes=_bytes(n, chip.weight_bits),
                    state_bytes=_state(3 * node.size + 3, chip), synops=n, messages=node.size + 1,
                    units=1, unit_axons=node.size)


FEATURE_FAN_IN = {"exact": None, "favor": None, "relu": None, "elu1": 1, "taylor2": 2, "learned": None}


@counter("features")
def _features(node, chip):
    fan = FEATURE_FAN_IN[node.lowering] or node.head_dim
    n = (node.n_heads + node.n_kv_heads) * node.m * fan  # query-side and key-side afferents
    exact = node.lowering == "exact"
    writes = node.n_kv_heads * node.head_dim if exact else 0
    messages = node.n_heads * node.m + (node.n_kv_heads if exact else node.n_kv_heads * node.m)
    neurons = node.n_heads * node.m
    window = getattr(node, "window", 0) or 0  # learned circuits: exact ring slots beside the features
    if window:
        slots = node.n_kv_heads * window * node.head_dim
        n, neurons, writes, messages = n + slots, neurons + node.n_heads * window, writes + slots, messages + window
    return NodeCost(neurons=neurons, synapses=n, synapse_bytes=_bytes(n, chip.weight_bits),
                    state_bytes=_state(neurons, chip), synops=n, messages=messages,
                    plastic_updates=writes, units=node.n_heads, unit_axons=2 * node.head_dim)


@counter("hebbian_synapses")
def _hebbian(node, chip):
    plastic = node.n_heads * node.m * node.v_head_dim
    teacher = node.n_heads * node.v_head_dim
    n = plastic + teacher
    updates = teacher if node.gated else node.n_kv_heads * node.m * node.v_head_dim
    return NodeCost(neurons=node.n_heads * node.v_head_dim, synapses=n, synapse_bytes=_bytes(n, chip.weight_bits),
                    state_bytes=_state(node.n_heads * node.v_head_dim, chip), synops=n,
                    messages=node.n_heads * node.v_head_dim, plastic_updates=updates,
                    units=node.n_heads, unit_axons=node.m + node.v_head_dim)


@counter("astrocyte")
def _astrocyte(node, chip):
    processes, somas = node.n_heads * node.m, node.n_heads
    n = 2 * processes + node.n_heads * node.v_head_dim  # features -> processes -> soma, soma -> output gains
    return NodeCost(neurons=processes + somas, synapses=n, synapse_bytes=_bytes(n, chip.weight_bits),
                    state_bytes=_state(processes + 2 * somas, chip), synops=n,
                    messages=node.n_heads * node.v_head_dim + somas, units=node.n_heads,
                    unit_axons=node.m + node.v_head_dim)
