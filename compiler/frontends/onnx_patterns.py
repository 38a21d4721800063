"""ONNX op types mapped onto the attention graph: one handler per op type, registered in :data:`HANDLERS`.

A handler receives the :class:`~compiler.frontends.onnx_trace.Tracer` and the ONNX node and returns
what each of the node's outputs holds (see :mod:`compiler.frontends.onnx_values`).  Per-token
arithmetic becomes attention-graph nodes (MatMul/Gemm with a constant -> Linear, LayerNormalization
-> LayerNorm, ...); attention appears as raw ops (``matmul qk -> scale -> mask_add -> [causal_mask]
-> softmax -> matmul pv``) that the ``match_attention`` pass rewrites, as for any other source;
elementwise chains stay pending until they compute a known op.  Fused onnxruntime ops live in
:mod:`compiler.frontends.onnx_fused`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.attention import nodes as op
from compiler.attention import raw_nodes as raw
from compiler.frontends import onnx_layout as layout
from compiler.frontends.onnx_trace import Tracer, describe
from compiler.frontends.onnx_values import Const, Emb, Ids, Pending, Pooled, Scores, Vec

HANDLERS: dict = {}
ELEMENTWISE = ("Sub", "Pow", "Sqrt", "Reciprocal", "Erf", "Tanh", "Sigmoid", "Neg", "Softplus", "Exp", "Abs",
               "Concat", "Max", "Min", "Clip", "Sin", "Cos")
POOL_OPS = ("ReduceL2", "LpNormalization", "ReduceSumSquare", "Div", "Clip", "Max", "Sqrt", "Mul", "Expand")


def handles(*op_types: str, domain: str = ""):
    def register(function):
        for op_type in op_types:
            HANDLERS[(domain, op_type)] = function
        return function
    return register


def attr(node, name: str, default=None):
    a = node.attributes.get(name)
    return default if a is None else a.value


def inputs(tr: Tracer, node) -> list:
    return [tr.get(v) for v in node.inputs]


@dataclass
class NanFlag:
    """``IsNaN`` of attention probabilities: the guard sdpa exports put after the softmax."""

    scores: Scores


# ---- elementwise chains --------------------------------------------------------------------------
def elementwise(tr: Tracer, node):
    """Extend or start a pending chain on one node's output; recognise it when it is complete."""
    args = inputs(tr, node)
    if any(isinstance(a, Pooled) for a in args):
        return pooled(tr, node)
    if any(isinstance(a, Emb) for a in args):
        args = [tr.flat(a, node) if isinstance(a, Emb) else a for a in args]
    sources = {a.node for a in args if isinstance(a, (Vec, Pending))}
    if len(sources) != 1:
        raise tr.error(node, f"combines {', '.join(describe(a) for a in args)}; not a supported pattern")
    feeds, nodes = {}, []
    for value, a in zip(node.inputs, args):
        if isinstance(a, Vec):
            feeds[value.name] = a
        elif isinstance(a, Pending):
            feeds.update(a.inputs)
            nodes += [n for n in a.nodes if n not in nodes]
        elif not isinstance(a, (Const, type(None))):
            raise tr.error(node, f"combines {describe(a)} with per-token values; not a supported pattern")
    pending = Pending(sources.pop(), feeds, nodes + [node], node.outputs[0])
    return tr.settle(pending, node)


for _op in ELEMENTWISE:
    handles(_op)(elementwise)


def pooled(tr: Tracer, node):
    args = inputs(tr, node)
    pools = [a for a in args if isinstance(a, Pooled)]
    others = [a for a in args if not isinstance(a, (Pooled, Const, type(None)))]
    if others:
        raise tr.error(node, f"mixes a pooled sentence embedding with {describe(others[0])}")
    return Pooled(pools[0].source, set().union(*(p.ops for p in pools)) | {node.op_type})


for _op in ("ReduceL2", "LpNormalization", "ReduceSumSquare"):
    handles(_op)(pooled)


# ---- binary ops with structure -------------------------------------------------------------------
def scalar(d) -> float | None:
    if isinstance(d, Const) and np.size(d.value) == 1:
        return float(np.asarray(d.value).ravel()[0])
    return None


def vector(d, width: int):
    if isinstance(d, Const) and np.size(d.value) == width and all(s == 1 for s in np.shape(d.value)[:-1]):
        return np.asarray(d.value, np.float64).ravel()
    return None


@handles("Add")
def add(tr: Tracer, node):
    a, b = inputs(tr, node)
    if isinstance(a, Pooled) or isinstance(b, Pooled):
        return pooled(tr, node)
    if isinstance(a, Emb) and isinstance(b, Emb):
        if a.scale != b.scale or set(a.tables) & set(b.tables):
            raise tr.error(node, "adds embeddings of the same kind twice")
        return Emb({**a.tables, **b.tables}, a.scale)
    if isinstance(b, Scores) or isinstance(a, Scores):
        scores, mask = (a, b) if isinstance(a, Scores) else (b, a)
        return apply_mask(tr, node, scores, mask, additive=True)
    if isinstance(b, Vec) and isinstance(a, Const):
        a, b = b, a
    if isinstance(a, Vec) and isinstance(b, Const):
        folded = fold_bias(tr, node, a, b, node.inputs[0] if tr.get(node.inputs[0]) is a else node.inputs[1])
        if folded is not None:
            return folded
    if isinstance(a, (Vec, Emb)) and isinstance(b, (Vec, Emb)):
        left, right = (d if isinstance(d, Vec) else tr.flat(d, node) for d in (a, b))
        if left.node != right.node and left.flat() and right.flat():
            return residual(tr, node, op.Add, left, right)
    return elementwise(tr, node)


def residual(tr: Tracer, node, kind, a: Vec, b: Vec) -> Vec:
    x, y = tr.plain(a, node), tr.plain(b, node)
    name = tr.add(kind(tr.fresh(kind.kind)), a=x, b=y)
    return Vec(name, a.axes, a.sizes)


def fold_bias(tr: Tracer, node, x: Vec, c: Const, value) -> Vec | None:
    """``x + c`` folded into the bias of the linear map or layer norm computing ``x``."""
    target = tr.graph.node(x.node)
    bias = vector(c, x.width)
    if bias is None or not x.flat() or tr.uses(value) != 1 or target.kind not in ("linear", "layernorm"):
        return None
    if getattr(target, "bias", None) is not None:
        target.bias = target.bias + bias / x.scale
    else:
        target.bias = bias / x.scale
    target.check()
    return x


def fold_gain(tr: Tracer, node, x: Vec, c: Const, value) -> Vec | None:
    """``x * c`` folded into a norm's gain (or a linear map's rows) when nothing else reads ``x``."""
    target = tr.graph.node(x.node)
    gain = vector(c, x.width)
    if gain is None or not x.flat() or tr.uses(value) != 1:
        return None
    if target.kind in ("layernorm", "rmsnorm") and np.all(target.weight == 1.0):
        target.weight = gain * x.scale
        if getattr(target, "bias", None) is not None:
            target.bias = target.bias * gain * x.scale
    elif target.kind == "linear":
        target.weight = target.weight * (gain * x.scale)[:, None]
        if target.bias is not None:
            target.bias = target.bias * gain * x.scale
    else:
        return None
    target.check()
    return Vec(x.node, x.axes, x.sizes)


@handles("Mul")
def mul(tr: Tracer, node):
    a, b = inputs(tr, node)
    if isinstance(a, Pooled) or isinstance(b, Pooled):
        return pooled(tr, node)
    if isinstance(a, Const) and not isinstance(b, Const):
        a, b = b, a
        value = node.inputs[1]
    else:
        value = node.inputs[0]
    factor = scalar(b)
    if factor is not None and isinstance(a, (Vec, Emb)):
        if isinstance(a, Emb):
            return Emb(a.tables, a.scale * factor)
        return Vec(a.node, a.axes, a.sizes, a.rep, a.scale * factor)
    if factor is not None and isinstance(a, Scores):
        return scale_scores(tr, a, factor)
    if isinstance(a, Vec) and isinstance(b, Const):
        folded = fold_gain(tr, node, a, b, value)
        if folded is not None:
            return folded
    if isinstance(a, Vec) and isinstance(b, Vec) and a.node != b.node and a.flat() and b.flat():
        return residual(tr, node, op.Mul, a, b)
    return elementwise(tr, node)


@handles("Div")
def div(tr: Tracer, node):
    a, b = inputs(tr, node)
    factor = scalar(b)
    if factor and isinstance(a, Vec):
        return Vec(a.node, a.axes, a.sizes, a.rep, a.scale / factor)
    if factor and isinstance(a, Scores):
        return scale_scores(tr, a, 1.0 / factor)
    if isinstance(a, Pooled) or isinstance(b, Pooled):
        return pooled(tr, node)
    return elementwise(tr, node)


# ---- attention -----------------------------------------------------------------------------------
def scale_scores(tr: Tracer, s: Scores, factor: float) -> Scores:
    if s.softmax:
        raise ValueError("scaled attention probabilities")
    name = tr.add(raw.Scale(tr.fresh("scale"), factor=factor), x=s.node)
    return Scores(name, s.axes, s.sizes, s.padding, s.causal)


def mask_matrix(tr: Tracer, node, s: Scores, array: np.ndarray) -> np.ndarray:
    """The (query, key) matrix of a constant mask broadcast against scores ``s`` (same for every head)."""
    full = np.broadcast_to(np.asarray(array), s.sizes)
    t, k = s.axes.index("t"), s.axes.index("s")
    moved = np.moveaxis(full, (t, k), (-2, -1)).reshape(-1, s.sizes[t], s.sizes[k])
    if not np.all(moved == moved[:1]):
        raise tr.error(node, "applies a mask that differs between heads; only padding and causal masks are supported")
    return moved[0]


def apply_mask(tr: Tracer, node, s: Scores, mask, additive: bool, fill=None) -> Scores:
    """A constant mask on scores: nothing (all visible) or causal; anything else is refused."""
    if not isinstance(mask, Const):
        raise tr.error(node, f"masks attention scores with {describe(mask)}; expected a constant mask")
    m = mask_matrix(tr, node, s, mask.value)
    visible = (m > -1e4) if additive else m.astype(bool)
    if additive and not np.all(m[visible] == 0):
        raise tr.error(node, "adds a bias to attention scores (not a mask); attention biases are not supported")
    if not additive and (fill is None or fill > -1e4):
        raise tr.error(node, "fills masked attention scores with a value that is not large and negative")
    if visible.all():
        return s
    if np.array_equal(visible, np.tril(np.ones_like(visible, dtype=bool))):
        if s.causal:
            return s
        name = tr.add(raw.CausalMask(tr.fresh("causal")), x=s.node)
        return Scores(name, s.axes, s.sizes, s.padding, True)
    raise tr.error(node, "applies a constant attention mask that is neither all-visible nor causal")


def heads_of(v: Vec, order: tuple) -> tuple[int, int, int] | None:
    """(visible heads, key/value heads, head_dim) when ``v`` is laid out as ``order`` (size-one axes aside)."""
    labels = [a for a in v.axes if a != "1"]
    sizes = v.feature_sizes()
    if labels == list(order):
        return sizes["h"], sizes["h"] // v.rep, sizes["d"]
    grouped = [a for a in order if a != "h"]
    for k, a in enumerate(order):
        if a == "h":
            grouped = list(order[:k]) + ["g", "r"] + list(order[k + 1:])
    if labels == grouped:
        return sizes["g"] * sizes["r"], sizes["g"], sizes["d"]
    if labels == ["f" if a == "d" else a for a in order if a != "h"] and v.rep == 1:
        return 1, 1, sizes["f"]  # one head: no head axis at all
    return None


def qk_product(tr: Tracer, node, q: Vec, k: Vec) -> Scores:
    hq = heads_of(q, ("h", "t", "d"))
    hk = heads_of(k, ("h", "d", "t"))
    if hq is None or hk is None or hq[0] != hk[0] or hq[2] != hk[2] or hq[0] != hq[1]:
        raise tr.error(node, f"multiplies {q.axes} by {k.axes}; expected queries (heads, tokens, dim) times "
                             "keys (heads, dim, tokens)")
    n_heads, n_kv, dim = hq[0], hk[1], hq[2]
    name = tr.add(raw.MatMul(tr.fresh("scores"), mode="qk", n_heads=n_heads, n_kv_heads=n_kv, head_dim=dim),
                  a=q.node, b=k.node)
    axes = tuple("s" if a in ("d", "f") else a for a in q.axes)
    sizes = tuple(tr.tokens if a in ("d", "f") else s for a, s in zip(q.axes, q.sizes))
    scores = Scores(name, axes, sizes)
    factor = q.scale * k.scale
    return scale_scores(tr, scores, factor) if factor != 1.0 else scores


def pv_product(tr: Tracer, node, p: Scores, v: Vec) -> Vec:
    hv = heads_of(v, ("h", "t", "d"))
    labels = [a for a in p.axes if a != "1"]
    if not p.softmax or hv is None or labels not in (["h", "t", "s"], ["t", "s"]) or v.scale != 1.0:
        raise tr.error(node, f"multiplies {describe(p) if not isinstance(p, Scores) else p.axes} by {v.axes}; "
                             "expected softmax probabilities (heads, tokens, tokens) times values (heads, tokens, dim)")
    n_heads, n_kv, dim = hv
    name = tr.add(raw.MatMul(tr.fresh("attention"), mode="pv", n_heads=n_heads, n_kv_heads=n_kv, head_dim=dim),
                  a=p.node, b=v.node)
    feature = "d" if "h" in p.axes else "f"
    axes = tuple(feature if a == "s" else a for a in p.axes)
    sizes = tuple(dim if a == "s" else s for a, s in zip(p.axes, p.sizes))
    return Vec(name, axes, sizes)


def linear(tr: Tracer, node, x, weight: np.ndarray, bias: np.ndarray | None = None) -> Vec:
    """``x @ weight (+ bias)`` with ``weight`` (in, out) as a Linear node (scales folded in)."""
    x = tr.flat(x, node) if isinstance(x, Emb) else x
    if not isinstance(x, Vec) or not x.flat() or weight.ndim != 2 or weight.shape[0] != x.width:
        raise tr.error(node, f"multiplies {describe(x)} by a {np.shape(weight)} matrix; expected (tokens, "
                             f"features) times (features, out)")
    w = np.asarray(weight, np.float64).T * x.scale
    b = None if bias is None else np.asarray(bias, np.float64).ravel()
    name = tr.add(op.Linear(tr.fresh("linear"), weight=w, bias=b), x=x.node)
    return Vec(name, x.axes, x.sizes[:-1] + (w.shape[0],))


@handles("MatMul")
def matmul(tr: Tracer, node):
    a, b = inputs(tr, node)
    if isinstance(b, Const):
        return linear(tr, node, a, b.value)
    if isinstance(a, Vec) and isinstance(b, Vec):
        return qk_product(tr, node, a, b)
    if isinstance(a, Scores) and isinstance(b, Vec):
        return pv_product(tr, node, a, b)
    raise tr.error(node, f"multiplies {describe(a)} by {describe(b)}; not a linear map or attention product")


@handles("Gemm")
def gemm(tr: Tracer, node):
    a, b, c = (inputs(tr, node) + [None])[:3]
    if not isinstance(b, Const) or attr(node, "transA", 0):
        raise tr.error(node, "is not a linear map with constant weights")
    weight = np.asarray(b.value, np.float64) * attr(node, "alpha", 1.0)
    weight = weight.T if attr(node, "transB", 0) else weight
    bias = None if c is None else np.asarray(c.value, np.float64) * attr(node, "beta", 1.0)
    return linear(tr, node, a, weight, bias)


@handles("Softmax")
def softmax(tr: Tracer, node):
    (s,) = inputs(tr, node)
    if not isinstance(s, Scores) or s.softmax:
        producer = node.inputs[0].producer()
        found = f"{producer.op_type} node {producer.name!r}" if producer is not None else "a graph input"
        raise tr.error(node, f"is not over attention scores: its input comes from {found} holding {describe(s)}; "
                             "expected MatMul(queries, keys) -> [scale] -> [mask] -> Softmax -> MatMul(., values)")
    axis = attr(node, "axis", -1) % len(s.axes)
    if s.axes[axis] != "s":
        raise tr.error(node, f"normalises over axis {axis} of attention scores, not over the keys")
    x = s.node
    if tr.had_mask and not s.padding:
        x = tr.add(raw.MaskAdd(tr.fresh("padding")), x=x)
    name = tr.add(raw.Softmax(tr.fresh("softmax")), x=x)
    return Scores(name, s.axes, s.sizes, True, s.causal, True, node.name)


@handles("IsNaN")
def isnan(tr: Tracer, node):
    (s,) = inputs(tr, node)
    if isinstance(s, Scores) and s.softmax:
        return NanFlag(s)
    raise tr.error(node, "guards something other than attention probabilities")


@handles("Where")
def where(tr: Tracer, node):
    cond, x, y = inputs(tr, node)
    if isinstance(cond, NanFlag) and y is cond.scores and scalar(x) == 0.0:
        return y
    if isinstance(x, Scores) and isinstance(cond, Const):
        return apply_mask(tr, node, x, cond, additive=False, fill=scalar(y))
    raise tr.error(node, f"selects between {describe(x)} and {describe(y)}; only attention masks are supported")


# ---- embeddings ----------------------------------------------------------------------------------
@handles("Gather")
def gather(tr: Tracer, node):
    table, index = inputs(tr, node)
    if isinstance(table, Const) and np.ndim(table.value) == 2 and attr(node, "axis", 0) == 0:
        t = np.asarray(table.value, np.float64)
        if isinstance(index, Ids):
            return Emb({index.role: t})
        if isinstance(index, Const):
            ids = np.asarray(index.value).ravel()
            if ids.size == tr.tokens and np.array_equal(ids, ids[0] + np.arange(tr.tokens)):
                return Emb({"positions": (t, int(ids[0]))})
            if ids.size == tr.tokens and np.all(ids == 0):
                return Emb({"types": t})
    if isinstance(table, Vec) and isinstance(index, Const):
        axis = attr(node, "axis", 0) % len(table.axes)
        if table.axes[axis] == "t":
            return Pooled(table, {"Gather"})
    raise tr.error(node, f"indexes {describe(table)} with {describe(index)}; only embedding lookups are supported")


# ---- norms and activations -----------------------------------------------------------------------
@handles("LayerNormalization")
def layer_norm(tr: Tracer, node):
    x, scale, bias = (inputs(tr, node) + [None])[:3]
    x = tr.flat(x, node)
    if attr(node, "axis", -1) not in (-1, len(x.axes) - 1) or not isinstance(scale, Const):
        raise tr.error(node, "normalises over more than the feature axis; only the last axis is supported")
    name = tr.add(op.LayerNorm(tr.fresh("layernorm"), weight=np.asarray(scale.value, np.float64).ravel(),
                               bias=None if bias is None else np.asarray(bias.value, np.float64).ravel(),
                               eps=float(attr(node, "epsilon", 1e-5))), x=tr.plain(x, node))
    return [Vec(name, x.axes, x.sizes)] + [None] * (len(node.outputs) - 1)


@handles("RMSNormalization")
@handles("SimplifiedLayerNormalization")
@handles("SimplifiedLayerNormalization", domain="com.microsoft")
def rms_norm(tr: Tracer, node):
    x, scale = inputs(tr, node)[:2]
    x = tr.flat(x, node)
    if attr(node, "axis", -1) not in (-1, len(x.axes) - 1) or not isinstance(scale, Const):
        raise tr.error(node, "normalises over more than the feature axis; only the last axis is supported")
    name = tr.add(op.RMSNorm(tr.fresh("rmsnorm"), weight=np.asarray(scale.value, np.float64).ravel(),
                             eps=float(attr(node, "epsilon", 1e-5))), x=tr.plain(x, node))
    return [Vec(name, x.axes, x.sizes)] + [None] * (len(node.outputs) - 1)


def activation(tr: Tracer, node, function: str, x) -> Vec:
    x = tr.flat(x, node)
    name = tr.add(op.Activation(tr.fresh("act"), function=function), x=tr.plain(x, node))
    return Vec(name, x.axes, x.sizes)


@handles("Gelu")
@handles("Gelu", domain="com.microsoft")
def gelu(tr: Tracer, node):
    function = "gelu_tanh" if attr(node, "approximate", "none") == "tanh" else "gelu_erf"
    return activation(tr, node, function, inputs(tr, node)[0])


@handles("Relu")
def relu(tr: Tracer, node):
    return activation(tr, node, "relu", inputs(tr, node)[0])


# ---- layout --------------------------------------------------------------------------------------
def const_or_layout(tr: Tracer, node, function, vec_function):
    args = inputs(tr, node)
    x = args[0]
    if isinstance(x, Const):
        return Const(function(x.value, args))
    if isinstance(x, Emb):
        x = tr.flat(x, node)
    if isinstance(x, (Pooled, Ids)):
        return x
    if not isinstance(x, Vec):
        raise tr.error(node, f"rearranges {describe(x)}; only per-token values and constants can be rearranged")
    try:
        return vec_function(x, args)
    except layout.LayoutError as exc:
        raise tr.error(node, f"{exc}") from None


def axes_arg(node, args):
    value = args[1].value if len(args) > 1 and isinstance(args[1], Const) else attr(node, "axes")
    return None if value is None else [int(a) for a in np.asarray(value).ravel()]


@handles("Reshape")
def reshape(tr: Tracer, node):
    allowzero = bool(attr(node, "allowzero", 0))

    def on_const(value, args):
        return np.reshape(value, layout.target_shape(np.shape(value), args[1].value, allowzero))

    return const_or_layout(tr, node, on_const, lambda x, args: layout.reshape(
        x, layout.target_shape(x.sizes, args[1].value, allowzero)))


@handles("Transpose")
def transpose(tr: Tracer, node):
    perm = attr(node, "perm")
    return const_or_layout(tr, node, lambda v, a: np.transpose(v, perm), lambda x, a: layout.transpose(x, perm))


@handles("Unsqueeze")
def unsqueeze(tr: Tracer, node):
    def on_const(value, args):
        out = np.asarray(value)
        rank = out.ndim + len(axes_arg(node, args))
        for a in sorted(int(a) % rank for a in axes_arg(node, args)):
            out = np.expand_dims(out, a)
        return out

    return const_or_layout(tr, node, on_const, lambda x, args: layout.unsqueeze(x, axes_arg(node, args)))


@handles("Squeeze")
def squeeze(tr: Tracer, node):
    def on_const(value, args):
        axes = axes_arg(node, args)
        return np.squeeze(value, axis=None if axes is None else tuple(axes))

    return const_or_layout(tr, node, on_const, lambda x, args: layout.squeeze(x, axes_arg(node, args)))


@handles("Expand")
def expand(tr: Tracer, node):
    return const_or_layout(tr, node, lambda v, a: np.broadcast_to(v, a[1].value).copy(),
                           lambda x, args: layout.expand(x, args[1].value))


@handles("Identity", "Cast", "Dropout")
def identity(tr: Tracer, node):
    x = inputs(tr, node)[0]
    if isinstance(x, Const) and node.op_type == "Cast":
        import onnx_ir as ir

        return Const(np.asarray(x.value).astype(ir.DataType(attr(node, "to")).numpy()))
    return [x] + [None] * (len(node.outputs) - 1)


# ---- splitting a fused projection ----------------------------------------------------------------
def slice_linear(tr: Tracer, node, x: Vec, start: int, stop: int) -> Vec:
    source = tr.graph.node(x.node)
    if source.kind != "linear" or not x.flat():
        raise tr.error(node, f"splits {describe(x)}; only the output of a linear map can be split")
    w = source.weight[start:stop].copy()
    b = None if source.bias is None else source.bias[start:stop].copy()
    inputs_ = tr.graph.inputs_of(x.node)
    name = tr.add(op.Linear(tr.fresh("linear"), weight=w, bias=b), x=inputs_["x"])
    return Vec(name, x.axes, x.sizes[:-1] + (stop - start,), 1, x.scale)


@handles("Split")
def split(tr: Tracer, node):
    args = inputs(tr, node)
    x = args[0]
    axis = attr(node, "axis", 0)
    if not isinstance(x, Vec) or axis % len(x.axes) != len(x.axes) - 1:
        raise tr.error(node, f"splits {describe(x)} along axis {axis}; only splitting features is supported")
    if len(args) > 1 and isinstance(args[1], Const):
        parts = [int(p) for p in np.asarray(args[1].value).ravel()]
    else:
        parts = attr(node, "split") or [x.width // len(node.outputs)] * len(node.outputs)
    out, start = [], 0
    for size in parts:
        out.append(slice_linear(tr, node, x, start, start + size))
        start += size
    return out


@handles("Slice")
def slice_(tr: Tracer, node):
    args = inputs(tr, node)
    x = args[0]
    if isinstance(x, Pooled):
        return x
    if isinstance(x, Vec) and all(isinstance(a, Const) for a in args[1:]) and x.flat():
        starts, ends = (np.asarray(a.value).ravel() for a in args[1:3])
        axes = np.asarray(args[3].value).ravel() if len(args) > 3 and args[3] is not None else [0]
        steps = np.asarray(args[4].value).ravel() if len(args) > 4 and args[4] is not None else [1]
        if len(axes) == 1 and int(axes[0]) % len(x.axes) == len(x.axes) - 1 and int(steps[0]) == 1:
            start, stop, _ = slice(int(starts[0]), int(ends[0])).indices(x.width)
            if tr.graph.node(x.node).kind == "linear":
                return slice_linear(tr, node, x, start, stop)
    return elementwise(tr, node)


@handles("ReduceSum", "ReduceMean")
def reduce(tr: Tracer, node):
    args = inputs(tr, node)
    x = args[0]
    if isinstance(x, Pooled):
        return pooled(tr, node)
    if isinstance(x, Vec):
        axes = axes_arg(node, args)
        if axes is not None and any(x.axes[a % len(x.axes)] == "t" for a in axes):
            return Pooled(x, {node.op_type})
    if node.op_type == "ReduceMean":
        return elementwise(tr, node)
    raise tr.error(node, f"sums {describe(x)}; only token pooling is supported")


def constant_only(tr: Tracer, node):
    raise tr.error(node, "depends on the inputs but computes no supported per-token op")


# Shape arithmetic that survives folding only on a malformed graph.
for _op in ("Shape", "Range", "ConstantOfShape", "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual",
            "And", "Or", "Not", "Trilu", "Flatten"):
    handles(_op)(constant_only)


def supported(node) -> bool:
    return (node.domain or "", node.op_type) in HANDLERS

