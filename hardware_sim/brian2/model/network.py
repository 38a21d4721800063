"""A process graph (as plain node records) becomes one Brian2 network, runs, and is read out.

This package needs only brian2 and numpy: the in-process backend feeds it records of a
:class:`~compiler.process.ProcessGraph`; an exported script feeds it records read from a netlist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from brian2 import BrianLogger, Network, StateMonitor, defaultclock, prefs, second

from . import attention, neurons
from .clock import DT, Clock, circuit_levels
from .wiring import Port, Source, connect

BUILDERS = {
    "schedule": neurons.schedule,
    "input_encoder": neurons.input_encoder,
    "population": neurons.population,
    "norm_astrocyte": neurons.norm_astrocyte,
    "output_decoder": neurons.output_decoder,
    "features": attention.deferred,
    "hebbian_synapses": attention.deferred,
    "astrocyte": attention.astrocyte,
    "synapses": lambda build, node: None,
}


@dataclass
class NodeRecord:
    """One process node: kind, JSON attributes, arrays, and its inputs (port -> producer name)."""

    name: str
    kind: str
    attrs: dict
    arrays: dict
    inputs: dict


@dataclass
class Build:
    """What node builders share while the network is put together."""

    records: dict[str, NodeRecord]
    batch: int
    clock: Clock
    written: np.ndarray
    levels: dict[str, int]
    objects: list = field(default_factory=list)
    namespace: dict = field(default_factory=dict)
    sources: dict[str, Source] = field(default_factory=dict)
    recorded: dict[str, StateMonitor] = field(default_factory=dict)
    kept: dict[str, StateMonitor] = field(default_factory=dict)
    circuits: dict = field(default_factory=dict)
    next_order: int = 0
    used_names: set = field(default_factory=set)

    def order(self) -> int:
        """The next place in the step: everything runs in the ``groups`` slot, in this order."""
        self.next_order += 1
        return self.next_order

    def name(self, node_name: str) -> str:
        name = "n_" + re.sub(r"\W", "_", node_name)
        while name in self.used_names:
            name += "_"
        self.used_names.add(name)
        return name

    def add(self, *objects) -> None:
        self.objects.extend(objects)

    def respond(self, group, code: str) -> None:
        """Run ``code`` (the group's response) once per step at the next order."""
        self.add(group.run_regularly(code, when="groups", order=self.order()))

    def source(self, name: str) -> Source:
        """The Brian2 source of a producer: a group, or a static synapse group's pre group and W, b."""
        node = self.records[name]
        if node.kind == "synapses":
            pre = self.sources[node.inputs["pre"]]
            return Source(pre.group, pre.size, node.arrays.get("weight"), node.arrays.get("bias"), name)
        if name not in self.sources:
            raise ValueError(f"node {name!r} ({node.kind}) has no activity the Brian2 network can read")
        return self.sources[name]

    def feed(self, node: NodeRecord, port: str, group, size: int, order: int, take=None) -> None:
        """Wire whatever feeds ``port`` of ``node`` into the summed input ``in_<port>`` of ``group``."""
        source = self.source(node.inputs[port])
        syn = connect(source, Port(group, port, size, take), self.batch, order, self.name(f"{node.name}_{port}"))
        self.add(syn)

    def write_table(self, circuit: str, schedule: str) -> str:
        """Name of the ``write(t, seq)`` table of a circuit (see :meth:`Clock.writes`)."""
        use_mask = self.records[schedule].attrs.get("use_padding_mask", True)
        written = self.written if use_mask else np.ones_like(self.written)
        name = self.name(f"write_{circuit}")
        self.namespace[name] = self.clock.writes(written, self.levels[circuit])
        return name

    def record(self, role: str, source: Source, into: dict | None = None) -> None:
        """Record the activity ``y`` of ``source`` at the end of every step as output ``role``."""
        monitor = StateMonitor(source.group, "y", record=True, when="end", name=self.name(f"record_{role}"))
        self.add(monitor)
        (self.recorded if into is None else into)[role] = monitor


def upstream_circuits(records: dict[str, NodeRecord]) -> dict[str, set[str]]:
    """For each astrocyte node, every astrocyte node whose recall it (transitively) depends on."""
    below: dict[str, set[str]] = {}
    for name, node in records.items():
        deps = set()
        for src in node.inputs.values():
            deps |= below[src]
            if records[src].kind == "astrocyte":
                deps.add(src)
        below[name] = deps
    return {name: below[name] for name, node in records.items() if node.kind == "astrocyte"}


def schedule_modes(records) -> dict[str, str]:
    modes = {}
    for name, node in records.items():
        if node.kind == "astrocyte":
            features = records[node.inputs["features"]]
            modes[name] = records[features.attrs["schedule"]].attrs["mode"]
    return modes


def configure() -> None:
    """numpy code generation (no compiler), float64, no log files."""
    prefs.codegen.target = "numpy"
    prefs.core.default_float_dtype = np.float64
    prefs.logging.file_log = False
    BrianLogger.log_level_error()
    defaultclock.dt = DT


def build_network(records: list[NodeRecord], x: np.ndarray, mask: np.ndarray, keep=()) -> tuple[Network, Build]:
    """The Brian2 network of ``records`` (in topological order) for inputs ``x`` (B, T, width),
    recording the outputs and the activity of the nodes named in ``keep``."""
    configure()
    by_name = {r.name: r for r in records}
    levels, sweeps = circuit_levels(schedule_modes(by_name), upstream_circuits(by_name))
    B, T = mask.shape
    clock = Clock(B, T, sweeps)
    build = Build(by_name, B, clock, np.asarray(mask, dtype=bool), levels)
    build.namespace.update(x_in=clock.inputs(np.asarray(x, dtype=np.float64)), token_of=clock.token_array(),
                           erf=neurons.erf_function())
    for node in records:
        source = BUILDERS[node.kind](build, node)
        if source is not None:
            build.sources[node.name] = source
            if node.name in keep:
                build.record(node.name, source, into=build.kept)
    return Network(*build.objects), build


def listing(build: Build) -> str:
    """The network as Markdown: every neuron group with its equations (neurons per sequence), then
    one time step as the ordered list of what runs in it."""
    groups, steps = [], []
    per_seq = build.batch
    for obj in build.objects:
        kind = type(obj).__name__
        if kind == "NeuronGroup":
            events = "".join(f"\n    event {name}: {cond}" for name, cond in obj.events.items())
            groups.append(f"- `{obj.name}` ({len(obj) // per_seq} per sequence):\n\n    "
                          + str(obj.equations).replace("\n", "\n    ") + events + "\n")
            if "write" in obj.events:
                steps.append((obj.thresholder["write"].order, f"`{obj.name}`: write event"))
        elif kind == "Synapses":
            for name, updater in obj.summed_updaters.items():
                steps.append((updater.order, f"`{updater.target.name}.{name[:-5]}` = sum over `{obj.name}` "
                                             f"({len(obj) // per_seq} synapses) of `{updater.expression}`"))
            for pathway in obj._pathways:
                steps.append((pathway.order, f"`{obj.name}` on the {pathway.event} event of its "
                                             f"{pathway.prepost}-synaptic neurons: `{pathway.code.strip()}`"))
        elif kind == "CodeRunner":
            steps.append((obj.order, f"`{obj.group.name}`: `{obj.abstract_code.strip()}`"))
    ordered = [text for _, text in sorted(steps, key=lambda item: item[0])]
    return ("### Neuron groups\n\n" + "\n".join(groups) + "\n### One time step, in order\n\n"
            + "\n".join(f"{i}. {text}" for i, text in enumerate(ordered, start=1)) + "\n")


SYNAPSE_BUDGET = 16_000_000  # synapses per Brian2 network; larger batches run in chunks of sequences


def synapses_per_sequence(records: list[NodeRecord]) -> int:
    """About how many Brian2 synapses one sequence needs (static groups and attention circuits)."""
    consumers: dict[str, int] = {}
    for node in records:
        for src in node.inputs.values():
            consumers[src] = consumers.get(src, 0) + 1
    total = 0
    for node in records:
        a = node.attrs
        if node.kind == "synapses":
            total += a["pre_size"] * a["post_size"] * consumers.get(node.name, 1)
        elif node.kind == "features":
            total += a["n_heads"] * a["m"] * (2 * a["head_dim"] + 4)
        elif node.kind == "hebbian_synapses":
            total += a["n_heads"] * a["m"] * a["v_head_dim"]
    return max(total, 1)


def simulate_records(records: list[NodeRecord], x: np.ndarray, mask: np.ndarray, keep=(), progress=None):
    """Run the network of ``records`` on ``x`` (B, T, width) with padding ``mask``.

    Returns outputs by role and the values of the ``keep`` nodes by name, each (B, T, size).
    Sequences run together as blocks of one network, in chunks of at most :data:`SYNAPSE_BUDGET`
    synapses.  ``progress(tokens_done, tokens_total)`` is called about once a second.
    """
    chunk = max(1, SYNAPSE_BUDGET // synapses_per_sequence(records))
    total = x.shape[0] * x.shape[1]
    parts = []
    for start in range(0, len(x), chunk):
        report = None
        if progress is not None:
            done, size = start * x.shape[1], min(chunk, len(x) - start) * x.shape[1]

            def report(elapsed, completed, t_start, duration, done=done, size=size):
                progress(done + int(completed * size), total)

        parts.append(simulate_chunk(records, x[start:start + chunk], mask[start:start + chunk], keep, report))
    return tuple({key: np.concatenate([p[n][key] for p in parts]) for key in parts[0][n]} for n in (0, 1))


def simulate_chunk(records: list[NodeRecord], x: np.ndarray, mask: np.ndarray, keep=(), report=None):
    net, build = build_network(records, x, mask, set(keep))
    net.run(build.clock.steps * DT, namespace=build.namespace, report=report, report_period=1 * second)
    read = build.clock.readout
    return ({role: read(np.asarray(m.y).T) for role, m in build.recorded.items()},
            {name: read(np.asarray(m.y).T) for name, m in build.kept.items()})
