"""Placement pass: assign populations, synapse groups and attention circuits to cores and chips.

The bin packing itself is part of the chip model (:mod:`hardware_sim.chip.packing`, data-driven,
no Lava): nodes are split into units (neurons, post-synaptic rows, whole heads of an attention
circuit) and packed in topological order, next fit, so producers sit beside their consumers and
cross-core traffic stays low.  The result is recorded in ``net.meta["placement"]``::

    {"chip": name, "cores": n, "chips": n,
     "nodes": {node: [[core, start_unit, stop_unit], ...]},
     "cores_used": [{"core": c, "chip": k, "neurons": n, "bytes": b, "axons": a}, ...],
     "cross_core_messages_per_token": ..., "tile_hops_per_token": ..., "cross_chip_messages_per_token": ...}
"""

from __future__ import annotations

from compiler.passes.base import CompileOptions, Pass


class Place(Pass):
    name = "place"
    requires = ("lowered",)
    ensures = ("placed",)

    def __init__(self, overrides=None):
        self.overrides = overrides

    def run(self, graph, options: CompileOptions):
        from hardware_sim.chip import load_chip, pack, traffic

        chip = load_chip(options.chip, self.overrides)
        cores, costs = pack(graph, chip)
        nodes: dict[str, list[list[int]]] = {}
        for core in cores:
            for name, (a, b) in core.parts.items():
                nodes.setdefault(name, []).append([core.index, a, b])
        graph.meta["placement"] = {
            "chip": chip.name,
            "cores": len(cores),
            "chips": -(-len(cores) // chip.cores_per_chip) if cores else 0,
            "nodes": nodes,
            "cores_used": [{"core": c.index, "chip": c.index // chip.cores_per_chip, "neurons": c.neurons,
                            "bytes": c.bytes, "axons": c.axons} for c in cores],
            **traffic(graph, cores, costs, chip),
        }
        return graph
