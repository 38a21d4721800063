"""ProcessGraph -> connected Lava processes.

One custom process per group of the :class:`~hardware_sim.lava.schedule.Plan` (``fine``: one per
population, synapse group, feature population, Hebbian group, astrocyte and norm astrocyte;
``block``: one :class:`CircuitBlock` per stage; ``fused``: one :class:`CircuitBlock` for all
stages), Lava's own ``RingBuffer`` as the source streaming one token vector per step, and one Lava
``Extractor`` per output decoder as the sink the host reads through a channel.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from lava.proc.io.extractor import Extractor, PyLoihiExtractorModel
from lava.proc.io.source import PySendModelFloat, RingBuffer

from compiler.errors import SimulationError
from hardware_sim.lava.astrocyte.models import PyAstrocyteProcessModelFixed, PyAstrocyteProcessModelFloat
from hardware_sim.lava.astrocyte.process import AstrocyteProcess
from hardware_sim.lava.block.models import PyCircuitBlockModelFixed, PyCircuitBlockModelFloat
from hardware_sim.lava.block.process import CircuitBlock
from hardware_sim.lava.engine import model_class
from hardware_sim.lava.features.models import PyFeatureNeuronsModelFixed, PyFeatureNeuronsModelFloat
from hardware_sim.lava.features.process import FeatureNeurons
from hardware_sim.lava.hebbian.models import PyHebbianGroupModelFixed, PyHebbianGroupModelFloat
from hardware_sim.lava.hebbian.process import HebbianGroup
from hardware_sim.lava.norm_astrocyte.models import PyNormAstrocyteModelFixed, PyNormAstrocyteModelFloat
from hardware_sim.lava.norm_astrocyte.process import NormAstrocyte
from hardware_sim.lava.population.models import PyPopulationModelFixed, PyPopulationModelFloat
from hardware_sim.lava.population.process import Population
from hardware_sim.lava.process_base import PortSpec, ProcessSpec
from hardware_sim.lava.schedule import Plan
from hardware_sim.lava.synapses.models import PySynapseGroupModelFixed, PySynapseGroupModelFloat
from hardware_sim.lava.synapses.process import SynapseGroup

# process class and models by tag, per process-graph kind (``block``: one or several stages).
PROCESSES = {
    "population": (Population, {"floating_pt": PyPopulationModelFloat,
                               "fixed_pt": PyPopulationModelFixed}),
    "synapses": (SynapseGroup, {"floating_pt": PySynapseGroupModelFloat,
                               "fixed_pt": PySynapseGroupModelFixed}),
    "norm_astrocyte": (NormAstrocyte, {"floating_pt": PyNormAstrocyteModelFloat,
                                      "fixed_pt": PyNormAstrocyteModelFixed}),
    "features": (FeatureNeurons, {"floating_pt": PyFeatureNeuronsModelFloat,
                                 "fixed_pt": PyFeatureNeuronsModelFixed}),
    "hebbian_synapses": (HebbianGroup, {"floating_pt": PyHebbianGroupModelFloat,
                                       "fixed_pt": PyHebbianGroupModelFixed}),
    "astrocyte": (AstrocyteProcess, {"floating_pt": PyAstrocyteProcessModelFloat,
                                    "fixed_pt": PyAstrocyteProcessModelFixed}),
    "block": (CircuitBlock, {"floating_pt": PyCircuitBlockModelFloat,
                            "fixed_pt": PyCircuitBlockModelFixed}),
}


@dataclass
class LavaNetwork:
    """The built network: processes by group, the source, sinks by role and the model map."""

    processes: dict
    source: RingBuffer
    sinks: dict
    model_map: dict
    plan: Plan
    count_names: dict = field(default_factory=dict)


def stream_width(net, plan: Plan, node: str) -> int:
    if node == plan.source:
        return net.node(node).out_size()
    return plan.kernels[node].out_width()


def group_spec(net, plan: Plan, group: str, error_file: str, tag: str) -> ProcessSpec:
    """Ports, wiring, delays and Var layout of one group's process."""
    members = plan.groups[group]
    in_ports: dict[str, PortSpec] = {}
    wiring = {}
    for name in members:
        wiring[name] = {}
        for port, src in plan.inputs_of(net, name).items():
            width = stream_width(net, plan, src)
            where = ""
            if plan.group_of.get(src) != group:
                if src not in in_ports:
                    in_ports[src] = PortSpec(f"in{len(in_ports)}", src, width)
                where = in_ports[src].name
            wiring[name][port] = (where, src, plan.delays[name][port], width)
    out_ports = []
    for name in members:
        external = [d for d in net.g.successors(name) if plan.group_of.get(d) != group]
        if external:
            out_ports.append(PortSpec(f"out{len(out_ports)}", name, stream_width(net, plan, name)))
    layout, sizes = {}, {}
    for name in members:
        for var, shape in plan.kernels[name].state_shapes().items():
            start = sizes.get(var, 0)
            layout.setdefault(name, {})[var] = (start, shape)
            sizes[var] = start + int(np.prod(shape))
    count_names = []
    if tag == "fixed_pt":
        count_names = sorted({c for name in members for c in plan.kernels[name].count_names()})
        sizes["saturations"] = len(count_names)
    return ProcessSpec(name=group, members=[plan.kernels[n] for n in members], in_ports=list(in_ports.values()),
                       out_ports=out_ports, wiring=wiring, layout=layout, var_sizes=sizes, error_file=error_file,
                       tag=tag, count_names=count_names)


def source_data(plan: Plan, x: np.ndarray) -> np.ndarray:
    """(width, n_steps): column ``b P + t`` holds token t of sequence b (step ``1 + b P + t``)."""
    B, T, width = x.shape
    data = np.zeros((width, plan.n_steps))
    for b in range(B):
        data[:, b * plan.P : b * plan.P + T] = x[b].T
    return data


def build_network(net, plan: Plan, x: np.ndarray | None, tag: str = "floating_pt", error_file: str = "",
                  fused: bool = True, source=None) -> LavaNetwork:
    """Create and connect the Lava processes of ``plan`` for token vectors ``x`` (B, T, width);
    ``fused``: each group is a :class:`CircuitBlock` (granularities ``fused`` and ``block``), else
    the process of its one node's kind (``fine``).  ``source``: ``(process, model, out port)`` of
    another source than a RingBuffer of ``x`` (a session's injector the host sends tokens to)."""
    if source is None:  # fixed_pt streams integer payloads, exact in float64
        ring = RingBuffer(data=source_data(plan, x))
        source = (ring, PySendModelFloat, ring.s_out)
    source, source_model, source_port = source
    processes, specs = {}, {}
    model_map = {source: source_model}
    for group in plan.groups:
        spec = group_spec(net, plan, group, error_file, tag)
        kind = "block" if fused else net.node(plan.groups[group][0]).kind
        proc_cls, models = PROCESSES[kind]
        if tag not in models:
            raise SimulationError(f"lava: no {tag} model for {kind} processes yet (node {group!r})")
        proc = proc_cls(spec=spec)
        processes[group], specs[group] = proc, spec
        model_map[proc] = model_class(models[tag], spec)
    out_port = {}
    for group, spec in specs.items():
        for port in spec.out_ports:
            out_port[port.node] = getattr(processes[group], port.name)
    out_port[plan.source] = source_port
    for group, spec in specs.items():
        for port in spec.in_ports:
            out_port[port.node].connect(getattr(processes[group], port.name))
    sinks = {}
    for role, (src, _) in plan.decoders.items():
        sink = Extractor(shape=(stream_width(net, plan, src),), buffer_size=plan.n_steps + 1)
        out_port[src].connect(sink.in_port)
        model_map[sink] = PyLoihiExtractorModel
        sinks[role] = sink
    return LavaNetwork(processes=processes, source=source, sinks=sinks, model_map=model_map, plan=plan,
                       count_names={group: spec.count_names for group, spec in specs.items()})


def read_outputs(lnet: LavaNetwork, rows: dict[str, np.ndarray], dtype) -> dict[str, np.ndarray]:
    """Outputs by role (B, T, width) from the sinks' rows (one per step)."""
    plan = lnet.plan
    outputs = {}
    for role, (_, arrival) in plan.decoders.items():
        data = rows[role]
        seqs = [data[arrival - 1 + b * plan.P : arrival - 1 + b * plan.P + plan.T] for b in range(plan.B)]
        outputs[role] = np.stack(seqs).astype(dtype)
    return outputs
