"""Raw attention ops, as ONNX exports and traced graphs express attention before it is matched.

A score tensor holds, for every query token, one row per head over the key tokens: per-token shape
``(n_heads, -1)`` (``-1``: one entry per key token), tensors (B, T_query, n_heads, T_key).  The
``match_attention`` pass rewrites ``matmul(qk) -> scale -> [mask_add] -> [causal_mask] -> softmax
-> matmul(pv)`` into one :class:`~compiler.attention.nodes.Attention` node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from compiler.attention.nodes import AttentionNode

MATMUL_MODES = ("qk", "pv")


def is_scores(shape) -> bool:
    return len(shape) == 2 and shape[1] == -1


@dataclass
class MatMul(AttentionNode):
    """Per-head products with the head reshapes folded in (grouped-query heads repeat).

    ``qk``: ``s_i^h[j] = q_i^h . k_j^g`` from queries ``a`` (n_heads*head_dim) and keys ``b``
    (n_kv_heads*head_dim).  ``pv``: ``y_i^h = sum_j p_i^h[j] v_j^g`` from scores ``a`` and values ``b``
    (n_kv_heads*head_dim).  ``g = h // (n_heads / n_kv_heads)``.
    """

    kind: ClassVar[str] = "matmul"
    ports: ClassVar[tuple[str, ...]] = ("a", "b")
    mode: str = "qk"
    n_heads: int = 1
    n_kv_heads: int = 1
    head_dim: int = 1

    def check(self) -> None:
        super().check()
        if self.mode not in MATMUL_MODES:
            self.fail(f"mode must be one of {MATMUL_MODES}, got {self.mode!r}")
        if self.n_heads % self.n_kv_heads:
            self.fail(f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.n_kv_heads}")

    def output_shape(self, shapes):
        a = (self.n_heads, -1) if self.mode == "pv" else (self.n_heads * self.head_dim,)
        if shapes["a"] != a:
            self.mismatch("a", shapes["a"], a, "check n_heads and head_dim")
        if shapes["b"] != (self.n_kv_heads * self.head_dim,):
            self.mismatch("b", shapes["b"], (self.n_kv_heads * self.head_dim,), "check n_kv_heads and head_dim")
        return (self.n_heads, -1) if self.mode == "qk" else (self.n_heads * self.head_dim,)

    def kv_heads(self, x):
        B, T, _ = x.shape
        xh = x.reshape(B, T, self.n_kv_heads, self.head_dim).transpose(0, 2, 1, 3)
        return np.repeat(xh, self.n_heads // self.n_kv_heads, axis=1)

    def evaluate(self, args, ctx):
        a, b = args["a"], args["b"]
        B, T = a.shape[:2]
        if self.mode == "qk":
            qh = a.reshape(B, T, self.n_heads, self.head_dim).transpose(0, 2, 1, 3)
            return (qh @ self.kv_heads(b).transpose(0, 1, 3, 2)).transpose(0, 2, 1, 3)
        out = a.transpose(0, 2, 1, 3) @ self.kv_heads(b)
        return out.transpose(0, 2, 1, 3).reshape(B, T, -1)


@dataclass
class Scale(AttentionNode):
    """``y = factor x``."""

    kind: ClassVar[str] = "scale"
    ports: ClassVar[tuple[str, ...]] = ("x",)
    factor: float = 1.0

    def check(self) -> None:
        super().check()
        if not (isinstance(self.factor, (int, float)) and math.isfinite(self.factor)):
            self.fail(f"factor must be a finite number, got {self.factor!r}")

    def output_shape(self, shapes):
        return shapes["x"]

    def evaluate(self, args, ctx):
        return args["x"] * ctx.dtype(self.factor)


class ScoreOp(AttentionNode):
    """Base of ops on score tensors."""

    def output_shape(self, shapes):
        if not is_scores(shapes["x"]):
            self.mismatch("x", shapes["x"], ("n_heads", -1), "feed it attention scores (a qk matmul)")
        return shapes["x"]


@dataclass
class MaskAdd(ScoreOp):
    """Padding mask: ``y[.., j] = x[.., j] + (0 if token j is real else value)`` (value <= -1e4)."""

    kind: ClassVar[str] = "mask_add"
    ports: ClassVar[tuple[str, ...]] = ("x",)
    value: float = -math.inf

    def check(self) -> None:
        super().check()
        if not (isinstance(self.value, (int, float)) and self.value <= -1e4):
            self.fail(f"value must be a large negative number (or -inf), got {self.value!r}")

    def evaluate(self, args, ctx):
        add = np.where(ctx.mask, ctx.dtype(0), ctx.dtype(self.value))
        return args["x"] + add[:, None, None, :]


@dataclass
class CausalMask(ScoreOp):
    """``y[i, .., j] = x[i, .., j]`` for ``j <= i``, ``-inf`` after."""

    kind: ClassVar[str] = "causal_mask"
    ports: ClassVar[tuple[str, ...]] = ("x",)

    def evaluate(self, args, ctx):
        x = args["x"]
        T = x.shape[1]
        return np.where(np.tril(np.ones((T, T), dtype=bool))[None, :, None, :], x, -np.inf)


@dataclass
class Softmax(ScoreOp):
    """``p_j = exp(x_j - max x) / sum_l exp(x_l - max x)`` over key tokens; all ``-inf`` rows give 0."""

    kind: ClassVar[str] = "softmax"
    ports: ClassVar[tuple[str, ...]] = ("x",)

    def evaluate(self, args, ctx):
        x = args["x"]
        peak = np.max(x, axis=-1, keepdims=True)
        peak = np.where(np.isfinite(peak), peak, 0)
        w = np.exp(x - peak)
        total = w.sum(axis=-1, keepdims=True)
        return w / np.where(total > 0, total, 1)


RAW_KINDS = ("matmul", "scale", "mask_add", "causal_mask", "softmax")
