"""The attention circuit of Kozachkov, Kastanenka & Krotov (PNAS 2023) as Brian2 groups.

For one circuit (``H`` query heads in ``G`` key/value groups, head size ``d``, ``m`` feature
neurons and ``m`` astrocyte processes per head, ``dv`` output neurons per head), per sequence:

``X`` head inputs (H d)
    ``k = in_key + b_key`` (key head g(h) copied to each query head of its group), ``q = in_query + b_query``.
``F`` feature neurons (H m)
    key response ``fk`` and query response ``fq`` from dendrites summed over X (:mod:`.features`);
    a ``write`` event when the clock writes the token (exact slots: only slot t, for token t).
``P`` astrocyte processes (H m), one wrapping each feature synapse
    calcium ``c``: on write ``c += fk``; response ``r = c fq``.
``S`` astrocyte somas (H)
    ``z = sum_j r_j`` (summed variable); exact slots also hold the offset ``s``.
``O`` output neurons (H dv)
    teacher ``v`` (value head g(h)); Hebbian synapses F -> O: on write ``H += fk v_post``, recall
    ``u = sum_j H_j fq_j`` (gated, exact slots: ``u = sum_j H_j c_j fq_j``); the soma's divisive
    gain gives ``y = u / z`` (``y = 0`` where nothing was written; ``u / (z + eps)`` when eps > 0).

Within a step: inputs, key-side dendrites, ``fk``, the write event and its pathways (Hebbian
``H``, calcium, exact key storage), query-side dendrites, ``fq``, soma sum, recall and gain, ``y``.
"""

from __future__ import annotations

import numpy as np
from brian2 import NeuronGroup, Synapses, linked_var

from .features import dense, feature_kind
from .wiring import Source, port_equations


class Circuit:
    """Builds the groups and synapses of one attention circuit (see the module docstring)."""

    def __init__(self, build, node):
        self.build, self.node = build, node
        self.hebbian = build.records[node.inputs["synapses"]]
        self.features = build.records[node.inputs["features"]]
        fa = self.features.attrs
        self.H, self.G, self.d, self.m = fa["n_heads"], fa["n_kv_heads"], fa["head_dim"], fa["m"]
        self.dv, self.scale = node.attrs["v_head_dim"], float(fa["scale"])
        self.gated = bool(self.hebbian.attrs["gated"])
        self.B = build.batch
        if fa["lowering"] == "exact" and build.clock.tokens > self.m:
            raise ValueError(f"node {self.features.name!r} has {self.m} slots but the input has "
                             f"{build.clock.tokens} tokens; compile with --max-tokens {build.clock.tokens} or more")
        self.kind = feature_kind(self)
        self.write = build.write_table(node.name, fa["schedule"])

    def name(self, part):
        return self.build.name(f"{self.node.name}_{part}")

    def pairs(self, pre, post, n_pre, n_post):
        """Within-head pairs (pre[k], post[k]) of groups with ``n_pre``/``n_post`` neurons per head,
        repeated for every head and sequence -> global index arrays."""
        seq, head = np.arange(self.B)[:, None, None], np.arange(self.H)[None, :, None]
        i = (seq * self.H + head) * n_pre + np.asarray(pre)[None, None, :]
        j = (seq * self.H + head) * n_post + np.asarray(post)[None, None, :]
        return i.ravel().astype(np.int32), j.ravel().astype(np.int32)

    def per_group(self, values):
        """Values per key/value head (G, n) -> per query head and sequence, ordered like :meth:`pairs`."""
        group = np.arange(self.H) // (self.H // self.G)
        return np.tile(np.asarray(values)[group].ravel(), self.B)

    def per_query_head(self, values):
        """Values per query head (H, n) -> per sequence, ordered like :meth:`pairs`."""
        return np.tile(np.asarray(values).ravel(), self.B)

    def synapses(self, pre, post, model, pairs, name, **kwargs):
        syn = Synapses(pre, post, model, name=self.name(name), **kwargs)
        syn.connect(i=pairs[0], j=pairs[1])
        self.build.add(syn)
        return syn

    def groups(self):
        H, d, m, dv, B = self.H, self.d, self.m, self.dv, self.B
        X = NeuronGroup(B * H * d, "\n".join([port_equations("key", "query"), "k = in_key + b_key : 1",
                                              "q = in_query + b_query : 1"]), name=self.name("inputs"))
        F = NeuronGroup(B * H * m, "\n".join(self.kind.feature_equations() + [
            "seq : integer (constant)", "c : 1 (linked)", "fk : 1", "fq : 1"]),
            events={"write": f"{self.write}(t, seq) > 0" + self.kind.write_condition}, name=self.name("features"))
        P = NeuronGroup(B * H * m, "c : 1\nfq : 1 (linked)\nr = c * fq : 1", name=self.name("processes"))
        S = NeuronGroup(B * H, "\n".join(["z : 1", "seq : integer (constant)"] + self.kind.soma_equations()),
                        name=self.name("somas"))
        O = NeuronGroup(B * H * dv, "\n".join([port_equations("teacher"), "v = in_teacher + b_teacher : 1",
                                               "u : 1", "z : 1", "y : 1"]), name=self.name("outputs"))
        F.c = linked_var(P, "c")
        P.fq = linked_var(F, "fq")
        F.seq = np.repeat(np.arange(B), H * m)
        S.seq = np.repeat(np.arange(B), H)
        self.X, self.F, self.P, self.S, self.O = X, F, P, S, O
        self.build.add(X, F, P, S, O)
        self.kind.setup()

    def inputs(self):
        """Key, query and teacher ports; key/value head g(h) = h // (H/G) feeds query head h."""
        r = self.H // self.G
        key_take = np.concatenate([np.arange(self.d) + (h // r) * self.d for h in range(self.H)])
        teacher_take = np.concatenate([np.arange(self.dv) + (h // r) * self.dv for h in range(self.H)])
        order = self.build.order()
        self.build.feed(self.features, "key", self.X, self.H * self.d, take=key_take, order=order)
        self.build.feed(self.features, "query", self.X, self.H * self.d, order=order)
        self.build.feed(self.hebbian, "teacher", self.O, self.H * self.dv, take=teacher_take, order=order)

    def stages(self, stages):
        for updaters in stages:
            order = self.build.order()
            for updater in updaters:
                updater.order = order

    def wire(self):
        """Plasticity, astrocyte and gain synapses, each placed at its step of the circuit's order."""
        m, dv, b = self.m, self.dv, self.build
        key_side, query_side = self.kind.dendrites()
        self.stages(key_side)
        fk, fq = self.kind.responses()
        b.respond(self.F, fk)
        hebbian = self.synapses(self.F, self.O, "H : 1\nu_post = H * fq_pre" + (" * c_pre" if self.gated else "")
                                + " : 1 (summed)", self.pairs(*dense(m, dv), m, dv), "hebbian",
                                on_pre={"write": "H += fk_pre * v_post"}, on_event={"write": "write"})
        calcium = self.synapses(self.F, self.P, "", self.pairs(np.arange(m), np.arange(m), m, m), "calcium",
                                on_pre={"write": "c_post += fk_pre"}, on_event={"write": "write"})
        thresholder = self.F.thresholder["write"]
        thresholder.when, thresholder.order = "groups", b.order()
        writes = b.order()
        for syn in [hebbian, calcium] + self.kind.write_pathways():
            for pathway in syn._pathways:
                pathway.when, pathway.order = "groups", writes
        if self.kind.write_code() is not None:
            group, code = self.kind.write_code()
            b.add(group.run_regularly(code, when="groups", order=writes))
        self.stages(query_side)
        b.respond(self.F, fq)
        soma = self.synapses(self.P, self.S, "z_post = r_pre : 1 (summed)",
                             self.pairs(np.arange(m), np.zeros(m, int), m, 1), "soma")
        gain = self.synapses(self.S, self.O, "z_post = z_pre : 1 (summed)",
                             self.pairs(np.zeros(dv, int), np.arange(dv), 1, dv), "gain")
        self.stages([[soma.summed_updaters["z_post"]], [gain.summed_updaters["z_post"],
                                                         hebbian.summed_updaters["u_post"]]])
        eps = float(self.node.attrs.get("eps", 0.0))
        b.respond(self.O, f"y = u / (z + {eps!r})" if eps > 0 else "y = u / (z + int(z == 0))")


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
