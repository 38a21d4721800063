"""Joint tuning of every layer's maps on the model's final outputs, the model's weights frozen.

The gradient must pass through the whole network (a map of layer 0 changes the hidden states every
later layer sees), so this step runs the attention graph in torch, each node kind by the same
equations as its :meth:`evaluate`, with every attention node replaced by its learned circuit
(:func:`compiler.distill.hedgehog.circuit_scores`).  Loss: encoders ``mean |h - h_ref|^2 / var(h_ref)
+ mean (1 - cos(e, e_ref))`` over the final hidden states h and the mean-pooled embeddings e;
models with logits the mean ``KL(p_ref || p)`` of the next-token distributions.  Adam, full batch,
deterministic for a seed (torch CPU kernels are deterministic here).  Needs torch; the layer-wise maps
are kept when torch is missing.
"""

from __future__ import annotations

import numpy as np

from compiler.distill.maps import ARRAYS, FeatureMaps, LayerMaps
from compiler.errors import InputError


def torch_ops(torch):
    """Torch versions of the attention-graph node kinds, keyed by kind."""
    F = torch.nn.functional

    def linear(op, a, ctx):
        y = a["x"] @ ctx.const(op.weight).T
        return y if op.bias is None else y + ctx.const(op.bias)

    def layernorm(op, a, ctx):
        b = None if op.bias is None else ctx.const(op.bias)
        return F.layer_norm(a["x"], (op.weight.shape[0],), ctx.const(op.weight), b, op.eps)

    def rmsnorm(op, a, ctx):
        x = a["x"]
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + op.eps) * ctx.const(op.weight)

    def act(op, a, ctx):
        x = a["x"]
        return {"gelu_erf": lambda: F.gelu(x), "gelu_tanh": lambda: F.gelu(x, approximate="tanh"),
                "silu": lambda: F.silu(x), "relu": lambda: F.relu(x)}[op.function]()

    def rope(op, a, ctx):
        from compiler.attention.nodes import rope_tables

        x = a["x"]
        B, T, _ = x.shape
        cos, sin = (ctx.const(t)[None, :, None, :] for t in rope_tables(np.arange(T), op.rotary_dim, op.base,
                                                                         ctx.dtype))
        xh = x.reshape(B, T, op.n_heads, op.head_dim)
        r, rest = xh[..., :op.rotary_dim], xh[..., op.rotary_dim:]
        if op.pairing == "half":
            p, q = r[..., :op.rotary_dim // 2], r[..., op.rotary_dim // 2:]
            rot = torch.cat([p * cos - q * sin, q * cos + p * sin], -1)
        else:
            p, q = r[..., 0::2], r[..., 1::2]
            rot = torch.stack([p * cos - q * sin, q * cos + p * sin], -1).reshape(r.shape)
        return torch.cat([rot, rest], -1).reshape(B, T, -1)

    return {"linear": linear, "layernorm": layernorm, "rmsnorm": rmsnorm, "activation": act, "rope": rope,
            "add": lambda op, a, ctx: a["a"] + a["b"], "mul": lambda op, a, ctx: a["a"] * a["b"],
            "output": lambda op, a, ctx: a["x"], "attention": learned_attention(torch)}


def hedgehog_t(torch, x, w, b):
    z = x @ w[None] + b[None, :, None, :]
    return torch.cat([torch.softmax(z, -1), torch.softmax(-z, -1)], -1)


def learned_attention(torch):
    def attention(op, a, ctx):
        from compiler.distill.hedgehog import window_slots
        from compiler.distill.surrogate import attention_visibility

        B, T, _ = a["q"].shape
        H, G = op.n_heads, op.n_kv_heads
        q = a["q"].reshape(B, T, H, op.head_dim).transpose(1, 2)
        k = a["k"].reshape(B, T, G, op.head_dim).transpose(1, 2)
        v = a["v"].reshape(B, T, G, op.v_head_dim).transpose(1, 2)
        k, v = k.repeat_interleave(H // G, 1), v.repeat_interleave(H // G, 1)
        p = ctx.params[op.name]
        fq = hedgehog_t(torch, q, p["q_weight"], p["q_bias"])
        fk = hedgehog_t(torch, k, p["k_weight"].repeat_interleave(H // G, 0), p["k_bias"].repeat_interleave(H // G, 0))
        K = fq @ fk.transpose(-1, -2)
        vis = attention_visibility(op, ctx.mask)
        win = torch.as_tensor(window_slots(vis, ctx.window, op.causal, ctx.sinks))
        vis = torch.as_tensor(vis)
        if ctx.window or ctx.sinks:
            lg = (q @ k.transpose(-1, -2)) * op.scale
            s = torch.where(win, lg, -torch.inf).amax(-1, keepdim=True).detach()
            s = torch.where(torch.isfinite(s), s, torch.zeros_like(s))
            exact = torch.exp(torch.where(win, lg - s, -torch.inf))
            feat = K * torch.exp(p["log_gain"])[None, :, None, None] * torch.exp(-s)
            S = torch.where(win, exact, torch.where(vis, feat, torch.zeros_like(feat)))
        else:
            S = torch.where(vis, K, torch.zeros_like(K))
        Z = S.sum(-1, keepdim=True)
        y = (S / torch.where(Z > 0, Z, torch.ones_like(Z))) @ v
        return y.transpose(1, 2).reshape(B, T, -1)

    return attention


class Context:
    """What the torch forward needs besides the inputs: the padding mask, the maps as tensors, the window
    and the dtype of the model's constants (float64 reproduces numpy; float32 is about twice as fast);
    ``sinks``: each query's first and last visible keys are exact slots too (``window_slots``)."""

    def __init__(self, torch, mask, params, window, dtype=np.float64, sinks=False):
        self.torch, self.mask, self.params, self.window, self.dtype = torch, mask, params, window, dtype
        self.sinks = sinks
        self.cache = {}

    def const(self, array):
        key = id(array)
        if key not in self.cache:
            self.cache[key] = (self.torch.as_tensor(np.asarray(array, self.dtype)), array)
        return self.cache[key][0]


def forward(torch, graph, x, ctx):
    ops = torch_ops(torch)
    values = {graph.input_node(): torch.as_tensor(x)}
    for name in graph.order():
        if name in values:
            continue
        op = graph.node(name)
        if op.kind not in ops:
            raise InputError(f"joint tuning: node {name!r} of kind {op.kind!r} has no torch form")
        values[name] = ops[op.kind](op, {p: values[s] for p, s in graph.inputs_of(name).items()}, ctx)
    return {role: values[name] for role, name in graph.output_nodes().items()}


def loss_fn(torch, out, ref, mask_t):
    if "logits" in out:
        logp = torch.log_softmax(out["logits"], -1)
        pref = torch.softmax(ref["logits"], -1)
        kl = (pref * (torch.log(pref.clamp_min(1e-300)) - logp)).sum(-1)
        return (kl * mask_t).sum() / mask_t.sum()
    h, r = out["hidden"], ref["hidden"]
    m = mask_t[..., None]
    var = ((r * m) ** 2).sum() / (m.sum() * r.shape[-1])
    mse = (((h - r) * m) ** 2).sum() / (m.sum() * r.shape[-1]) / var
    e = (h * m).sum(1) / m.sum(1)
    er = (r * m).sum(1) / m.sum(1)
    cos = (e * er).sum(-1) / (e.norm(dim=-1) * er.norm(dim=-1))
    return mse + (1 - cos).mean()


def chunked(x, mask, size: int):
    """Texts sorted by length in chunks of ``size``, each trimmed to its longest text."""
    lengths = mask.sum(1)
    order = np.argsort(lengths, kind="stable")
    for start in range(0, len(order), size):
        rows = order[start:start + size]
        T = max(int(lengths[rows].max()), 1)
        yield x[rows, :T], mask[rows, :T]


def joint_tune(graph, x, mask, maps: FeatureMaps, steps: int, lr: float = 3e-3, seed: int = 0,
               progress=None, chunk: int = 4, dtype=np.float64, stochastic: bool = False,
               sinks: bool = False) -> FeatureMaps:
    """Adam on every map of ``maps`` against the float model's outputs on ``x``/``mask``; the
    gradient of the mean chunk loss is accumulated over chunks of ``chunk`` texts (``stochastic``: each
    step takes one chunk, in a seeded order that visits every chunk once per pass).  The learning rate
    falls on a half cosine from ``lr`` to ``lr / 10``.  ``dtype`` float32 halves the time (the
    reference outputs are computed in float64 either way).  ``sinks``: the circuit's exact slots include
    each query's first and last visible keys (:func:`compiler.distill.hedgehog.sink_slots`).
    ``progress(name, step, steps)`` after each step; the losses are kept in ``report["joint"]["history"]``."""
    try:
        import torch
    except ImportError:
        raise InputError("joint tuning needs torch (pip install torch); the layer-wise maps need nothing more") \
            from None
    from compiler.distill.surrogate import run_surrogate

    torch.manual_seed(seed)
    tdtype = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
    chunks = []
    for cx, cm in chunked(x, mask, chunk):
        reference = run_surrogate(graph, cx, cm, None)
        chunks.append((cx.astype(dtype), cm, {role: torch.as_tensor(reference[role], dtype=tdtype)
                                              for role in graph.output_nodes()},
                       torch.as_tensor(cm, dtype=tdtype)))
    params = {name: {k: torch.tensor(v, dtype=tdtype, requires_grad=k != "log_gain" or maps.window > 0 or sinks)
                     for k, v in layer.as_dict().items()} for name, layer in maps.layers.items()}
    leaves = [t for p in params.values() for t in p.values() if t.requires_grad]
    opt = torch.optim.Adam(leaves, lr=lr)
    history, rng = [], np.random.default_rng(seed)
    order = []
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * (0.55 + 0.45 * np.cos(np.pi * step / max(steps, 1)))
        if stochastic and not order:
            order = list(rng.permutation(len(chunks)))
        batch = [chunks[order.pop()]] if stochastic else chunks
        opt.zero_grad()
        total = 0.0
        for cx, cm, ref, mask_t in batch:
            ctx = Context(torch, cm, params, maps.window, dtype, sinks)
            loss = loss_fn(torch, forward(torch, graph, cx, ctx), ref, mask_t)
            (loss / len(batch)).backward()
            total += float(loss.detach()) / len(batch)
        opt.step()
        history.append(total)
        if progress is not None:
            progress("joint", step + 1, steps)
    tuned = FeatureMaps(layers={name: LayerMaps(**{k: p[k].detach().numpy().copy() for k in ARRAYS})
                                for name, p in params.items()},
                        window=maps.window, source=maps.source, report=dict(maps.report))
    tuned.report["joint"] = {"steps": steps, "loss_first": history[0] if history else None,
                             "loss_last": history[-1] if history else None, "texts": int(len(x)),
                             "dtype": np.dtype(dtype).name,
                             "history": [round(v, 6) for v in history]}
    return tuned
