"""Pass ``lower_ops``: the remaining attention-graph ops become populations and synapse groups.

Each attention-graph node ``N`` is lowered by the rule for its kind, in topological order; the
process node carrying ``N``'s value is recorded so later consumers (and ``meta.layer_outputs``)
can find it:

=============  =================================================================================
input          InputEncoderNode ``N`` (the host encoder is copied to the process graph)
linear         Synapses ``N.synapses`` (W, b) -> Population ``N`` (identity response); when the
               linear's only consumer is an activation or rope node, that node's response is
               taken by the same population (named after the consumer)
activation     Population ``N`` with that response, fed one-to-one
rope           Population ``N`` with the rotary response, fed one-to-one
add            Population ``N`` (fan_in 2), two one-to-one Synapses ``N.in0``, ``N.in1``
mul            Population ``N`` (product response), two one-to-one Synapses
layernorm      NormAstrocyte ``N`` (mode layer); rmsnorm: mode rms
attention      the circuit from lower_attention; its key, query and teacher ports are wired here
output         OutputDecoder ``N`` with the node's role
=============  =================================================================================
"""

from __future__ import annotations

from compiler.errors import GraphError
from compiler.passes.base import CompileOptions, Pass
from compiler.passes.lowering import PartialLowering
from compiler.process import ProcessGraph
from compiler.process import nodes as pn

FUSABLE = ("activation", "rope")


class OpLowerer:
    """Lowers the nodes of one attention graph; ``value[name]`` is the process node holding its value."""

    def __init__(self, state: PartialLowering):
        self.state = state
        self.src = state.attention
        self.net: ProcessGraph = state.process
        self.value: dict[str, str] = {}
        self.fused: dict[str, str] = {}  # consumer name -> synapses feeding its population

    def arg(self, name: str, port: str) -> str:
        return self.value[self.src.inputs_of(name)[port]]

    def size(self, node: str) -> int:
        return self.net.node(node).out_size()

    def one_to_one(self, name: str, source: str) -> str:
        n = self.size(source)
        return self.net.add(pn.Synapses(name, pre_size=n, post_size=n, circuit=self.circuit), pre=source)

    def population(self, name: str, response: str, feeds: list[str], rope: dict | None = None) -> str:
        pop = pn.Population(name, size=self.size(feeds[0]), response=response, fan_in=len(feeds),
                            rope=rope or {}, circuit=self.circuit)
        return self.net.add(pop, **{f"in{i}": s for i, s in enumerate(feeds)})

    # ---- rules, one per attention-graph kind ----------------------------------------------------
    def input(self, op):
        return self.net.add(pn.InputEncoderNode(op.name, size=op.width, circuit=self.circuit))

    def linear(self, op):
        out, w = op.weight.shape
        syn = self.net.add(pn.Synapses(f"{op.name}.synapses", pre_size=w, post_size=out, weight=op.weight,
                                       bias=op.bias, circuit=self.circuit), pre=self.arg(op.name, "x"))
        users = list(self.src.g.successors(op.name))
        if len(users) == 1 and self.src.node(users[0]).kind in FUSABLE and op.name not in self.layer_names:
            self.fused[users[0]] = syn
            return None
        return self.population(op.name, "identity", [syn])

    def feed(self, op) -> str:
        """The synapses driving ``op``'s population: fused from its linear, or one-to-one."""
        if op.name in self.fused:
            return self.fused.pop(op.name)
        return self.one_to_one(f"{op.name}.in0", self.arg(op.name, "x"))

    def activation(self, op):
        return self.population(op.name, op.function, [self.feed(op)])

    def rope(self, op):
        attrs = {"n_heads": op.n_heads, "head_dim": op.head_dim, "base": float(op.base), "pairing": op.pairing,
                 "rotary_dim": op.rotary_dim}
        return self.population(op.name, "rotary", [self.feed(op)], rope=attrs)

    def add(self, op, response: str = "identity"):
        feeds = [self.one_to_one(f"{op.name}.in{i}", self.arg(op.name, port)) for i, port in enumerate("ab")]
        return self.population(op.name, response, feeds)

    def mul(self, op):
        return self.add(op, response="product")

    def layernorm(self, op, mode: str = "layer"):
        bias = getattr(op, "bias", None)
        return self.net.add(pn.NormAstrocyte(op.name, weight=op.weight, size=op.weight.shape[0], mode=mode,
                                             bias=bias, eps=float(op.eps), circuit=self.circuit),
                            x=self.arg(op.name, "x"))

    def rmsnorm(self, op):
        return self.layernorm(op, mode="rms")

    def attention(self, op):
        circuit = self.state.circuits[op.name]
        for port, (node, target_port) in circuit.open_ports.items():
            self.net.connect(self.arg(op.name, port), node, target_port)
        return circuit.output

    def output(self, op):
        source = self.arg(op.name, "x")
        return self.net.add(pn.OutputDecoder(op.name, role=op.role, size=self.size(source), circuit=self.circuit),
                            x=source)

    # ---- driver -----------------------------------------------------------------------------------
    def run(self) -> ProcessGraph:
        self.layer_names = set(self.src.meta.get("layer_outputs", []))
        for name in self.src.order():
            op = self.src.node(name)
            rule = getattr(self, op.kind, None) if op.kind in RULES else None
            if rule is None:
                raise GraphError(f"node {name!r} ({op.kind}): no process-graph lowering for this kind; "
                                 f"run match_attention first or extend lower_ops")
            self.circuit = name
            produced = rule(op)
            if produced is not None:
                self.value[name] = produced
        return self.net


RULES = ("input", "linear", "activation", "rope", "add", "mul", "layernorm", "rmsnorm", "attention", "output")


def layer_map(state: PartialLowering, value: dict[str, str]) -> dict[str, str]:
    """Attention-graph name -> process node for layer outputs and attention nodes."""
    names = list(state.attention.meta.get("layer_outputs", [])) + list(state.circuits)
    return {n: value[n] for n in names if n in value}


class LowerOps(Pass):
    """Everything that is not attention -> populations, synapse groups, normalising astrocytes."""

    name = "lower_ops"
    requires = ("attention_lowered",)
    ensures = ("lowered",)

    def run(self, state: PartialLowering, options: CompileOptions) -> ProcessGraph:
        lowerer = OpLowerer(state)
        net = lowerer.run()
        src = state.attention
        net.encoder = src.encoder
        net.meta = {
            "source": src.name,
            "family": src.meta.get("family", ""),
            "pooling": src.meta.get("pooling", "mean"),
            "lowering": options.lowering,
            "per_layer": {name: c.lowering for name, c in state.circuits.items()},
            "precision": options.precision,
            "features": options.features,
            "seed": options.seed,
            "orthogonal": options.orthogonal,
            "max_tokens": options.max_tokens,
            "layer_outputs": layer_map(state, lowerer.value),
        }
        net.validate()
        return net
