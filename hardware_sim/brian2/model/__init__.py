"""The process graph as a Brian2 network (brian2 and numpy only): see :mod:`.network`."""

from .network import NodeRecord, build_network, simulate_records

__all__ = ["NodeRecord", "build_network", "simulate_records"]
