"""The process graph: a compiled network of neuron populations, synapse groups and astrocytes."""

from compiler.process.graph import ProcessGraph
from compiler.process.nodes import PROCESS_KINDS

__all__ = ["ProcessGraph", "PROCESS_KINDS"]
