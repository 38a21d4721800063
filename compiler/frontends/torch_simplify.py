"""Exact clean-ups of an attention graph built from an exported program.

* A norm with unit gain whose only user is a diagonal linear map (``weight * norm(x)`` as PyTorch
  writes RMSNorm) takes the diagonal as its gain.
* A linear map that only selects rows (each output one input feature: a packed q/k/v projection cut
  into q, k and v) is folded into the linear layer feeding it: ``W' = W[rows]``, ``b' = b[rows]``.
* Nodes no output depends on are removed.

Each rewrite copies or moves weights without arithmetic, so outputs stay bitwise the same.
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from compiler.attention import AttentionGraph


def users(graph: AttentionGraph, name: str) -> list[tuple[str, str]]:
    return [(target, data["port"]) for _, target, data in graph.g.out_edges(name, data=True)]


def bypass(graph: AttentionGraph, name: str, source: str) -> None:
    """Feed the users of ``name`` from ``source`` and remove ``name``."""
    for target, port in users(graph, name):
        graph.g.remove_edge(name, target)
        graph.g.add_edge(source, target, port=port)
    graph.g.remove_node(name)


def fold_norm_gains(graph: AttentionGraph) -> None:
    for node in list(graph.nodes()):
        if node.kind != "linear" or node.bias is not None or node.weight.shape[0] != node.weight.shape[1]:
            continue
        w = node.weight
        if not np.array_equal(w, np.diag(np.diag(w))):
            continue
        source = graph.inputs_of(node.name)["x"]
        norm = graph.node(source)
        if norm.kind not in ("rmsnorm", "layernorm") or len(users(graph, source)) != 1:
            continue
        if not np.all(norm.weight == 1) or getattr(norm, "bias", None) is not None:
            continue
        norm.weight = np.diag(w).copy()
        bypass(graph, node.name, source)


def selected_rows(weight: np.ndarray) -> np.ndarray | None:
    """Row i's selected input for a 0/1 selection matrix, else ``None``."""
    if not np.all((weight == 0) | (weight == 1)) or not np.all(weight.sum(axis=1) == 1):
        return None
    return weight.argmax(axis=1)


def fold_selections(graph: AttentionGraph) -> None:
    for node in list(graph.nodes()):
        if node.kind != "linear" or node.bias is not None:
            continue
        rows = selected_rows(node.weight)
        source = graph.inputs_of(node.name)["x"]
        producer = graph.node(source)
        if rows is None or producer.kind != "linear":
            continue
        node.weight = producer.weight[rows].copy()
        node.bias = None if producer.bias is None else producer.bias[rows].copy()
        graph.g.remove_edge(source, node.name)
        graph.g.add_edge(graph.inputs_of(source)["x"], node.name, port="x")
        if not users(graph, source):
            graph.g.remove_node(source)


def prune(graph: AttentionGraph) -> None:
    outputs = [n.name for n in graph.nodes() if n.kind == "output"]
    keep = set(outputs)
    for name in outputs:
        keep |= nx.ancestors(graph.g, name)
    graph.g.remove_nodes_from([n for n in list(graph.g.nodes) if n not in keep])


def simplify(graph: AttentionGraph) -> AttentionGraph:
    fold_norm_gains(graph)
    fold_selections(graph)
    prune(graph)
    return graph

