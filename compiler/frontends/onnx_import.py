"""The ONNX front end: an exported transformer (``.onnx``) to an attention graph.

1. :mod:`~compiler.frontends.onnx_fold` loads the file (external ``.data`` included), fixes the input to
   one sequence of ``T0`` tokens with the padding mask all ones, and folds the shape arithmetic and
   mask builders with onnxscript's optimizer.
2. Every op type left must have a handler (:mod:`~compiler.frontends.onnx_patterns`,
   :mod:`~compiler.frontends.onnx_fused`); otherwise one error lists each unsupported node.
3. The handlers walk the graph in order and build attention-graph nodes; weights are taken by their
   place in the graph, never by name.  Attention arrives as raw ops for the ``match_attention`` pass.
4. Graph outputs get roles: per-token logits (a linear map onto the vocabulary), hidden states, and
   pooled sentence embeddings (computed by the runtime from ``hidden``); other outputs are ignored.
5. Nodes are named as the in-code builders name them (``layer{i}.attn``, ``layer{i}.attn.q`` ...)
   and ``meta['layer_outputs']`` lists each block's output, for verify's per-layer tables.

The tokenizer comes from ``tokenizer`` (a ``tokenizer.json`` file or a directory holding one) or from
the ``tokenizer.json`` beside the ONNX file.
"""

from __future__ import annotations

from pathlib import Path

from compiler.attention import AttentionGraph
from compiler.attention import nodes as op
from compiler.errors import FrontendError, GraphError
from compiler.frontends import onnx_fused  # noqa: F401  (registers the fused onnxruntime ops)
from compiler.frontends.onnx_fold import fold
from compiler.frontends.onnx_names import layer_outputs, rename
from compiler.frontends.onnx_patterns import HANDLERS, supported
from compiler.frontends.onnx_trace import Tracer, describe
from compiler.frontends.onnx_values import Emb, Pooled, Vec
from compiler.frontends.tokenizer_file import read_tokenizer

NORMALISING = {"ReduceL2", "LpNormalization", "Sqrt", "ReduceSumSquare"}


def check_ops(folded) -> None:
    """One error listing every node whose op type has no handler."""
    missing = [n for n in folded.model.graph if not supported(n)]
    if missing:
        listed = ", ".join(f"{(n.domain + '.') if n.domain else ''}{n.op_type} ({n.name})" for n in missing[:20])
        more = f" and {len(missing) - 20} more" if len(missing) > 20 else ""
        raise FrontendError(f"{folded.path}: unsupported ONNX op types: {listed}{more}")


def trace(tr: Tracer) -> None:
    tr.model.graph.sort()
    for node in tr.model.graph:
        try:
            result = HANDLERS[(node.domain or "", node.op_type)](tr, node)
        except GraphError as exc:
            raise tr.error(node, f"does not map onto a valid node: {exc}") from None
        except (ValueError, IndexError, KeyError, TypeError, ZeroDivisionError) as exc:
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise tr.error(node, f"could not be mapped onto the attention graph ({reason})") from None
        results = result if isinstance(result, list) else [result]
        for value, d in zip(node.outputs, results):
            if d is not None and value is not None:
                tr.values[value.name] = d


def output_roles(tr: Tracer) -> dict:
    """Role -> (ONNX output name, Vec or Pooled); later outputs of a role already taken are ignored."""
    roles: dict = {}
    vocab = tr.encoder.vocab_size if tr.encoder is not None else -1
    for value in tr.model.graph.outputs:
        d = tr.values.get(value.name)
        if isinstance(d, Pooled):
            roles.setdefault("embeddings", (value.name, d))
        elif isinstance(d, (Vec, Emb)) and (isinstance(d, Emb) or d.flat()):
            vec = tr.flat(d, value.producer() or value)
            node = tr.graph.node(vec.node)
            role = "logits" if node.kind == "linear" and node.weight.shape[0] == vocab else "hidden"
            roles.setdefault(role, (value.name, vec))
    return roles


def add_outputs(tr: Tracer, roles: dict) -> dict:
    """Output nodes for hidden and logits; returns ONNX output name -> role."""
    if "hidden" not in roles and "embeddings" in roles:
        roles["hidden"] = (None, tr.flat(roles["embeddings"][1].source, tr.model.graph.outputs[0]))
    if "hidden" not in roles and "logits" in roles:
        head = roles["logits"][1].node
        roles["hidden"] = (None, Vec(tr.graph.inputs_of(head)["x"], ("1", "t", "f"), ()))
    if "hidden" not in roles:
        found = ", ".join(f"{v.name} ({describe(tr.values.get(v.name))})" for v in tr.model.graph.outputs)
        raise FrontendError(f"{tr.where}: no graph output holds per-token hidden states or logits (outputs: {found})")
    for role in ("hidden", "logits"):
        if role in roles:
            vec = roles[role][1]
            tr.add(op.Output(f"output.{role}", role=role), x=tr.plain(vec, tr.model.graph.outputs[0]))
    return {name: role for role, (name, _) in roles.items() if name is not None}


def prune(graph: AttentionGraph) -> None:
    """Remove nodes no output depends on (projections replaced by their slices, unused branches)."""
    import networkx as nx

    keep = set()
    for name in graph.output_nodes().values():
        keep |= nx.ancestors(graph.g, name) | {name}
    graph.g.remove_nodes_from([n for n in list(graph.g.nodes) if n not in keep])


def tokenizer_for(path: Path, tokenizer) -> str | None:
    """The tokenizer document: ``tokenizer`` (file or directory) or ``tokenizer.json`` beside ``path``."""
    if tokenizer is not None:
        return read_tokenizer(tokenizer)
    beside = path.parent / "tokenizer.json"
    return read_tokenizer(beside) if beside.is_file() else None


def pooling_meta(roles: dict, causal: bool) -> dict:
    if "embeddings" in roles:
        ops = roles["embeddings"][1].ops
        return {"pooling": "cls" if "Gather" in ops else "mean", "normalize": bool(ops & NORMALISING)}
    return {"pooling": "last" if causal else "mean"}


def load_onnx(path: str | Path, tokenizer=None) -> AttentionGraph:
    """Import the ONNX file ``path`` as an attention graph (see the module docstring)."""
    path = Path(path)
    folded = fold(path)
    check_ops(folded)
    tr = Tracer(folded, had_mask="mask" in folded.roles.values())
    trace(tr)
    roles = output_roles(tr)
    names = add_outputs(tr, roles)
    graph = tr.graph
    prune(graph)
    if not any(n.kind == "softmax" for n in graph.nodes()):
        raise FrontendError(f"{path}: no attention found (no Softmax over attention scores); not a transformer")
    graph = rename(graph, tr.input_name)
    causal = any(n.kind == "causal_mask" for n in graph.nodes())
    graph.encoder = tr.encoder
    if graph.encoder is not None:
        graph.encoder.tokenizer_json = tokenizer_for(path, tokenizer)
    graph.name = path.stem
    graph.meta.update({"family": "onnx", "model_type": "onnx", "source": str(path.resolve()),
                       "layer_outputs": layer_outputs(graph), "onnx_outputs": names,
                       "onnx_inputs": dict(folded.roles)})
    graph.meta.update(pooling_meta(roles, causal))
    try:
        graph.validate()
    except GraphError as exc:
        raise FrontendError(f"{path}: the imported graph is inconsistent: {exc}") from exc
    return graph
