"""The attention circuit of Kozachkov, Kastanenka & Krotov (PNAS 2023) as Brian2 groups.

For one circuit (``H`` query heads in ``G`` key/value groups, head size ``d``, ``m`` feature
neurons and ``m`` astrocyte processes per head, ``dv`` output neurons per head), per sequence:

``X`` head inputs (H d)
    ``k = in_key + b_key`` (key head g(h) copied to each query head of its group), ``q = in_query + b_query``.
``F`` feature neurons (H m)
    key response ``fk`` and query response ``fq`` from dendrites summed over X (see :data:`LOWERINGS`);
    a ``write`` event when the clock writes the token (exact slots: only slot t, for token t).
``P`` astrocyte processes (H m), one wrapping each feature synapse
    calcium ``c``: on write ``c += fk``; response ``r = c fq``.
``S`` astrocyte somas (H)
    ``z = sum_j r_j`` (summed variable); exact slots also hold the offset ``s`` (below).
``O`` output neurons (H dv)
    teacher ``v`` (value head g(h)); Hebbian synapses F -> O: on write ``H += fk v_post``, recall
    ``u = sum_j H_j fq_j`` (gated, exact slots: ``u = sum_j H_j c_j fq_j``); the soma's divisive
    gain gives ``y = u / z`` (``y = 0`` where nothing was written; ``u / (z + eps)`` when eps > 0).

Exact slots store key ``k_t`` on the afferent synapses of slot t (``kw = k_pre`` on its write
event) and respond ``fq_j = [c_j > 0] exp(l_j - s)`` to the potential ``l_j = scale sum kw q``.
The offset ``s`` only keeps the exponent in range: it cancels in ``u / z``.  Brian2's summed
variables add but cannot take a maximum, so the soma holds the Cauchy-Schwarz bound
``s = scale sqrt(|q|^2 kmax)`` >= every ``l_j``, with ``kmax`` the running maximum of the written
keys' squared norms (updated by the soma at each write), instead of the maximum itself.
"""

from __future__ import annotations

import math

import numpy as np
from brian2 import NeuronGroup, Synapses, linked_var

from .wiring import Source, port_equations


def dense(d: int, m: int):
    """Every input e to every feature j of a head."""
    e, j = np.meshgrid(np.arange(d), np.arange(m), indexing="ij")
    return e.ravel(), j.ravel()


def lowering(a, arrays) -> dict:
    """Dendrites (input e -> feature j, weight per head) and responses of each lowering.

    ``x' = x sqrt(scale)``; favor ``f = exp(W x' - |x'|^2/2) / sqrt(m)``; relu ``f = relu(W x')``;
    elu1 ``f = elu(x') + 1``; taylor2 ``f = c0 + c1 a1 + c2 a1 a2`` = ``[1, x', x'_a x'_b / sqrt 2]``.
    """
    d, m, root = a["head_dim"], a["m"], math.sqrt(a["scale"])
    kind = a["lowering"]
    if kind in ("favor", "relu"):
        e, j = dense(d, m)
        W = np.asarray(arrays["projection"], dtype=np.float64) * root
        norm = " - nk{s}" if kind == "favor" else ""
        f = f"exp(a1{{s}}{norm}) / sqrt({m})" if kind == "favor" else "clip(a1{s}, 0, inf)"
        return {"dendrites": [(e, j, W[:, j, e])], "norm": kind == "favor", "response": f}
    if kind == "elu1":
        e = np.arange(d)
        W = np.full((a["n_kv_heads"], d), root)
        return {"dendrites": [(e, e, W)], "norm": False,
                "response": "int(a1{s} > 0) * (a1{s} + 1) + int(a1{s} <= 0) * exp(clip(a1{s}, -inf, 0))"}
    if kind == "taylor2":
        lin = np.arange(d)
        qa, qb = np.divmod(np.arange(d * d), d)
        j1 = np.concatenate([1 + lin, 1 + d + np.arange(d * d)])
        W1 = np.full((a["n_kv_heads"], len(j1)), root)
        W2 = np.full((a["n_kv_heads"], d * d), root)
        return {"dendrites": [(np.concatenate([lin, qa]), j1, W1), (qb, 1 + d + np.arange(d * d), W2)],
                "norm": False, "response": "c0 + c1 * a1{s} + c2 * a1{s} * a2{s}", "taylor": True}
    raise ValueError(f"the Brian2 backend has no feature map for lowering {kind!r}")


class Circuit:
    """Builds the groups and synapses of one attention circuit (see the module docstring)."""

    def __init__(self, build, node):
        self.build, self.node = build, node
        hebbian = build.records[node.inputs["synapses"]]
        self.features = build.records[node.inputs["features"]]
        self.hebbian = hebbian
        fa = self.features.attrs
        self.H, self.G, self.d, self.m = fa["n_heads"], fa["n_kv_heads"], fa["head_dim"], fa["m"]
        self.dv, self.scale = node.attrs["v_head_dim"], float(fa["scale"])
        self.exact = fa["lowering"] == "exact"
        self.gated = bool(hebbian.attrs["gated"])
        self.write = build.write_table(node.name, self.features.attrs["schedule"])
        self.B = build.batch
        if self.exact and build.clock.tokens > self.m:
            raise ValueError(f"node {self.features.name!r} has {self.m} slots but the input has "
                             f"{build.clock.tokens} tokens; compile with --max-tokens {build.clock.tokens} or more")

    def name(self, part):
        return self.build.name(f"{self.node.name}_{part}")

    def pairs(self, pre, post, n_pre, n_post):
        """Within-head pairs (pre[k], post[k]) of groups with ``n_pre``/``n_post`` neurons per head,
        repeated for every head and sequence -> global index arrays."""
        seq, head = np.arange(self.B)[:, None, None], np.arange(self.H)[None, :, None]
        i = (seq * self.H + head) * n_pre + np.asarray(pre)[None, None, :]
        j = (seq * self.H + head) * n_post + np.asarray(post)[None, None, :]
        return i.ravel().astype(np.int32), j.ravel().astype(np.int32)

    def per_head(self, values):
        """Per-group weights (G, n) -> per synapse, ordered like :meth:`pairs`."""
        group = np.arange(self.H) // (self.H // self.G)
        return np.tile(np.asarray(values)[group].ravel(), self.B)

    def groups(self):
        H, d, m, dv, B = self.H, self.d, self.m, self.dv, self.B
        spec = lowering(self.features.attrs, self.features.arrays) if not self.exact else None
        self.spec = spec
        X = NeuronGroup(B * H * d, "\n".join([port_equations("key", "query"), "k = in_key + b_key : 1",
                                              "q = in_query + b_query : 1"]), name=self.name("inputs"))
        dendrites = ["l : 1", "s : 1", "slot : integer (constant)"] if self.exact else [
            f"a{n}{s} : 1" for n in range(1, len(spec["dendrites"]) + 1) for s in "kq"]
        if spec and spec["norm"]:
            dendrites += ["nkk : 1", "nkq : 1"]
        if spec and spec.get("taylor"):
            dendrites += ["c0 : 1 (constant)", "c1 : 1 (constant)", "c2 : 1 (constant)"]
        write = f"{self.write}(t, seq) > 0" + (" and slot == token_of(t)" if self.exact else "")
        F = NeuronGroup(B * H * m, "\n".join(dendrites + ["seq : integer (constant)", "c : 1 (linked)",
                                                          "fk : 1", "fq : 1"]),
                        events={"write": write}, name=self.name("features"))
        P = NeuronGroup(B * H * m, "c : 1\nfq : 1 (linked)\nr = c * fq : 1", name=self.name("processes"))
        soma = ["z : 1", "seq : integer (constant)"]
        if self.exact:
            soma += ["qq : 1", "kk : 1", "kmax : 1", f"s = {self.scale!r} * sqrt(qq * kmax) : 1"]
        S = NeuronGroup(B * H, "\n".join(soma), name=self.name("somas"))
        O = NeuronGroup(B * H * dv, "\n".join([port_equations("teacher"), "v = in_teacher + b_teacher : 1",
                                               "u : 1", "z : 1", "y : 1"]), name=self.name("outputs"))
        F.c = linked_var(P, "c")
        P.fq = linked_var(F, "fq")
        F.seq = np.repeat(np.arange(B), H * m)
        S.seq = np.repeat(np.arange(B), H)
        if self.exact:
            F.slot = np.tile(np.arange(m), B * H)
        if spec and spec.get("taylor"):
            c0 = np.zeros(m)
            c0[0] = 1.0
            c1 = np.zeros(m)
            c1[1:1 + d] = 1.0
            c2 = np.zeros(m)
            c2[1 + d:] = 1.0 / math.sqrt(2.0)
            F.c0, F.c1, F.c2 = (np.tile(c, B * H) for c in (c0, c1, c2))
        self.X, self.F, self.P, self.S, self.O = X, F, P, S, O
        self.build.add(X, F, P, S, O)

    def inputs(self):
        """Key, query and teacher ports; key/value head g(h) = h // (H/G) feeds query head h."""
        r = self.H // self.G
        key_take = np.concatenate([np.arange(self.d) + (h // r) * self.d for h in range(self.H)])
        teacher_take = np.concatenate([np.arange(self.dv) + (h // r) * self.dv for h in range(self.H)])
        order = self.build.order()
        self.build.feed(self.features, "key", self.X, self.H * self.d, take=key_take, order=order)
        self.build.feed(self.features, "query", self.X, self.H * self.d, order=order)
        self.build.feed(self.hebbian, "teacher", self.O, self.H * self.dv, take=teacher_take, order=order)

    def synapses(self, pre, post, model, pairs, name, **kwargs):
        syn = Synapses(pre, post, model, name=self.name(name), **kwargs)
        syn.connect(i=pairs[0], j=pairs[1])
        self.build.add(syn)
        return syn

    def dendrites(self):
        """Input synapses X -> F (and X -> S for the exact offset); returns (key side, query side) updaters."""
        d, m = self.d, self.m
        if self.exact:
            e, j = dense(d, m)
            syn = self.synapses(self.X, self.F, f"kw : 1\nl_post = {self.scale!r} * kw * q_pre : 1 (summed)",
                                self.pairs(e, j, d, m), "slot_synapses",
                                on_post={"store": "kw = k_pre"}, on_event={"store": "write"})
            norms = self.synapses(self.X, self.S, "qq_post = q_pre**2 : 1 (summed)\nkk_post = k_pre**2 : 1 (summed)",
                                  self.pairs(np.arange(d), np.zeros(d, int), d, 1), "norms")
            self.stored = syn
            return [norms.summed_updaters["kk_post"]], [syn.summed_updaters["l_post"],
                                                        norms.summed_updaters["qq_post"]]
        key, query = [], []
        for n, (e, j, W) in enumerate(self.spec["dendrites"], start=1):
            model = f"w : 1 (constant)\na{n}k_post = w * k_pre : 1 (summed)\na{n}q_post = w * q_pre : 1 (summed)"
            if n == 1 and self.spec["norm"]:
                half = self.scale / 2
                model += f"\nnkk_post = {half!r} * k_pre**2 : 1 (summed)\nnkq_post = {half!r} * q_pre**2 : 1 (summed)"
            syn = self.synapses(self.X, self.F, model, self.pairs(e, j, d, m), f"dendrite{n}")
            syn.w[:] = self.per_head(W)
            key += [syn.summed_updaters[v] for v in (f"a{n}k_post", "nkk_post") if v in syn.summed_updaters]
            query += [syn.summed_updaters[v] for v in (f"a{n}q_post", "nkq_post") if v in syn.summed_updaters]
        return key, query

    def responses(self):
        if self.exact:
            return "fk = 1", "fq = int(c > 0) * exp(clip(l - s, -inf, 0))"
        f = self.spec["response"]
        return "fk = " + f.format(s="k"), "fq = " + f.format(s="q")

    def wire(self):
        """Plasticity, astrocyte and gain synapses, each placed at its step of the circuit's order."""
        m, dv = self.m, self.dv
        b = self.build
        key_side, query_side = self.dendrites()
        at(key_side, b.order())
        fk, fq = self.responses()
        b.respond(self.F, fk)
        hebbian = self.synapses(self.F, self.O, "H : 1\nu_post = H * fq_pre" + (" * c_pre" if self.gated else "")
                                + " : 1 (summed)", self.pairs(*dense(m, dv), m, dv), "hebbian",
                                on_pre={"write": "H += fk_pre * v_post"}, on_event={"write": "write"})
        calcium = self.synapses(self.F, self.P, "", self.pairs(np.arange(m), np.arange(m), m, m), "calcium",
                                on_pre={"write": "c_post += fk_pre"}, on_event={"write": "write"})
        threshold = b.order()
        self.F.thresholder["write"].when, self.F.thresholder["write"].order = "groups", threshold
        writes = b.order()
        for syn in (hebbian, calcium) + ((self.stored,) if self.exact else ()):
            for pathway in syn._pathways:
                pathway.when, pathway.order = "groups", writes
        if self.exact:
            self.S.run_regularly(f"kmax += {self.write}(t, seq) * clip(kk - kmax, 0, inf)", when="groups",
                                 order=writes)
        at(query_side, b.order())
        if self.exact:
            offset = self.synapses(self.S, self.F, "s_post = s_pre : 1 (summed)",
                                   self.pairs(np.zeros(m, int), np.arange(m), 1, m), "offset")
            at([offset.summed_updaters["s_post"]], b.order())
        b.respond(self.F, fq)
        soma = self.synapses(self.P, self.S, "z_post = r_pre : 1 (summed)",
                             self.pairs(np.arange(m), np.zeros(m, int), m, 1), "soma")
        at([soma.summed_updaters["z_post"]], b.order())
        gain = self.synapses(self.S, self.O, "z_post = z_pre : 1 (summed)",
                             self.pairs(np.zeros(dv, int), np.arange(dv), 1, dv), "gain")
        at([gain.summed_updaters["z_post"], hebbian.summed_updaters["u_post"]], b.order())
        eps = float(self.node.attrs.get("eps", 0.0))
        b.respond(self.O, f"y = u / (z + {eps!r})" if eps > 0 else "y = u / (z + int(z == 0))")
        self.weights = hebbian


def at(updaters, order):
    for u in updaters:
        u.order = order


def astrocyte(build, node):
    """One attention circuit, built when its astrocyte (the last of its three nodes) is reached."""
    circuit = Circuit(build, node)
    circuit.groups()
    circuit.inputs()
    circuit.wire()
    build.circuits[node.name] = circuit
    return Source(circuit.O, circuit.H * circuit.dv, name=node.name)


def deferred(build, node):
    """Feature populations and Hebbian synapses are built with their astrocyte."""
    return None
