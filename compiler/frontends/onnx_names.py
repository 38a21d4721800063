"""Block structure and names of an imported graph, as the in-code builders give them.

Blocks are found from the residual stream.  The attention of block ``i`` feeds a residual ``add``
(``attn.residual``) whose other input, the *skip*, is the stream entering the block.  In post-norm
blocks (BERT) that add feeds one norm (``attn.norm``), the *anchor* of the MLP; otherwise the add
itself is the anchor and the norm before the projections is ``attn.norm``.  The next ``add`` fed by
the anchor is ``mlp.residual``; the block ends there, or at the norm after it in post-norm blocks
(``mlp.norm``).  Inside: ``attn.q/k/v/o`` (``q_rope``/``k_rope``), ``mlp.up``/``mlp.gate``/
``mlp.down``, ``mlp.act``, ``mlp.gated``.  Nodes before the first block are ``embeddings.*``, after
the last ``final.*``; a node no rule names is ``layer{i}.<kind><n>``.
"""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from compiler.attention import AttentionGraph

NORMS = ("layernorm", "rmsnorm")


@dataclass
class Block:
    attention: str
    residual: str
    skip: str
    anchor: str
    post_norm: bool
    mlp_residual: str = ""
    end: str = ""


def attentions(graph: AttentionGraph) -> list[str]:
    return [n.name for n in graph.nodes() if n.kind in ("attention",) or (n.kind == "matmul" and n.mode == "pv")]


def residual_after(graph: AttentionGraph, start: str, order: list[str]) -> tuple[str, str] | None:
    """The first ``add`` downstream of ``start`` with an input that is not: (add, skip input)."""
    below = nx.descendants(graph.g, start)
    for name in order:
        if name in below and graph.node(name).kind == "add":
            outside = [src for src in graph.inputs_of(name).values() if src != start and src not in below]
            if outside:
                return name, outside[0]
    return None


def sole_norm_after(graph: AttentionGraph, name: str) -> str | None:
    succ = list(graph.g.successors(name))
    return succ[0] if len(succ) == 1 and graph.node(succ[0]).kind in NORMS else None


def blocks(graph: AttentionGraph) -> list[Block]:
    """Every block's residual structure, or ``[]`` when the graph does not have it."""
    order, out = graph.order(), []
    for att in attentions(graph):
        found = residual_after(graph, att, order)
        if found is None:
            return []
        norm = sole_norm_after(graph, found[0])
        block = Block(att, found[0], found[1], norm or found[0], norm is not None)
        below = nx.descendants(graph.g, block.anchor)
        block.mlp_residual = next((n for n in order if n in below and graph.node(n).kind == "add"
                                   and block.anchor in graph.inputs_of(n).values()), "")
        if not block.mlp_residual:
            return []
        after = sole_norm_after(graph, block.mlp_residual) if block.post_norm else None
        block.end = after or block.mlp_residual
        out.append(block)
    return out


def layer_outputs(graph: AttentionGraph) -> list[str]:
    return [b.end for b in blocks(graph)]


def projection_names(graph: AttentionGraph, att: str, prefix: str) -> dict[str, str]:
    """Names of the q/k/v/o projections (and rotations) around the raw attention ending at ``att``."""
    names: dict[str, str] = {}
    chain = [att]
    node = graph.inputs_of(att)["a"]
    while graph.node(node).kind != "matmul":
        chain.append(node)
        node = graph.inputs_of(node)["x"]
    qk = node
    for n in chain[1:]:
        names[n] = f"{prefix}.{graph.node(n).kind}"
    names[qk] = f"{prefix}.scores"
    sources = {"q": graph.inputs_of(qk)["a"], "k": graph.inputs_of(qk)["b"], "v": graph.inputs_of(att)["b"]}
    for part, src in sources.items():
        if graph.node(src).kind == "rope":
            names[src] = f"{prefix}.{part}_rope"
            src = graph.inputs_of(src)["x"]
        if graph.node(src).kind == "linear" and src not in names:
            names[src] = f"{prefix}.{part}"
            before = graph.inputs_of(src)["x"]
            if graph.node(before).kind in NORMS and part == "q":
                names[f"pre-norm:{before}"] = before
    succ = list(graph.g.successors(att))
    if len(succ) == 1 and graph.node(succ[0]).kind == "linear":
        names[succ[0]] = f"{prefix}.o"
    names[att] = prefix
    return names


def mlp_names(graph: AttentionGraph, block: Block, prefix: str, taken: set[str]) -> dict[str, str]:
    """Names of the MLP between a block's anchor and its MLP residual."""
    names: dict[str, str] = {}
    inside = nx.descendants(graph.g, block.anchor) & nx.ancestors(graph.g, block.mlp_residual)
    inside -= taken
    for name in inside:
        kind = graph.node(name).kind
        users = [graph.node(u).kind for u in graph.g.successors(name)]
        if kind in NORMS and not block.post_norm:
            names[name] = f"{prefix}.mlp.norm"
        elif kind == "activation":
            names[name] = f"{prefix}.mlp.act"
        elif kind == "mul":
            names[name] = f"{prefix}.mlp.gated"
        elif kind == "linear" and block.mlp_residual in graph.g.successors(name):
            names[name] = f"{prefix}.mlp.down"
        elif kind == "linear":
            gated = any(graph.node(n).kind == "mul" for n in inside)
            names[name] = f"{prefix}.mlp.gate" if gated and users == ["activation"] else f"{prefix}.mlp.up"
    if len(set(names.values())) != len(names):  # an MLP of another shape: keep generic names
        return {}
    return names


def block_names(graph: AttentionGraph, found: list[Block]) -> dict[str, str]:
    names: dict[str, str] = {}
    for i, block in enumerate(found):
        prefix = f"layer{i}"
        projections = projection_names(graph, block.attention, f"{prefix}.attn")
        for key, value in projections.items():
            if key.startswith("pre-norm:"):
                if value != block.skip and not block.post_norm:
                    names[value] = f"{prefix}.attn.norm"
            else:
                names[key] = value
        names[block.residual] = f"{prefix}.attn.residual"
        if block.post_norm:
            names[block.anchor] = f"{prefix}.attn.norm"
            if block.end != block.mlp_residual:
                names[block.end] = f"{prefix}.mlp.norm"
        names[block.mlp_residual] = f"{prefix}.mlp.residual"
        names.update(mlp_names(graph, block, prefix, set(names)))
    if found and found[0].skip in graph.g and graph.node(found[0].skip).kind in NORMS:
        names[found[0].skip] = "embeddings.norm"
    return names


def rename(graph: AttentionGraph, input_name: str | None) -> AttentionGraph:
    """A copy of ``graph`` with builder-style names (see the module docstring)."""
    found = blocks(graph)
    names = block_names(graph, found)
    if not found:
        for i, att in enumerate(attentions(graph)):
            names.update({k: v for k, v in projection_names(graph, att, f"layer{i}.attn").items()
                          if not k.startswith("pre-norm:")})
    upto = [nx.ancestors(graph.g, b.end) | {b.end} for b in found]
    prologue = (nx.ancestors(graph.g, found[0].skip) | {found[0].skip}) if found else set()
    counts: dict[str, int] = {}
    for name in graph.order():
        node = graph.node(name)
        if name in names:
            continue
        if name == input_name or node.kind == "output":
            names[name] = "input" if name == input_name else name
            continue
        if name in prologue:
            prefix = "embeddings"
        else:
            block = next((i for i, group in enumerate(upto) if name in group), None)
            prefix = "final" if block is None else f"layer{block}"
        key = f"{prefix}.{'norm' if prefix == 'final' and node.kind in NORMS else node.kind}"
        counts[key] = counts.get(key, 0) + 1
        names[name] = key if counts[key] == 1 else f"{key}{counts[key]}"
    logits = graph.output_nodes().get("logits")
    if logits is not None and graph.node(graph.inputs_of(logits)["x"]).kind == "linear":
        names[graph.inputs_of(logits)["x"]] = "lm_head"
    streams = {b.residual: b.skip for b in found} | {b.mlp_residual: b.anchor for b in found}
    out = AttentionGraph(graph.name, meta=dict(graph.meta), encoder=graph.encoder)
    for name in graph.order():
        node = graph.node(name)
        node.name = names[name]
        inputs = graph.inputs_of(name)
        if name in streams and inputs.get("b") == streams[name]:  # the residual stream on port a
            inputs = {"a": inputs["b"], "b": inputs["a"]}
        out.add(node, **{port: names[src] for port, src in inputs.items()})
    return out
