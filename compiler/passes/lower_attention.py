"""Pass ``lower_attention``: every attention node becomes a neuron-astrocyte circuit.

Per attention node (lowering from ``options.lowering``, overridden by ``options.per_layer[name]``)::

    <name>.schedule   Schedule          causal / bidirectional phases, max_tokens
    <name>.features   FeaturePopulation m feature neurons per head (ports key, query: wired by lower_ops)
    <name>.hebbian    HebbianSynapses   H += v f(k)^T (port teacher: the value population)
    <name>.astrocyte  Astrocyte         c_j += f_j(k); z = sum_j c_j f_j(q); y = u / z

Feature counts: exact m = max_tokens (one slot per token); favor and relu m = ``options.features``
with a Gaussian projection per key/value head; elu1 m = head_dim; taylor2 m = 1 + d + d^2; learned
m = 2 x the columns of the distilled maps (``options.feature_maps``), plus ``window`` exact ring slots.
"""

from __future__ import annotations

import zlib

import numpy as np

from compiler.attention import AttentionGraph
from compiler.passes.base import CompileOptions, Pass
from compiler.passes.learned_maps import learned_attributes
from compiler.passes.lowering import Circuit, PartialLowering
from compiler.process import ProcessGraph
from compiler.process import nodes as pn


def gaussian_projection(rng: np.random.Generator, heads: int, m: int, d: int, orthogonal: bool) -> np.ndarray:
    """Random projections ``W`` (heads, m, d) with N(0, 1) rows.

    Orthogonal: rows come in blocks of d mutually orthogonal directions (QR of a Gaussian matrix),
    each row rescaled to the norm of an independent Gaussian vector so every row keeps the
    N(0, I) marginal; the estimator stays unbiased with lower variance.
    """
    if not orthogonal:
        return rng.standard_normal((heads, m, d))
    blocks = -(-m // d)
    gauss = rng.standard_normal((heads, blocks, d, d))
    q, r = np.linalg.qr(gauss)
    q = q * np.sign(np.diagonal(r, axis1=-2, axis2=-1))[..., None, :]
    rows = np.swapaxes(q, -1, -2).reshape(heads, blocks * d, d)[:, :m]
    norms = np.linalg.norm(rng.standard_normal((heads, m, d)), axis=-1)
    return rows * norms[..., None]


def feature_count(lowering: str, head_dim: int, options: CompileOptions) -> int:
    return {
        "exact": options.max_tokens,
        "favor": options.features,
        "relu": options.features,
        "elu1": head_dim,
        "taylor2": 1 + head_dim + head_dim * head_dim,
    }[lowering]


def lower_one(att, lowering: str, options: CompileOptions, process: ProcessGraph) -> Circuit:
    """Add the circuit of attention node ``att`` to ``process``; return its output and open ports."""
    name = att.name
    learned = learned_attributes(att, options) if lowering == "learned" else {}
    m = learned.pop("m") if learned else feature_count(lowering, att.head_dim, options)
    projection = None
    if lowering in ("favor", "relu"):
        rng = np.random.default_rng([options.seed, zlib.crc32(name.encode())])
        projection = gaussian_projection(rng, att.n_kv_heads, m, att.head_dim, options.orthogonal)
    schedule = process.add(pn.Schedule(
        f"{name}.schedule", mode="causal" if att.causal else "bidirectional", max_tokens=options.max_tokens,
        use_padding_mask=att.use_padding_mask, circuit=name))
    features = process.add(pn.FeaturePopulation(
        f"{name}.features", lowering=lowering, n_heads=att.n_heads, n_kv_heads=att.n_kv_heads,
        head_dim=att.head_dim, m=m, scale=float(att.scale), schedule=schedule, projection=projection,
        seed=options.seed, orthogonal=bool(options.orthogonal and projection is not None), circuit=name,
        **learned))
    hebbian = process.add(pn.HebbianSynapses(
        f"{name}.hebbian", n_heads=att.n_heads, n_kv_heads=att.n_kv_heads, m=m, v_head_dim=att.v_head_dim,
        gated=lowering == "exact", circuit=name), pre=features)
    astrocyte = process.add(pn.Astrocyte(
        f"{name}.astrocyte", n_heads=att.n_heads, m=m, v_head_dim=att.v_head_dim,
        offset="running_max" if lowering == "exact" or learned.get("window") else "none", circuit=name),
        synapses=hebbian, features=features)
    ports = {"k": (features, "key"), "q": (features, "query"), "v": (hebbian, "teacher")}
    return Circuit(output=astrocyte, open_ports=ports, lowering=lowering)


class LowerAttention(Pass):
    """Attention nodes -> schedule, feature population, Hebbian synapses and astrocyte."""

    name = "lower_attention"
    requires = ("validated", "attention_matched")
    ensures = ("attention_lowered",)

    def run(self, graph: AttentionGraph, options: CompileOptions) -> PartialLowering:
        state = PartialLowering(attention=graph, process=ProcessGraph(name=graph.name, encoder=graph.encoder))
        for att in graph.of_kind("attention"):
            lowering = options.per_layer.get(att.name, options.lowering)
            state.circuits[att.name] = lower_one(att, lowering, options, state.process)
        return state
