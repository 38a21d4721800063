"""Token-by-token float kernels of ``learned`` circuits with a window of W exact ring slots (Lava
``floating_pt``), the equations of :mod:`hardware_sim.golden.learned`.

Per sequence each kernel counts the written tokens ``n``; written token t enters ring slot ``n mod W``.

- Feature neurons keep the ring's keys.  When a written token reuses a full slot, the token leaving
  the ring is consolidated: the write phase sends ``f(k_old)`` (0 otherwise).  Read of q sends the
  feature responses ``g f(q)`` (``g = exp(log_gain)`` per head) and the ring potentials
  ``scale q.k_slot``.  Message ``[write (H m), read (H m), potentials (H W)]``.
- Hebbian synapses keep the ring's values and write the one leaving it, ``H += v_old f(k_old)^T``;
  read ``u = H g f(q)``.  Message ``[u (H v_head_dim), v_t (G v_head_dim)]``.
- Astrocyte: ``c += f(k_old)``, a copy of the ring's values; read: offset ``s`` = max potential over
  full slots (0 if none), ``e_j = exp(l_j - s)``, ``z = exp(-s) c.g f(q) + sum_j e_j``,
  ``y = (exp(-s) u + sum_j e_j v_j) / z``.  State ``calcium``, ``soma``, ``offset``.

The ring (W keys and values per key/value head) and the feature memory (2m per head) are all the
circuit holds, whatever the context.  An encoder's window (the W keys nearest each query) has kernels
of its own, :mod:`.kernels_band`, which registers both kinds.
"""

from __future__ import annotations

import numpy as np

from hardware_sim.lava.kernels import AstrocyteKernel, FeaturesKernel, HebbianKernel, split_features


class Ring:
    """Slot bookkeeping of one sequence: ``n`` written tokens so far; the slot the next one takes."""

    def __init__(self, window: int):
        self.window, self.n = window, 0

    def reset(self) -> None:
        self.n = 0

    def push(self) -> tuple[int, bool]:
        """(slot of the new token, whether it evicts an older one)."""
        slot, full = self.n % self.window, self.n >= self.window
        self.n += 1
        return slot, full

    def held(self) -> np.ndarray:
        return np.arange(self.window) < min(self.n, self.window)


def ring_values(kernel, op, net, dtype) -> None:
    """The ring state of a windowed circuit's Hebbian kernel: its window (from the feature population
    on its ``pre`` port), the slot bookkeeping and the values held in the W slots (G, dv, W)."""
    kernel.window = net.node(net.inputs_of(op.name)["pre"]).window
    kernel.ring = Ring(kernel.window)
    kernel.values = np.zeros((op.n_kv_heads, op.v_head_dim, kernel.window), dtype=dtype)


class WindowFeaturesKernel(FeaturesKernel):
    """Learned feature neurons beside W ring slots (module docstring)."""

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        self.ring = Ring(op.window)
        self.keys = np.zeros((op.n_kv_heads, op.window, op.head_dim), dtype=self.dtype)
        self.gain = np.exp(op.log_gain).astype(self.dtype)[:, None]

    def out_width(self):
        op = self.op
        return op.n_heads * (2 * op.m + op.window)

    def step(self, s, inputs):
        op, clock = self.op, self.clock
        H, G, m, d = op.n_heads, op.n_kv_heads, op.m, op.head_dim
        if clock.sequence_start(s) >= 0:
            self.ring.reset()
            self.keys[:] = 0
        write = np.zeros((G, 1, m), dtype=self.dtype)
        b, t = clock.locate(s)
        if t >= 0 and clock.written[b, t] > 0:
            slot, full = self.ring.push()
            if full:
                write = self.respond(self.keys[:, slot, None], "k")
            self.keys[:, slot] = inputs["key"].reshape(G, d)
        read = np.zeros((H, m), dtype=self.dtype)
        potential = np.zeros((H, op.window), dtype=self.dtype)
        _, t = clock.locate(s, clock.R)
        if t >= 0:
            q = inputs["query"].reshape(G, self.group, d)
            read = self.respond(q, "q").reshape(H, m) * self.gain
            potential = (np.einsum("grd,gwd->grw", q, self.keys) * self.dtype(op.scale)).reshape(H, -1)
        write = np.repeat(write, self.group, axis=1)
        return np.concatenate([write.reshape(-1), read.reshape(-1), potential.reshape(-1)])


class WindowHebbianKernel(HebbianKernel):
    """Ungated synapses of a windowed circuit: the ring's values and the consolidating write."""

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        ring_values(self, op, net, self.dtype)

    def out_width(self):
        op = self.op
        return (op.n_heads + op.n_kv_heads) * op.v_head_dim

    def step(self, s, inputs):
        op, clock = self.op, self.clock
        H, G, m, dv = op.n_heads, op.n_kv_heads, op.m, op.v_head_dim
        weights = self.state["weights"]
        if clock.sequence_start(s) >= 0:
            weights[:] = 0
            self.ring.reset()
        write, read = split_features(inputs["pre"][: 2 * H * m], H, m)
        v = inputs["teacher"].reshape(G, dv)
        b, t = clock.locate(s)
        if t >= 0 and clock.written[b, t] > 0:
            slot, full = self.ring.push()
            if full:
                weights += self.values[:, :, slot, None] * write.reshape(G, self.group, m)[:, 0, None, :]
            self.values[:, :, slot] = v
        u = np.zeros((G, self.group, dv), dtype=self.dtype)
        _, t = clock.locate(s, clock.R)
        if t >= 0:
            u = np.einsum("gvm,grm->grv", weights, read.reshape(G, self.group, m))
        return np.concatenate([u.reshape(-1), v.reshape(-1)])


class WindowAstrocyteKernel(AstrocyteKernel):
    """Astrocyte of a windowed circuit: one normaliser over the ring and the feature memory."""

    has_offset = True

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        self.window = net.node(net.inputs_of(op.name)["features"]).window
        self.ring = Ring(self.window)
        self.values = np.zeros((self.syn.n_kv_heads, op.v_head_dim, self.window), dtype=self.dtype)

    def state_shapes(self):
        H = self.op.n_heads
        return {"calcium": (H, self.op.m), "soma": (H,), "offset": (H,)}

    def step(self, s, inputs):
        op, clock = self.op, self.clock
        H, m, dv, G, W = op.n_heads, op.m, op.v_head_dim, self.syn.n_kv_heads, self.window
        calcium = self.state["calcium"]
        if clock.sequence_start(s) >= 0:
            calcium[:] = 0
            self.ring.reset()
        msg = inputs["features"]
        write, read = split_features(msg[: 2 * H * m], H, m)
        potential = msg[2 * H * m :].reshape(H, W)
        syn = inputs["synapses"]
        b, t = clock.locate(s)
        if t >= 0:
            calcium += write
            if clock.written[b, t] > 0:
                slot, _ = self.ring.push()
                self.values[:, :, slot] = syn[H * dv :].reshape(G, dv)
        _, t = clock.locate(s, clock.R)
        if t < 0:
            return np.zeros(H * dv, dtype=self.dtype)
        masked = np.where(self.ring.held()[None], potential, -np.inf)
        peak = masked.max(axis=-1, keepdims=True)
        peak = np.where(np.isfinite(peak), peak, self.dtype(0))
        e = np.exp(masked - peak)
        damp = np.exp(-peak)
        z = (calcium * read).sum(-1) * damp[:, 0] + e.sum(-1)
        ring = np.einsum("grw,gvw->grv", e.reshape(G, -1, W), self.values).reshape(H, dv)
        u = syn[: H * dv].reshape(H, dv) * damp + ring
        self.state["soma"][:] = z
        self.state["offset"][:] = peak[:, 0]
        return (u / np.where(z != 0, z, 1)[:, None]).reshape(-1)


def by_window(plain_cls, window_cls, band_cls):
    """A kernel factory by :meth:`~compiler.process.ProcessGraph.window_kind`: the plain kernel for circuits
    without a window, the ring kernel for causal ones, the band kernel for encoders' (registered by
    :mod:`.kernels_band` and :mod:`.kernels_band_fixed`)."""

    def make(op, net, dtype):
        return {None: plain_cls, "ring": window_cls, "band": band_cls}[net.window_kind(op.name)](op, net, dtype)

    make.__name__ = f"{plain_cls.__name__}_or_window"
    return make
