"""Symbolic values of an exported PyTorch program while it is mapped onto the attention graph.

The attention graph holds per-token feature vectors: a node's output is ``(B, T, F)``.  Inside a
PyTorch program the same data appears under many layouts (``(B, H, T, D)`` heads, ``(T*B, F)`` rows,
slices of a packed q/k/v projection, ...).  A :class:`Tok` tracks such a tensor exactly: it is a sum
of terms, each gathering elements of one attention-graph node ``base`` with a coefficient,

    ``value[e] = sum_k coef_k[e] * base[b(e), t(e), f_k(e)] + bias[e]``,

where the integer ``code_k[e] = (b T + t) F + f`` names the gathered element.  Layout ops (view,
transpose, slice, cat, expand ...) are run by torch itself on the code and coefficient tensors, so
every layout torch can express is followed exactly.  Scalar and per-position products (RoPE's cos/sin
tables), negation and sums of the same base only change coefficients and terms.  When an op needs
the data as a node (a linear layer, a norm, attention), :meth:`Tok.canonical` turns the gather into
nothing (the base itself), a :class:`~compiler.attention.nodes.Linear` (a position-independent
combination: selections, sums, scalings, biases) or a :class:`~compiler.attention.nodes.Rope` (a
position-dependent rotation), or refuses.

:class:`Elem` is an elementwise nonlinear function of one canonical tensor (GPT-2's tanh GELU written
out), recognised as an activation by its values; :class:`RowStat` a statistic over the feature axis on
its way to an RMSNorm; :class:`Scores` attention scores between raw attention ops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from compiler.attention import nodes as op
from compiler.attention.nodes import ACTIVATIONS, activation
from compiler.errors import FrontendError


@dataclass
class Builder:
    """The attention graph under construction and the sizes every code refers to."""

    graph: object
    B: int
    T: int
    widths: dict[str, int] = field(default_factory=dict)
    names: set[str] = field(default_factory=set)

    def unique(self, name: str) -> str:
        base, n = name, 1
        while name in self.names:
            n += 1
            name = f"{base}.{n}"
        self.names.add(name)
        return name

    def add(self, node, width: int, **inputs) -> str:
        node.name = self.unique(node.name)
        self.graph.add(node, **inputs)
        self.widths[node.name] = width
        return node.name

    def fresh(self, name: str, shape: tuple[int, ...], rows) -> Tok:
        """A Tok reading node ``name`` whose rows (b, t) are ``rows`` (shape[:-1]) and features the last axis."""
        import torch

        width = shape[-1]
        codes = rows.unsqueeze(-1) * width + torch.arange(width)
        return Tok(name, width, [(codes, torch.ones(codes.shape, dtype=torch.float64))])


class Tok:
    """A linear, token-local view of one attention-graph node (see the module docstring)."""

    def __init__(self, base: str, width: int, terms, bias=None):
        self.base, self.width, self.terms, self.bias = base, width, terms, bias
        self.cache = None

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.terms[0][0].shape)

    def map(self, fn) -> Tok:
        """Apply a layout function (torch tensor -> tensor) to every code, coefficient and bias tensor."""
        terms = [(fn(c), fn(k)) for c, k in self.terms]
        return Tok(self.base, self.width, terms, None if self.bias is None else fn(self.bias))

    def scaled(self, factor) -> Tok:
        """``factor * self`` for a constant ``factor`` broadcastable to the tensor."""
        import torch

        factor = torch.as_tensor(factor, dtype=torch.float64)
        out = []
        for codes, coefs in self.terms:
            codes, coefs, f = torch.broadcast_tensors(codes, coefs, factor)
            out.append((codes, coefs * f))
        bias = None if self.bias is None else self.bias * factor
        return Tok(self.base, self.width, out, bias)

    def plus_const(self, const) -> Tok:
        import torch

        const = torch.as_tensor(const, dtype=torch.float64)
        bias = const if self.bias is None else self.bias + const
        terms = [tuple(torch.broadcast_tensors(c, k, bias)[:2]) for c, k in self.terms]
        return Tok(self.base, self.width, terms, torch.broadcast_to(bias, terms[0][0].shape))

    def plus(self, other: Tok) -> Tok:
        import torch

        terms = []
        for c, k in self.terms + other.terms:
            c, k, _ = torch.broadcast_tensors(c, k, other.terms[0][0])
            c, k, _ = torch.broadcast_tensors(c, k, self.terms[0][0])
            terms.append((c, k))
        biases = [b for b in (self.bias, other.bias) if b is not None]
        bias = None if not biases else sum(torch.broadcast_to(b, terms[0][0].shape) for b in biases)
        return Tok(self.base, self.width, terms, bias)

    # ---- turning the gather into a node ----------------------------------------------------
    def rows(self, b: Builder, where: str):
        """Batch-token index ``b T + t`` of every element (checked equal across terms)."""
        import torch

        size = self.width
        rows = self.terms[0][0] // size
        for codes, coefs in self.terms[1:]:
            if not torch.equal(torch.where(coefs != 0, codes // size, rows), rows):
                raise FrontendError(f"{where}: mixes features of different tokens; only token-local ops are supported")
        return rows

    def canonical(self, b: Builder, where: str, token_axis: int | None = None) -> tuple[str, object]:
        """``(node, rows)``: a node holding this tensor's features per token in logical order.

        ``rows`` (shape of the tensor without its feature axes) gives each row's ``b T + t``.
        With ``token_axis`` the batch axis is 0, the token axis ``token_axis`` and every other axis
        a feature axis (heads layout); without, the last axis alone holds the features.
        """
        import torch

        if self.cache is not None and self.cache[0] == token_axis:
            return self.cache[1]
        rows = self.rows(b, where)
        shape = self.shape
        if token_axis is None:
            rows_view = rows[..., 0]
            if not torch.equal(rows, rows_view.unsqueeze(-1).expand(shape)):
                raise FrontendError(f"{where}: features of one token are spread over several rows; "
                                    "this layout is not supported")
            order = torch.arange(rows.numel()).reshape(shape)
            feats = shape[-1]
        else:
            perm = [0, token_axis] + [i for i in range(len(shape)) if i not in (0, token_axis)]
            flat = rows.permute(perm).reshape(shape[0], shape[token_axis], -1)
            if not torch.equal(flat, flat[..., :1].expand(flat.shape)):
                raise FrontendError(f"{where}: the batch or token axis is not where attention expects it")
            rows_view = flat[..., 0]
            order = torch.arange(rows.numel()).reshape(shape).permute(perm).reshape(flat.shape)
            feats = flat.shape[-1]
        unique = torch.sort(rows_view.reshape(-1)).values
        if not torch.equal(unique, torch.arange(b.B * b.T)):
            raise FrontendError(f"{where}: does not hold every token exactly once (a token subset or a "
                                "repeat); only whole sequences are supported")
        node = self.build(b, where, order.reshape(-1, feats), rows_view.reshape(-1), feats, token_axis)
        self.cache = (token_axis, (node, rows_view))
        return node, rows_view

    def build(self, b: Builder, where: str, order, row_of, feats: int, token_axis) -> str:
        """The node computing the gather for the rows in ``order`` (row r: elements order[r])."""
        import torch

        positions = row_of % b.T
        sels, coefs = [], []
        for codes, k in self.terms:
            c, kk = codes.reshape(-1)[order] % self.width, k.reshape(-1)[order]
            ref = torch.where(kk != 0, c, -1).max(dim=0).values
            if not torch.equal(torch.where(kk != 0, c, ref), ref.expand(c.shape)):
                raise FrontendError(f"{where}: gathers different features for different tokens")
            sels.append(ref.clamp(min=0).expand(c.shape))
            coefs.append(kk)
        bias = None if self.bias is None else self.bias.reshape(-1)[order]
        static = all(torch.equal(k, k[:1].expand(k.shape)) for k in coefs)
        if bias is not None and not torch.equal(bias, bias[:1].expand(bias.shape)):
            raise FrontendError(f"{where}: adds a different constant at each token; only a bias shared by all "
                                "tokens (or a position table on the embeddings) is supported")
        no_bias = bias is None or not torch.any(bias != 0)
        if static and no_bias and feats == self.width and len(sels) == 1 and torch.all(coefs[0] == 1) and \
                torch.equal(sels[0][0], torch.arange(feats)):
            return self.base  # the node itself, in its own order
        if static:
            weight = np.zeros((feats, self.width))
            for s, k in zip(sels, coefs):
                np.add.at(weight, (np.arange(feats), s[0].numpy()), k[0].numpy())
            bias0 = None if bias is None or not torch.any(bias != 0) else bias[0].numpy().astype(np.float64)
            if bias0 is None and feats == self.width and np.array_equal(weight, np.eye(feats)):
                return self.base
            return b.add(op.Linear(where, weight=weight, bias=bias0), feats, x=self.base)
        return self.rope(b, where, sels, coefs, positions, feats, token_axis)

    def rope(self, b: Builder, where: str, sels, coefs, positions, feats: int, token_axis) -> str:
        """Match a position-dependent combination as rotary embedding of a gathered input."""
        import torch

        if len(self.terms) != 2 or self.bias is not None or token_axis is None:
            raise FrontendError(f"{where}: multiplies by a position-dependent table that is not a rotary embedding")
        head_dim = self.shape[-1]
        n_heads = feats // head_dim
        at0 = [k[positions == 0] for k in coefs]
        main = 0 if torch.all(at0[0][0] == 1) else 1
        sel, other = sels[main][0], sels[1 - main][0]
        weight = np.zeros((feats, self.width))
        weight[np.arange(feats), sel.numpy()] = 1.0
        source = self.base if feats == self.width and np.array_equal(weight, np.eye(feats)) else b.add(
            op.Linear(where + ".select", weight=weight), feats, x=self.base)
        cos = coefs[main].reshape(-1, feats)
        sin = coefs[1 - main].reshape(-1, feats)
        pos = positions.reshape(-1)
        for pairing in ("half", "interleaved"):
            partner = partner_index(n_heads, head_dim, pairing)
            if not torch.equal(other, sel[partner]):
                continue
            base = infer_base(cos, sin, pos, head_dim, pairing)
            want_cos, want_sin = rope_tables(base, pos, n_heads, head_dim, pairing)
            if np.allclose(cos.numpy(), want_cos, atol=1e-5) and np.allclose(sin.numpy(), want_sin, atol=1e-5):
                return b.add(op.Rope(where, n_heads=n_heads, head_dim=head_dim, base=base, pairing=pairing),
                             feats, x=source)
        raise FrontendError(f"{where}: multiplies by a position-dependent table that is not a rotary embedding")


def partner_index(n_heads: int, head_dim: int, pairing: str) -> np.ndarray:
    """Feature paired with each feature by the rotation (rotate_half or interleaved pairs)."""
    i = np.arange(head_dim)
    within = (i + head_dim // 2) % head_dim if pairing == "half" else i ^ 1
    return (np.arange(n_heads)[:, None] * head_dim + within[None]).reshape(-1)


def rope_tables(base: float, positions, n_heads: int, head_dim: int, pairing: str):
    """(cos, signed sin) coefficient of each feature and of its partner, per position (rows)."""
    half = head_dim // 2
    i = np.arange(head_dim)
    freq = i % half if pairing == "half" else i // 2
    first = i < half if pairing == "half" else i % 2 == 0
    theta = base ** (-2.0 * freq / head_dim)
    angle = np.asarray(positions, dtype=np.float64)[:, None] * theta[None]
    cos, sin = np.cos(angle), np.sin(angle) * np.where(first, -1.0, 1.0)
    return np.tile(cos, n_heads), np.tile(sin, n_heads)


def infer_base(cos, sin, positions, head_dim: int, pairing: str) -> float:
    """The RoPE base from the angle of the second frequency at the first position > 0."""
    pos = positions.numpy()
    if head_dim < 4 or not np.any(pos > 0):
        return 10000.0
    row = int(np.argmax(pos > 0))
    col = 1 if pairing == "half" else 2
    angle = math.atan2(abs(float(sin[row, col])), float(cos[row, col])) / float(pos[row])
    if angle <= 0:
        return 10000.0
    base = angle ** (-head_dim / 2.0)
    return float(f"{base:.6g}")


@dataclass
class Elem:
    """``fn(x)`` elementwise, with ``x`` the canonical node ``node`` read through ``rows``."""

    node: str
    rows: object
    shape: tuple
    fn: object

    def same_source(self, other: Elem) -> bool:
        import torch

        return self.node == other.node and self.shape == other.shape and torch.equal(self.rows, other.rows)


GRID = np.linspace(-12.0, 12.0, 4801)


def match_activation(fn) -> str | None:
    """The activation equal to ``fn`` on a grid of inputs (``identity`` included), or ``None``."""
    with np.errstate(all="ignore"):
        values = fn(GRID.copy())
    if np.allclose(values, GRID, rtol=1e-9, atol=1e-12):
        return "identity"
    for name in ACTIVATIONS:
        if np.allclose(values, activation(name, GRID.copy()), rtol=1e-7, atol=1e-9):
            return name
    return None


@dataclass
class Ids:
    """The token ids, as the index ``b T + t`` of each id (layout ops apply to it)."""

    rows: object


@dataclass
class RowStat:
    """A per-token statistic of node ``node``: ``mean(x^2)`` (+ ``eps``), then ``rsqrt`` or ``sqrt``."""

    node: str
    rows: object
    eps: float = 0.0
    stage: str = "mean_square"


@dataclass
class Scores:
    """Attention scores (raw-op node ``node``) of ``n_heads`` heads, tensor (B, H, T_query, T_key)."""

    node: str
    n_heads: int
    shape: tuple
    stage: str = "scores"
