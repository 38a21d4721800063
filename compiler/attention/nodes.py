"""Node kinds of the attention graph, each with its float semantics.

Tensors flowing along edges have shape ``(B, T) + shape`` where ``B`` is the batch, ``T`` the token
axis and ``shape`` the per-token feature shape the node infers (``(width,)`` for every kind here).
:meth:`evaluate` is the float reference of each op; :mod:`runtime.reference` only walks the graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from scipy.special import erf

from compiler.errors import ShapeError
from compiler.node_base import Node, Registry, array_field

NODE_KINDS = Registry("attention graph")

ACTIVATIONS = ("gelu_erf", "gelu_tanh", "silu", "relu")
ROPE_PAIRINGS = ("half", "interleaved")

Shape = tuple


@dataclass
class EvalContext:
    """What a node may need beyond its inputs: dtype, padding mask (B, T) and positions (B, T)."""

    dtype: type
    mask: np.ndarray
    positions: np.ndarray


def activation(function: str, x: np.ndarray) -> np.ndarray:
    """Pointwise activation ``function`` applied to ``x``.

    gelu_erf(x) = x/2 (1 + erf(x/sqrt 2)); gelu_tanh(x) = x/2 (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3)));
    silu(x) = x / (1 + exp(-x)); relu(x) = max(x, 0).
    """
    if function == "gelu_erf":
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)).astype(x.dtype))
    if function == "gelu_tanh":
        c = x.dtype.type(math.sqrt(2.0 / math.pi))
        return 0.5 * x * (1.0 + np.tanh(c * (x + x.dtype.type(0.044715) * x**3)))
    if function == "silu":
        return x / (1.0 + np.exp(-x))
    if function == "relu":
        return np.maximum(x, 0)
    raise ValueError(f"unknown activation {function!r}")


class AttentionNode(Node):
    """Base of attention-graph node kinds: shape inference and float evaluation."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            NODE_KINDS.register(cls)

    def output_shape(self, shapes: dict[str, Shape]) -> Shape:
        """Per-token output shape given the shapes of the inputs, by port."""
        raise NotImplementedError

    def evaluate(self, args: dict[str, np.ndarray], ctx: EvalContext) -> np.ndarray:
        """Float semantics: inputs by port (each ``(B, T, ...)``) to the output."""
        raise NotImplementedError

    def mismatch(self, port: str, got: Shape, want: Shape, fix: str) -> None:
        raise ShapeError(
            f"node {self.name!r} ({self.kind}): input {port!r} has per-token shape {got}, expected "
            f"{want}; {fix}"
        )


@dataclass
class Input(AttentionNode):
    """Token vectors after the host-side input encoder: ``x_t`` in R^width."""

    kind: ClassVar[str] = "input"
    width: int = 0

    def check(self) -> None:
        super().check()
        if not isinstance(self.width, int) or self.width <= 0:
            self.fail(f"width must be a positive integer, got {self.width!r}")

    def output_shape(self, shapes):
        return (self.width,)

    def evaluate(self, args, ctx):
        raise RuntimeError("input nodes are fed, not evaluated")


@dataclass
class Linear(AttentionNode):
    """Affine map ``y = W x + b`` with ``W`` of shape (out, in) and optional ``b`` (out,)."""

    kind: ClassVar[str] = "linear"
    ports: ClassVar[tuple[str, ...]] = ("x",)
    weight: np.ndarray = array_field()
    bias: np.ndarray | None = array_field(optional=True)

    def check(self) -> None:
        super().check()
        self.expect_shape("weight", (-1, -1))
        self.expect_shape("bias", (self.weight.shape[0],))

    def output_shape(self, shapes):
        if shapes["x"] != (self.weight.shape[1],):
            self.mismatch("x", shapes["x"], (self.weight.shape[1],), "the weight is (out, in)")
        return (self.weight.shape[0],)

    def evaluate(self, args, ctx):
        y = args["x"] @ self.weight.astype(ctx.dtype).T
        return y if self.bias is None else y + self.bias.astype(ctx.dtype)


@dataclass
class Attention(AttentionNode):
    """Scaled dot-product attention with grouped-query heads.

    For query head h (key/value head g = h // (n_heads / n_kv_heads)) and token i:
    ``y_i^h = sum_j a_ij v_j^g``, ``a_ij = exp(s q_i^h.k_j^g) / sum_l exp(s q_i^h.k_l^g)``, where ``j``
    ranges over unmasked tokens (and ``j <= i`` when ``causal``) and ``s`` is ``scale``.  A query with
    no visible key (a causal query before any real token) yields zeros.
    """

    kind: ClassVar[str] = "attention"
    ports: ClassVar[tuple[str, ...]] = ("q", "k", "v")
    n_heads: int = 1
    n_kv_heads: int = 1
    head_dim: int = 1
    v_head_dim: int = 0
    scale: float = 1.0
    causal: bool = False
    use_padding_mask: bool = True

    def __post_init__(self):
        if not self.v_head_dim:
            self.v_head_dim = self.head_dim

    def check(self) -> None:
        super().check()
        for attr in ("n_heads", "n_kv_heads", "head_dim", "v_head_dim"):
            value = getattr(self, attr)
            if not isinstance(value, int) or value <= 0:
                self.fail(f"{attr} must be a positive integer, got {value!r}")
        if self.n_heads % self.n_kv_heads:
            self.fail(f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.n_kv_heads}")
        if not (isinstance(self.scale, (int, float)) and math.isfinite(self.scale) and self.scale > 0):
            self.fail(f"scale must be a positive finite number, got {self.scale!r}")

    def output_shape(self, shapes):
        want = {
            "q": (self.n_heads * self.head_dim,),
            "k": (self.n_kv_heads * self.head_dim,),
            "v": (self.n_kv_heads * self.v_head_dim,),
        }
        for port, shape in want.items():
            if shapes[port] != shape:
                self.mismatch(port, shapes[port], shape, "check n_heads, n_kv_heads and head_dim")
        return (self.n_heads * self.v_head_dim,)

    def split_heads(self, q, k, v):
        """Reshape to (B, H, T, d), repeating key/value heads for grouped-query attention."""
        B, T, _ = q.shape
        group = self.n_heads // self.n_kv_heads
        qh = q.reshape(B, T, self.n_heads, self.head_dim).transpose(0, 2, 1, 3)
        kh = k.reshape(B, T, self.n_kv_heads, self.head_dim).transpose(0, 2, 1, 3)
        vh = v.reshape(B, T, self.n_kv_heads, self.v_head_dim).transpose(0, 2, 1, 3)
        return qh, np.repeat(kh, group, axis=1), np.repeat(vh, group, axis=1)

    def visibility(self, ctx: EvalContext, T: int) -> np.ndarray:
        """Boolean (B, 1, T_query, T_key): which keys each query may attend to."""
        visible = np.ones((ctx.mask.shape[0], 1, T, T), dtype=bool)
        if self.use_padding_mask:
            visible &= ctx.mask[:, None, None, :]
        if self.causal:
            visible &= np.tril(np.ones((T, T), dtype=bool))[None, None]
        return visible

    def evaluate(self, args, ctx):
        qh, kh, vh = self.split_heads(args["q"], args["k"], args["v"])
        B, H, T, _ = qh.shape
        logits = (qh @ kh.transpose(0, 1, 3, 2)) * ctx.dtype(self.scale)
        visible = self.visibility(ctx, T)
        logits = np.where(visible, logits, -np.inf)
        peak = np.max(logits, axis=-1, keepdims=True)
        peak = np.where(np.isfinite(peak), peak, 0)
        weights = np.exp(logits - peak)
        total = weights.sum(axis=-1, keepdims=True)
        weights = weights / np.where(total > 0, total, 1)
        out = weights @ vh
        return out.transpose(0, 2, 1, 3).reshape(B, T, H * self.v_head_dim)


class Elementwise(AttentionNode):
    """Base of two-input elementwise ops: both inputs share one per-token shape."""

    ports: ClassVar[tuple[str, ...]] = ("a", "b")

    def output_shape(self, shapes):
        if shapes["a"] != shapes["b"]:
            self.mismatch("b", shapes["b"], shapes["a"], f"both inputs of {self.kind} need the same width")
        return shapes["a"]


@dataclass
class Add(Elementwise):
    """Residual sum ``y = a + b``."""

    kind: ClassVar[str] = "add"

    def evaluate(self, args, ctx):
        return args["a"] + args["b"]


@dataclass
class Mul(Elementwise):
    """Elementwise product ``y = a * b`` (the gate of SwiGLU)."""

    kind: ClassVar[str] = "mul"

    def evaluate(self, args, ctx):
        return args["a"] * args["b"]


class Norm(AttentionNode):
    """Base of normalisations over the feature axis: a gain ``weight`` sets the width; ``eps`` >= 0."""

    ports: ClassVar[tuple[str, ...]] = ("x",)

    def check(self) -> None:
        super().check()
        self.expect_shape("weight", (-1,))
        if not (isinstance(self.eps, (int, float)) and self.eps >= 0):
            self.fail(f"eps must be a non-negative number, got {self.eps!r}")

    def output_shape(self, shapes):
        if shapes["x"] != self.weight.shape:
            self.mismatch("x", shapes["x"], self.weight.shape, "the weight length sets the width")
        return shapes["x"]


@dataclass
class LayerNorm(Norm):
    """``y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias`` over the feature axis."""

    kind: ClassVar[str] = "layernorm"
    weight: np.ndarray = array_field()
    bias: np.ndarray | None = array_field(optional=True)
    eps: float = 1e-5

    def check(self) -> None:
        super().check()
        self.expect_shape("bias", self.weight.shape)

    def evaluate(self, args, ctx):
        x = args["x"]
        centred = x - x.mean(axis=-1, keepdims=True)
        var = (centred**2).mean(axis=-1, keepdims=True)
        y = centred / np.sqrt(var + ctx.dtype(self.eps)) * self.weight.astype(ctx.dtype)
        return y if self.bias is None else y + self.bias.astype(ctx.dtype)


@dataclass
class RMSNorm(Norm):
    """``y = x / sqrt(mean(x^2) + eps) * weight`` over the feature axis."""

    kind: ClassVar[str] = "rmsnorm"
    weight: np.ndarray = array_field()
    eps: float = 1e-6

    def evaluate(self, args, ctx):
        x = args["x"]
        rms = np.sqrt((x * x).mean(axis=-1, keepdims=True) + ctx.dtype(self.eps))
        return x / rms * self.weight.astype(ctx.dtype)


@dataclass
class Activation(AttentionNode):
    """Pointwise nonlinearity; ``function`` is one of gelu_erf, gelu_tanh, silu, relu."""

    kind: ClassVar[str] = "activation"
    ports: ClassVar[tuple[str, ...]] = ("x",)
    function: str = "gelu_erf"

    def check(self) -> None:
        super().check()
        if self.function not in ACTIVATIONS:
            self.fail(f"unknown activation {self.function!r}; supported: {', '.join(ACTIVATIONS)}")

    def output_shape(self, shapes):
        return shapes["x"]

    def evaluate(self, args, ctx):
        return activation(self.function, args["x"])


def rope_tables(positions: np.ndarray, rotary_dim: int, base: float, dtype) -> tuple:
    """cos and sin of ``p * base^(-2i/rotary_dim)``, each ``positions.shape + (rotary_dim/2,)``."""
    inv_freq = 1.0 / (base ** (np.arange(0, rotary_dim, 2, dtype=np.float64) / rotary_dim))
    angles = positions[..., None].astype(np.float64) * inv_freq
    return np.cos(angles).astype(dtype), np.sin(angles).astype(dtype)


def apply_rope(x: np.ndarray, positions, n_heads: int, head_dim: int, base: float, pairing: str,
               rotary_dim: int, dtype) -> np.ndarray:
    """Rotate ``x`` (..., n_heads * head_dim) at ``positions`` (broadcastable to ``x.shape[:-1]``).

    See :class:`Rope` for the equations; the reference, the golden simulator and the Lava kernels
    all rotate through this function.
    """
    lead = x.shape[:-1]
    xh = x.reshape(*lead, n_heads, head_dim)
    cos, sin = rope_tables(np.asarray(positions), rotary_dim, base, dtype)
    cos, sin = cos[..., None, :], sin[..., None, :]
    rot, rest = xh[..., :rotary_dim], xh[..., rotary_dim:]
    if pairing == "half":
        a, b = rot[..., : rotary_dim // 2], rot[..., rotary_dim // 2 :]
        rotated = np.concatenate([a * cos - b * sin, b * cos + a * sin], axis=-1)
    else:
        a, b = rot[..., 0::2], rot[..., 1::2]
        rotated = np.stack([a * cos - b * sin, b * cos + a * sin], axis=-1).reshape(rot.shape)
    return np.concatenate([rotated, rest], axis=-1).reshape(*lead, -1)


@dataclass
class Rope(AttentionNode):
    """Rotary position embedding of each head's first ``rotary_dim`` features.

    Feature pairs (a, b) rotate by angle ``p theta_i``, ``theta_i = base^(-2i/rotary_dim)`` at position p:
    ``a' = a cos - b sin``, ``b' = b cos + a sin``.  ``pairing='half'`` pairs feature i with
    i + rotary_dim/2 (Hugging Face LLaMA); ``'interleaved'`` pairs 2i with 2i+1 (GPT-J, Meta LLaMA).
    """

    kind: ClassVar[str] = "rope"
    ports: ClassVar[tuple[str, ...]] = ("x",)
    n_heads: int = 1
    head_dim: int = 2
    base: float = 10000.0
    pairing: str = "half"
    rotary_dim: int = 0

    def __post_init__(self):
        if not self.rotary_dim:
            self.rotary_dim = self.head_dim

    def check(self) -> None:
        super().check()
        if self.pairing not in ROPE_PAIRINGS:
            self.fail(f"unknown pairing {self.pairing!r}; supported: {', '.join(ROPE_PAIRINGS)}")
        if self.rotary_dim % 2 or not 0 < self.rotary_dim <= self.head_dim:
            self.fail(f"rotary_dim={self.rotary_dim} must be even and <= head_dim={self.head_dim}")
        if not (isinstance(self.base, (int, float)) and self.base > 1):
            self.fail(f"base must be a number > 1, got {self.base!r}")

    def output_shape(self, shapes):
        want = (self.n_heads * self.head_dim,)
        if shapes["x"] != want:
            self.mismatch("x", shapes["x"], want, "the input holds n_heads * head_dim features")
        return want

    def evaluate(self, args, ctx):
        return apply_rope(args["x"], ctx.positions, self.n_heads, self.head_dim, self.base, self.pairing,
                          self.rotary_dim, ctx.dtype)


@dataclass
class Output(AttentionNode):
    """A named model output: ``role`` is hidden, logits or another name the runtime reports."""

    kind: ClassVar[str] = "output"
    ports: ClassVar[tuple[str, ...]] = ("x",)
    role: str = "hidden"

    def check(self) -> None:
        super().check()
        if not isinstance(self.role, str) or not self.role.isidentifier():
            self.fail(f"role must be an identifier such as 'hidden' or 'logits', got {self.role!r}")

    def output_shape(self, shapes):
        return shapes["x"]

    def evaluate(self, args, ctx):
        return args["x"]


def kinds() -> list[str]:
    """Names of every registered node kind."""
    return sorted(NODE_KINDS)

