"""Token-by-token ``loihi2`` (integer) behaviour of every process-graph node kind, as the Lava
``fixed_pt`` process models run it.

Each kernel calls the golden simulator's pure integer step functions
(:mod:`hardware_sim.golden.fixed_neurons`, :mod:`.fixed_features`, :mod:`.fixed_circuit`), which are
built on :mod:`hardware_sim.fixed_point`, on one token at a time: the same equations, the same
rounding and the same saturation counts, so Lava ``fixed_pt`` equals golden ``loihi2`` bit for bit.

Messages carry 24-bit integer payloads (exactly representable in the float64 port buffers); every
payload's exponent is its producer's ``quant["exp"]``.  State Vars hold integers: ``calcium`` (at
``calcium_exp``), ``soma`` (``z`` at ``soma_exp``), ``offset`` (at the features' ``score_exp``),
``weights`` and ``slots`` (Hebbian weights at ``w_exp``), ``keys`` (stored key payloads), ``gain``
(``1/sqrt(n (var + eps))`` at the norm's ``r_exp``).

Exact slot circuits (the only lowering the ``loihi2`` precision supports): slot ``t`` is written
by token ``t`` alone, so the Hebbian column written at token ``t`` is
``H_t = sat(shift(v_t w_t 2**-e_f, e_v + e_f - e_w))`` -- the column the golden simulator's
whole-sequence write gives -- and each column's saturations are counted once, at its write.  The
Hebbian group sends the new column with its message; the astrocyte keeps the slot copy it gates.
"""

from __future__ import annotations

import math

import numpy as np

from compiler.errors import SimulationError
from hardware_sim.fixed_point import INT, STATE_BITS, SaturationCounter, saturate, shift, to_float
from hardware_sim.golden.fixed_circuit import gated_output_step, hebbian_write_step, soma_step
from hardware_sim.golden.fixed_features import score_params, score_step, slot_response_step, slot_writes_int
from hardware_sim.golden.fixed_neurons import norm_params, norm_step, population_step, synapse_params, synapse_step
from hardware_sim.golden.fixed_registry import Fx, qexp
from hardware_sim.lava.kernels import (
    KERNEL_SETS,
    AstrocyteLayout,
    FeaturesLayout,
    HebbianLayout,
    Kernel,
    split_features,
)


def as_int(x) -> np.ndarray:
    """Payloads received through a port (float64 holding integers) as int64."""
    return np.rint(np.asarray(x)).astype(INT)


class FixedKernel(Kernel):
    """Base of the integer kernels: a saturation counter and the exponents of the inputs."""

    def __init__(self, op, net, dtype):
        super().__init__(op, net, np.float64)
        self.counter = SaturationCounter()
        self.in_exps = {port: qexp(net.node(src)) for port, src in net.inputs_of(op.name).items()}

    def count_names(self) -> tuple[str, ...]:
        """Names this kernel counts saturations under."""
        return (self.name,)

    def state_exps(self) -> dict[str, int]:
        """Exponent of each integer state Var (probes report ``q 2**e``, as the golden simulator)."""
        return {}

    def probe_value(self, var, data):
        return to_float(np.rint(np.asarray(data, dtype=np.float64)).astype(INT), self.state_exps()[var])


class FixedPopulationKernel(FixedKernel):
    """:func:`~hardware_sim.golden.fixed_neurons.population_step` on one token (rotary: its position)."""

    def step(self, s, inputs):
        _, t = self.clock.locate(s)
        values = [Fx(as_int(inputs[p])[None, None], self.in_exps[p]) for p in self.op.input_ports()]
        return population_step(self.op, values, np.array([[max(t, 0)]]), self.counter)[0, 0]


class FixedSynapsesKernel(FixedKernel):
    """``y = sat(shift(M x, e_w + e_x - e_y) + b)`` (:func:`~hardware_sim.golden.fixed_neurons.synapse_step`)."""

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        self.params = synapse_params(op, self.in_exps["pre"], self.counter, op.name)

    def step(self, s, inputs):
        return synapse_step(self.params, as_int(inputs["pre"]), self.counter, self.name)


class FixedNormKernel(FixedKernel):
    """:func:`~hardware_sim.golden.fixed_neurons.norm_step`; state ``gain`` = ``r`` at ``r_exp``."""

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        self.params = norm_params(op, self.in_exps["x"], self.counter)

    def state_shapes(self):
        return {"gain": (1,)}

    def probe_value(self, var, data):
        """Golden's gain probe: ``r 2**e_r sqrt(n)`` = ``1/sqrt(var + eps)``."""
        return to_float(np.rint(data).astype(INT), self.params.r_exp) * math.sqrt(self.params.n)

    def step(self, s, inputs):
        y, r = norm_step(self.params, as_int(inputs["x"]), self.counter, self.name)
        if self.clock.locate(s)[1] >= 0:
            self.state["gain"][:] = r
        return y


def require_exact(op) -> None:
    if op.lowering != "exact":
        raise SimulationError(f"lava fixed_pt: node {op.name!r} uses the {op.lowering!r} lowering; the loihi2 "
                              "precision supports exact circuits; compile with lowering='exact'")


class FixedFeaturesKernel(FeaturesLayout, FixedKernel):
    """Exact slots.  Write of token t: slot t fires ``w_t 2**-e_f`` and stores ``k_t`` in ``keys``;
    read of q: potentials ``l = scale q.K_j`` (:func:`~hardware_sim.golden.fixed_features.score_step`).
    Message ``[write (H m), potentials (H m)]``."""

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        require_exact(op)
        self.group = op.n_heads // op.n_kv_heads
        self.f_exp = qexp(op)
        self.params = score_params(op, self.in_exps["query"], self.in_exps["key"])

    def step(self, s, inputs):
        op, clock = self.op, self.clock
        H, G, m, d = op.n_heads, op.n_kv_heads, op.m, op.head_dim
        keys = self.state["keys"]
        write = np.zeros((G, m), dtype=INT)
        potential = np.zeros((H, m), dtype=INT)
        if clock.sequence_start(s) >= 0:
            keys[:] = 0
        b, t = clock.locate(s)
        if t >= 0:
            if t >= m:
                raise SimulationError(f"lava: node {self.name!r} has {m} slots but token {t} arrived; "
                                      f"compile with --max-tokens {clock.T} or more")
            w = clock.written[b : b + 1, : t + 1].astype(INT)
            write = slot_writes_int(op, w, self.f_exp)[0, :, t]
            if w[0, t]:
                keys[:, t] = as_int(inputs["key"]).reshape(G, d)
        b, t = clock.locate(s, clock.R)
        if t >= 0:
            q = as_int(inputs["query"]).reshape(G, self.group, d)
            potential = score_step(self.params, q, keys, self.counter, self.name).reshape(H, m)
        write = np.repeat(write[:, None, :], self.group, axis=1)
        return np.concatenate([write.reshape(-1), potential.reshape(-1)])


class FixedHebbianKernel(HebbianLayout, FixedKernel):
    """Gated exact-slot synapses: write of token t adds the column
    ``sat(shift(v_t f(k_t)^T, e_v + e_f - e_w))`` (:func:`~hardware_sim.golden.fixed_circuit.hebbian_write_step`)
    to ``weights`` (G, v_head_dim, m).  Message ``[0 (H v_head_dim), new column (G v_head_dim)]``:
    transmission is gated by the astrocyte, which keeps the slot copy."""

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        if not op.gated:
            raise SimulationError(f"lava fixed_pt: node {op.name!r} is not a gated (exact-slot) synapse group; "
                                  "the loihi2 precision supports exact circuits")
        self.group = op.n_heads // op.n_kv_heads
        self.w_exp = qexp(op, "w_exp")

    def state_exps(self):
        return {"weights": self.w_exp}

    def step(self, s, inputs):
        op, clock = self.op, self.clock
        H, G, m, dv = op.n_heads, op.n_kv_heads, op.m, op.v_head_dim
        weights = self.state["weights"]
        if clock.sequence_start(s) >= 0:
            weights[:] = 0
        column = np.zeros((G, dv), dtype=INT)
        _, t = clock.locate(s)
        if t >= 0:
            write, _ = split_features(as_int(inputs["pre"]), H, m)
            fk = write.reshape(G, self.group, m)[:, :1]
            v = as_int(inputs["teacher"]).reshape(G, 1, dv)
            delta = hebbian_write_step(v, fk, self.in_exps["teacher"], self.in_exps["pre"], self.w_exp,
                                       self.counter, self.name)
            weights += delta
            column = delta.sum(axis=-1)
        return np.concatenate([np.zeros(H * dv, dtype=INT), column.reshape(-1)])


class FixedAstrocyteKernel(AstrocyteLayout, FixedKernel):
    """Astrocyte of an exact circuit: calcium ``c = sat(shift(sum_t f(k_t), e_f - e_c))`` (each read
    when causal; once per sequence, at the first read, when bidirectional), slot responses and soma
    offset (:func:`~hardware_sim.golden.fixed_features.slot_response_step`), soma ``z`` and ``1/z``
    (:func:`~hardware_sim.golden.fixed_circuit.soma_step`), gated output
    (:func:`~hardware_sim.golden.fixed_circuit.gated_output_step`)."""

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        inputs = net.inputs_of(op.name)
        self.feats = net.node(inputs["features"])
        self.syn = net.node(inputs["synapses"])
        require_exact(self.feats)
        self.gated = True
        self.group = op.n_heads // self.syn.n_kv_heads
        self.causal = net.node(self.feats.schedule).mode == "causal"
        self.exps = dict(f=qexp(self.feats), s=qexp(self.feats, "score_exp"), c=qexp(op, "calcium_exp"),
                         z=qexp(op, "soma_exp"), r=qexp(op, "recip_exp"), y=qexp(op), w=qexp(self.syn, "w_exp"))
        self.acc = np.zeros((op.n_heads, op.m), dtype=INT)

    def count_names(self):
        return (self.name, self.feats.name)

    def state_exps(self):
        e = self.exps
        return {"calcium": e["c"], "soma": e["z"], "offset": e["s"], "slots": e["w"]}

    def step(self, s, inputs):
        op, clock, e = self.op, self.clock, self.exps
        H, m, dv, G = op.n_heads, op.m, op.v_head_dim, self.syn.n_kv_heads
        calcium, slots = self.state["calcium"], self.state["slots"]
        if clock.sequence_start(s) >= 0:
            self.acc[:] = 0
            slots[:] = 0
        write, potential = split_features(as_int(inputs["features"]), H, m)
        _, t = clock.locate(s)
        if t >= 0:
            self.acc += write
            column = as_int(inputs["synapses"])[H * dv :].reshape(G, dv)
            slots += column[:, :, None] * (write.reshape(G, self.group, m)[:, 0] != 0)[:, None, :]
        _, t = clock.locate(s, clock.R)
        if t < 0:
            return np.zeros(H * dv, dtype=INT)
        if self.causal or t == 0:
            calcium[:] = saturate(shift(self.acc, e["f"] - e["c"]), STATE_BITS, self.counter, self.name)
        c = np.asarray(calcium, dtype=INT)
        f, offset = slot_response_step(potential, c > 0, e["s"], e["f"], self.counter, self.feats.name)
        self.state["offset"][:] = offset
        r, p_exp, z, recip, _ = soma_step(c, f, e["c"], e["f"], e["z"], e["r"], op.eps, self.counter, self.name)
        self.state["soma"][:] = z
        y = gated_output_step(r[None, :, None, :], recip[None, :, None], np.asarray(slots, dtype=INT)[None], p_exp,
                              e["r"], e["w"], e["y"], G, self.counter, self.name)
        return y.reshape(-1)


FIXED_KERNELS = {
    "population": FixedPopulationKernel,
    "synapses": FixedSynapsesKernel,
    "norm_astrocyte": FixedNormKernel,
    "features": FixedFeaturesKernel,
    "hebbian_synapses": FixedHebbianKernel,
    "astrocyte": FixedAstrocyteKernel,
}

KERNEL_SETS["fixed_pt"] = FIXED_KERNELS
