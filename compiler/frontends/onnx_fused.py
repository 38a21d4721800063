"""Fused ops: onnxruntime's ``com.microsoft`` transformer ops and the opset-23 ``Attention``,
``RMSNormalization`` and ``RotaryEmbedding``, each mapped onto the same nodes as its unfused parts.

* ``Attention`` (opset 23, 4-D or 3-D q/k/v) and ``com.microsoft.Attention`` (one packed q/k/v
  projection) become raw attention ops, so ``match_attention`` treats them like any other export;
* ``RotaryEmbedding`` becomes a Rope node whose base is read from its cos table (the whole table
  is checked against ``cos(p base^(-2i/d))``);
* ``SkipLayerNormalization`` / ``SkipSimplifiedLayerNormalization`` a residual add and a norm,
  ``EmbedLayerNormalization`` the input encoder and a layer norm, ``BiasGelu`` / ``FastGelu`` a
  bias folded into the preceding linear map and a GELU.
"""

from __future__ import annotations

import math

import numpy as np

from compiler.attention import nodes as op
from compiler.attention import raw_nodes as raw
from compiler.frontends.onnx_patterns import (
    activation,
    apply_mask,
    attr,
    fold_bias,
    handles,
    inputs,
    layer_norm,
    linear,
    rms_norm,
    scale_scores,
)
from compiler.frontends.onnx_recognize import round_base
from compiler.frontends.onnx_trace import Tracer, describe
from compiler.frontends.onnx_values import Const, Emb, Ids, Scores, Vec

MS = "com.microsoft"


def heads_layout(tr: Tracer, node, x, heads: int | None) -> tuple[str, int, int, int]:
    """(node name, visible heads, stored heads, head_dim) of q, k or v given as (1,h,t,d) or (1,t,f)."""
    if isinstance(x, Emb):
        x = tr.flat(x, node)
    if not isinstance(x, Vec):
        raise tr.error(node, f"takes {describe(x)} as queries, keys or values")
    labels = [a for a in x.axes if a != "1"]
    sizes = x.feature_sizes()
    if labels == ["h", "t", "d"]:
        return x.node, sizes["h"], sizes["h"] // x.rep, sizes["d"]
    if x.flat() and heads:
        return tr.plain(x, node), heads, heads, x.width // heads
    if labels == ["t", "f"] and heads and x.rep > 1 and x.scale == 1.0:
        return x.node, heads, heads // x.rep, x.head_dim
    raise tr.error(node, f"takes queries, keys or values laid out as {x.axes}; expected (batch, heads, tokens, "
                         "dim) or (batch, tokens, features) with a head count")


def raw_attention(tr: Tracer, node, q, k, v, scale: float, causal: bool, mask=None) -> str:
    """Raw ops of softmax attention; returns the pv matmul's name (its output is (heads * v_dim) wide)."""
    qn, hq, _, dq = q
    kn, hk, kv, dk = k
    vn, hv, vkv, dv = v
    if hq != hk or hq != hv or dq != dk or kv != vkv:
        raise tr.error(node, f"has {hq} query heads of {dq}, {hk} key heads of {dk} and {hv} value heads; "
                             "they do not line up")
    name = tr.add(raw.MatMul(tr.fresh("scores"), mode="qk", n_heads=hq, n_kv_heads=kv, head_dim=dq), a=qn, b=kn)
    s = Scores(name, ("1", "h", "t", "s"), (1, hq, tr.tokens, tr.tokens))
    s = scale_scores(tr, s, scale)
    if mask is not None:
        boolean = np.asarray(mask.value).dtype == bool
        s = apply_mask(tr, node, s, mask, additive=not boolean, fill=-math.inf)
    if causal and not s.causal:
        s = Scores(tr.add(raw.CausalMask(tr.fresh("causal")), x=s.node), s.axes, s.sizes, s.padding, True)
    x = s.node
    if tr.had_mask:
        x = tr.add(raw.MaskAdd(tr.fresh("padding")), x=x)
    soft = tr.add(raw.Softmax(tr.fresh("softmax")), x=x)
    return tr.add(raw.MatMul(tr.fresh("attention"), mode="pv", n_heads=hq, n_kv_heads=kv, head_dim=dv),
                  a=soft, b=vn)


@handles("Attention")
def attention(tr: Tracer, node):
    """Opset 23: ``Attention(Q, K, V, attn_mask)`` with ``scale`` (default 1/sqrt(d)) and ``is_causal``."""
    args = inputs(tr, node) + [None] * 6
    q, k, v, mask, past_k, past_v = args[:6]
    if past_k is not None or past_v is not None or attr(node, "softcap", 0.0):
        raise tr.error(node, "uses a key/value cache or a softcap; export without them")
    qh, kh = attr(node, "q_num_heads"), attr(node, "kv_num_heads")
    lq, lk, lv = heads_layout(tr, node, q, qh), heads_layout(tr, node, k, kh), heads_layout(tr, node, v, kh)
    scale = attr(node, "scale") or 1.0 / math.sqrt(lq[3])
    scale *= (q.scale if isinstance(q, Vec) else 1.0) * (k.scale if isinstance(k, Vec) else 1.0)
    if isinstance(v, Vec) and v.scale != 1.0:
        raise tr.error(node, "takes scaled values; fold the scale into the value projection")
    if mask is not None and not isinstance(mask, Const):
        raise tr.error(node, f"takes {describe(mask)} as its mask; expected a constant")
    pv = raw_attention(tr, node, lq, lk, lv, scale, bool(attr(node, "is_causal", 0)), mask)
    q = tr.flat(q, node) if isinstance(q, Emb) else q
    if q.flat():
        out = Vec(pv, q.axes, q.sizes[:-1] + (lq[1] * lv[3],))
    else:
        out = Vec(pv, ("1", "h", "t", "d"), (1, lq[1], tr.tokens, lv[3]))
    return [out] + [None] * (len(node.outputs) - 1)


@handles("Attention", domain=MS)
def ms_attention(tr: Tracer, node):
    """onnxruntime's ``Attention(input, weights, bias, mask_index, ...)``: packed q/k/v projections."""
    x, w, b = (tr.get(v) for v in node.inputs[:3])
    if not isinstance(w, Const) or (b is not None and not isinstance(b, Const)):
        raise tr.error(node, "has weights that are not constants")
    if len(node.inputs) > 4 and node.inputs[4] is not None:
        raise tr.error(node, "uses a key/value cache; export without it")
    if attr(node, "do_rotary", 0):
        raise tr.error(node, "applies rotary embeddings inside attention; not supported")
    heads = int(attr(node, "num_heads"))
    weight, bias = np.asarray(w.value, np.float64), None if b is None else np.asarray(b.value, np.float64)
    sizes = attr(node, "qkv_hidden_sizes") or [weight.shape[1] // 3] * 3
    cuts = np.cumsum([0] + list(sizes))
    parts = [linear(tr, node, x, weight[:, cuts[i]:cuts[i + 1]], None if bias is None else bias[cuts[i]:cuts[i + 1]])
             for i in range(3)]
    lq, lk, lv = (heads_layout(tr, node, p, heads) for p in parts)
    scale = attr(node, "scale") or 1.0 / math.sqrt(lq[3])
    pv = raw_attention(tr, node, lq, lk, lv, scale, bool(attr(node, "unidirectional", 0)))
    out = Vec(pv, parts[0].axes, parts[0].sizes[:-1] + (heads * lv[3],))
    return [out] + [None] * (len(node.outputs) - 1)


@handles("MultiHeadAttention", domain=MS)
def ms_multi_head_attention(tr: Tracer, node):
    """onnxruntime's ``MultiHeadAttention(query, key, value, bias, key_padding_mask, attention_bias, ...)``."""
    values = list(node.inputs) + [None] * 10
    if any(v is not None for v in values[6:10]):
        raise tr.error(node, "uses a key/value cache; export without it")
    q, k, v = (tr.get(x) for x in values[:3])
    if k is None or v is None:
        raise tr.error(node, "takes packed query/key/value; only separate query, key and value are supported")
    heads = int(attr(node, "num_heads"))
    bias = tr.get(values[3]) if values[3] is not None else None
    if bias is not None:
        parts = np.split(np.asarray(bias.value, np.float64).ravel(), 3)
        for value, d, b in zip(values[:3], (q, k, v), parts):
            if fold_bias(tr, node, d, Const(b), value) is None:
                raise tr.error(node, "adds a bias that the projection before it cannot take")
    padding = tr.get(values[4]) if values[4] is not None else None
    if padding is not None and not (isinstance(padding, Const) and np.all(np.asarray(padding.value) != 0)):
        raise tr.error(node, "takes a key padding mask that is not the attention mask input")
    mask = tr.get(values[5]) if values[5] is not None else None
    if mask is not None and not isinstance(mask, Const):
        raise tr.error(node, f"takes {describe(mask)} as its attention bias; expected a constant mask")
    lq, lk, lv = (heads_layout(tr, node, x, heads) for x in (q, k, v))
    scale = (attr(node, "scale") or 1.0 / math.sqrt(lq[3])) * q.scale * k.scale
    pv = raw_attention(tr, node, lq, lk, lv, scale, bool(attr(node, "unidirectional", 0)), mask)
    return [Vec(pv, ("1", "t", "f"), (1, tr.tokens, heads * lv[3]))] + [None] * (len(node.outputs) - 1)


def rope_base(tr: Tracer, node, cos: np.ndarray, sin: np.ndarray, rotary_dim: int) -> float:
    """The base of the default rotary frequencies that produce tables ``cos``/``sin`` (T0, rotary_dim/2)."""
    theta = np.arccos(np.clip(cos[1], -1.0, 1.0))
    base = float(theta[1] ** (-rotary_dim / 2)) if rotary_dim > 2 and 0 < theta[1] < 1 else 10000.0
    for candidate in (round_base(base), base):
        want_cos, want_sin = op.rope_tables(np.arange(cos.shape[0]), rotary_dim, candidate, np.float64)
        if np.allclose(cos, want_cos, atol=1e-5) and np.allclose(sin, want_sin, atol=1e-5):
            return candidate
    raise tr.error(node, "has cos/sin tables that are not the default rotary frequencies base^(-2i/d); "
                         "scaled or custom RoPE is not supported")


def rope_tables(tr: Tracer, node, cos, sin, positions) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(cos, Const) or not isinstance(sin, Const):
        raise tr.error(node, "has cos/sin tables that are not constants")
    c, s = np.asarray(cos.value, np.float64), np.asarray(sin.value, np.float64)
    if positions is not None:
        if not isinstance(positions, Const):
            raise tr.error(node, f"takes {describe(positions)} as positions; expected position ids 0..T-1")
        idx = np.asarray(positions.value).ravel()
        c, s = c.reshape(-1, c.shape[-1])[idx], s.reshape(-1, s.shape[-1])[idx]
    return c.reshape(tr.tokens, -1), s.reshape(tr.tokens, -1)


def rotary(tr: Tracer, node, x, cos, sin, positions):
    if isinstance(x, Emb):
        x = tr.flat(x, node)
    if not isinstance(x, Vec):
        raise tr.error(node, f"rotates {describe(x)}")
    c, s = rope_tables(tr, node, cos, sin, positions)
    rotary_dim = attr(node, "rotary_embedding_dim", 0) or 2 * c.shape[1]
    labels = [a for a in x.axes if a != "1"]
    if labels == ["h", "t", "d"] and x.rep == 1:
        heads, dim = x.feature_sizes()["h"], x.feature_sizes()["d"]
    elif x.flat() and attr(node, "num_heads", 0):
        heads = attr(node, "num_heads")
        dim = x.width // heads
    else:
        raise tr.error(node, f"rotates values laid out as {x.axes}; expected (batch, heads, tokens, dim) or "
                             "(batch, tokens, features) with num_heads")
    base = rope_base(tr, node, c, s, rotary_dim)
    pairing = "interleaved" if attr(node, "interleaved", 0) else "half"
    name = tr.add(op.Rope(tr.fresh("rope"), n_heads=heads, head_dim=dim, base=base, pairing=pairing,
                          rotary_dim=rotary_dim), x=tr.plain(x, node) if x.flat() else x.node)
    return Vec(name, x.axes, x.sizes, 1, x.scale)


@handles("RotaryEmbedding")
def rotary_onnx(tr: Tracer, node):
    args = inputs(tr, node) + [None]
    return rotary(tr, node, args[0], args[1], args[2], args[3])


@handles("RotaryEmbedding", domain=MS)
def rotary_ms(tr: Tracer, node):
    x, positions, cos, sin = inputs(tr, node)[:4]
    return rotary(tr, node, x, cos, sin, positions)


def skip_sum(tr: Tracer, node) -> Vec:
    """``input + skip (+ bias)`` of the Skip*Normalization ops, the bias folded into a linear map."""
    a, b = (tr.flat(tr.get(v), node) for v in node.inputs[:2])
    bias_index = 4 if node.op_type == "SkipLayerNormalization" else 3
    if len(node.inputs) > bias_index and node.inputs[bias_index] is not None:
        bias = tr.get(node.inputs[bias_index])
        folded = fold_bias(tr, node, a, bias, node.inputs[0]) or fold_bias(tr, node, b, bias, node.inputs[1])
        if folded is None:
            raise tr.error(node, "adds a bias that no linear map before it can take")
    name = tr.add(op.Add(tr.fresh("add")), a=tr.plain(a, node), b=tr.plain(b, node))
    return Vec(name, a.axes, a.sizes)


def normalised(tr: Tracer, node, total: Vec, kind, weight, bias=None) -> Vec:
    eps = float(attr(node, "epsilon", 1e-12))
    w = np.asarray(weight.value, np.float64).ravel()
    if kind is op.LayerNorm:
        made = op.LayerNorm(tr.fresh("layernorm"), weight=w, eps=eps,
                            bias=None if bias is None else np.asarray(bias.value, np.float64).ravel())
    else:
        made = op.RMSNorm(tr.fresh("rmsnorm"), weight=w, eps=eps)
    return Vec(tr.add(made, x=total.node), total.axes, total.sizes)


@handles("SkipLayerNormalization", domain=MS)
def skip_layer_norm(tr: Tracer, node):
    total = skip_sum(tr, node)
    gamma = tr.get(node.inputs[2])
    beta = tr.get(node.inputs[3]) if len(node.inputs) > 3 and node.inputs[3] is not None else None
    out = normalised(tr, node, total, op.LayerNorm, gamma, beta)
    return [out, None, None, total][:len(node.outputs)]


@handles("SkipSimplifiedLayerNormalization", domain=MS)
def skip_rms_norm(tr: Tracer, node):
    total = skip_sum(tr, node)
    out = normalised(tr, node, total, op.RMSNorm, tr.get(node.inputs[2]))
    return [out, None, None, total][:len(node.outputs)]


@handles("EmbedLayerNormalization", domain=MS)
def embed_layer_norm(tr: Tracer, node):
    values = list(node.inputs) + [None] * 9
    ids, segments, words, positions, types, gamma, beta = (tr.get(v) for v in values[:7])
    position_ids = tr.get(values[8]) if values[8] is not None else None
    if not isinstance(ids, Ids) or not all(isinstance(t, Const) for t in (words, positions, gamma)):
        raise tr.error(node, "does not look up constant embedding tables by input_ids")
    offset = 0
    if isinstance(position_ids, Const):
        offset = int(np.asarray(position_ids.value).ravel()[0])
    tables = {"tokens": np.asarray(words.value, np.float64),
              "positions": (np.asarray(positions.value, np.float64), offset)}
    if isinstance(types, Const) and isinstance(segments, Ids):
        tables["types"] = np.asarray(types.value, np.float64)
    x = tr.flat(Emb(tables), node)
    out = normalised(tr, node, x, op.LayerNorm, gamma, beta)
    return [out, None, x][:len(node.outputs)]


def biased(tr: Tracer, node):
    x = tr.get(node.inputs[0])
    if len(node.inputs) > 1 and node.inputs[1] is not None:
        x = fold_bias(tr, node, tr.flat(x, node), tr.get(node.inputs[1]), node.inputs[0])
        if x is None:
            raise tr.error(node, "adds a bias that the linear map before it cannot take")
    return x


@handles("BiasGelu", domain=MS)
def bias_gelu(tr: Tracer, node):
    return activation(tr, node, "gelu_erf", biased(tr, node))


@handles("FastGelu", domain=MS)
def fast_gelu(tr: Tracer, node):
    return activation(tr, node, "gelu_tanh", biased(tr, node))


handles("LayerNormalization", domain=MS)(layer_norm)
handles("RMSNormalization", domain=MS)(rms_norm)
