"""Pass ``match_attention``: raw attention chains become attention nodes.

Pattern (each intermediate node used only inside the chain)::

    matmul(qk, a=q, b=k) -> scale* -> [mask_add] -> [causal_mask] -> softmax -> matmul(pv, b=v)

(scales and masks in any order) becomes ``Attention(q, k, v)`` named after the ``pv`` matmul, with
``scale`` the product of the factors, ``causal`` when a causal mask is present and
``use_padding_mask`` when a padding mask is.  :func:`expand_attention` is the inverse rewrite.
"""

from __future__ import annotations

import copy

from compiler.attention import AttentionGraph
from compiler.attention import nodes as op
from compiler.attention import raw_nodes as raw
from compiler.errors import GraphError
from compiler.passes.base import CompileOptions, Pass

CHAIN = ("scale", "mask_add", "causal_mask")


def sole_user(graph: AttentionGraph, name: str, user: str) -> bool:
    return list(graph.g.successors(name)) == [user]


def match_chain(graph: AttentionGraph, pv: raw.MatMul):
    """Walk back from a pv matmul; return (nodes of the chain, qk matmul, scale, causal, padding) or None."""
    soft = graph.inputs_of(pv.name)["a"]
    if graph.node(soft).kind != "softmax" or not sole_user(graph, soft, pv.name):
        return None
    chain, scale, causal, padding = [soft], 1.0, False, False
    name = graph.inputs_of(soft)["x"]
    while graph.node(name).kind in CHAIN:
        node = graph.node(name)
        if not sole_user(graph, name, chain[-1]):
            return None
        scale *= node.factor if node.kind == "scale" else 1.0
        causal |= node.kind == "causal_mask"
        padding |= node.kind == "mask_add"
        chain.append(name)
        name = graph.inputs_of(name)["x"]
    qk = graph.node(name)
    if qk.kind != "matmul" or qk.mode != "qk" or not sole_user(graph, name, chain[-1]):
        return None
    if (qk.n_heads, qk.n_kv_heads) != (pv.n_heads, pv.n_kv_heads):
        return None
    return chain + [name], qk, scale, causal, padding


def rewrite(graph: AttentionGraph, pv: raw.MatMul, match) -> None:
    chain, qk, scale, causal, padding = match
    q, k = graph.inputs_of(qk.name)["a"], graph.inputs_of(qk.name)["b"]
    v = graph.inputs_of(pv.name)["b"]
    att = op.Attention(pv.name, n_heads=pv.n_heads, n_kv_heads=pv.n_kv_heads, head_dim=qk.head_dim,
                       v_head_dim=pv.head_dim, scale=float(scale), causal=causal, use_padding_mask=padding)
    att.check()
    graph.g.remove_edges_from(list(graph.g.in_edges(pv.name)))
    graph.g.remove_nodes_from(chain)
    graph.g.nodes[pv.name]["op"] = att
    for port, src in (("q", q), ("k", k), ("v", v)):
        graph.connect(src, pv.name, port)


class MatchAttention(Pass):
    """Rewrite raw attention chains into attention nodes; refuse raw ops outside a chain."""

    name = "match_attention"
    requires = ("validated",)
    ensures = ("attention_matched",)

    def run(self, graph: AttentionGraph, options: CompileOptions) -> AttentionGraph:
        pvs = [n for n in graph.nodes() if n.kind == "matmul" and n.mode == "pv"]
        if pvs:
            graph = copy.deepcopy(graph)
        for pv in pvs:
            match = match_chain(graph, pv)
            if match is not None:
                rewrite(graph, graph.node(pv.name), match)
        for node in graph.nodes():
            if node.kind in raw.RAW_KINDS:
                raise GraphError(f"node {node.name!r} ({node.kind}) is not part of a recognised attention chain "
                                 f"matmul(q, k) -> scale -> [mask] -> softmax -> matmul(., v)")
        return graph


def expand_attention(graph: AttentionGraph) -> AttentionGraph:
    """The same model with every attention node spelled out as raw ops (the pv matmul keeps its name)."""
    out = AttentionGraph(graph.name, meta=copy.deepcopy(graph.meta), encoder=graph.encoder)
    for name in graph.order():
        node = graph.node(name)
        inputs = graph.inputs_of(name)
        if node.kind != "attention":
            out.add(copy.copy(node), **inputs)
            continue
        x = out.add(raw.MatMul(f"{name}.scores", mode="qk", n_heads=node.n_heads, n_kv_heads=node.n_kv_heads,
                               head_dim=node.head_dim), a=inputs["q"], b=inputs["k"])
        x = out.add(raw.Scale(f"{name}.scaled", factor=node.scale), x=x)
        if node.use_padding_mask:
            x = out.add(raw.MaskAdd(f"{name}.padding"), x=x)
        if node.causal:
            x = out.add(raw.CausalMask(f"{name}.causal"), x=x)
        x = out.add(raw.Softmax(f"{name}.probs"), x=x)
        out.add(raw.MatMul(name, mode="pv", n_heads=node.n_heads, n_kv_heads=node.n_kv_heads,
                           head_dim=node.v_head_dim), a=x, b=inputs["v"])
    return out
