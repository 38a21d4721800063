"""Token-by-token float behaviour of every process-graph node kind, as the Lava process models run it.

A :class:`Kernel` is one process-graph node executing on the Lava clock: at every time step ``s`` it
takes one vector per input port and returns one output vector.  Fine and fused process models both
call these kernels, so the two granularities compute identically.  The equations are those of
:mod:`compiler.process.nodes` (and of the golden simulator, :mod:`hardware_sim.golden`).

Clock (see docs/lava_schedule.md): the node's write clock ``W`` is the step at which it consumes
token 0 of sequence 0 on its write-phase ports; sequence ``b`` token ``t`` is consumed at
``W + b P + t``; read-phase ports (a circuit's queries, an astrocyte's transmitted activity) are
consumed ``R`` steps later (``R = T`` bidirectional, ``0`` causal).  Stateful kernels reset at the
start of each sequence.

Feature-population messages carry ``[f(k) (H m), f(q) (H m)]``; exact slots send the potentials
``scale q.K_j`` instead of ``f(q)``, the astrocyte soma computing the offset and the responses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.distill.hedgehog import hedgehog
from compiler.errors import SimulationError

NEG = -np.inf


@dataclass
class Clock:
    """Timing of one node: write clock ``W``, read offset ``R``, tokens ``T``, period ``P``,
    sequences ``B`` and the write weights ``written`` (B, T) (1 for tokens the circuit writes)."""

    W: int
    R: int
    T: int
    P: int
    B: int
    written: np.ndarray

    def locate(self, s: int, offset: int = 0) -> tuple[int, int]:
        """(sequence, token) consumed at step ``s`` on a port ``offset`` steps after the write clock;
        token -1 when nothing is due."""
        local = s - self.W - offset
        if local < 0:
            return -1, -1
        b, t = divmod(local, self.P)
        if b >= self.B or t >= self.T:
            return -1, -1
        return b, t

    def sequence_start(self, s: int) -> int:
        """The sequence starting at step ``s`` (its first write), or -1."""
        local = s - self.W
        if local < 0 or local % self.P:
            return -1
        b = local // self.P
        return b if b < self.B else -1


class Kernel:
    """Base kernel: port ``p`` is consumed ``offsets(R)[p]`` steps after the write clock (``R`` the
    read offset of the schedule); the output stream's token 0 leaves ``output_offset(R)`` steps
    after it."""

    def __init__(self, op, net, dtype):
        self.op = op
        self.name = op.name
        self.dtype = np.dtype(dtype).type
        self.clock: Clock | None = None
        self.state: dict[str, np.ndarray] = {}

    def ports(self) -> tuple[str, ...]:
        return self.op.input_ports()

    def offsets(self, read_offset: int) -> dict[str, int]:
        return {p: 0 for p in self.ports()}

    def output_offset(self, read_offset: int) -> int:
        return 0

    def out_width(self) -> int:
        return self.op.out_size()

    def state_shapes(self) -> dict[str, tuple[int, ...]]:
        """Probe-able state arrays (Lava Vars) of this node."""
        return {}

    def probe_value(self, var: str, data: np.ndarray) -> np.ndarray:
        """The value a probe of state ``var`` reports for the Var contents ``data``."""
        return data

    def prepare(self) -> None:
        """Work done once in the Lava process that runs this kernel, when its model is built
        (casting large weights there keeps it off the caller's path and overlaps Lava's start-up)."""

    def bind(self, clock: Clock, state: dict[str, np.ndarray]) -> None:
        """Attach the clock and the state arrays (the process model's Var arrays, updated in place)."""
        self.clock = clock
        self.state = state

    def due(self, s: int) -> bool:
        """Whether step ``s`` carries a token for this node (a write, a read or both); on other
        steps the node is idle and sends zeros."""
        clock = self.clock
        return clock.locate(s)[1] >= 0 or (clock.R > 0 and clock.locate(s, clock.R)[1] >= 0)

    def step(self, s: int, inputs: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError


class PopulationKernel(Kernel):
    """``u = sum_p in_p`` (product: ``in0 in1``), response identity / activation / rotary."""

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        self.in_ports = op.input_ports()

    def step(self, s, inputs):
        _, t = self.clock.locate(s)
        return self.op.respond([inputs[p] for p in self.in_ports], max(t, 0), self.dtype)


class SynapsesKernel(Kernel):
    """``out = W pre + b`` (identity when ``W`` is None).  The weights are cast to the kernel's
    dtype by :meth:`prepare`, in the Lava process that runs the kernel."""

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        self.weight = self.bias = None

    def prepare(self):
        op = self.op
        self.weight = None if op.weight is None else np.ascontiguousarray(op.weight.astype(self.dtype))
        self.bias = None if op.bias is None else op.bias.astype(self.dtype)

    def step(self, s, inputs):
        pre = inputs["pre"]
        out = pre if self.weight is None else self.weight @ pre
        return out if self.bias is None else out + self.bias


class NormKernel(Kernel):
    """Normalising astrocyte: ``g = 1/sqrt(var(x) + eps)`` (layer) or ``1/sqrt(mean x^2 + eps)``
    (rms); ``y = x' g weight + bias`` with ``x'`` centred (layer) or ``x``.  State: ``gain``."""

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        self.weight = op.weight.astype(self.dtype)
        self.bias = None if op.bias is None else op.bias.astype(self.dtype)
        self.eps = self.dtype(op.eps)

    def state_shapes(self):
        return {"gain": (1,)}

    def step(self, s, inputs):
        x = inputs["x"]
        n = x.size
        if self.op.mode == "layer":
            x = x - np.add.reduce(x, keepdims=True) / n
        gain = 1.0 / np.sqrt(np.add.reduce(x * x, keepdims=True) / n + self.eps)
        if self.clock.locate(s)[1] >= 0:
            self.state["gain"][:] = gain
        y = x * gain * self.weight
        return y if self.bias is None else y + self.bias


class FeaturesLayout:
    """Ports, message width and state of feature neurons (float and integer kernels alike):
    message ``[write (H m), read (H m)]``; exact slots keep the stored ``keys`` (G, m, d)."""

    def offsets(self, read_offset):
        return {"key": 0, "query": read_offset}

    def out_width(self):
        return 2 * self.op.n_heads * self.op.m

    def state_shapes(self):
        op = self.op
        return {"keys": (op.n_kv_heads, op.m, op.head_dim)} if op.lowering == "exact" else {}


class HebbianLayout:
    """Message width and state of Hebbian synapses: ``[u (H v_head_dim), v_t (G v_head_dim) if
    gated]``; state ``weights`` (G, v_head_dim, m)."""

    def out_width(self):
        op = self.op
        return op.n_heads * op.v_head_dim + (op.n_kv_heads * op.v_head_dim if op.gated else 0)

    def state_shapes(self):
        op = self.op
        return {"weights": (op.n_kv_heads, op.v_head_dim, op.m)}


class AstrocyteLayout:
    """Timing and state of an astrocyte: it answers in the read phase; state ``calcium`` (H, m),
    ``soma`` and ``offset`` (H,), and for gated circuits the ``slots`` (G, v_head_dim, m)."""

    def output_offset(self, read_offset):
        return read_offset

    def state_shapes(self):
        op = self.op
        shapes = {"calcium": (op.n_heads, op.m), "soma": (op.n_heads,), "offset": (op.n_heads,)}
        if self.gated:
            shapes["slots"] = (self.syn.n_kv_heads, op.v_head_dim, op.m)
        return shapes


class FeaturesKernel(FeaturesLayout, Kernel):
    """Feature neurons.  Write of token t (weight ``w_t``): ``f(k_t) w_t`` (exact: slot t fires
    ``w_t`` and stores ``k_t`` in ``keys``).  Read of query q: ``f(q)`` (exact: potentials
    ``scale q.K_j``).  Message ``[write (H m), read (H m)]``; ports key (offset 0), query (R)."""

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        self.group = op.n_heads // op.n_kv_heads
        self.proj = None if op.projection is None else op.projection.astype(self.dtype)
        self.root = self.dtype(np.sqrt(op.scale))

    def fmap(self, x):
        """Feature responses of ``x`` (G, r, d) already scaled by sqrt(scale) -> (G, r, m)."""
        low = self.op.lowering
        if low == "favor":
            proj = np.einsum("grd,gmd->grm", x, self.proj)
            return np.exp(proj - 0.5 * (x * x).sum(-1, keepdims=True)) / np.sqrt(self.dtype(self.op.m))
        if low == "relu":
            return np.maximum(np.einsum("grd,gmd->grm", x, self.proj), 0)
        if low == "elu1":
            return np.where(x > 0, x + 1, np.exp(np.minimum(x, 0)))
        if low == "taylor2":
            G, r, d = x.shape
            outer = (x[..., :, None] * x[..., None, :]).reshape(G, r, d * d) / np.sqrt(self.dtype(2))
            return np.concatenate([np.ones((G, r, 1), dtype=x.dtype), x, outer], axis=-1)
        raise SimulationError(f"lava: node {self.name!r}: unknown lowering {low!r}")

    def step(self, s, inputs):
        op, clock = self.op, self.clock
        H, G, m, d = op.n_heads, op.n_kv_heads, op.m, op.head_dim
        write = np.zeros((G, self.group, m), dtype=self.dtype)
        read = np.zeros((H, m), dtype=self.dtype)
        b, t = clock.locate(s)
        if op.lowering == "exact" and clock.sequence_start(s) >= 0:
            self.state["keys"][:] = 0
        if t >= 0:
            w = self.dtype(clock.written[b, t])
            k = inputs["key"].reshape(G, 1, d)
            if op.lowering == "exact":
                if t >= m:
                    raise SimulationError(f"lava: node {self.name!r} has {m} slots but token {t} arrived; "
                                          f"compile with --max-tokens {clock.T} or more")
                write[:, :, t] = w
                self.state["keys"][:, t] += w * k[:, 0]
            else:
                write[:] = self.respond(k, "k") * w
        b, t = clock.locate(s, clock.R)
        if t >= 0:
            q = inputs["query"].reshape(G, self.group, d)
            if op.lowering == "exact":
                keys = self.state["keys"]
                read = (np.einsum("grd,gmd->grm", q, keys) * self.dtype(op.scale)).reshape(H, m)
            else:
                read = self.respond(q, "q").reshape(H, m)
        return np.concatenate([write.reshape(-1), read.reshape(-1)])

    def respond(self, x, side: str):
        """Responses to keys (``side`` k, x (G, 1, d)) or queries (q, x (G, r, d)) -> (G, r, m)."""
        if self.op.lowering != "learned":
            return self.fmap(x * self.root)
        G, r, d = x.shape
        weight, bias = (self.op.k_weight, self.op.k_bias) if side == "k" else (self.op.q_weight, self.op.q_bias)
        return hedgehog(x.reshape(1, G * r, 1, d), weight, bias).reshape(G, r, -1)


def split_features(msg, H, m):
    return msg[: H * m].reshape(H, m), msg[H * m :].reshape(H, m)


class HebbianKernel(HebbianLayout, Kernel):
    """Plastic synapses: write ``H^g += v_t^g f^g(k_t)^T``; ungated read ``u^h = H^g f^h(q)``.

    The message at each step is ``[u (H v_head_dim), v_t (G v_head_dim) if gated]``: gated exact
    slots transmit through the astrocyte processes wrapping them, which receive each written
    column ``v_t`` with it.  State: ``weights`` (G, v_head_dim, m)."""

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        self.group = op.n_heads // op.n_kv_heads

    def step(self, s, inputs):
        op, clock = self.op, self.clock
        H, G, m, dv = op.n_heads, op.n_kv_heads, op.m, op.v_head_dim
        weights = self.state["weights"]
        if clock.sequence_start(s) >= 0:
            weights[:] = 0
        write, read = split_features(inputs["pre"], H, m)
        v = inputs["teacher"].reshape(G, dv)
        _, t = clock.locate(s)
        if t >= 0:
            weights += v[:, :, None] * write.reshape(G, self.group, m)[:, 0, None, :]
        u = np.zeros((G, self.group, dv), dtype=self.dtype)
        _, t = clock.locate(s, clock.R)
        if t >= 0 and not op.gated:
            u = np.einsum("gvm,grm->grv", weights, read.reshape(G, self.group, m))
        if op.gated:
            return np.concatenate([u.reshape(-1), v.reshape(-1)])
        return u.reshape(-1)


class AstrocyteKernel(AstrocyteLayout, Kernel):
    """Astrocyte: write ``c_j += f_j(k_t)``; read ``r_j = c_j f_j(q)``, soma ``z = sum_j r_j``,
    output ``y = u / z`` (0 when nothing was written; ``u / (z + eps)`` when eps > 0).

    Exact slots: soma offset ``s = max_j scale q.K_j`` over written slots, responses
    ``f_j = exp(l_j - s)``, and the transmission gated by each process,
    ``u = sum_j H_j c_j f_j``, over the slot weights ``H_j`` of the synapses it wraps (``slots``).
    State: ``calcium`` (H, m), ``soma`` (H,), ``offset`` (H,), ``slots`` (gated)."""

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        self.syn = net.node(net.inputs_of(op.name)["synapses"])
        self.gated = bool(self.syn.gated)
        self.group = op.n_heads // self.syn.n_kv_heads

    def step(self, s, inputs):
        op, clock = self.op, self.clock
        H, m, dv = op.n_heads, op.m, op.v_head_dim
        G = self.syn.n_kv_heads
        calcium = self.state["calcium"]
        if clock.sequence_start(s) >= 0:
            calcium[:] = 0
            if self.gated:
                self.state["slots"][:] = 0
        write, read = split_features(inputs["features"], H, m)
        syn = inputs["synapses"]
        _, t = clock.locate(s)
        if t >= 0:
            calcium += write
            if self.gated:
                v = syn[H * dv :].reshape(G, dv)
                self.state["slots"] += v[:, :, None] * write.reshape(G, self.group, m)[:, 0, None, :]
        _, t = clock.locate(s, clock.R)
        if t < 0:
            return np.zeros(H * dv, dtype=self.dtype)
        if self.gated:
            read = self.slot_responses(calcium, read)
        gate = calcium * read
        z = gate.sum(axis=-1)
        self.state["soma"][:] = z
        if self.gated:
            u = np.einsum("gvm,grm->grv", self.state["slots"], gate.reshape(G, self.group, m)).reshape(H, dv)
        else:
            u = syn[: H * dv].reshape(H, dv)
        if op.eps > 0:
            y = u / (z + self.dtype(op.eps))[:, None]
        else:
            y = u / np.where(z != 0, z, 1)[:, None]
        return y.reshape(-1)

    def slot_responses(self, calcium, potential):
        """Soma offset over written slots and the slot responses ``exp(l_j - s)`` (0 unwritten)."""
        masked = np.where(calcium > 0, potential, NEG)
        peak = masked.max(axis=-1, keepdims=True)
        peak = np.where(np.isfinite(peak), peak, self.dtype(0))
        self.state["offset"][:] = peak[:, 0]
        return np.exp(masked - peak)


KERNELS = {
    "population": PopulationKernel,
    "synapses": SynapsesKernel,
    "norm_astrocyte": NormKernel,
    "features": FeaturesKernel,
    "hebbian_synapses": HebbianKernel,
    "astrocyte": AstrocyteKernel,
}


# kernel sets by Lava tag; :mod:`hardware_sim.lava.kernels_fixed` registers ``fixed_pt`` (the integer
# step functions shared with the golden simulator's loihi2 mode) with the same interface.
KERNEL_SETS: dict[str, dict[str, type]] = {"floating_pt": KERNELS}


def make_kernel(op, net, dtype, tag: str = "floating_pt") -> Kernel:
    kernels = KERNEL_SETS.get(tag)
    if kernels is None:
        raise SimulationError(f"lava: no {tag} kernels yet (node {op.name!r}); run floating_pt")
    try:
        cls = kernels[op.kind]
    except KeyError:
        raise SimulationError(f"lava: node {op.name!r} has kind {op.kind!r}, which no Lava process runs") from None
    return cls(op, net, dtype)
