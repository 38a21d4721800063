"""Block structure and names of an imported graph, as the in-code builders give them.

Blocks are found from the residual stream: the attention of block ``i`` feeds a residual ``add``
whose other input (the *skip*) is the stream entering block ``i``, so the output of block ``i - 1``.
The last block ends at the next residual ``add`` after its attention residual, or at the norm that
follows it in post-norm blocks (BERT).  Within block ``i`` the attention is ``layer{i}.attn``, its
projections ``layer{i}.attn.q/k/v/o`` (``.q_rope``/``.k_rope`` for rotations), everything else
``layer{i}.<kind><n>``; nodes before the first block are ``embeddings.*`` and after the last ``final.*``.
"""

from __future__ import annotations

import networkx as nx

from compiler.attention import AttentionGraph

NORMS = ("layernorm", "rmsnorm")


def attentions(graph: AttentionGraph) -> list[str]:
    return [n.name for n in graph.nodes() if n.kind in ("attention",) or (n.kind == "matmul" and n.mode == "pv")]


def residual_after(graph: AttentionGraph, start: str, order: list[str]) -> tuple[str, str] | None:
    """The first ``add`` downstream of ``start`` with an input that is not: (add, skip input)."""
    below = nx.descendants(graph.g, start)
    for name in order:
        if name in below and graph.node(name).kind == "add":
            ins = graph.inputs_of(name)
            outside = [src for src in ins.values() if src != start and src not in below]
            if outside:
                return name, outside[0]
    return None


def block_ends(graph: AttentionGraph) -> tuple[list[str], str | None]:
    """Output node of each block and the skip input of the first block (the end of the embeddings)."""
    order = graph.order()
    atts = attentions(graph)
    ends, first_skip = [], None
    for i, att in enumerate(atts):
        found = residual_after(graph, att, order)
        if found is None:
            return [], None
        if i == 0:
            first_skip = found[1]
        else:
            ends.append(found[1])
    last = residual_after(graph, atts[-1], order) if atts else None
    if last is None:
        return [], None
    res = last[0]
    succ = list(graph.g.successors(res))
    post_norm = len(succ) == 1 and graph.node(succ[0]).kind in NORMS
    anchor = succ[0] if post_norm else res
    below = nx.descendants(graph.g, anchor)
    for name in order:
        if name in below and graph.node(name).kind == "add" and anchor in graph.inputs_of(name).values():
            nxt = list(graph.g.successors(name))
            ends.append(nxt[0] if post_norm and len(nxt) == 1 and graph.node(nxt[0]).kind in NORMS else name)
            return ends, first_skip
    return [], None


def layer_outputs(graph: AttentionGraph) -> list[str]:
    return block_ends(graph)[0]


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
    succ = list(graph.g.successors(att))
    if len(succ) == 1 and graph.node(succ[0]).kind == "linear":
        names[succ[0]] = f"{prefix}.o"
    names[att] = prefix
    return names


def rename(graph: AttentionGraph, input_name: str | None) -> AttentionGraph:
    """A copy of ``graph`` with builder-style names (see the module docstring)."""
    ends, first_skip = block_ends(graph)
    names: dict[str, str] = {}
    for i, att in enumerate(attentions(graph)):
        names.update(projection_names(graph, att, f"layer{i}.attn"))
    upto = [nx.ancestors(graph.g, end) | {end} for end in ends]
    prologue = (nx.ancestors(graph.g, first_skip) | {first_skip}) if first_skip else set()
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
        key = f"{prefix}.{node.kind}"
        counts[key] = counts.get(key, 0) + 1
        names[name] = key if counts[key] == 1 else f"{key}{counts[key]}"
    logits = graph.output_nodes().get("logits")
    if logits is not None:
        head = graph.inputs_of(logits)["x"]
        if graph.node(head).kind == "linear":
            names[head] = "lm_head"
    out = AttentionGraph(graph.name, meta=dict(graph.meta), encoder=graph.encoder)
    for name in graph.order():
        node = graph.node(name)
        node.name = names[name]
        out.add(node, **{port: names[src] for port, src in graph.inputs_of(name).items()})
    return out
