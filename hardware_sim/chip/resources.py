"""Resource, energy and latency estimate of a process graph on a chip (``tripartite report``).

Counts come from the per-kind functions of :mod:`.counts`, cores and traffic from the placement of
:mod:`.packing`.  With ``S = costs.steps_per_token`` time steps per token (a write and a read
phase), ``D`` the depth of the network (neuron-bearing nodes on the longest path)::

    energy  = synops E_synop + plastic E_update + S neurons E_neuron + messages E_spike
              + tile_hops E_hop + cross_chip_messages E_chip
    t_step  = max over cores (synops_c/S t_synop + neurons_c t_neuron + plastic_c/S t_update)
              + cross_chip_messages/S t_chip_hop / chips + barrier
    latency = S D t_step

Every figure is an estimate with the cost table's sources (``cost_sources`` in the result).
"""

from __future__ import annotations

from collections import defaultdict

from hardware_sim.chip.packing import node_cores, pack, traffic
from hardware_sim.chip.spec import Chip, load_chip


def _depth(net, costs) -> int:
    depth: dict[str, int] = {}
    for name in net.order():
        before = [depth[s] for s in net.inputs_of(name).values()]
        own = 1 if costs[name].on_chip and costs[name].neurons else 0
        depth[name] = max(before, default=0) + own
    return max(depth.values(), default=0)


def _core_loads(cores, costs, chip):
    where = node_cores(cores)
    loads = defaultdict(lambda: [0.0, 0.0, 0.0])
    for name, shares in where.items():
        c = costs[name]
        for core, s in shares.items():
            loads[core][0] += s * c.synops
            loads[core][1] += s * c.neurons
            loads[core][2] += s * c.plastic_updates
    S = chip.costs["steps_per_token"]
    k = chip.costs
    return max((syn / S * k["synop_time_s"] + neu * k["neuron_update_time_s"] + pl / S * k["synaptic_update_time_s"]
                for syn, neu, pl in loads.values()), default=0.0)


PRECISION_PARTS = ("select", "relay", "outliers", "residual")  # compiler/passes/split_groups.py


def resources(net, chip: str | Chip = "loihi2", overrides=None) -> dict:
    """Neurons, synapses, memory, cores, chips, per-token work, energy and latency of ``net``.

    Keys: ``chip, neurons, synapses, bytes`` (synaptic memory), ``state_bytes``, ``cores, chips,
    synops_per_token, messages_per_token, cross_core_messages_per_token, neuron_updates_per_token,
    synaptic_updates_per_token, energy_per_token_j, latency_per_token_s, energy_breakdown_j,
    by_kind, cost_sources``; ``precision_group_neurons``, ``precision_group_bytes``,
    ``precision_group_synops_per_token``: what the extra synapse groups of the loihi2 precision options
    (outlier channels, q/k residuals) add, included in the totals.
    """
    chip = load_chip(chip, overrides)
    cores, costs = pack(net, chip)
    total = next(iter(costs.values())).__class__()
    by_kind: dict[str, dict[str, int]] = {}
    extra = total.__class__()  # the loihi2 precision groups: outlier, relay and q/k residual synapse groups
    for name, c in costs.items():
        total.add(c)
        if getattr(net.node(name), "quant", {}).get("part") in PRECISION_PARTS:
            extra.add(c)
        k = by_kind.setdefault(net.node(name).kind, {"nodes": 0, "neurons": 0, "synapses": 0, "bytes": 0})
        k["nodes"] += 1
        k["neurons"] += c.neurons
        k["synapses"] += c.synapses
        k["bytes"] += c.synapse_bytes
    t = traffic(net, cores, costs, chip)
    k = chip.costs
    S = k["steps_per_token"]
    n_chips = max(1, -(-len(cores) // chip.cores_per_chip)) if cores else 0
    energy = {
        "synops": total.synops * k["synop_energy_j"],
        "synaptic_updates": total.plastic_updates * k["synaptic_update_energy_j"],
        "neuron_updates": S * total.neurons * k["neuron_update_energy_j"],
        "messages": total.messages * k["spike_within_tile_energy_j"],
        "tile_hops": t["tile_hops_per_token"] * k["tile_hop_energy_j"],
        "chip_crossings": t["cross_chip_messages_per_token"] * k["chip_hop_energy_j"],
    }
    t_step = (_core_loads(cores, costs, chip) + k["barrier_time_s"]
              + t["cross_chip_messages_per_token"] / S * k["chip_hop_time_s"] / max(n_chips, 1))
    return {
        "chip": chip.name,
        "neurons": total.neurons,
        "synapses": total.synapses,
        "bytes": total.synapse_bytes,
        "state_bytes": total.state_bytes,
        "cores": len(cores),
        "chips": n_chips,
        "synops_per_token": total.synops,
        "messages_per_token": total.messages,
        "cross_core_messages_per_token": t["cross_core_messages_per_token"],
        "neuron_updates_per_token": S * total.neurons,
        "synaptic_updates_per_token": total.plastic_updates,
        "energy_per_token_j": sum(energy.values()),
        "latency_per_token_s": S * _depth(net, costs) * t_step,
        "precision_group_neurons": extra.neurons,
        "precision_group_bytes": extra.synapse_bytes,
        "precision_group_synops_per_token": extra.synops,
        "energy_breakdown_j": energy,
        "by_kind": by_kind,
        "cost_sources": dict(chip.sources),
    }
