"""ATen ops of an exported program, each mapped onto the attention graph (one handler per op).

A handler gets the mapping context, the FX node and its arguments with every token-dependent tensor
replaced by its symbolic value (:mod:`compiler.frontends.torch_values`); constants are torch tensors.
Ops computing only constants (masks, position ids, rotary tables) never reach a handler: they are
evaluated by torch on the example inputs.  ``HANDLERS`` maps the op name (``aten.<name>``) to its
handler; an op without one is reported, with its node, as unsupported.
"""

from __future__ import annotations

import math

import numpy as np

from compiler.attention import nodes as op
from compiler.errors import FrontendError
from compiler.frontends.torch_values import Elem, Ids, RowStat, Scores, Tok, match_activation

LAYOUT_OPS = ("view", "reshape", "_unsafe_view", "transpose", "permute", "unsqueeze", "squeeze", "expand",
              "slice", "select", "cat", "split", "split_with_sizes", "chunk", "unbind", "t", "flatten",
              "unflatten", "expand_as", "narrow")
IDENTITY_OPS = ("clone", "alias", "contiguous", "_to_copy", "dropout", "detach", "lift_fresh_copy", "to",
                "type_as", "_assert_tensor_metadata")
ELEMENTWISE = {
    "tanh": np.tanh, "exp": np.exp, "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)), "rsqrt": lambda x: 1.0 / np.sqrt(x),
    "sqrt": np.sqrt, "reciprocal": lambda x: 1.0 / x,
}


def is_token(value) -> bool:
    return isinstance(value, (Tok, Elem))


def const_scalar(value):
    """A Python number for a number or a one-element tensor, else ``None``."""
    import torch

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and value.is_floating_point():
        return float(value)
    return None


def as_const(value):
    import torch

    if isinstance(value, torch.Tensor):
        return value.to(torch.float64)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return torch.tensor(float(value), dtype=torch.float64)
    return None


# ---- materialising -----------------------------------------------------------------------------
def node_of(ctx, value, where: str, token_axis=None):
    """``(node, rows, shape)`` of a token value, elementwise functions turned into activations."""
    if isinstance(value, Elem):
        value = materialise(ctx, value, where)
    if not isinstance(value, Tok):
        raise FrontendError(f"{where}: expected token features here, got {type(value).__name__}")
    node, rows = value.canonical(ctx.b, where, token_axis)
    return node, rows, value.shape


def materialise(ctx, elem: Elem, where: str) -> Tok:
    name = match_activation(elem.fn)
    if name is None:
        raise FrontendError(f"{where}: elementwise function matches no supported activation "
                            "(gelu_erf, gelu_tanh, silu, relu)")
    node = elem.node if name == "identity" else ctx.b.add(op.Activation(where, function=name),
                                                          ctx.b.widths[elem.node], x=elem.node)
    return ctx.b.fresh(node, elem.shape, elem.rows)


def to_elem(ctx, value, where: str) -> Elem:
    """``value`` as an elementwise function of a node; ``c x + d`` with scalar c, d keeps ``x`` the source."""
    import torch

    if isinstance(value, Elem):
        return value
    if isinstance(value, Tok) and len(value.terms) == 1:
        codes, coefs = value.terms[0]
        c = float(coefs.reshape(-1)[0])
        d = 0.0 if value.bias is None else float(value.bias.reshape(-1)[0])
        uniform = torch.all(coefs == c) and (value.bias is None or torch.all(value.bias == d))
        if uniform and c != 0:
            pure = Tok(value.base, value.width, [(codes, torch.ones_like(coefs))])
            node, rows, shape = node_of(ctx, pure, where)
            return Elem(node, rows, shape, lambda x: c * x + d)
    node, rows, shape = node_of(ctx, value, where)
    return Elem(node, rows, shape, lambda x: x)


def activation_node(ctx, x, function: str, where: str) -> Tok:
    node, rows, shape = node_of(ctx, x, where)
    out = ctx.b.add(op.Activation(where, function=function), ctx.b.widths[node], x=node)
    return ctx.b.fresh(out, shape, rows)


def binary_node(ctx, kind, a, b, where: str) -> Tok:
    import torch

    na, ra, sa = node_of(ctx, a, where)
    nb, rb, sb = node_of(ctx, b, where)
    if sa != sb or not torch.equal(ra, rb):
        raise FrontendError(f"{where}: operands of shapes {sa} and {sb} do not line up token by token")
    out = ctx.b.add(kind(where), ctx.b.widths[na], a=na, b=nb)
    return ctx.b.fresh(out, sa, ra)


# ---- layout and identity -----------------------------------------------------------------------
def layout(ctx, node, args, kwargs):
    """Run a layout op on the codes, coefficients and biases of the token operands."""
    import torch

    if isinstance(args[0], Ids):
        return Ids(node.target(args[0].rows, *args[1:], **kwargs))
    toks = [a for a in flat(args) if isinstance(a, Tok)]
    elems = [a for a in flat(args) if isinstance(a, Elem)]
    if elems:
        args = tuple(materialise(ctx, a, node.name) if isinstance(a, Elem) else a for a in args)
        toks = [a for a in flat(args) if isinstance(a, Tok)]
    if any(isinstance(a, torch.Tensor) for a in flat(args)):
        raise FrontendError(f"{node.name}: {node.target} combines token features with constants; not supported")
    if len({t.base for t in toks}) > 1:
        raise FrontendError(f"{node.name}: {node.target} joins outputs of different layers; not supported")
    n = max(len(t.terms) for t in toks)
    has_bias = any(t.bias is not None for t in toks)

    def run(pick):
        return node.target(*substitute(args, pick), **kwargs)

    codes = [run(lambda t, k=k: t.terms[min(k, len(t.terms) - 1)][0]) for k in range(n)]
    coefs = [run(lambda t, k=k: t.terms[k][1] if k < len(t.terms) else torch.zeros_like(t.terms[0][1]))
             for k in range(n)]
    bias = run(lambda t: t.bias if t.bias is not None else torch.zeros_like(t.terms[0][1])) if has_bias else None
    base, width = toks[0].base, toks[0].width
    if isinstance(codes[0], (list, tuple)):
        return [Tok(base, width, [(c[i], k[i]) for c, k in zip(codes, coefs)], None if bias is None else bias[i])
                for i in range(len(codes[0]))]
    return Tok(base, width, list(zip(codes, coefs)), bias)


def flat(args):
    for a in args:
        if isinstance(a, (list, tuple)):
            yield from flat(a)
        else:
            yield a


def substitute(args, pick):
    out = []
    for a in args:
        if isinstance(a, Tok):
            out.append(pick(a).contiguous())
        elif isinstance(a, (list, tuple)):
            out.append(type(a)(substitute(a, pick)))
        else:
            out.append(a)
    return tuple(out)


def identity(ctx, node, args, kwargs):
    return args[0]


def getitem(ctx, node, args, kwargs):
    return args[0][args[1]]


# ---- arithmetic --------------------------------------------------------------------------------
def negate(ctx, value, where):
    if isinstance(value, Tok):
        return value.scaled(-1.0)
    if isinstance(value, Elem):
        return Elem(value.node, value.rows, value.shape, lambda x, f=value.fn: -f(x))
    c = as_const(value)
    if c is None:
        raise FrontendError(f"{where}: cannot negate {type(value).__name__}")
    return -c


def add(ctx, node, args, kwargs):
    a, b = args[0], args[1]
    alpha = kwargs.get("alpha", 1)
    if alpha != 1:
        b = multiply(ctx, node, b, alpha)
    if not is_token(a) and not isinstance(a, (RowStat, Scores)):
        a, b = b, a
    return plus(ctx, node, a, b)


def sub(ctx, node, args, kwargs):
    a, b = args[0], args[1]
    return plus(ctx, node, a, negate(ctx, b, node.name)) if is_token(a) or isinstance(a, (RowStat, Scores)) else \
        plus(ctx, node, negate(ctx, b, node.name), a)


def rsub(ctx, node, args, kwargs):
    return plus(ctx, node, negate(ctx, args[0], node.name), args[1])


def plus(ctx, node, a, b):
    where = node.name
    if isinstance(a, Scores):
        return ctx.mask_scores(a, b, node)
    if isinstance(a, RowStat):
        eps = const_scalar(b)
        if eps is None or a.stage != "mean_square":
            raise FrontendError(f"{where}: unsupported arithmetic on a normalisation statistic")
        return RowStat(a.node, a.rows, a.eps + eps, a.stage)
    if isinstance(a, Tok) and isinstance(b, Tok):
        if a.base == b.base:
            return a.plus(b)
        return binary_node(ctx, op.Add, a, b, where)
    if is_token(a) and is_token(b):
        ea, eb = to_elem(ctx, a, where), to_elem(ctx, b, where)
        if ea.same_source(eb):
            return Elem(ea.node, ea.rows, ea.shape, lambda x, f=ea.fn, g=eb.fn: f(x) + g(x))
        return binary_node(ctx, op.Add, a, b, where)
    c = as_const(b)
    if c is None:
        raise FrontendError(f"{where}: cannot add {type(b).__name__} to token features")
    if isinstance(a, Elem):
        if c.numel() != 1:
            return plus(ctx, node, materialise(ctx, a, where), b)
        v = float(c.reshape(-1)[0])
        return Elem(a.node, a.rows, a.shape, lambda x, f=a.fn: f(x) + v)
    if ctx.fold_embedding(a, node):
        return a
    return a.plus_const(c)


def mul(ctx, node, args, kwargs):
    a, b = args[0], args[1]
    if not (is_token(a) or isinstance(a, (Scores, RowStat))):
        a, b = b, a
    return multiply(ctx, node, a, b)


def multiply(ctx, node, a, b):
    where = node.name
    if isinstance(a, Scores):
        factor = const_scalar(b)
        if factor is None:
            raise FrontendError(f"{where}: attention scores multiplied by a non-scalar")
        return ctx.scale_scores(a, factor, node)
    if isinstance(b, RowStat) or isinstance(a, RowStat):
        x, stat = (a, b) if isinstance(b, RowStat) else (b, a)
        return ctx.rms_norm(x, stat, "rsqrt", node)
    if isinstance(a, Tok) and isinstance(b, Tok) and a.base != b.base:
        return binary_node(ctx, op.Mul, a, b, where)
    if is_token(a) and is_token(b):
        ea, eb = to_elem(ctx, a, where), to_elem(ctx, b, where)
        if ea.same_source(eb):
            return Elem(ea.node, ea.rows, ea.shape, lambda x, f=ea.fn, g=eb.fn: f(x) * g(x))
        return binary_node(ctx, op.Mul, a, b, where)
    c = as_const(b)
    if c is None:
        raise FrontendError(f"{where}: cannot multiply token features by {type(b).__name__}")
    if isinstance(a, Elem):
        if c.numel() != 1:
            a = materialise(ctx, a, where)
        else:
            v = float(c.reshape(-1)[0])
            return Elem(a.node, a.rows, a.shape, lambda x, f=a.fn: f(x) * v)
    return a.scaled(c)


def div(ctx, node, args, kwargs):
    a, b = args[0], args[1]
    if isinstance(b, RowStat):
        return ctx.rms_norm(a, b, "sqrt", node)
    c = as_const(b)
    if c is None:
        raise FrontendError(f"{node.name}: division by token features is not supported")
    return multiply(ctx, node, a, 1.0 / c)


def neg(ctx, node, args, kwargs):
    return negate(ctx, args[0], node.name)


def power(ctx, node, args, kwargs):
    p = const_scalar(args[1])
    if p is None:
        raise FrontendError(f"{node.name}: pow with a non-constant exponent is not supported")
    e = to_elem(ctx, args[0], node.name)
    return Elem(e.node, e.rows, e.shape, lambda x, f=e.fn: np.power(f(x), p))


def elementwise(name):
    fn = ELEMENTWISE[name]

    def handler(ctx, node, args, kwargs):
        x = args[0]
        if isinstance(x, RowStat):
            if name not in ("rsqrt", "sqrt") or x.stage != "mean_square":
                raise FrontendError(f"{node.name}: unsupported {name} of a normalisation statistic")
            return RowStat(x.node, x.rows, x.eps, name)
        e = to_elem(ctx, x, node.name)
        return Elem(e.node, e.rows, e.shape, lambda v, f=e.fn: fn(f(v)))

    return handler


def mean(ctx, node, args, kwargs):
    x, dims = args[0], args[1] if len(args) > 1 else kwargs.get("dim")
    keep = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
    e = to_elem(ctx, x, node.name)
    dims = [d % len(e.shape) for d in (dims or [])]
    square = match_activation(lambda v, f=e.fn: np.sqrt(np.abs(f(v))) * np.sign(v)) == "identity"
    if dims != [len(e.shape) - 1] or not keep or not square:
        raise FrontendError(f"{node.name}: only the mean of squares over the feature axis (RMSNorm) is supported")
    return RowStat(e.node, e.rows)


# ---- layers ------------------------------------------------------------------------------------
def linear(ctx, node, args, kwargs):
    x, w = args[0], args[1]
    b = args[2] if len(args) > 2 else kwargs.get("bias")
    return ctx.linear(x, w, b, node, weight_arg=node.args[1])


def addmm(ctx, node, args, kwargs):
    bias, x, w = args[0], args[1], args[2]
    if kwargs.get("beta", 1) != 1 or kwargs.get("alpha", 1) != 1:
        raise FrontendError(f"{node.name}: addmm with alpha/beta is not supported")
    return ctx.linear(x, w.T, bias, node, weight_arg=node.args[2])


def matmul(ctx, node, args, kwargs):
    a, b = args[0], args[1]
    if isinstance(a, Scores):
        return ctx.attend(a, b, node)
    if is_token(a) and is_token(b):
        return ctx.scores(a, b.map(lambda t: t.transpose(-1, -2)) if isinstance(b, Tok) else b, node)
    if is_token(a) and as_const(b) is not None and b.dim() == 2:
        return ctx.linear(a, b.T, None, node, weight_arg=node.args[1])
    raise FrontendError(f"{node.name}: matmul of {type(a).__name__} and {type(b).__name__} is not supported")


def layer_norm(ctx, node, args, kwargs):
    x, shape = args[0], args[1]
    weight = args[2] if len(args) > 2 else None
    bias = args[3] if len(args) > 3 else None
    eps = args[4] if len(args) > 4 else 1e-5
    n, rows, xs = node_of(ctx, x, node.name)
    if list(shape) != [xs[-1]]:
        raise FrontendError(f"{node.name}: layer_norm over {list(shape)} is not supported; only the last axis")
    width = xs[-1]
    w = np.ones(width) if weight is None else weight.detach().double().numpy()
    bb = None if bias is None else bias.detach().double().numpy()
    out = ctx.b.add(op.LayerNorm(ctx.param_name(node.args[2] if len(node.args) > 2 else None, node.name),
                                 weight=w, bias=bb, eps=float(eps)), width, x=n)
    return ctx.b.fresh(out, xs, rows)


def gelu(ctx, node, args, kwargs):
    approx = kwargs.get("approximate", args[1] if len(args) > 1 else "none")
    return activation_node(ctx, args[0], "gelu_tanh" if approx == "tanh" else "gelu_erf", node.name)


def silu(ctx, node, args, kwargs):
    return activation_node(ctx, args[0], "silu", node.name)


def relu(ctx, node, args, kwargs):
    return activation_node(ctx, args[0], "relu", node.name)


def softmax(ctx, node, args, kwargs):
    x, dim = args[0], args[1]
    if not isinstance(x, Scores) or dim not in (-1, len(x.shape) - 1):
        raise FrontendError(f"{node.name}: softmax is supported over the key axis of attention scores only")
    return ctx.softmax_scores(x, node)


def sdpa(ctx, node, args, kwargs):
    q, k, v = args[:3]
    mask = args[3] if len(args) > 3 else kwargs.get("attn_mask")
    dropout = args[4] if len(args) > 4 else kwargs.get("dropout_p", 0.0)
    causal = args[5] if len(args) > 5 else kwargs.get("is_causal", False)
    scale = kwargs.get("scale", args[6] if len(args) > 6 else None)
    if dropout:
        raise FrontendError(f"{node.name}: attention dropout must be 0 (export the module in eval mode)")
    scores = ctx.scores(q, k, node)
    d = q.shape[-1]
    scores = ctx.scale_scores(scores, 1.0 / math.sqrt(d) if scale is None else float(scale), node)
    if mask is not None:
        scores = ctx.mask_scores(scores, mask, node, causal_flag=bool(causal))
    elif causal:
        scores = ctx.causal(scores, node)
    probs = ctx.softmax_scores(scores, node)
    return ctx.attend(probs, v, node)


def embedding(ctx, node, args, kwargs):
    return ctx.embed(args[0], args[1], node)


HANDLERS = {name: layout for name in LAYOUT_OPS}
HANDLERS.update({name: identity for name in IDENTITY_OPS})
HANDLERS.update({name: elementwise(name) for name in ELEMENTWISE})
HANDLERS.update({
    "getitem": getitem, "add": add, "sub": sub, "rsub": rsub, "mul": mul, "div": div, "neg": neg, "pow": power,
    "mean": mean, "linear": linear, "addmm": addmm, "mm": matmul, "matmul": matmul, "bmm": matmul,
    "layer_norm": layer_norm, "gelu": gelu, "silu": silu, "relu": relu, "softmax": softmax, "_softmax": softmax,
    "scaled_dot_product_attention": sdpa, "embedding": embedding,
})
