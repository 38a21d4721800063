"""Token-by-token ``loihi2`` kernels of an encoder's learned window (Lava ``fixed_pt``): the band of the W
keys nearest each query, bit-exact with the golden simulator (:mod:`hardware_sim.golden.fixed_band`).

Ports, replayed streams, slots and messages are those of the float kernels (:mod:`.kernels_band`), with
integer payloads:

- Feature neurons: write ``w_t f(k_t)`` (:func:`~hardware_sim.golden.fixed_learned.hedgehog_step`); a
  replayed key fills its slot with its payloads and ``w_j f(k_j)`` (the same integers as at its write;
  their saturations were counted there); read t: ``f(q_t)``, the potentials of the held slots
  (:func:`~hardware_sim.golden.fixed_features.score_step`) and the band's exact feature sum.
- Hebbian synapses: the exact sum ``A += v_t w_t f(k_t)^T`` and the weights ``H = sat(shift(A, ...))``
  (state ``weights``) after the last write; read t: ``H_t = sat(shift(A - sum_held v_j w_j f(k_j)^T,
  e_v + e_f - e_w))`` and ``u = sat(shift(H_t f(q_t), e_w + e_f - e_u))``.
- Astrocyte: the exact calcium sum ``C``, state ``c = sat(shift(C, e_f - e_c))``; read t:
  ``c_t = sat(shift(C - band_t, e_f - e_c))``, slot responses and offset, one normaliser
  (:func:`~hardware_sim.golden.fixed_window.hybrid_step`).
"""

from __future__ import annotations

import numpy as np

from hardware_sim.fixed_point import INT, STATE_BITS, SaturationCounter, exact_product, saturate, shift
from hardware_sim.golden.fixed_circuit import hebbian_read_step
from hardware_sim.golden.fixed_features import score_params, score_step, slot_response_step
from hardware_sim.golden.fixed_learned import hedgehog_step
from hardware_sim.golden.fixed_window import hybrid_step
from hardware_sim.lava.kernels_band import Band, BandPorts, split_band
from hardware_sim.lava.kernels_fixed import FIXED_KERNELS, as_int
from hardware_sim.lava.kernels_learned_fixed import FixedLearnedFeaturesKernel, FixedLearnedHebbianKernel
from hardware_sim.lava.kernels_window import by_window
from hardware_sim.lava.kernels_window_fixed import (
    FixedWindowAstrocyteKernel,
    FixedWindowFeaturesKernel,
    FixedWindowHebbianKernel,
)


class FixedBandFeaturesKernel(BandPorts, FixedLearnedFeaturesKernel):
    """Learned feature neurons beside the band's slots, in integers (module docstring)."""

    again = {"key_again": "key"}

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        G, W = op.n_kv_heads, op.window
        self.band = Band(W)
        self.keys = np.zeros((G, W, op.head_dim), dtype=INT)
        self.fks = np.zeros((G, W, op.m), dtype=INT)
        self.params = score_params(op, self.in_exps["query"], self.in_exps["key"])
        self.replay_counter = SaturationCounter()  # a replayed key's saturations were counted at its write

    def out_width(self):
        op = self.op
        return op.n_heads * (4 * op.m + op.window)

    def step(self, s, inputs):
        op, clock = self.op, self.clock
        H, G, m, d, W = op.n_heads, op.n_kv_heads, op.m, op.head_dim, op.window
        if clock.sequence_start(s) >= 0:
            self.band.reset()
        write = entering = band = np.zeros((G, m), dtype=INT)
        b, t = clock.locate(s)
        if t >= 0:
            k = as_int(inputs["key"]).reshape(G, 1, d)
            write = hedgehog_step(self.kp, k, self.counter, self.name)[:, 0] * INT(clock.written[b, t])
        b, j = self.replayed(s)
        if j >= 0:
            w = INT(clock.written[b, j])
            slot = self.band.enter(j, w > 0)
            k = as_int(inputs["key_again"]).reshape(G, 1, d)
            entering = hedgehog_step(self.kp, k, self.replay_counter, self.name)[:, 0] * w
            self.keys[:, slot], self.fks[:, slot] = k[:, 0], entering
        read = np.zeros((H, m), dtype=INT)
        potential = np.zeros((H, W), dtype=INT)
        _, t = clock.locate(s, clock.R)
        if t >= 0:
            q = as_int(inputs["query"])
            read = hedgehog_step(self.qp, q.reshape(H, 1, d), self.counter, self.name)[:, 0]
            held = self.band.held(t)
            potential = score_step(self.params, q.reshape(G, self.group, d), self.keys, self.counter, self.name,
                                   held[None, None, :]).reshape(H, W)
            band = self.fks[:, held].sum(axis=1)
        parts = [np.repeat(x[:, None], self.group, axis=1).reshape(-1) for x in (write, entering, band)]
        return np.concatenate([parts[0], read.reshape(-1), potential.reshape(-1), parts[1], parts[2]])


class FixedBandHebbianKernel(BandPorts, FixedLearnedHebbianKernel):
    """Ungated synapses of an encoder's window in integers: every token's exact sum, the band's values."""

    again = {"teacher_again": "teacher"}

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        self.window = net.node(net.inputs_of(op.name)["pre"]).window
        self.band = Band(self.window)
        self.values = np.zeros((op.n_kv_heads, self.window, op.v_head_dim), dtype=INT)
        self.fks = np.zeros((op.n_kv_heads, self.window, op.m), dtype=INT)

    def out_width(self):
        op = self.op
        return (op.n_heads + op.n_kv_heads) * op.v_head_dim

    def step(self, s, inputs):
        op, clock = self.op, self.clock
        H, G, m, dv = op.n_heads, op.n_kv_heads, op.m, op.v_head_dim
        if clock.sequence_start(s) >= 0:
            self.acc[:] = 0
            self.state["weights"][:] = 0
            self.band.reset()
        write, read, _, entering, _ = split_band(as_int(inputs["pre"]), H, m, self.window)
        _, t = clock.locate(s)
        if t >= 0:
            v = as_int(inputs["teacher"]).reshape(G, dv, 1)
            self.acc += exact_product(v, write.reshape(G, self.group, m)[:, :1])
            if t == clock.T - 1:
                self.form()
        v = np.zeros((G, dv), dtype=INT)
        b, j = self.replayed(s)
        if j >= 0:
            v = as_int(inputs["teacher_again"]).reshape(G, dv)
            slot = self.band.enter(j, clock.written[b, j] > 0)
            self.values[:, slot], self.fks[:, slot] = v, entering.reshape(G, self.group, m)[:, 0]
        u = np.zeros(H * dv, dtype=INT)
        _, t = clock.locate(s, clock.R)
        if t >= 0:
            held = self.band.held(t)
            inside = np.einsum("gwv,gwm->gvm", self.values[:, held], self.fks[:, held])  # exact int64
            weights = saturate(shift(self.acc - inside, self.in_exps["teacher"] + self.in_exps["pre"] - self.w_exp),
                               STATE_BITS, self.counter, self.name)
            u = hebbian_read_step(weights, read.reshape(G, self.group, m), self.in_exps["pre"], self.w_exp,
                                  self.u_exp, self.counter, self.name).reshape(-1)
        return np.concatenate([u, v.reshape(-1)])


class FixedBandAstrocyteKernel(BandPorts, FixedWindowAstrocyteKernel):
    """Astrocyte of an encoder's window in integers: one normaliser over the band and the rest of the memory
    (states, exponents and counted names those of the ring's astrocyte)."""

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        self.band = Band(self.window)

    def step(self, s, inputs):
        op, clock, p = self.op, self.clock, self.params
        H, m, dv, G, W = op.n_heads, op.m, op.v_head_dim, self.syn.n_kv_heads, self.window
        if clock.sequence_start(s) >= 0:
            self.acc[:] = 0
            self.band.reset()
        write, read, potential, _, band = split_band(as_int(inputs["features"]), H, m, W)
        syn = as_int(inputs["synapses"])
        _, t = clock.locate(s)
        if t >= 0:
            self.acc += write
        b, j = self.replayed(s)
        if j >= 0:
            self.values[:, self.band.enter(j, clock.written[b, j] > 0)] = syn[H * dv :].reshape(G, dv)
        _, t = clock.locate(s, clock.R)
        if t < 0:
            return np.zeros(H * dv, dtype=INT)
        shift_c = p.f_exp - p.c_exp
        if t == 0:
            self.state["calcium"][:] = saturate(shift(self.acc, shift_c), STATE_BITS, self.counter, self.name)
        seen = saturate(shift(self.acc - band, shift_c), STATE_BITS, self.counter, self.name)
        held = self.band.held(t)
        e, offset = slot_response_step(potential, held[None], p.s_exp, p.f_exp, self.counter, self.feats.name)
        ev = exact_product(e.reshape(G, self.group, W), self.values).reshape(H, dv)
        y, z = hybrid_step(seen, read, e.sum(axis=-1), ev, self.log_gain - offset, syn[: H * dv].reshape(H, dv), p,
                           self.counter, self.name)
        self.state["soma"][:] = z
        self.state["offset"][:] = offset
        return y.reshape(-1)


FIXED_KERNELS.update(
    features=by_window(FIXED_KERNELS["features"], FixedWindowFeaturesKernel, FixedBandFeaturesKernel),
    hebbian_synapses=by_window(FIXED_KERNELS["hebbian_synapses"], FixedWindowHebbianKernel, FixedBandHebbianKernel),
    astrocyte=by_window(FIXED_KERNELS["astrocyte"], FixedWindowAstrocyteKernel, FixedBandAstrocyteKernel),
)
