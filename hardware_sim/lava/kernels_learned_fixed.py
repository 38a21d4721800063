"""Token-by-token ``loihi2`` kernels of ``learned`` circuits (Lava ``fixed_pt``), bit-exact with the golden
simulator: the same integer step functions on one token at a time.

- Feature neurons: write of token t sends ``w_t f(k_t)``, read of query q sends ``f(q)``, both from
  :func:`~hardware_sim.golden.fixed_learned.hedgehog_step` (logits through the 8-bit map synapses,
  each half normalised by the exp table and the reciprocal).  Message ``[write (H m), read (H m)]``.
- Hebbian synapses (ungated): the exact sum ``A += v_t f(k_t)^T`` and the weights
  ``H = sat(shift(A, e_v + e_f - e_w))`` (state ``weights``), formed after every write when causal and
  once, after the last write, when bidirectional; read-out ``u = sat(shift(H f(q), e_w + e_f - e_u))``
  (:func:`~hardware_sim.golden.fixed_circuit.hebbian_read_step`).  Message ``[u (H v_head_dim)]``.
- Astrocyte (ungated): graded calcium ``c = sat(shift(sum_t f(k_t), e_f - e_c))``, soma ``z = c.f(q)``
  and its floating reciprocal (:func:`~hardware_sim.golden.fixed_learned.learned_soma_step`), output
  ``y = sat(shift(u R, e_u + r_exp - e_y))``.

Exact sums are kept in int64 on the kernel (they may exceed the 53 bits a float64 Var holds); the
Vars hold the 24-bit states.
"""

from __future__ import annotations

import numpy as np

from compiler.errors import SimulationError
from hardware_sim.fixed_point import INT, STATE_BITS, exact_product, saturate, shift
from hardware_sim.golden.fixed_circuit import hebbian_read_step
from hardware_sim.golden.fixed_learned import hedgehog_step, learned_output_step, learned_soma_step, map_params
from hardware_sim.golden.fixed_registry import qexp
from hardware_sim.lava import kernels_fixed
from hardware_sim.lava.kernels import AstrocyteLayout, FeaturesLayout, HebbianLayout, split_features
from hardware_sim.lava.kernels_fixed import FIXED_KERNELS, FixedKernel, as_int


def is_learned(op, net) -> bool:
    """Whether ``op`` belongs to a learned circuit (a features node, or a synapse group / astrocyte fed by one)."""
    if op.kind == "features":
        return op.lowering == "learned"
    inputs = net.inputs_of(op.name)
    feats = inputs.get("pre") or inputs.get("features")
    return feats is not None and net.node(feats).lowering == "learned"


class FixedLearnedFeaturesKernel(FeaturesLayout, FixedKernel):
    """Learned feature neurons in integers (module docstring)."""

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        self.group = op.n_heads // op.n_kv_heads
        self.kp = map_params(op, "k", self.in_exps["key"], self.counter)
        self.qp = map_params(op, "q", self.in_exps["query"], self.counter)

    def step(self, s, inputs):
        op, clock = self.op, self.clock
        H, G, m, d = op.n_heads, op.n_kv_heads, op.m, op.head_dim
        write = np.zeros((G, m), dtype=INT)
        read = np.zeros((H, m), dtype=INT)
        b, t = clock.locate(s)
        if t >= 0:
            fk = hedgehog_step(self.kp, as_int(inputs["key"]).reshape(G, 1, d), self.counter, self.name)
            write = fk[:, 0] * INT(clock.written[b, t])
        _, t = clock.locate(s, clock.R)
        if t >= 0:
            read = hedgehog_step(self.qp, as_int(inputs["query"]).reshape(H, 1, d), self.counter, self.name)[:, 0]
        write = np.repeat(write[:, None, :], self.group, axis=1)
        return np.concatenate([write.reshape(-1), read.reshape(-1)])


class FixedLearnedHebbianKernel(HebbianLayout, FixedKernel):
    """Ungated Hebbian synapses of a learned circuit in integers (module docstring)."""

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        if op.gated:
            raise SimulationError(f"lava fixed_pt: node {op.name!r}: a learned circuit's synapses are not gated")
        self.group = op.n_heads // op.n_kv_heads
        self.w_exp, self.u_exp = qexp(op, "w_exp"), qexp(op)
        self.causal = net.node(net.node(net.inputs_of(op.name)["pre"]).schedule).mode == "causal"
        self.acc = np.zeros((op.n_kv_heads, op.v_head_dim, op.m), dtype=INT)

    def state_exps(self):
        return {"weights": self.w_exp}

    def form(self) -> None:
        H = shift(self.acc, self.in_exps["teacher"] + self.in_exps["pre"] - self.w_exp)
        self.state["weights"][:] = saturate(H, STATE_BITS, self.counter, self.name)

    def step(self, s, inputs):
        op, clock = self.op, self.clock
        H, G, m, dv = op.n_heads, op.n_kv_heads, op.m, op.v_head_dim
        if clock.sequence_start(s) >= 0:
            self.acc[:] = 0
            self.state["weights"][:] = 0
        write, read = split_features(as_int(inputs["pre"]), H, m)
        _, t = clock.locate(s)
        if t >= 0:
            v = as_int(inputs["teacher"]).reshape(G, dv, 1)
            self.acc += exact_product(v, write.reshape(G, self.group, m)[:, :1])
            if self.causal or t == clock.T - 1:
                self.form()
        _, t = clock.locate(s, clock.R)
        if t < 0:
            return np.zeros(H * dv, dtype=INT)
        weights = np.asarray(self.state["weights"], dtype=np.float64).astype(INT)
        u = hebbian_read_step(weights, read.reshape(G, self.group, m), self.in_exps["pre"], self.w_exp, self.u_exp,
                              self.counter, self.name)
        return u.reshape(-1)


class FixedLearnedAstrocyteKernel(AstrocyteLayout, FixedKernel):
    """Astrocyte of a learned circuit in integers: graded calcium, soma, divisive gain (module docstring)."""

    def __init__(self, op, net, dtype):
        super().__init__(op, net, dtype)
        inputs = net.inputs_of(op.name)
        self.feats = net.node(inputs["features"])
        self.syn = net.node(inputs["synapses"])
        self.gated = False
        self.causal = net.node(self.feats.schedule).mode == "causal"
        self.exps = dict(f=qexp(self.feats), c=qexp(op, "calcium_exp"), z=qexp(op, "soma_exp"), y=qexp(op),
                         u=qexp(self.syn))
        self.acc = np.zeros((op.n_heads, op.m), dtype=INT)

    def state_exps(self):
        e = self.exps
        return {"calcium": e["c"], "soma": e["z"]}

    def step(self, s, inputs):
        op, clock, e = self.op, self.clock, self.exps
        H, m, dv = op.n_heads, op.m, op.v_head_dim
        calcium = self.state["calcium"]
        if clock.sequence_start(s) >= 0:
            self.acc[:] = 0
        write, read = split_features(as_int(inputs["features"]), H, m)
        _, t = clock.locate(s)
        if t >= 0:
            self.acc += write
        _, t = clock.locate(s, clock.R)
        if t < 0:
            return np.zeros(H * dv, dtype=INT)
        if self.causal or t == 0:
            calcium[:] = saturate(shift(self.acc, e["f"] - e["c"]), STATE_BITS, self.counter, self.name)
        c = np.asarray(calcium, dtype=np.float64).astype(INT)
        z, recip, r_exp = learned_soma_step(c, read, e["c"], e["f"], e["z"], op.eps, self.counter, self.name)
        self.state["soma"][:] = z
        u = as_int(inputs["synapses"][: H * dv]).reshape(H, dv)
        return learned_output_step(u, recip, r_exp, e["u"], e["y"], self.counter, self.name).reshape(-1)


def by_lowering(exact_cls, learned_cls):
    """A kernel factory choosing the learned kernel for nodes of learned circuits."""

    def make(op, net, dtype):
        return (learned_cls if is_learned(op, net) else exact_cls)(op, net, dtype)

    make.__name__ = f"{exact_cls.__name__}_or_learned"
    return make


FIXED_KERNELS.update(
    features=by_lowering(kernels_fixed.FixedFeaturesKernel, FixedLearnedFeaturesKernel),
    hebbian_synapses=by_lowering(kernels_fixed.FixedHebbianKernel, FixedLearnedHebbianKernel),
    astrocyte=by_lowering(kernels_fixed.FixedAstrocyteKernel, FixedLearnedAstrocyteKernel),
)
