"""The attention graph container."""

from __future__ import annotations

from typing import Any

import numpy as np

from compiler.attention.nodes import NODE_KINDS
from compiler.encoder import InputEncoder, encoder_from_record, encoder_record
from compiler.errors import GraphError
from compiler.graph_base import TypedGraph, reports_malformed


class AttentionGraph(TypedGraph):
    """A transformer as a DAG of typed ops over per-token feature vectors.

    Besides its nodes it keeps the host-side :class:`~compiler.encoder.InputEncoder` (token, position
    and token-type embeddings, tokenizer) and ``meta``: ``family`` (bert, llama, gpt2, ...),
    ``layer_outputs`` (node names whose outputs the per-layer error tables compare), ``pooling``.
    """

    registry = NODE_KINDS
    format_name = "tripartite-attention-graph"
    format_version = 1

    def __init__(self, name: str = "model", meta: dict[str, Any] | None = None, encoder=None):
        super().__init__(name, meta)
        self.encoder: InputEncoder | None = encoder

    def input_node(self) -> str:
        inputs = [op.name for op in self.nodes() if op.kind == "input"]
        if len(inputs) != 1:
            raise GraphError(f"graph {self.name!r} must have exactly one input node, found {len(inputs)}")
        return inputs[0]

    def output_nodes(self) -> dict[str, str]:
        """Output role -> node name."""
        outputs = {op.role: op.name for op in self.nodes() if op.kind == "output"}
        if not outputs:
            raise GraphError(f"graph {self.name!r} has no output node; add an Output node")
        return outputs

    @reports_malformed
    def validate(self) -> dict[str, tuple]:
        shapes = super().validate()
        entry = self.input_node()
        roles = [op.role for op in self.nodes() if op.kind == "output"]
        if len(roles) != len(set(roles)):
            raise GraphError(f"graph {self.name!r}: output roles repeat: {roles}")
        self.output_nodes()
        for name in self.order():
            if name != entry and not self.inputs_of(name) and self.node(name).input_ports():
                raise GraphError(f"node {name!r} is not connected to the input")
        if self.encoder is not None and self.encoder.width != shapes[entry][0]:
            raise GraphError(
                f"input encoder width {self.encoder.width} differs from input node {entry!r} width "
                f"{shapes[entry][0]}"
            )
        for name in self.meta.get("layer_outputs", []):
            if name not in self.g:
                raise GraphError(f"meta.layer_outputs names unknown node {name!r}")
        return shapes

    def extra_structure(self):
        return encoder_record(self.encoder)

    def load_extra(self, structure, arrays: dict[str, np.ndarray], where: str) -> None:
        self.encoder = encoder_from_record(structure, arrays, where)

    def same_as(self, other) -> bool:
        if not super().same_as(other):
            return False
        if (self.encoder is None) != (other.encoder is None):
            return False
        return self.encoder is None or self.encoder.same_as(other.encoder)
