"""The state carried from attention-graph lowering to the finished process graph.

``lower_attention`` builds each attention circuit's inner nodes and leaves its three afferent ports
(key, query, teacher) open; ``lower_ops`` lowers everything else in topological order, wiring those
ports as soon as the producing populations exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from compiler.attention import AttentionGraph
from compiler.process import ProcessGraph


@dataclass
class Circuit:
    """An attention node's circuit: its output node and its open ports (port -> (node, port name))."""

    output: str
    open_ports: dict[str, tuple[str, str]]
    lowering: str


@dataclass
class PartialLowering:
    """An attention graph in the middle of lowering into ``process``."""

    attention: AttentionGraph
    process: ProcessGraph
    circuits: dict[str, Circuit] = field(default_factory=dict)

    def validate(self):
        """Debug-mode check between passes: the source graph stays valid."""
        return self.attention.validate()
