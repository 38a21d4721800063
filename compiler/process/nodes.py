"""Node kinds of the process graph: circuit elements with the equations they implement.

Activity flowing along edges has shape ``(B, T, size)``: the graded-spike payload of a population
(or the output of a circuit element) for every token.  Time is organised by a :class:`Schedule`:
for each token a *write* phase (keys and values are stored) and a *read* phase (a query retrieves);
``causal`` schedules interleave write t / read t, ``bidirectional`` ones write all tokens, then read
all.  Padding tokens are never written.

Attention circuits (Kozachkov, Kastanenka & Krotov, PNAS 2023) are four nodes per attention op:
``FeaturePopulation`` -> ``HebbianSynapses`` -> ``Astrocyte`` (output: the gated population activity),
with the key/query/value populations feeding them.  Every node has ``quant`` (JSON; filled by the
quantize pass) and ``circuit`` (the attention op or block it came from; used by placement and
``fused`` backends).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from compiler.attention.nodes import ACTIVATIONS, ROPE_PAIRINGS, activation, apply_rope
from compiler.node_base import Node, Registry, array_field

PROCESS_KINDS = Registry("process graph")

RESPONSES = ("identity", "product", "rotary") + ACTIVATIONS
LOWERINGS = ("exact", "favor", "relu", "elu1", "taylor2", "learned")
SCHEDULES = ("causal", "bidirectional")


class ProcessNode(Node):
    """Base of process-graph kinds: ``size()`` is the number of output neurons (or channels)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            PROCESS_KINDS.register(cls)

    def out_size(self) -> int:
        raise NotImplementedError

    def output_shape(self, shapes: dict[str, tuple]) -> tuple:
        """Per-token output shape ``(out_size,)``; port sizes are checked by ``ProcessGraph.validate``."""
        return (self.out_size(),)

    def input_sizes(self) -> dict[str, int]:
        """Expected size of the producer on each port (checked by ``ProcessGraph.validate``)."""
        return {}


@dataclass
class Schedule(ProcessNode):
    """Phase schedule shared by attention circuits: ``mode`` causal (write t, read t, t = 0..T-1)
    or bidirectional (write 0..T-1, then read 0..T-1); ``max_tokens`` bounds the context (the
    number of slots of exact circuits).  Masked tokens skip their write phase unless
    ``use_padding_mask`` is false (then every token is written)."""

    kind: ClassVar[str] = "schedule"
    mode: str = "bidirectional"
    max_tokens: int = 128
    use_padding_mask: bool = True
    quant: dict = field(default_factory=dict)
    circuit: str = ""

    def check(self):
        super().check()
        if self.mode not in SCHEDULES:
            self.fail(f"mode must be one of {SCHEDULES}, got {self.mode!r}")
        if not isinstance(self.max_tokens, int) or self.max_tokens <= 0:
            self.fail(f"max_tokens must be a positive integer, got {self.max_tokens!r}")

    def out_size(self):
        return 0


@dataclass
class InputEncoderNode(ProcessNode):
    """Host-side source: token vectors from the input encoder (embeddings), one token per phase."""

    kind: ClassVar[str] = "input_encoder"
    size: int = 1
    quant: dict = field(default_factory=dict)
    circuit: str = ""

    def out_size(self):
        return self.size


@dataclass
class OutputDecoder(ProcessNode):
    """Host-side sink reading a population's activity as the model output ``role``."""

    kind: ClassVar[str] = "output_decoder"
    ports: ClassVar[tuple[str, ...]] = ("x",)
    role: str = "hidden"
    size: int = 1
    quant: dict = field(default_factory=dict)
    circuit: str = ""

    def out_size(self):
        return self.size

    def input_sizes(self):
        return {"x": self.size}


@dataclass
class Population(ProcessNode):
    """A population of ``size`` graded neurons; input ports ``in0 .. in{fan_in-1}``, each fed by one
    synapse group (or a circuit output) of the same size.

    ``u = sum_p in_p`` (``response='product'``: ``u = prod_p in_p``, the multiplicative dendrite of
    SwiGLU gates), then the response: identity ``y = u``; ``gelu_erf``, ``gelu_tanh``, ``silu``,
    ``relu`` as in :func:`compiler.attention.nodes.activation`; ``rotary``: ``y = u cos(p theta) +
    R u sin(p theta)`` where ``p`` is the token position from the schedule, ``R`` the pair rotation
    of :class:`compiler.attention.nodes.Rope` (attributes in ``rope``: n_heads, head_dim, base,
    pairing, rotary_dim).
    """

    kind: ClassVar[str] = "population"
    size: int = 1
    response: str = "identity"
    fan_in: int = 1
    rope: dict = field(default_factory=dict)
    quant: dict = field(default_factory=dict)
    circuit: str = ""

    def input_ports(self):
        return tuple(f"in{i}" for i in range(self.fan_in))

    def check(self):
        super().check()
        if self.response not in RESPONSES:
            self.fail(f"response must be one of {RESPONSES}, got {self.response!r}")
        if not isinstance(self.fan_in, int) or self.fan_in < 1:
            self.fail(f"fan_in must be a positive integer, got {self.fan_in!r}")
        if self.response == "product" and self.fan_in != 2:
            self.fail("product neurons take exactly two inputs")
        if self.response == "rotary":
            missing = {"n_heads", "head_dim", "base", "pairing", "rotary_dim"} - set(self.rope)
            if missing:
                self.fail(f"rotary population needs rope attributes {sorted(missing)}")
            if self.rope["pairing"] not in ROPE_PAIRINGS:
                self.fail(f"rope pairing must be one of {ROPE_PAIRINGS}")

    def out_size(self):
        return self.size

    def input_sizes(self):
        return {p: self.size for p in self.input_ports()}

    def respond(self, inputs: list, positions, dtype):
        """The float response to ``inputs`` (one array per port, same shape) at token ``positions``
        (broadcastable to the leading axes); the golden simulator and the Lava kernels call this."""
        if self.response == "product":
            return inputs[0] * inputs[1]
        u = inputs[0]
        for extra in inputs[1:]:
            u = u + extra
        if self.response == "identity":
            return u
        if self.response == "rotary":
            return apply_rope(u, positions, dtype=dtype, **self.rope)
        return activation(self.response, u)


@dataclass
class Synapses(ProcessNode):
    """A static synapse group from a ``pre`` population of ``pre_size`` neurons onto ``post_size``.

    ``out = W pre + b`` with ``W`` (post_size, pre_size); ``weight=None`` means one-to-one identity
    synapses (``out = pre``, residual and skip paths).  ``bias`` is optional.
    """

    kind: ClassVar[str] = "synapses"
    ports: ClassVar[tuple[str, ...]] = ("pre",)
    pre_size: int = 1
    post_size: int = 1
    weight: np.ndarray | None = array_field(optional=True)
    bias: np.ndarray | None = array_field(optional=True)
    quant: dict = field(default_factory=dict)
    circuit: str = ""

    def check(self):
        super().check()
        self.expect_shape("weight", (self.post_size, self.pre_size))
        self.expect_shape("bias", (self.post_size,))
        if self.weight is None and self.pre_size != self.post_size:
            self.fail("one-to-one synapses need pre_size == post_size")

    def out_size(self):
        return self.post_size

    def input_sizes(self):
        return {"pre": self.pre_size}


@dataclass
class NormAstrocyte(ProcessNode):
    """A normalising astrocyte over the neuron domain of its input population (``size`` neurons).

    It integrates the domain's mean and second moment and sends a divisive gain back onto the
    domain's output synapses: ``layer``: ``y = (x - mean(x)) g weight + bias``, ``g = 1/sqrt(var(x)
    + eps)``; ``rms``: ``y = x g weight``, ``g = 1/sqrt(mean(x^2) + eps)``.
    """

    kind: ClassVar[str] = "norm_astrocyte"
    ports: ClassVar[tuple[str, ...]] = ("x",)
    weight: np.ndarray = array_field()
    size: int = 1
    mode: str = "layer"
    bias: np.ndarray | None = array_field(optional=True)
    eps: float = 1e-5
    quant: dict = field(default_factory=dict)
    circuit: str = ""

    def check(self):
        super().check()
        if self.mode not in ("layer", "rms"):
            self.fail(f"mode must be 'layer' or 'rms', got {self.mode!r}")
        self.expect_shape("weight", (self.size,))
        self.expect_shape("bias", (self.size,))

    def out_size(self):
        return self.size

    def input_sizes(self):
        return {"x": self.size}


@dataclass
class FeaturePopulation(ProcessNode):
    """Feature neurons F of an attention circuit: ``m`` per query head.

    Ports ``key`` (the key population, active in write phases) and ``query`` (read phases).
    ``lowering``:

    - ``exact``: slot neurons, ``m = max_tokens``.  Write of token t: slot t's afferent plastic
      synapses take ``k_t`` (one-shot Hebbian) and slot t fires ``f_t = 1``.  Read of query q:
      ``f_j(q) = exp(scale q.k_j - s)`` for written slots, ``s`` the soma's stabilising offset
      (running max of ``scale q.k_j``) fed back as an inhibitory bias.
    - ``favor``: ``f(x) = exp(W x' - |x'|^2/2)/sqrt(m)``, ``x' = x sqrt(scale)``, ``projection``
      (n_kv_heads, m, head_dim) Gaussian (iid or orthogonal rows).
    - ``relu``: ``f(x) = relu(W x')``; ``elu1``: ``f(x) = elu(x') + 1`` (m = head_dim);
      ``taylor2``: ``f(x) = [1, x', vec(x' x'^T)/sqrt 2]`` (m = 1 + d + d^2).
    - ``learned``: ``f(x) = [softmax(x W + b), softmax(-(x W + b))]`` (m = 2 x columns of W), the
      affine part folded into the afferent synapses and each softmax a divisive normalisation over
      its half of the population; ``q_weight``/``q_bias`` per query head, ``k_weight``/``k_bias`` per
      key/value head (:mod:`compiler.distill`).  With ``window`` W > 0, W exact slots hold the keys
      nearest each query (responding ``exp(scale q.k_j - s)``), and the feature responses to a query
      are scaled by ``exp(log_gain - s)`` so both parts share the soma's normaliser.  Causal: a ring
      of the most recent written tokens; a token leaving it is consolidated into the feature memory
      (written as ``f(k)``).  Bidirectional: the keys with ``-floor(W/2) <= j - i <= floor((W-1)/2)``,
      every token written to the feature memory and each slot inhibiting its own token's share
      (:mod:`hardware_sim.golden.learned`).

    Grouped-query heads: query head h uses key/value head ``h // (n_heads / n_kv_heads)``.
    """

    kind: ClassVar[str] = "features"
    ports: ClassVar[tuple[str, ...]] = ("key", "query")
    lowering: str = "exact"
    n_heads: int = 1
    n_kv_heads: int = 1
    head_dim: int = 1
    m: int = 1
    scale: float = 1.0
    schedule: str = ""
    projection: np.ndarray | None = array_field(optional=True)
    seed: int = 0
    orthogonal: bool = False
    q_weight: np.ndarray | None = array_field(optional=True)
    q_bias: np.ndarray | None = array_field(optional=True)
    k_weight: np.ndarray | None = array_field(optional=True)
    k_bias: np.ndarray | None = array_field(optional=True)
    log_gain: np.ndarray | None = array_field(optional=True)
    window: int = 0
    quant: dict = field(default_factory=dict)
    circuit: str = ""

    def check(self):
        super().check()
        if self.lowering == "learned":
            self.check_learned()
        if self.lowering not in LOWERINGS:
            self.fail(f"lowering must be one of {LOWERINGS}, got {self.lowering!r}")
        if self.n_heads % self.n_kv_heads:
            self.fail(f"n_heads={self.n_heads} is not a multiple of n_kv_heads={self.n_kv_heads}")
        if self.lowering in ("favor", "relu"):
            self.expect_shape("projection", (self.n_kv_heads, self.m, self.head_dim))
            if self.projection is None:
                self.fail(f"{self.lowering} features need a projection array")

    def check_learned(self):
        half = self.m // 2
        if self.m % 2 or half < 1:
            self.fail(f"learned features need an even m >= 2, got {self.m}")
        want = {"q_weight": (self.n_heads, self.head_dim, half), "q_bias": (self.n_heads, half),
                "k_weight": (self.n_kv_heads, self.head_dim, half), "k_bias": (self.n_kv_heads, half),
                "log_gain": (self.n_heads,)}
        for name, shape in want.items():
            if getattr(self, name) is None:
                self.fail(f"learned features need a {name} array; compile with --feature-maps")
            self.expect_shape(name, shape)
        if not isinstance(self.window, int) or self.window < 0:
            self.fail(f"window must be a non-negative integer, got {self.window!r}")

    def out_size(self):
        return self.n_heads * self.m

    def input_sizes(self):
        return {"key": self.n_kv_heads * self.head_dim, "query": self.n_heads * self.head_dim}


@dataclass
class HebbianSynapses(ProcessNode):
    """Plastic synapses H from the feature neurons onto the circuit's output neurons.

    Ports ``pre`` (the FeaturePopulation) and ``teacher`` (the value population driving the output
    neurons during write).  Rule ``outer``: each write of token t does ``H^g += v_t^g f^g(k_t)^T``
    (per key/value head g; H^g is v_head_dim x m).  Read: ``u^h = H^g f^h(q)``, or with ``gated``
    (exact circuits) ``u^h = sum_j H^g_j c_j f^h_j(q)``: transmission at synapse j is gated by the
    calcium of the astrocyte process wrapping it, so a process without calcium silences its slot.
    """

    kind: ClassVar[str] = "hebbian_synapses"
    ports: ClassVar[tuple[str, ...]] = ("pre", "teacher")
    n_heads: int = 1
    n_kv_heads: int = 1
    m: int = 1
    v_head_dim: int = 1
    rule: str = "outer"
    rate: float = 1.0
    gated: bool = False
    quant: dict = field(default_factory=dict)
    circuit: str = ""

    def check(self):
        super().check()
        if self.rule != "outer":
            self.fail(f"unknown Hebbian rule {self.rule!r}; supported: outer")

    def out_size(self):
        return self.n_heads * self.v_head_dim

    def input_sizes(self):
        return {"pre": self.n_heads * self.m, "teacher": self.n_kv_heads * self.v_head_dim}


@dataclass
class Astrocyte(ProcessNode):
    """The astrocyte of an attention circuit: one process per feature synapse, one soma per head.

    Ports ``synapses`` (the HebbianSynapses it wraps; their read output ``u``) and ``features``.
    Write of token t: process calcium ``c_j += f_j(k_t)`` (``rate`` 1).  Read: process response
    ``r_j = c_j f_j(q)``; soma ``z = sum_j r_j`` (exact circuits also hold the stabilising offset
    ``s``); gliotransmission scales the output synapses by ``1/z``: ``y = u / z``.  The output is
    the gated activity of the circuit's output neurons, (n_heads * v_head_dim) per token.
    """

    kind: ClassVar[str] = "astrocyte"
    ports: ClassVar[tuple[str, ...]] = ("synapses", "features")
    n_heads: int = 1
    m: int = 1
    v_head_dim: int = 1
    offset: str = "running_max"
    eps: float = 0.0
    quant: dict = field(default_factory=dict)
    circuit: str = ""

    def check(self):
        super().check()
        if self.offset not in ("running_max", "none"):
            self.fail(f"offset must be 'running_max' or 'none', got {self.offset!r}")

    def out_size(self):
        return self.n_heads * self.v_head_dim

    def input_sizes(self):
        return {"synapses": self.n_heads * self.v_head_dim, "features": self.n_heads * self.m}
