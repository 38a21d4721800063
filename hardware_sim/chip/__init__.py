"""Chip descriptions (JSON data), per-kind resource counts, placement on cores, energy and latency.

Never imports Lava: the compiler's placement pass uses it.  See docs/chip_model.md.
"""

from hardware_sim.chip.counts import COUNTERS, NodeCost, counter, node_cost
from hardware_sim.chip.packing import PlacementError, pack, traffic
from hardware_sim.chip.resources import resources
from hardware_sim.chip.spec import Chip, ChipError, available, load_chip

__all__ = ["COUNTERS", "Chip", "ChipError", "NodeCost", "PlacementError", "available", "counter", "load_chip",
           "node_cost", "pack", "resources", "traffic"]
