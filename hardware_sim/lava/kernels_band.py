"""Token-by-token float kernels of an encoder's learned window (Lava ``floating_pt``): the W keys nearest
each query, a band of look-behind ``b = floor(W/2)`` and look-ahead ``a = floor((W-1)/2)``, beside the
feature memory of every token -- the equations of :mod:`hardware_sim.golden.learned` (encoders).

Schedule (:mod:`hardware_sim.lava.schedule`, bidirectional: writes at ``W + t``, reads at ``W + T + t``):
the feature neurons and the Hebbian synapses take the keys and the values a second time on ports of
their own (``key_again``, ``teacher_again``) whose delay lines deliver token j at ``W + D + j`` with
``D = max(0, T - a)``: ``a`` steps before the read of query j, or at its write when ``a >= T``.  Token j
enters slot ``j mod W`` (replacing token ``j - W``, which no later read holds); read t holds the slots
whose token lies in ``[t - b, t + a]`` and was written -- tracked by token index, not by arrival order.

- Feature neurons: write ``w_t f(k_t)``; a replayed key fills its slot's key and features
  ``w_j f(k_j)``; read t: ``g f(q_t)`` (``g = exp(log_gain)``), the potentials ``scale q_t.k_slot`` and
  the band's feature sum ``sum_held w_j f(k_j)`` (what the slots inhibit in the soma).  Message
  ``[write (H m), read (H m), potentials (H W), entering (H m), band (H m)]``, ``entering`` the
  features of the key replayed this step.
- Hebbian synapses: ``H += v_t w_t f(k_t)^T``; a replayed value fills its slot beside the entering
  features; read ``u = H g f(q) - sum_held v_j (w_j f(k_j).g f(q))``.  Message ``[u (H dv), v_j (G dv)]``
  (the replayed value, for the astrocyte's slots).
- Astrocyte: ``c += w_t f(k_t)``; its slots keep the replayed values; read: offset ``s`` = max potential
  over held slots (0 if none), ``e_j = exp(l_j - s)``,
  ``z = exp(-s) (c.g f(q) - band.g f(q)) + sum_j e_j``, ``y = (exp(-s) u + sum_j e_j v_j) / z``.

Per head the circuit holds W slots and the 2m-feature memory whatever the context; the replayed
streams wait in the schedule's delay lines, as the queries of every bidirectional circuit do.
"""

from __future__ import annotations

import numpy as np

from hardware_sim.lava.kernels import KERNELS, AstrocyteKernel, FeaturesKernel, HebbianKernel, split_features
from hardware_sim.lava.kernels_window import (
    WindowAstrocyteKernel,
    WindowFeaturesKernel,
    WindowHebbianKernel,
    by_window,
)


class Band:
    """Slots of one sequence indexed by token: token j sits in slot ``j mod W`` (index -1: empty or a
    token that was not written)."""

    def __init__(self, window: int):
        self.window, self.behind, self.ahead = window, window // 2, (window - 1) // 2
        self.index = np.full(window, -1, dtype=np.int64)

    def delay(self, tokens: int) -> int:
        """Steps from a token's write to its replay: ``max(0, T - a)``."""
        return max(0, tokens - self.ahead)

    def reset(self) -> None:
        self.index[:] = -1

    def enter(self, j: int, written: bool) -> int:
        slot = j % self.window
        self.index[slot] = j if written else -1
        return slot

    def held(self, t: int) -> np.ndarray:
        """(W,) the slots read t holds: written tokens in ``[t - b, t + a]``."""
        return (self.index >= max(t - self.behind, 0)) & (self.index <= t + self.ahead)


class BandPorts:
    """The replay ports of a band kernel: ``again`` (port -> the stream it replays), consumed ``D`` steps
    after the write clock (``D = max(0, R - a)``, R = T for bidirectional schedules)."""

    again: dict[str, str] = {}

    def replays(self) -> dict[str, str]:
        return dict(self.again)

    def offsets(self, read_offset):
        out = super().offsets(read_offset)
        out.update({port: self.band.delay(read_offset) for port in self.again})
        return out

    def replayed(self, s: int) -> tuple[int, int]:
        """(sequence, token) replayed at step ``s``, token -1 if none."""
        return self.clock.locate(s, self.band.delay(self.clock.T))


class BandFeaturesKernel(BandPorts, FeaturesKernel):
    """Learned feature neurons beside the band's slots (module docstring)."""

    again = {"key_again": "key"}

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        self.band = Band(op.window)
        self.keys = np.zeros((op.n_kv_heads, op.window, op.head_dim), dtype=self.dtype)
        self.fks = np.zeros((op.n_kv_heads, op.window, op.m), dtype=self.dtype)
        self.gain = np.exp(op.log_gain).astype(self.dtype)[:, None]

    def out_width(self):
        op = self.op
        return op.n_heads * (4 * op.m + op.window)

    def step(self, s, inputs):
        op, clock = self.op, self.clock
        H, G, m, d, W = op.n_heads, op.n_kv_heads, op.m, op.head_dim, op.window
        if clock.sequence_start(s) >= 0:
            self.band.reset()
        write = entering = band = np.zeros((G, m), dtype=self.dtype)
        b, t = clock.locate(s)
        if t >= 0:
            write = self.respond(inputs["key"].reshape(G, 1, d), "k")[:, 0] * self.dtype(clock.written[b, t])
        b, j = self.replayed(s)
        if j >= 0:
            w = self.dtype(clock.written[b, j])
            slot = self.band.enter(j, w > 0)
            k = inputs["key_again"].reshape(G, d)
            entering = self.respond(k[:, None], "k")[:, 0] * w
            self.keys[:, slot], self.fks[:, slot] = k, entering
        read = np.zeros((H, m), dtype=self.dtype)
        potential = np.zeros((H, W), dtype=self.dtype)
        _, t = clock.locate(s, clock.R)
        if t >= 0:
            q = inputs["query"].reshape(G, self.group, d)
            read = self.respond(q, "q").reshape(H, m) * self.gain
            potential = (np.einsum("grd,gwd->grw", q, self.keys) * self.dtype(op.scale)).reshape(H, W)
            band = self.fks[:, self.band.held(t)].sum(axis=1)
        parts = [np.repeat(x[:, None], self.group, axis=1).reshape(-1) for x in (write, entering, band)]
        return np.concatenate([parts[0], read.reshape(-1), potential.reshape(-1), parts[1], parts[2]])


def split_band(msg, H, m, W):
    """``[write, read, potentials, entering, band]`` of a band feature message."""
    write, read = split_features(msg[: 2 * H * m], H, m)
    rest = msg[2 * H * m :]
    potential = rest[: H * W].reshape(H, W)
    entering, band = split_features(rest[H * W :], H, m)
    return write, read, potential, entering, band


class BandHebbianKernel(BandPorts, HebbianKernel):
    """Ungated synapses of an encoder's window: the feature memory of every token and the band's values."""

    again = {"teacher_again": "teacher"}

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        self.window = net.node(net.inputs_of(op.name)["pre"]).window
        self.band = Band(self.window)
        self.values = np.zeros((op.n_kv_heads, self.window, op.v_head_dim), dtype=self.dtype)
        self.fks = np.zeros((op.n_kv_heads, self.window, op.m), dtype=self.dtype)

    def out_width(self):
        op = self.op
        return (op.n_heads + op.n_kv_heads) * op.v_head_dim

    def step(self, s, inputs):
        op, clock = self.op, self.clock
        H, G, m, dv = op.n_heads, op.n_kv_heads, op.m, op.v_head_dim
        weights = self.state["weights"]
        if clock.sequence_start(s) >= 0:
            weights[:] = 0
            self.band.reset()
        write, read, _, entering, _ = split_band(inputs["pre"], H, m, self.window)
        _, t = clock.locate(s)
        if t >= 0:
            weights += inputs["teacher"].reshape(G, dv)[:, :, None] * write.reshape(G, self.group, m)[:, 0, None, :]
        v = np.zeros((G, dv), dtype=self.dtype)
        b, j = self.replayed(s)
        if j >= 0:
            v = inputs["teacher_again"].reshape(G, dv)
            slot = self.band.enter(j, clock.written[b, j] > 0)
            self.values[:, slot], self.fks[:, slot] = v, entering.reshape(G, self.group, m)[:, 0]
        u = np.zeros((G, self.group, dv), dtype=self.dtype)
        _, t = clock.locate(s, clock.R)
        if t >= 0:
            q = read.reshape(G, self.group, m)
            held = self.band.held(t)
            share = np.einsum("grm,gwm->grw", q, self.fks[:, held])
            u = np.einsum("gvm,grm->grv", weights, q) - np.einsum("grw,gwv->grv", share, self.values[:, held])
        return np.concatenate([u.reshape(-1), v.reshape(-1)])


class BandAstrocyteKernel(BandPorts, WindowAstrocyteKernel):
    """Astrocyte of an encoder's window: one normaliser over the band's slots and the rest of the memory
    (states as the ring's astrocyte; its slots' values indexed by slot, then value)."""

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        self.band = Band(self.window)
        self.values = np.zeros((self.syn.n_kv_heads, self.window, op.v_head_dim), dtype=self.dtype)

    def step(self, s, inputs):
        op, clock = self.op, self.clock
        H, m, dv, G, W = op.n_heads, op.m, op.v_head_dim, self.syn.n_kv_heads, self.window
        calcium = self.state["calcium"]
        if clock.sequence_start(s) >= 0:
            calcium[:] = 0
            self.band.reset()
        write, read, potential, _, band = split_band(inputs["features"], H, m, W)
        syn = inputs["synapses"]
        _, t = clock.locate(s)
        if t >= 0:
            calcium += write
        b, j = self.replayed(s)
        if j >= 0:
            self.values[:, self.band.enter(j, clock.written[b, j] > 0)] = syn[H * dv :].reshape(G, dv)
        _, t = clock.locate(s, clock.R)
        if t < 0:
            return np.zeros(H * dv, dtype=self.dtype)
        masked = np.where(self.band.held(t)[None], potential, -np.inf)
        peak = masked.max(axis=-1, keepdims=True)
        peak = np.where(np.isfinite(peak), peak, self.dtype(0))
        e = np.exp(masked - peak)
        damp = np.exp(-peak)
        z = ((calcium * read).sum(-1) - (band * read).sum(-1)) * damp[:, 0] + e.sum(-1)
        ring = np.einsum("grw,gwv->grv", e.reshape(G, -1, W), self.values).reshape(H, dv)
        u = syn[: H * dv].reshape(H, dv) * damp + ring
        self.state["soma"][:] = z
        self.state["offset"][:] = peak[:, 0]
        return (u / np.where(z != 0, z, 1)[:, None]).reshape(-1)


KERNELS.update(
    features=by_window(FeaturesKernel, WindowFeaturesKernel, BandFeaturesKernel),
    hebbian_synapses=by_window(HebbianKernel, WindowHebbianKernel, BandHebbianKernel),
    astrocyte=by_window(AstrocyteKernel, WindowAstrocyteKernel, BandAstrocyteKernel),
)
