"""The state of one ONNX import: what each ONNX value holds and the attention graph built so far.

:class:`Tracer` walks the folded graph in order and asks the handler registered for each op type
(:mod:`compiler.frontends.onnx_patterns`) what its outputs hold.  It owns the helpers handlers share:
turning descriptors into graph inputs (:meth:`Tracer.plain`), adding nodes, probing pending chains,
and the one-line errors that name the ONNX node.
"""

from __future__ import annotations

import numpy as np

from compiler.attention import AttentionGraph
from compiler.attention import nodes as op
from compiler.encoder import InputEncoder
from compiler.errors import FrontendError
from compiler.frontends.onnx_recognize import make_node, recognise
from compiler.frontends.onnx_values import Const, Emb, Ids, Pending, Vec


class Tracer:
    """Descriptors of ONNX values (by name) and the attention graph they refer to."""

    def __init__(self, folded, had_mask: bool):
        self.folded = folded
        self.model = folded.model
        self.where = str(folded.path)
        self.tokens = folded.tokens
        self.had_mask = had_mask
        self.values: dict[str, object] = {}
        self.graph = AttentionGraph(name=folded.path.stem)
        self.counts: dict[str, int] = {}
        self.shapes: dict[str, tuple] = {}
        self.input_name: str | None = None
        self.encoder: InputEncoder | None = None
        self.opsets = {domain: version for domain, version in self.model.opset_imports.items()}
        for value in self.model.graph.inputs:
            role = folded.roles[value.name]
            self.values[value.name] = self.vectors_input(value) if role == "vectors" else Ids(role)

    def vectors_input(self, value) -> Vec:
        """A float input (batch, tokens, width) of token vectors: the graph's input node, no encoder."""
        width = int(value.shape.dims[-1])
        self.input_name = self.add(op.Input("input", width=width))
        return Vec(self.input_name, ("1", "t", "f"), (1, self.tokens, width))

    # ---- descriptors ------------------------------------------------------------------------
    def get(self, value):
        if value is None or value.name == "":
            return None
        if value.name in self.values:
            return self.values[value.name]
        if value.const_value is not None:
            return Const(value.const_value.numpy())
        raise FrontendError(f"{self.where}: value {value.name!r} is used before it is computed")

    def constant(self, value):
        """The array of a constant ONNX value, or ``None``."""
        d = self.get(value)
        return d.value if isinstance(d, Const) else None

    def uses(self, value) -> int:
        outputs = sum(1 for o in self.model.graph.outputs if o is value)
        return len(value.uses()) + outputs

    # ---- graph construction -----------------------------------------------------------------
    def fresh(self, kind: str) -> str:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return f"{kind}{self.counts[kind]}"

    def add(self, node, **inputs) -> str:
        name = self.graph.add(node, **inputs)
        self.shapes[name] = node.output_shape({port: self.shapes[src] for port, src in inputs.items()})
        return name

    def width(self, name: str) -> int:
        return int(self.shapes[name][0])

    def input_vec(self, emb: Emb) -> Vec:
        """The graph's input node, fed by the input encoder built from ``emb``'s tables."""
        if self.input_name is not None and emb is self.input_emb:
            return self.input_vec_cached
        if self.input_name is not None:
            raise FrontendError(f"{self.where}: the embeddings are used in two different ways; only one "
                                "embedding sum feeding the network is supported")
        tokens = emb.tables.get("tokens")
        if tokens is None:
            raise FrontendError(f"{self.where}: no embedding table is indexed by input_ids")
        scale = emb.scale
        position = emb.tables.get("positions")
        self.encoder = InputEncoder(
            token_embeddings=tokens * scale,
            position_embeddings=None if position is None else position[0] * scale,
            position_offset=0 if position is None else position[1],
            token_type_embeddings=None if "types" not in emb.tables else emb.tables["types"] * scale,
        )
        width = int(tokens.shape[1])
        self.input_name = self.add(op.Input("input", width=width))
        self.input_emb = emb
        self.input_vec_cached = Vec(self.input_name, ("1", "t", "f"), (1, self.tokens, width))
        return self.input_vec_cached

    def plain(self, d, node) -> str:
        """The name of a graph node holding descriptor ``d`` as a flat, unscaled per-token vector."""
        if isinstance(d, Emb):
            d = self.input_vec(d)
        if not isinstance(d, Vec):
            raise self.error(node, f"expects per-token vectors, got {describe(d)}")
        if d.rep != 1 or (d.features not in (("f",), ("h", "d"))):
            raise self.error(node, f"expects per-token vectors, got repeated heads {d.axes}")
        if d.scale == 1.0:
            return d.node
        width = d.width
        return self.add(op.Linear(self.fresh("scale"), weight=np.eye(width) * d.scale), x=d.node)

    def flat(self, d, node) -> Vec:
        """``d`` as (1, t, f) of an unscaled node (materialising embeddings and scales)."""
        if isinstance(d, Vec) and d.flat() and d.scale == 1.0:
            return d
        if isinstance(d, Emb) or (isinstance(d, Vec) and d.flat()):
            name = self.plain(d, node)
            width = self.width(name)
            return Vec(name, ("1", "t", "f"), (1, self.tokens, width))
        raise self.error(node, f"expects per-token vectors (batch, tokens, features), got {describe(d)}")

    # ---- pending chains ---------------------------------------------------------------------
    def settle(self, pending: Pending, node):
        """Recognise ``pending`` as one op when it already computes one; else keep it pending."""
        width = self.width(pending.node)
        found = recognise(pending, self.opsets, self.constant, self.tokens, width)
        if found is None:
            return pending
        kind, what, vec = found
        if kind in ("identity", "scale"):
            return Vec(vec.node, vec.axes, vec.sizes, vec.rep, float(what))
        op_kind, params = what
        made = make_node(op_kind, self.fresh(op_kind), params, width)
        name = self.add(made, x=pending.node)
        return Vec(name, vec.axes, vec.sizes, vec.rep, 1.0)

    # ---- errors -----------------------------------------------------------------------------
    def error(self, node, message: str) -> FrontendError:
        return FrontendError(f"{self.where}: node {node.name!r} ({node.op_type}) {message}")


def describe(d) -> str:
    """A short phrase for a descriptor in error messages."""
    if isinstance(d, Pending):
        ops = "->".join(n.op_type for n in d.nodes[:8])
        return (f"an unrecognised elementwise chain {ops} starting at node {d.nodes[0].name!r} (not a layer "
                "norm, RMS norm, GELU, SiLU, ReLU or RoPE)")
    if isinstance(d, Vec):
        return f"per-token values laid out as {d.axes}"
    return type(d).__name__.lower() if d is not None else "nothing"
