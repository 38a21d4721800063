"""The Lava time schedule of a compiled network: which Lava process runs which nodes, when each node
consumes each token, the delay lines that align its inputs, and the number of time steps a run takes.

Rules (docs/lava_schedule.md):

- the source sends token ``t`` of sequence ``b`` at step ``1 + b P + t``: one token per step;
- a message crossing between Lava processes takes one step (sent at the start of the step after it
  was computed); between nodes in one process (``fused``, ``block``) it takes none;
- a node consumes port ``p`` at ``W + offset_p`` (``W`` its write clock); ports arriving early wait
  in a delay line of ``W + offset_p - arrival_p`` steps;
- circuits: keys and values at ``W + t`` (write), queries at ``W + R + t`` (read) with ``R = T``
  for bidirectional schedules (every write before any read) and ``R = 0`` for causal ones (write t,
  then read t in the same step); an astrocyte's output stream starts ``R`` steps after its write clock;
- an encoder's window replays its keys and values on ports of their own (``key_again``,
  ``teacher_again``): delay lines deliver token ``j`` at ``W + max(0, T - a) + j`` (``a`` the window's
  look-ahead), ``a`` steps before the read of query ``j`` needs it (:mod:`.kernels_band`);
- sequences follow each other every ``P`` steps: ``P = 2T`` when a bidirectional circuit exists,
  else ``T``; circuits reset their state at the first write of each sequence.

This module does not import Lava; the runtime's ``report`` uses :func:`lava_steps`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from compiler.errors import InputError, SimulationError
from hardware_sim.lava import (
    kernels_band,  # noqa: F401  (float kernels of learned circuits with a window: ring and band)
    kernels_band_fixed,  # noqa: F401  (fixed_pt kernels of learned circuits with a window: ring and band)
    kernels_fixed,  # noqa: F401  (registers the fixed_pt kernels)
    kernels_learned_fixed,  # noqa: F401  (and those of learned circuits)
)
from hardware_sim.lava.kernels import KERNELS, Clock, make_kernel

# fused: every stage in one process (default, fastest); block: one process per stage (a transformer
# block); fine: one per process-graph node (the chip mapping).
GRANULARITIES = ("fused", "block", "fine")
HOST_KINDS = ("input_encoder", "output_decoder", "schedule")


@dataclass
class Plan:
    """Everything the builder needs: process groups, clocks, delays and the sink read-out steps."""

    groups: dict[str, list[str]]
    group_of: dict[str, str]
    kernels: dict[str, object]
    delays: dict[str, dict[str, int]]
    ready: dict[str, int]
    source: str
    decoders: dict[str, tuple[str, int]] = field(default_factory=dict)
    inputs: dict[str, dict[str, str]] = field(default_factory=dict)
    T: int = 1
    B: int = 1
    P: int = 1
    n_steps: int = 1

    def inputs_of(self, net, name: str) -> dict[str, str]:
        """Port -> producer of node ``name``: its graph inputs plus the ports replaying one of them."""
        return self.inputs.get(name) or net.inputs_of(name)

    @property
    def n_processes(self) -> int:
        """Lava processes: one per group, plus the source and one sink per output decoder."""
        return len(self.groups) + 1 + len(self.decoders)


def circuit_schedule(net, name):
    """The Schedule node governing circuit node ``name`` (features, Hebbian synapses, astrocyte)."""
    op = net.node(name)
    if op.kind == "hebbian_synapses":
        return circuit_schedule(net, net.inputs_of(name)["pre"])
    if op.kind == "astrocyte":
        return circuit_schedule(net, net.inputs_of(name)["features"])
    if op.kind == "features":
        if op.schedule not in net or net.node(op.schedule).kind != "schedule":
            raise SimulationError(f"lava: node {name!r} names schedule {op.schedule!r}, which is missing")
        return net.node(op.schedule)
    return None


def compute_nodes(net, order=None) -> list[str]:
    names = []
    for name in order or net.order():
        kind = net.node(name).kind
        if kind in HOST_KINDS:
            continue
        if kind not in KERNELS:
            raise SimulationError(f"lava: node {name!r} has kind {kind!r}, which no Lava process runs")
        names.append(name)
    return names


def partition(net, granularity: str, order=None) -> dict[str, str]:
    """Node -> group name (one Lava process per group).

    ``fine``: one group per node.  ``block``: one group per stage, a stage being one attention
    circuit with everything after it up to the next circuit's feature neurons (a BERT or LLaMA
    block is one stage; stage 0 is everything before the first circuit).  ``fused``: every stage in
    one group, so the whole network runs in one Lava process -- beyond the one-process-per-block
    mapping, because every Lava process costs a share of each step's runtime handshakes
    (docs/lava_schedule.md, Cost); the kernels and the Vars holding their state are the same.
    """
    if granularity not in GRANULARITIES:
        raise InputError(f"granularity must be one of {GRANULARITIES}, got {granularity!r}")
    order = order or net.order()
    nodes = compute_nodes(net, order)
    if granularity == "fine":
        return {n: n for n in nodes}
    if granularity == "fused":
        return {n: "fused" for n in nodes}
    level: dict[str, int] = {}
    for name in order:
        srcs = net.inputs_of(name).values()
        base = max((level.get(s, 0) for s in srcs), default=0)
        level[name] = base + (net.node(name).kind == "astrocyte")
    for name in nodes:
        if net.node(name).kind == "astrocyte":
            feats = net.inputs_of(name)["features"]
            level[feats] = level[name]
            level[net.inputs_of(name)["synapses"]] = level[name]
    return {n: f"stage{level[n]}" for n in nodes}


def make_plan(net, tokens: int, batch: int, written: np.ndarray | None = None,
              granularity: str = "fused", dtype=np.float32, tag: str = "floating_pt") -> Plan:
    """Schedule ``net`` for ``batch`` sequences of ``tokens`` tokens.

    ``written`` (batch, tokens) are the padding-mask weights circuits write with (ones if None);
    ``tag`` picks the kernel set (floating_pt, fixed_pt).
    """
    if tokens < 1 or batch < 1:
        raise InputError(f"need at least one sequence of one token, got batch={batch}, tokens={tokens}")
    order = net.order()
    entries = [net.node(n) for n in order if net.node(n).kind == "input_encoder"]
    if len(entries) != 1:
        raise SimulationError(f"lava: network {net.name!r} needs exactly one input encoder, has {len(entries)}")
    mask = np.ones((batch, tokens), dtype=bool) if written is None else np.asarray(written, dtype=bool)
    group_of = partition(net, granularity, order)
    schedules = [net.node(n) for n in order if net.node(n).kind == "schedule"]
    bidirectional = any(op.mode == "bidirectional" for op in schedules)
    P = 2 * tokens if bidirectional else tokens
    source = entries[0].name
    plan = Plan(groups={}, group_of=group_of, kernels={}, delays={}, ready={source: 0}, source=source,
                T=tokens, B=batch, P=P)
    for name, group in group_of.items():
        plan.groups.setdefault(group, []).append(name)
    for name in order:
        op = net.node(name)
        if op.kind in ("input_encoder", "schedule"):
            continue
        inputs = net.inputs_of(name)
        if op.kind == "output_decoder":
            src = inputs["x"]
            plan.decoders[op.role] = (src, plan.ready[src] + 1)
            continue
        schedule_node(net, plan, name, op, inputs, mask, dtype, tag)
    last = max((arrival for _, arrival in plan.decoders.values()), default=1)
    plan.n_steps = last + (batch - 1) * P + tokens - 1
    return plan


def schedule_node(net, plan: Plan, name, op, inputs, mask, dtype, tag) -> None:
    """Clock and input delays of one compute node (its producers are already scheduled)."""
    kernel = make_kernel(op, net, dtype, tag)
    if op.kind == "features" and op.lowering == "exact" and plan.T > op.m:
        raise SimulationError(f"lava: node {name!r} has {op.m} slots but the input has {plan.T} tokens; "
                              f"compile with --max-tokens {plan.T} or more")
    sched = circuit_schedule(net, name)
    R = plan.T if sched is not None and sched.mode == "bidirectional" else 0
    use_mask = sched is None or getattr(sched, "use_padding_mask", True)
    written = mask if use_mask else np.ones_like(mask)
    offsets = kernel.offsets(R)
    replays = getattr(kernel, "replays", dict)()  # port -> the port whose stream it replays (later)
    if replays:
        inputs = plan.inputs[name] = {**inputs, **{port: inputs[again] for port, again in replays.items()}}
    arrival = {}
    for port, src in inputs.items():
        hop = 0 if plan.group_of.get(src) == plan.group_of[name] else 1
        arrival[port] = plan.ready[src] + hop
    W = max(arrival[p] - offsets[p] for p in arrival)
    plan.delays[name] = {p: W + offsets[p] - arrival[p] for p in arrival}
    kernel.clock = Clock(W=W, R=R, T=plan.T, P=plan.P, B=plan.B, written=written)
    plan.kernels[name] = kernel
    plan.ready[name] = W + kernel.output_offset(R)


def lava_steps(net, tokens: int, batch: int = 1, granularity: str = "fused") -> dict:
    """Lava time steps of a run: ``total`` steps for ``batch`` sequences of ``tokens`` tokens,
    ``period`` (steps between sequences), ``latency`` (steps from the first token in to the first
    output out), ``per_token`` (total / (batch tokens)), ``processes`` (Lava processes) and
    ``delay_values`` (:func:`delay_values`)."""
    plan = make_plan(net, tokens, batch, granularity=granularity)
    latency = max(arrival for _, arrival in plan.decoders.values()) - 1
    return {
        "total": plan.n_steps,
        "period": plan.P,
        "latency": latency,
        "per_token": plan.n_steps / (tokens * batch),
        "processes": plan.n_processes,
        "delay_values": delay_values(net, plan),
    }


def delay_values(net, plan: Plan) -> int:
    """Values the delay lines hold at once: each port's delay times the width of its stream (the queries
    of a bidirectional circuit wait ``T`` steps, an encoder window's replayed keys and values
    ``max(0, T - a)``, residual paths their hops)."""
    total = 0
    for name, delays in plan.delays.items():
        sources = plan.inputs_of(net, name)
        for port, delay in delays.items():
            src = sources[port]
            width = plan.kernels[src].out_width() if src in plan.kernels else net.node(src).out_size()
            total += delay * width
    return total
