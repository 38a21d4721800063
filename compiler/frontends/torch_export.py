"""PyTorch modules as attention graphs, through ``torch.export``.

``from_torch(module, example_inputs, kwargs=...)`` exports the module with
``torch.export.export(module, args, kwargs=kwargs, strict=False)`` and ``run_decompositions({})``
(which keeps linear, layer_norm, scaled_dot_product_attention, gelu, silu and softmax whole), then
walks the ATen graph from the outputs back to the token ids:

* nodes that do not depend on the token ids (masks, position ids, rotary tables) are constants:
  torch evaluates them on the example inputs, and, for those that depend on ``attention_mask``, a
  second time with every token real, which tells a causal mask from a padding mask;
* ``embedding(table, input_ids)`` becomes the input encoder, and position or token-type tables added
  to it join the encoder;
* every other op maps through :data:`compiler.frontends.torch_ops.HANDLERS` onto attention-graph
  nodes.  Attention (``scaled_dot_product_attention`` or matmul/softmax/matmul) is emitted as the raw
  ops of :mod:`compiler.attention.raw_nodes`, so exported, ONNX and hand-built graphs all reach the
  same ``match_attention`` pass.

Parameter names come from the export's graph signature (``model.layers.0.self_attn.q_proj``).  Ops
without a mapping are listed, with their node names, in one error.  torch is imported only here.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from compiler.attention import AttentionGraph
from compiler.attention import nodes as op
from compiler.attention import raw_nodes as raw
from compiler.encoder import InputEncoder
from compiler.errors import FrontendError, GraphError
from compiler.frontends.torch_ops import HANDLERS
from compiler.frontends.torch_simplify import simplify
from compiler.frontends.torch_values import Builder, Ids, RowStat, Scores, Tok


def import_torch():
    try:
        import torch
    except ImportError:
        raise FrontendError("from_torch needs PyTorch; install the torch extra (pip install 'tripartite[torch]')") \
            from None
    return torch


@dataclass
class MaskVal:
    """A value built from ``attention_mask``: on the example inputs and with every token real."""

    example: object
    all_real: object


def placeholder_root(node):
    """The placeholder a node is a reshaping of (following first arguments of layout ops), or ``None``."""
    while getattr(node, "op", None) == "call_function" and op_name(node.target) in ("view", "reshape", "_unsafe_view",
                                                                                 "clone", "alias", "contiguous"):
        node = node.args[0]
    return node.name if getattr(node, "op", None) == "placeholder" else None


@dataclass
class Unsupported:
    causes: tuple[str, ...]


def op_name(target) -> str:
    text = getattr(target, "__name__", str(target))
    name = str(target)
    if name.startswith("aten."):
        return name.split(".")[1]
    return text


class Program:
    """An exported program with the concrete value of every node on the example inputs."""

    def __init__(self, module, args: tuple, kwargs: dict):
        torch = import_torch()
        from torch.utils import _pytree as pytree

        try:
            exported = torch.export.export(module.eval(), args, kwargs=kwargs, strict=False)
            self.ep = exported.run_decompositions({})
        except Exception as exc:  # noqa: BLE001  (export raises many kinds; report the first line)
            reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise FrontendError(f"torch.export failed on {type(module).__name__}: {reason}") from exc
        sig = self.ep.graph_signature
        leaves = pytree.tree_flatten((args, kwargs))[0]
        users = [s for s in sig.input_specs if s.kind.name == "USER_INPUT"]
        self.user = {s.arg.name: leaf for s, leaf in zip(users, leaves)}
        self.params = {s.arg.name: s.target for s in sig.input_specs if s.kind.name != "USER_INPUT"}
        self.state = {**self.ep.state_dict, **self.ep.constants}
        self.graph = self.ep.graph_module.graph
        self.ids, self.mask = self.find_inputs()
        self.example = self.run(self.user)
        self.all_real = self.example
        if self.mask is not None:
            ones = dict(self.user, **{self.mask: torch.ones_like(self.user[self.mask])})
            self.all_real = self.run(ones)

    def find_inputs(self) -> tuple[str, str | None]:
        ids = {root for n in self.graph.nodes if n.op == "call_function" and op_name(n.target) == "embedding"
               for root in [placeholder_root(n.args[1])] if root in self.user}
        if len(ids) != 1:
            raise FrontendError(f"expected one token-id input read by an embedding, found {sorted(ids) or 'none'}; "
                                "pass input_ids as the example input")
        mask = "attention_mask" if "attention_mask" in self.user and self.user["attention_mask"] is not None else None
        return ids.pop(), mask

    def run(self, user: dict) -> dict:
        torch = import_torch()
        values = {}
        inputs = []
        for node in self.graph.nodes:
            if node.op != "placeholder":
                continue
            inputs.append(user[node.name] if node.name in user else self.state[self.params[node.name]])

        class Recorder(torch.fx.Interpreter):
            def run_node(self, n):
                out = super().run_node(n)
                values[n.name] = out
                return out

        with torch.no_grad():
            Recorder(self.ep.graph_module).run(*inputs)
        return values


class Mapper:
    """Walks the program's output cone and builds the attention graph (see the module docstring)."""

    def __init__(self, program: Program, name: str, pad_token_id: int):
        self.p = program
        ids = program.user[program.ids]
        if ids.dim() != 2:
            raise FrontendError(f"input {program.ids!r} must be (batch, tokens), got shape {tuple(ids.shape)}")
        B, T = ids.shape
        if T < 2:
            raise FrontendError(f"input {program.ids!r} holds {T} token(s) per sequence; give at least 2 so "
                                "position-dependent tables (rotary embeddings) can be told from constants")
        self.b = Builder(AttentionGraph(name=name, meta={"family": "torch", "layer_outputs": []}), B, T)
        self.pad = pad_token_id
        self.encoder: InputEncoder | None = None
        self.input_tok: Tok | None = None
        self.example_mask = None
        if program.mask is not None:
            self.example_mask = program.user[program.mask].bool().numpy()
        self.values: dict[str, object] = {}
        self.deps = self.dependencies()
        self.causal_seen = False

    def dependencies(self) -> dict[str, set]:
        deps = {}
        for node in self.p.graph.nodes:
            if node.op == "placeholder":
                roles = {self.p.ids: {"ids"}, self.p.mask: {"mask"}}
                deps[node.name] = roles.get(node.name, set())
            else:
                deps[node.name] = set().union(*(deps[a.name] for a in node.all_input_nodes)) if node.all_input_nodes \
                    else set()
        return deps

    # ---- the walk ------------------------------------------------------------------------------
    def value(self, node):
        if node.name in self.values:
            return self.values[node.name]
        deps = self.deps[node.name]
        if "ids" not in deps:
            example = self.p.example.get(node.name)
            value = MaskVal(example, self.p.all_real.get(node.name)) if "mask" in deps else example
        elif node.op == "placeholder":
            torch = import_torch()
            value = Ids(torch.arange(self.b.B * self.b.T).reshape(self.b.B, self.b.T))
        else:
            value = self.call(node)
        self.values[node.name] = value
        return value

    def call(self, node):
        args = self.resolve(node.args)
        kwargs = {k: v for k, v in zip(node.kwargs, self.resolve(tuple(node.kwargs.values())))}
        bad = [a for a in list(flat_values(args)) + list(kwargs.values()) if isinstance(a, Unsupported)]
        if bad:
            return Unsupported(tuple(sorted({c for u in bad for c in u.causes})))
        name = op_name(node.target)
        handler = HANDLERS.get(name)
        if handler is None:
            return Unsupported((f"{node.target} (node {node.name!r})",))
        return handler(self, node, args, kwargs)

    def resolve(self, args):
        out = []
        for a in args:
            if hasattr(a, "op") and hasattr(a, "name"):
                out.append(self.value(a))
            elif isinstance(a, (list, tuple)):
                out.append(type(a)(self.resolve(a)))
            else:
                out.append(a)
        return tuple(out)

    # ---- embeddings ----------------------------------------------------------------------------
    def embed(self, table, ids, node) -> Tok:
        if not isinstance(ids, Ids):
            raise FrontendError(f"{node.name}: embeds token features instead of token ids; not supported")
        if self.encoder is not None:
            raise FrontendError(f"{node.name}: the token ids are embedded twice; only one token embedding is supported")
        weight = table.detach().double().numpy()
        self.encoder = InputEncoder(token_embeddings=weight, pad_token_id=self.pad)
        self.b.add(op.Input("input", width=weight.shape[1]), weight.shape[1])
        self.input_tok = self.b.fresh("input", tuple(ids.rows.shape) + (weight.shape[1],), ids.rows)
        return self.input_tok

    def fold_embedding(self, tok, node) -> bool:
        """Add a position or token-type table read by an ``embedding`` to the encoder (True), or not."""
        if tok is not self.input_tok:
            return False
        for arg in node.args:
            source = getattr(arg, "name", None)
            fx = next((n for n in self.p.graph.nodes if n.name == source), None)
            if fx is None or fx.op != "call_function" or op_name(fx.target) != "embedding" or \
                    "ids" in self.deps[source]:
                continue
            table = self.p.example[fx.args[0].name].detach().double().numpy()
            index = np.broadcast_to(self.p.example[fx.args[1].name].numpy(), (self.b.B, self.b.T))
            T = self.b.T
            if np.all(index == index[:1, :1]) and index[0, 0] == 0 and self.encoder.token_type_embeddings is None:
                self.encoder.token_type_embeddings = table
                return True
            offset = index[0, 0]
            if np.array_equal(index, np.broadcast_to(np.arange(T) + offset, index.shape)) and \
                    self.encoder.position_embeddings is None:
                self.encoder.position_embeddings, self.encoder.position_offset = table, int(offset)
                return True
            raise FrontendError(f"{node.name}: an embedding added to the token embeddings is neither a position "
                                "table (ids 0..T-1 + offset) nor a token-type table (ids 0)")
        return False

    # ---- layers --------------------------------------------------------------------------------
    def param_name(self, arg, default: str) -> str:
        target = self.p.params.get(getattr(arg, "name", None))
        if not target:
            return default
        return target[: -len(".weight")] if target.endswith(".weight") else target

    def linear(self, x, weight, bias, node, weight_arg) -> Tok:
        from compiler.frontends.torch_ops import node_of

        if not hasattr(weight, "detach") or weight.dim() != 2:
            raise FrontendError(f"{node.name}: the weight of a linear layer must be a constant matrix")
        n, rows, shape = node_of(self, x, node.name)
        w = weight.detach().double().numpy()
        if w.shape[1] != shape[-1]:
            raise FrontendError(f"{node.name}: weight {w.shape} does not fit {shape[-1]} input features")
        b = None if bias is None else np.broadcast_to(bias.detach().double().numpy(), (w.shape[0],)).copy()
        out = self.b.add(op.Linear(self.param_name(weight_arg, node.name), weight=w, bias=b), w.shape[0], x=n)
        return self.b.fresh(out, shape[:-1] + (w.shape[0],), rows)

    def rms_norm(self, x, stat: RowStat, kind: str, node) -> Tok:
        import torch

        from compiler.frontends.torch_ops import node_of

        n, rows, shape = node_of(self, x, node.name)
        if stat.stage != kind or n != stat.node or not torch.equal(rows, stat.rows):
            raise FrontendError(f"{node.name}: a normalisation statistic is applied to another tensor; only "
                                "RMSNorm x * rsqrt(mean(x^2) + eps) is supported")
        width = self.b.widths[n]
        out = self.b.add(op.RMSNorm(node.name, weight=np.ones(width), eps=stat.eps), width, x=n)
        return self.b.fresh(out, shape, rows)

    # ---- attention -----------------------------------------------------------------------------
    def kv_heads(self, tok, where: str) -> tuple[Tok, int]:
        """``tok`` (B, H, T, D) with repeated heads removed, and the number of distinct heads."""
        H = tok.shape[1]
        for groups in [g for g in range(1, H + 1) if H % g == 0]:
            r = H // groups
            sliced = tok.map(lambda t, r=r: t[:, ::r])
            again = sliced.map(lambda t, r=r: t.repeat_interleave(r, dim=1))
            if all(same(a, b) for a, b in zip(flat_terms(tok), flat_terms(again))):
                return sliced, groups
        return tok, H

    def heads(self, value, where: str):
        from compiler.frontends.torch_ops import materialise
        from compiler.frontends.torch_values import Elem

        if isinstance(value, Elem):
            value = materialise(self, value, where)
        if not isinstance(value, Tok) or len(value.shape) != 4:
            raise FrontendError(f"{where}: attention inputs must be (batch, heads, tokens, head_dim) token tensors")
        return value

    def scores(self, q, k, node) -> Scores:
        q, k = self.heads(q, node.name), self.heads(k, node.name)
        B, H, T, D = q.shape
        if k.shape[2] != T or T != self.b.T:
            raise FrontendError(f"{node.name}: only self-attention over the whole sequence is supported")
        k, groups = self.kv_heads(k, node.name)
        if H % groups:
            raise FrontendError(f"{node.name}: {H} query heads do not share {groups} key heads evenly")
        qn, _ = q.canonical(self.b, node.name + ".q", token_axis=2)
        kn, _ = k.canonical(self.b, node.name + ".k", token_axis=2)
        name = self.b.add(raw.MatMul(node.name + ".qk", mode="qk", n_heads=H, n_kv_heads=groups, head_dim=D), 0,
                          a=qn, b=kn)
        return Scores(name, H, (B, H, T, T))

    def scale_scores(self, s: Scores, factor: float, node) -> Scores:
        name = self.b.add(raw.Scale(node.name + ".scale", factor=float(factor)), 0, x=s.node)
        return Scores(name, s.n_heads, s.shape)

    def causal(self, s: Scores, node) -> Scores:
        self.causal_seen = True
        return Scores(self.b.add(raw.CausalMask(node.name + ".causal"), 0, x=s.node), s.n_heads, s.shape)

    def mask_scores(self, s: Scores, mask, node, causal_flag: bool = False) -> Scores:
        padding, causal = self.analyse_mask(mask, node.name)
        if padding:
            s = Scores(self.b.add(raw.MaskAdd(node.name + ".mask"), 0, x=s.node), s.n_heads, s.shape)
        return self.causal(s, node) if causal or causal_flag else s

    def analyse_mask(self, mask, where: str) -> tuple[bool, bool]:
        """(padding, causal) of an attention mask, checked on the example and on an all-real batch."""
        B, T = self.b.B, self.b.T
        depends = isinstance(mask, MaskVal)
        full = allowed(mask.all_real if depends else mask, where)
        tril = np.tril(np.ones((T, T), dtype=bool))
        full = np.broadcast_to(full, (B, full.shape[1], T, T))
        if np.all(full):
            causal = False
        elif np.all(full == tril):
            causal = True
        else:
            raise FrontendError(f"{where}: the attention mask is neither causal nor full (a window or a prefix "
                                "mask); not supported")
        if depends and self.example_mask is not None:
            got = np.broadcast_to(allowed(mask.example, where), full.shape)
            want = full & self.example_mask[:, None, None, :]
            rows = self.example_mask[:, None, :, None]
            if not np.array_equal(np.where(rows, got, True), np.where(rows, want, True)):
                raise FrontendError(f"{where}: the attention mask does not follow attention_mask as a padding mask")
        return depends, causal

    def softmax_scores(self, s: Scores, node) -> Scores:
        if s.stage != "scores":
            raise FrontendError(f"{node.name}: softmax applied twice to attention scores")
        return Scores(self.b.add(raw.Softmax(node.name + ".softmax"), 0, x=s.node), s.n_heads, s.shape, "probs")

    def attend(self, p: Scores, v, node) -> Tok:
        torch = import_torch()
        if p.stage != "probs":
            raise FrontendError(f"{node.name}: attention scores multiply values before a softmax")
        v = self.heads(v, node.name)
        v, groups = self.kv_heads(v, node.name)
        B, _, T, Dv = v.shape
        H = p.n_heads
        vn, _ = v.canonical(self.b, node.name + ".v", token_axis=2)
        width = H * Dv
        name = self.b.add(raw.MatMul(node.name, mode="pv", n_heads=H, n_kv_heads=groups, head_dim=Dv), width,
                          a=p.node, b=vn)
        b, h, t, d = torch.meshgrid(torch.arange(B), torch.arange(H), torch.arange(T), torch.arange(Dv), indexing="ij")
        codes = (b * T + t) * width + h * Dv + d
        return Tok(name, width, [(codes, torch.ones(codes.shape, dtype=torch.float64))])

    # ---- outputs -------------------------------------------------------------------------------
    def outputs(self, chosen: Sequence[int] | None) -> None:
        from compiler.frontends.torch_ops import node_of

        returned = [a for a in self.p.graph.output_node().args[0]]
        picks = range(len(returned)) if chosen is None else chosen
        results, causes = [], []
        for i in picks:
            if not 0 <= i < len(returned):
                raise FrontendError(f"outputs: index {i} is out of range; the module returns {len(returned)} tensors")
            value = self.value(returned[i]) if returned[i] is not None else None
            if isinstance(value, Unsupported):
                causes.extend(f"output {i}: {c}" for c in value.causes)
            results.append((i, value))
        if causes:
            raise FrontendError("unsupported ATen ops: " + "; ".join(causes) +
                                " (pick other outputs with outputs=[...] or change the module)")
        roles = set()
        for i, value in results:
            if value is None or not hasattr(value, "shape") or isinstance(value, (Scores, RowStat)) or \
                    self.deps[returned[i].name].isdisjoint({"ids"}):
                raise FrontendError(f"output {i} ({returned[i].name}) is not a per-token tensor; pick outputs=[...]")
            n, _, shape = node_of(self, value, f"output {i}")
            if len(shape) != 3:
                raise FrontendError(f"output {i} ({returned[i].name}) has shape {shape}, not (batch, tokens, width)")
            node = self.b.graph.node(n)
            vocab = self.encoder.vocab_size if self.encoder is not None else -1
            role = "logits" if node.kind == "linear" and node.weight.shape[0] == vocab else "hidden"
            role = role if role not in roles else f"output{i}"
            roles.add(role)
            self.b.graph.add(op.Output(f"output.{role}", role=role), x=n)


def allowed(mask, where: str) -> np.ndarray:
    """Where a boolean or additive mask lets attention through (additive: 0 or <= -1e4)."""
    values = mask.detach().numpy() if hasattr(mask, "detach") else np.asarray(mask)
    if values.dtype == bool:
        return values
    if not np.all((values == 0) | (values <= -1e4)):
        raise FrontendError(f"{where}: the attention mask adds values other than 0 and -inf (a bias such as "
                            "ALiBi); not supported")
    return values == 0


def flat_values(args):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from flat_values(a)
        else:
            yield a


def flat_terms(tok: Tok):
    for codes, coefs in tok.terms:
        yield codes
        yield coefs
    if tok.bias is not None:
        yield tok.bias


def same(a, b) -> bool:
    import torch

    return a.shape == b.shape and bool(torch.equal(a, b))


def tokenizer_text(tokenizer) -> str | None:
    """``tokenizer.json`` text from a path, JSON text, a ``tokenizers.Tokenizer`` or a transformers tokenizer."""
    if tokenizer is None:
        return None
    backend = getattr(tokenizer, "backend_tokenizer", tokenizer)
    if hasattr(backend, "to_str"):
        return backend.to_str()
    from pathlib import Path

    text = str(tokenizer)
    if text.lstrip().startswith("{"):
        return text
    path = Path(text)
    if not path.is_file():
        raise FrontendError(f"{path}: tokenizer file not found; give a tokenizer.json path or a tokenizer object")
    return path.read_text(encoding="utf-8")


def from_torch(module, example_inputs=(), kwargs: dict | None = None, outputs: Sequence[int] | None = None,
               tokenizer=None, name: str | None = None) -> AttentionGraph:
    """The attention graph of a PyTorch ``module`` traced on ``example_inputs`` (and ``kwargs``).

    The example must hold the token ids (an integer (batch, tokens) tensor the module embeds) and may
    hold ``attention_mask``; at least two tokens, so rotary tables can be read.  ``outputs`` picks
    which returned tensors become graph outputs (default: all); a linear output as wide as the
    vocabulary is ``logits``, the first other one ``hidden``.  ``tokenizer`` (a path to
    ``tokenizer.json``, its text, or a tokenizer object) travels with the graph so it can take text.
    A module whose forward takes ``use_cache`` is traced with ``use_cache=False`` unless told otherwise.
    """
    torch = import_torch()
    args = tuple(example_inputs) if isinstance(example_inputs, (list, tuple)) else (example_inputs,)
    kwargs = dict(kwargs or {})
    if "use_cache" in inspect.signature(module.forward).parameters:
        kwargs.setdefault("use_cache", False)  # a key/value cache is runtime state, not part of the graph
    program = Program(module, args, kwargs)
    config = getattr(module, "config", None)
    pad = getattr(config, "pad_token_id", None)
    mapper = Mapper(program, name or type(module).__name__, pad if isinstance(pad, int) else 0)
    with torch.no_grad():
        mapper.outputs(outputs)
    graph = mapper.b.graph
    graph.encoder = mapper.encoder
    if graph.encoder is not None:
        graph.encoder.tokenizer_json = tokenizer_text(tokenizer)
    graph.meta.update({"source": f"torch:{type(module).__name__}", "pooling": "last" if mapper.causal_seen else "mean"})
    try:
        simplify(graph)
        graph.validate()
    except GraphError as exc:
        raise FrontendError(f"{type(module).__name__}: the exported program does not form a valid graph: {exc}") \
            from exc
    return graph
