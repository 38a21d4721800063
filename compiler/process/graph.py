"""The process graph container."""

from __future__ import annotations

from typing import Any

from compiler.encoder import InputEncoder, encoder_from_record, encoder_record
from compiler.errors import GraphError, ShapeError
from compiler.graph_base import TypedGraph, reports_malformed
from compiler.process.nodes import PROCESS_KINDS


class ProcessGraph(TypedGraph):
    """A compiled network: populations, synapse groups, astrocytes, the host encoder and decoders.

    ``meta`` records how it was compiled (``source``, ``lowering``, ``precision``, ``family``,
    ``pooling``, ``layer_outputs`` mapping attention-graph names to process nodes).
    """

    registry = PROCESS_KINDS
    format_name = "tripartite-process-graph"
    format_version = 1

    def __init__(self, name: str = "model", meta: dict[str, Any] | None = None, encoder=None):
        super().__init__(name, meta)
        self.encoder: InputEncoder | None = encoder

    @reports_malformed
    def validate(self) -> dict[str, tuple]:
        """Check attributes, wiring and that every port's producer has the size the port expects."""
        shapes = super().validate()
        for name in self.order():
            op = self.node(name)
            for port, source in self.inputs_of(name).items():
                want = op.input_sizes().get(port)
                got = self.node(source).out_size()
                if want is not None and want != got:
                    raise ShapeError(
                        f"node {name!r} ({op.kind}): port {port!r} expects {want} neurons but "
                        f"{source!r} has {got}; check the lowering of {op.circuit or name!r}"
                    )
        if not self.of_kind("output_decoder"):
            raise GraphError(f"process graph {self.name!r} has no output decoder")
        return shapes

    def window_kind(self, name: str) -> str | None:
        """Which keys the window of learned circuit node ``name`` (its feature population, or a node fed by
        one) holds: ``ring`` (causal schedule: the last W written), ``band`` (bidirectional: the W keys
        nearest each query) or None (not a learned circuit with a window)."""
        feats = self.node(name)
        if feats.kind != "features":
            inputs = self.inputs_of(name)
            source = inputs.get("pre") or inputs.get("features")
            if source is None:
                return None
            feats = self.node(source)
        if feats.lowering != "learned" or feats.window <= 0:
            return None
        return "ring" if self.node(feats.schedule).mode == "causal" else "band"

    def extra_structure(self):
        return encoder_record(self.encoder)

    def load_extra(self, structure, arrays, where):
        self.encoder = encoder_from_record(structure, arrays, where)
