"""Feature neurons of an attention circuit, one class per kind of feature map.

Each kind gives the feature neurons ``F`` (and, for exact slots, the somas ``S``) their variables,
builds their dendrites from the head inputs ``X`` (``k``, ``q``), and returns the summed-variable
updaters of the key side and of the query side as *stages*: lists run one after another within a
step (each stage at its own order), before the key response ``fk`` and the query response ``fq``.

- :class:`ExactSlots`: one slot per token; ``fk = 1`` for slot t at the write of token t (whose
  afferent synapses store ``kw = k``); ``fq_j = [c_j > 0] exp(l_j - s)``, ``l_j = scale sum kw q``.
- :class:`FixedMaps`: ``x' = x sqrt(scale)``; favor ``f = exp(W x' - |x'|^2/2) / sqrt(m)``; relu
  ``f = relu(W x')``; elu1 ``f = elu(x') + 1``; taylor2 ``f = c0 + c1 a1 + c2 a1 a2``, which is
  ``[1, x', x'_a x'_b / sqrt 2]``.
- :class:`LearnedMaps`: ``f(x) = [softmax(x W + b), softmax(-(x W + b))]`` (separate maps for keys,
  per key/value head, and queries, per query head): each half's softmax a divisive normalisation by
  a normaliser neuron per head, ``f_j = e_j / sum_half e``, ``e_j = exp(a_j - s)``.

Offsets ``s`` only keep exponents in range and cancel in every ratio.  Summed variables add but
cannot take a maximum, so they are Cauchy-Schwarz bounds instead of maxima: exact slots
``s = scale sqrt(|q|^2 max_j |k_j|^2)`` (the soma keeps the running maximum of the written keys'
squared norms, updated at each write); learned maps ``s = |x| max_j |W_j| + max_j |b_j|``.
"""

from __future__ import annotations

import math

import numpy as np


def dense(d: int, m: int):
    """Every input e to every feature j of a head, e-major."""
    e, j = np.meshgrid(np.arange(d), np.arange(m), indexing="ij")
    return e.ravel(), j.ravel()


class ExactSlots:
    """Exact slots (see the module docstring)."""

    write_condition = " and slot == token_of(t)"

    def __init__(self, circuit):
        self.c = circuit

    def feature_equations(self):
        return ["l : 1", "s : 1", "slot : integer (constant)"]

    def soma_equations(self):
        return ["qq : 1", "kk : 1", "kmax : 1", f"s = {self.c.scale!r} * sqrt(qq * kmax) : 1"]

    def setup(self):
        self.c.F.slot = np.tile(np.arange(self.c.m), self.c.B * self.c.H)

    def dendrites(self):
        c, d, m = self.c, self.c.d, self.c.m
        e, j = dense(d, m)
        self.stored = c.synapses(c.X, c.F, f"kw : 1\nl_post = {c.scale!r} * kw * q_pre : 1 (summed)",
                                 c.pairs(e, j, d, m), "slot_synapses",
                                 on_post={"store": "kw = k_pre"}, on_event={"store": "write"})
        norms = c.synapses(c.X, c.S, "qq_post = q_pre**2 : 1 (summed)\nkk_post = k_pre**2 : 1 (summed)",
                           c.pairs(np.arange(d), np.zeros(d, int), d, 1), "norms")
        offset = c.synapses(c.S, c.F, "s_post = s_pre : 1 (summed)",
                            c.pairs(np.zeros(m, int), np.arange(m), 1, m), "offset")
        key = [[norms.summed_updaters["kk_post"]]]
        query = [[self.stored.summed_updaters["l_post"], norms.summed_updaters["qq_post"]],
                 [offset.summed_updaters["s_post"]]]
        return key, query

    def write_pathways(self):
        return [self.stored]

    def write_code(self):
        """Soma code at each write: the running maximum of the written keys' squared norms."""
        return self.c.S, f"kmax += {self.c.write}(t, seq) * clip(kk - kmax, 0, inf)"

    def responses(self):
        return "fk = 1", "fq = int(c > 0) * exp(clip(l - s, -inf, 0))"


class FixedMaps:
    """favor, relu, elu1 and taylor2 (see the module docstring)."""

    write_condition = ""

    def __init__(self, circuit):
        self.c = circuit
        a, arrays = circuit.features.attrs, circuit.features.arrays
        d, m, root, kind = a["head_dim"], a["m"], math.sqrt(a["scale"]), a["lowering"]
        G = a["n_kv_heads"]
        self.norm = kind == "favor"
        if kind in ("favor", "relu"):
            e, j = dense(d, m)
            W = np.asarray(arrays["projection"], dtype=np.float64) * root
            self.dendrite_list = [(e, j, W[:, j, e])]
            self.response = "exp(a1{s} - nk{s}) / sqrt(" + str(m) + ")" if self.norm else "clip(a1{s}, 0, inf)"
        elif kind == "elu1":
            e = np.arange(d)
            self.dendrite_list = [(e, e, np.full((G, d), root))]
            self.response = "int(a1{s} > 0) * (a1{s} + 1) + int(a1{s} <= 0) * exp(clip(a1{s}, -inf, 0))"
        elif kind == "taylor2":
            lin, quad = np.arange(d), np.arange(d * d)
            j1 = np.concatenate([1 + lin, 1 + d + quad])
            self.dendrite_list = [(np.concatenate([lin, quad // d]), j1, np.full((G, len(j1)), root)),
                                  (quad % d, 1 + d + quad, np.full((G, d * d), root))]
            self.response = "c0 + c1 * a1{s} + c2 * a1{s} * a2{s}"
        else:
            raise ValueError(f"the Brian2 backend has no feature map for lowering {kind!r}")
        self.taylor = kind == "taylor2"

    def feature_equations(self):
        eqs = [f"a{n}{s} : 1" for n in range(1, len(self.dendrite_list) + 1) for s in "kq"]
        eqs += ["nkk : 1", "nkq : 1"] if self.norm else []
        return eqs + (["c0 : 1 (constant)", "c1 : 1 (constant)", "c2 : 1 (constant)"] if self.taylor else [])

    def soma_equations(self):
        return []

    def setup(self):
        if not self.taylor:
            return
        c, d, m = self.c, self.c.d, self.c.m
        coefficients = np.zeros((3, m))
        coefficients[0, 0], coefficients[1, 1:1 + d], coefficients[2, 1 + d:] = 1.0, 1.0, 1.0 / math.sqrt(2.0)
        c.F.c0, c.F.c1, c.F.c2 = (np.tile(row, c.B * c.H) for row in coefficients)

    def dendrites(self):
        c, key, query = self.c, [], []
        for n, (e, j, W) in enumerate(self.dendrite_list, start=1):
            model = f"w : 1 (constant)\na{n}k_post = w * k_pre : 1 (summed)\na{n}q_post = w * q_pre : 1 (summed)"
            if n == 1 and self.norm:
                half = c.scale / 2
                model += f"\nnkk_post = {half!r} * k_pre**2 : 1 (summed)\nnkq_post = {half!r} * q_pre**2 : 1 (summed)"
            syn = c.synapses(c.X, c.F, model, c.pairs(e, j, c.d, c.m), f"dendrite{n}")
            syn.w[:] = c.per_group(W)
            key += [syn.summed_updaters[v] for v in (f"a{n}k_post", "nkk_post") if v in syn.summed_updaters]
            query += [syn.summed_updaters[v] for v in (f"a{n}q_post", "nkq_post") if v in syn.summed_updaters]
        return [key], [query]

    def write_pathways(self):
        return []

    def write_code(self):
        return None

    def responses(self):
        return "fk = " + self.response.format(s="k"), "fq = " + self.response.format(s="q")


class LearnedMaps:
    """Distilled Hedgehog maps without a window (see the module docstring)."""

    write_condition = ""

    def __init__(self, circuit):
        self.c = circuit
        a, arrays = circuit.features.attrs, circuit.features.arrays
        if a.get("window", 0):
            raise ValueError(f"node {circuit.features.name!r}: learned features with a window of exact slots "
                             "have no Brian2 equations; run them on the golden simulator")
        half = a["m"] // 2
        j = np.arange(a["m"])
        self.sign, self.column = np.where(j < half, 1.0, -1.0), j % half
        self.maps = {side: (np.asarray(arrays[f"{side}_weight"], np.float64),
                            np.asarray(arrays[f"{side}_bias"], np.float64)) for side in ("k", "q")}

    def feature_equations(self):
        eqs = ["half : 1 (constant)"]
        for s in "kq":
            eqs += [f"a{s} : 1", f"b{s} : 1 (constant)", f"s{s} : 1", f"z{s} : 1",
                    f"e{s} = exp(a{s} + b{s} - s{s}) : 1"]
        return eqs

    def soma_equations(self):
        return []

    def setup(self):
        c, m = self.c, self.c.m
        c.F.half = np.tile((np.arange(m) >= m // 2).astype(float), c.B * c.H)
        c.F.bk = c.per_group(self.sign * self.maps["k"][1][:, self.column])
        c.F.bq = c.per_query_head(self.sign * self.maps["q"][1][:, self.column])

    def bounds(self, side):
        W, b = self.maps[side]
        return np.sqrt((W * W).sum(axis=1)).max(axis=1), np.abs(b).max(axis=1)

    def dendrites(self):
        c, d, m = self.c, self.c.d, self.c.m
        from brian2 import NeuronGroup

        norm_eqs = ["kk : 1", "qq : 1"]
        for s in "kq":
            norm_eqs += [f"w{s} : 1 (constant)", f"b{s} : 1 (constant)", f"z{s}_lo : 1", f"z{s}_hi : 1",
                         f"s{s} = sqrt({s}{s}) * w{s} + b{s} : 1"]
        N = NeuronGroup(c.B * c.H, "\n".join(norm_eqs), name=c.name("normalisers"))
        c.build.add(N)
        (wk, bk), (wq, bq) = self.bounds("k"), self.bounds("q")
        N.wk, N.bk = c.per_group(wk[:, None]), c.per_group(bk[:, None])
        N.wq, N.bq = c.per_query_head(wq[:, None]), c.per_query_head(bq[:, None])
        e, j = dense(d, m)
        syn = c.synapses(c.X, c.F, "wk : 1 (constant)\nwq : 1 (constant)\nak_post = wk * k_pre : 1 (summed)\n"
                         "aq_post = wq * q_pre : 1 (summed)", c.pairs(e, j, d, m), "dendrites")
        syn.wk[:] = c.per_group(self.sign[j] * self.maps["k"][0][:, e, self.column[j]])
        syn.wq[:] = c.per_query_head(self.sign[j] * self.maps["q"][0][:, e, self.column[j]])
        norms = c.synapses(c.X, N, "kk_post = k_pre**2 : 1 (summed)\nqq_post = q_pre**2 : 1 (summed)",
                           c.pairs(np.arange(d), np.zeros(d, int), d, 1), "norms")
        sums = c.synapses(c.F, N, "\n".join(f"z{s}_{part}_post = {weight} * e{s}_pre : 1 (summed)"
                                            for s in "kq" for part, weight in (("lo", "(1 - half_pre)"),
                                                                               ("hi", "half_pre"))),
                          c.pairs(np.arange(m), np.zeros(m, int), m, 1), "softmax_sums")
        back = c.synapses(N, c.F, "\n".join([f"s{s}_post = s{s}_pre : 1 (summed)" for s in "kq"] + [
            f"z{s}_post = z{s}_lo_pre * (1 - half_post) + z{s}_hi_pre * half_post : 1 (summed)" for s in "kq"]),
            c.pairs(np.zeros(m, int), np.arange(m), 1, m), "softmax_gains")

        def stages(s):
            return [[syn.summed_updaters[f"a{s}_post"], norms.summed_updaters[f"{s}{s}_post"]],
                    [back.summed_updaters[f"s{s}_post"]],
                    [sums.summed_updaters[f"z{s}_lo_post"], sums.summed_updaters[f"z{s}_hi_post"]],
                    [back.summed_updaters[f"z{s}_post"]]]

        return stages("k"), stages("q")

    def write_pathways(self):
        return []

    def write_code(self):
        return None

    def responses(self):
        return "fk = ek / zk", "fq = eq / zq"


KINDS = {"exact": ExactSlots, "learned": LearnedMaps}


def feature_kind(circuit):
    """The feature-map class of the circuit's lowering."""
    return KINDS.get(circuit.features.attrs["lowering"], FixedMaps)(circuit)
