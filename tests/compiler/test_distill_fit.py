"""Layer-by-layer distillation on a tiny decoder: deterministic for a seed, lowers every layer's row
KL, and the fitted maps bring the learned model closer to float than the starting maps."""

import numpy as np

from compiler.distill.fit import DistillOptions, distill_graph
from compiler.distill.maps import FeatureMaps, LayerMaps
from compiler.distill.surrogate import run_surrogate
from compiler.models.llama import LlamaConfig, random_llama


def data():
    graph = random_llama(LlamaConfig(num_hidden_layers=2), seed=3)
    rng = np.random.default_rng(1)
    ids = rng.integers(1, 100, size=(6, 16))
    mask = np.ones(ids.shape, bool)
    mask[2, 11:] = False
    return graph, graph.encoder.encode(ids), mask


def test_distillation_is_deterministic_and_fits():
    graph, x, mask = data()
    options = DistillOptions(features=8, epochs=15, seed=4, rows=8, chunk=4)
    a = distill_graph(graph, x, mask, options)
    b = distill_graph(graph, x, mask, options)
    c = distill_graph(graph, x, mask, DistillOptions(features=8, epochs=15, seed=5, rows=8, chunk=4))
    for name, layer in a.layers.items():
        for key, value in layer.as_dict().items():
            np.testing.assert_array_equal(value, getattr(b.layers[name], key))
        assert not np.array_equal(layer.q_weight, c.layers[name].q_weight)
        assert a.report[name]["kl_after"] < 0.5 * a.report[name]["kl_before"]
    rng = np.random.default_rng(4)
    start = FeatureMaps(layers={att.name: LayerMaps.initial(rng, att.n_heads, att.n_kv_heads, att.head_dim, 4,
                                                            att.scale) for att in graph.of_kind("attention")})
    want = run_surrogate(graph, x, mask, None)["logits"]
    err = {name: np.abs(run_surrogate(graph, x, mask, maps)["logits"] - want)[mask].mean()
           for name, maps in (("start", start), ("fitted", a))}
    assert err["fitted"] < 0.5 * err["start"]


def test_principal_start_spans_the_heads_dominant_directions_and_fits():
    from compiler.distill.surrogate import split

    graph, x, mask = data()
    att = graph.of_kind("attention")[0]
    inputs = graph.inputs_of(att.name)
    values = run_surrogate(graph, x, mask, None, keep=list(inputs.values()))
    q, k = split(att, {p: values[inputs[p]] for p in ("q", "k", "v")})[:2]
    m = 3
    start = LayerMaps.principal(np.random.default_rng(0), q, k, mask, m, att.scale)
    d = att.head_dim
    for h in range(att.n_heads):
        w = start.q_weight[h] / np.sqrt(att.scale * d)
        np.testing.assert_allclose(w.T @ w, np.eye(m), atol=1e-9)  # orthonormal columns at the random norm
        g = h // (att.n_heads // att.n_kv_heads)
        qh, kg = q[:, h][mask], k[:, g][mask]
        rows = np.concatenate([qh / np.linalg.norm(qh), kg / np.linalg.norm(kg)])
        captured = np.linalg.norm(rows @ w) ** 2  # energy of the head's queries and keys in the start's span
        best = np.sort(np.linalg.eigvalsh(rows.T @ rows))[::-1][:m].sum()
        np.testing.assert_allclose(captured, best, rtol=1e-9)
    maps = distill_graph(graph, x, mask, DistillOptions(features=2 * m, epochs=15, init="principal", rows=8, chunk=4))
    for report in maps.report.values():
        assert report["kl_after"] < 0.5 * report["kl_before"]
        assert report["kl_trace"][-1] == round(report["kl_after"], 5)
