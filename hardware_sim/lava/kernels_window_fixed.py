"""Token-by-token ``loihi2`` kernels of ``learned`` circuits with a window of W exact ring slots (Lava
``fixed_pt``), bit-exact with the golden simulator (:mod:`hardware_sim.golden.fixed_window`).

The ring bookkeeping is that of the float kernels (:mod:`.kernels_window`): written token t enters
slot ``n mod W`` and the token it evicts is consolidated.

- Feature neurons keep each slot's key payloads and the integer features ``f(k)`` computed when the
  key was written; the evicted slot's features are the write.  Read: ``f(q)`` and the potentials of
  the full slots.  Message
  ``[write (H m), read (H m), potentials (H W)]``.
- Hebbian synapses keep the ring's values; the exact sum ``A += v_old f(k_old)^T`` forms the weights
  as in :mod:`.kernels_learned_fixed`.  Message ``[u (H v_head_dim), v_t (G v_head_dim)]``.
- Astrocyte: calcium of the consolidations, ring responses and offset
  (:func:`~hardware_sim.golden.fixed_features.slot_response_step`), one normaliser
  (:func:`~hardware_sim.golden.fixed_window.hybrid_step`).  State ``calcium``, ``soma``, ``offset``.

An encoder's window (the W keys nearest each query) has kernels of its own, :mod:`.kernels_band_fixed`, which
registers both kinds.
"""

from __future__ import annotations

import numpy as np

from hardware_sim.fixed_point import INT, exact_product
from hardware_sim.golden.fixed_features import score_params, score_step, slot_response_step
from hardware_sim.golden.fixed_learned import hedgehog_step
from hardware_sim.golden.fixed_registry import qexp
from hardware_sim.golden.fixed_window import hybrid_params, hybrid_step, log_gain_step
from hardware_sim.lava.kernels import split_features
from hardware_sim.lava.kernels_fixed import as_int
from hardware_sim.lava.kernels_learned_fixed import (
    FixedLearnedAstrocyteKernel,
    FixedLearnedFeaturesKernel,
    FixedLearnedHebbianKernel,
)
from hardware_sim.lava.kernels_window import Ring, ring_values


class FixedWindowFeaturesKernel(FixedLearnedFeaturesKernel):
    """Learned feature neurons beside W ring slots, in integers (module docstring)."""

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        G, W = op.n_kv_heads, op.window
        self.ring = Ring(W)
        self.keys = np.zeros((G, W, op.head_dim), dtype=INT)
        self.fks = np.zeros((G, W, op.m), dtype=INT)
        self.params = score_params(op, self.in_exps["query"], self.in_exps["key"])

    def out_width(self):
        op = self.op
        return op.n_heads * (2 * op.m + op.window)

    def step(self, s, inputs):
        op, clock = self.op, self.clock
        H, G, m, d, W = op.n_heads, op.n_kv_heads, op.m, op.head_dim, op.window
        if clock.sequence_start(s) >= 0:
            self.ring.reset()
            self.keys[:] = 0
            self.fks[:] = 0
        write = np.zeros((G, m), dtype=INT)
        b, t = clock.locate(s)
        if t >= 0:
            k = as_int(inputs["key"]).reshape(G, 1, d)
            fk = hedgehog_step(self.kp, k, self.counter, self.name)[:, 0]
            if clock.written[b, t] > 0:
                slot, full = self.ring.push()
                if full:
                    write = self.fks[:, slot].copy()
                self.keys[:, slot], self.fks[:, slot] = k[:, 0], fk
        read = np.zeros((H, m), dtype=INT)
        potential = np.zeros((H, W), dtype=INT)
        _, t = clock.locate(s, clock.R)
        if t >= 0:
            q = as_int(inputs["query"])
            read = hedgehog_step(self.qp, q.reshape(H, 1, d), self.counter, self.name)[:, 0]
            visible = self.ring.held()[None, None, :]
            potential = score_step(self.params, q.reshape(G, self.group, d), self.keys, self.counter, self.name,
                                   visible).reshape(H, W)
        write = np.repeat(write[:, None, :], self.group, axis=1)
        return np.concatenate([write.reshape(-1), read.reshape(-1), potential.reshape(-1)])


class FixedWindowHebbianKernel(FixedLearnedHebbianKernel):
    """Ungated synapses of a windowed circuit in integers: the ring's values, the consolidating write."""

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        ring_values(self, op, net, INT)

    def out_width(self):
        op = self.op
        return (op.n_heads + op.n_kv_heads) * op.v_head_dim

    def step(self, s, inputs):
        op, clock = self.op, self.clock
        H, G, m, dv = op.n_heads, op.n_kv_heads, op.m, op.v_head_dim
        if clock.sequence_start(s) >= 0:
            self.acc[:] = 0
            self.state["weights"][:] = 0
            self.ring.reset()
        write, read = split_features(as_int(inputs["pre"][: 2 * H * m]), H, m)
        v = as_int(inputs["teacher"]).reshape(G, dv)
        b, t = clock.locate(s)
        if t >= 0:
            if clock.written[b, t] > 0:
                slot, full = self.ring.push()
                if full:
                    old = self.values[:, :, slot, None]
                    self.acc += exact_product(old, write.reshape(G, self.group, m)[:, :1])
                self.values[:, :, slot] = v
            if self.causal or t == clock.T - 1:
                self.form()
        u = np.zeros(H * dv, dtype=INT)
        _, t = clock.locate(s, clock.R)
        if t >= 0:
            weights = np.asarray(self.state["weights"], dtype=np.float64).astype(INT)
            u = self.read_out(weights, read).reshape(-1)
        return np.concatenate([u, v.reshape(-1)])

    def read_out(self, weights, read):
        from hardware_sim.golden.fixed_circuit import hebbian_read_step

        G, m = self.op.n_kv_heads, self.op.m
        return hebbian_read_step(weights, read.reshape(G, self.group, m), self.in_exps["pre"], self.w_exp,
                                 self.u_exp, self.counter, self.name)


class FixedWindowAstrocyteKernel(FixedLearnedAstrocyteKernel):
    """Astrocyte of a windowed circuit in integers: one normaliser over the ring and the feature memory."""

    has_offset = True

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        self.window = self.feats.window
        self.ring = Ring(self.window)
        G = self.syn.n_kv_heads
        self.group = op.n_heads // G
        self.values = np.zeros((G, self.window, op.v_head_dim), dtype=INT)
        v_exp = qexp(net.node(net.inputs_of(self.syn.name)["teacher"]))
        self.params = hybrid_params(op, self.feats, self.syn, v_exp)
        self.log_gain = log_gain_step(self.feats, self.params.s_exp, self.counter, self.name)

    def count_names(self):
        return (self.name, self.feats.name)

    def state_shapes(self):
        H = self.op.n_heads
        return {"calcium": (H, self.op.m), "soma": (H,), "offset": (H,)}

    def state_exps(self):
        p = self.params
        return {"calcium": p.c_exp, "soma": p.z_exp, "offset": p.s_exp}

    def step(self, s, inputs):
        op, clock, p = self.op, self.clock, self.params
        H, m, dv, G, W = op.n_heads, op.m, op.v_head_dim, self.syn.n_kv_heads, self.window
        calcium = self.state["calcium"]
        if clock.sequence_start(s) >= 0:
            self.acc[:] = 0
            self.ring.reset()
        msg = as_int(inputs["features"])
        write, read = split_features(msg[: 2 * H * m], H, m)
        potential = msg[2 * H * m :].reshape(H, W)
        syn = as_int(inputs["synapses"])
        b, t = clock.locate(s)
        if t >= 0:
            self.acc += write
            if clock.written[b, t] > 0:
                slot, _ = self.ring.push()
                self.values[:, slot] = syn[H * dv :].reshape(G, dv)
        _, t = clock.locate(s, clock.R)
        if t < 0:
            return np.zeros(H * dv, dtype=INT)
        if self.causal or t == 0:
            calcium[:] = self.calcium_now()
        c = np.asarray(calcium, dtype=np.float64).astype(INT)
        e, offset = slot_response_step(potential, self.ring.held()[None], p.s_exp, p.f_exp, self.counter,
                                       self.feats.name)
        ev = exact_product(e.reshape(G, self.group, W), self.values).reshape(H, dv)
        y, z = hybrid_step(c, read, e.sum(axis=-1), ev, self.log_gain - offset, syn[: H * dv].reshape(H, dv), p,
                           self.counter, self.name)
        self.state["soma"][:] = z
        self.state["offset"][:] = offset
        return y.reshape(-1)

    def calcium_now(self):
        from hardware_sim.fixed_point import STATE_BITS, saturate, shift

        e = self.params
        return saturate(shift(self.acc, e.f_exp - e.c_exp), STATE_BITS, self.counter, self.name)
