"""Placement of a process graph on cores: sequential bin packing that splits nodes into units.

Nodes are visited in topological order (producers next to their consumers).  Each on-chip node
is a group of equal ``units`` (:mod:`.counts`); a synapse group joins the population it feeds
(synaptic memory lives on the core of the post-synaptic neuron: a unit is a neuron with its
dendritic rows); the nodes of one attention circuit (features, Hebbian synapses, astrocyte sharing
``node.circuit``) form one group whose unit is a whole head, so a head's circuit never straddles
two cores.  A group fills the current core with as many units as
fit (neurons, synaptic memory, input axons), then continues on the next core (next fit); cores
``c`` belong to chip ``c // cores_per_chip``.  A unit that does not fit an empty core is an error
naming the node, its size, the limit and how to split it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from compiler.errors import TripartiteError
from hardware_sim.chip.counts import NodeCost, counted, node_cost

CIRCUIT_KINDS = ("features", "hebbian_synapses", "astrocyte")

SPLIT_HINTS = {
    "synapses": "split the synapse group along its pre-synaptic side into smaller groups feeding "
                "the same population (more fan_in ports)",
    "population": "give the population fewer input ports (fan_in)",
    "norm_astrocyte": "split the normalised domain or use a chip with more neurons per core",
    "circuit": "use fewer feature neurons per head (--features) or a smaller --max-tokens",
}


class PlacementError(TripartiteError):
    """A unit of the network cannot fit one core of the chip."""


@dataclass
class Group:
    name: str
    nodes: list[str]
    units: int
    neurons: int = 0
    bytes: int = 0
    axons: int = 0
    kind: str = ""

    def add(self, name: str, cost: NodeCost) -> None:
        n, b = cost.per_unit()
        self.nodes.append(name)
        self.neurons, self.bytes, self.axons = self.neurons + n, self.bytes + b, self.axons + cost.unit_axons


@dataclass
class Core:
    index: int
    neurons: int = 0
    bytes: int = 0
    axons: int = 0
    parts: dict[str, list[int]] = field(default_factory=dict)  # node -> [start, stop) units


def _key(net, name: str, costs: dict[str, NodeCost]) -> tuple[str, str]:
    """The placement group of a node: its attention circuit, the population its synapses feed
    (synapses live on the core of their post-synaptic neuron), or itself."""
    op, c = net.node(name), costs[name]
    if op.kind in CIRCUIT_KINDS and op.circuit:
        return op.circuit, "circuit"
    if op.kind == "synapses":
        users = set(net.g.successors(name))
        if len(users) == 1:
            (user,) = users
            if net.node(user).kind == "population" and costs[user].units == c.units:
                return user, "population"
    return name, op.kind


def groups(net, chip) -> tuple[list[Group], dict[str, NodeCost]]:
    """Placement groups in topological order and every node's cost."""
    costs = {name: node_cost(counted(net, name), chip) for name in net.order()}
    found: dict[str, Group] = {}
    for name in net.order():
        c = costs[name]
        if not c.on_chip or (c.neurons == 0 and c.synapse_bytes == 0):
            continue
        key, kind = _key(net, name, costs)
        g = found.get(key)
        if g is None:
            g = found[key] = Group(key, [], c.units, kind=kind)
        if c.units != g.units:
            raise PlacementError(f"{kind} {key!r}: node {name!r} has {c.units} units, the group {g.units}; "
                                 "the lowering is inconsistent")
        g.add(name, c)
    return list(found.values()), costs


def _check_unit(g: Group, chip) -> None:
    if g.kind == "circuit":
        what, hint = f"attention circuit {g.name!r} (one head)", SPLIT_HINTS["circuit"]
    else:
        inputs = f", with input synapses {', '.join(g.nodes[:-1])}" if len(g.nodes) > 1 else ""
        what = f"node {g.name!r} ({g.kind}{inputs}): one unit"
    for need, cap, label in ((g.neurons, chip.neurons_per_core, "neurons"),
                             (g.bytes, chip.synaptic_memory_bytes_per_core, "bytes of synaptic memory"),
                             (g.axons, chip.input_axons_per_core, "input axons")):
        if need > cap:
            if g.kind != "circuit":
                hint = SPLIT_HINTS["synapses" if label != "neurons" and len(g.nodes) > 1 else g.kind]
            parts = math.ceil(need / cap)
            raise PlacementError(f"{what} needs {need} {label} but a {chip.name} core has {cap}; "
                                 f"{hint} (at least {parts} parts)")


def _fit(core: Core, g: Group, chip) -> int:
    fits = []
    if g.neurons:
        fits.append((chip.neurons_per_core - core.neurons) // g.neurons)
    if g.bytes:
        fits.append((chip.synaptic_memory_bytes_per_core - core.bytes) // g.bytes)
    if core.axons + g.axons > chip.input_axons_per_core:
        fits.append(0)
    return max(0, min(fits)) if fits else g.units


def pack(net, chip) -> tuple[list[Core], dict[str, NodeCost]]:
    """Assign every on-chip node's units to cores (see module docstring)."""
    gs, costs = groups(net, chip)
    cores = [Core(0)]
    for g in gs:
        _check_unit(g, chip)
        done = 0
        while done < g.units:
            core = cores[-1]
            k = min(_fit(core, g, chip), g.units - done)
            if k == 0:
                cores.append(Core(len(cores)))
                continue
            core.neurons += k * g.neurons
            core.bytes += k * g.bytes
            core.axons += g.axons
            for name in g.nodes:
                core.parts[name] = [done, done + k]
            done += k
    return [c for c in cores if c.parts], costs


def node_cores(cores: list[Core]) -> dict[str, dict[int, float]]:
    """Node -> {core: fraction of the node's units on that core}."""
    out: dict[str, dict[int, float]] = {}
    for c in cores:
        for name, (a, b) in c.parts.items():
            out.setdefault(name, {})[c.index] = b - a
    for shares in out.values():
        total = sum(shares.values())
        for k in shares:
            shares[k] /= total
    return out


def traffic(net, cores: list[Core], costs: dict[str, NodeCost], chip) -> dict[str, float]:
    """Per-token messages between distinct cores, tile hops and chip crossings.

    A producer's messages are spread over its cores by unit share; every core of a consumer receives
    them (synapse groups need the whole pre-synaptic vector).  Host-side nodes count as core ``-1``.
    Tiles are ``cores_per_tile`` consecutive cores laid out row-major on a square mesh per chip.
    """
    where = node_cores(cores)
    side = math.ceil(math.sqrt(chip.cores_per_chip / chip.cores_per_tile))
    cross = hops = chips = 0.0
    for u, v, *_ in net.g.edges:
        msgs = costs[u].messages
        for cu, su in where.get(u, {-1: 1.0}).items():
            for cv in where.get(v, {-1: 1.0}):
                if cu == cv or (cu == -1 and cv == -1):
                    continue
                m = msgs * su
                cross += m
                if cu < 0 or cv < 0:
                    continue
                if cu // chip.cores_per_chip != cv // chip.cores_per_chip:
                    chips += m
                    continue
                per = chip.cores_per_tile
                tu, tv = (cu % chip.cores_per_chip) // per, (cv % chip.cores_per_chip) // per
                hops += m * (abs(tu // side - tv // side) + abs(tu % side - tv % side))
    return {"cross_core_messages_per_token": cross, "tile_hops_per_token": hops, "cross_chip_messages_per_token": chips}
