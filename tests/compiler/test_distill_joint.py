"""Joint tuning (torch): its forward pass is the numpy learned model's, and it lowers the output loss."""

import numpy as np
import pytest

from compiler.distill.fit import DistillOptions, distill_graph
from compiler.distill.surrogate import run_surrogate
from compiler.models.bert import random_bert
from compiler.models.llama import LlamaConfig, random_llama


@pytest.mark.crosscheck
@pytest.mark.parametrize("model,window", [("bert", 0), ("bert", 3), ("llama", 3)])
def test_joint_forward_matches_numpy_and_tuning_helps(model, window):
    torch = pytest.importorskip("torch")
    from compiler.distill.joint import Context, forward, joint_tune

    graph = random_bert(seed=2) if model == "bert" else random_llama(LlamaConfig(num_hidden_layers=2), seed=2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 10, graph.validate()[graph.input_node()][0]))
    mask = np.ones((4, 10), bool)
    mask[1, 6:] = False
    maps = distill_graph(graph, x, mask, DistillOptions(features=4, epochs=5, window=window))
    params = {n: {k: torch.as_tensor(v) for k, v in layer.as_dict().items()} for n, layer in maps.layers.items()}
    got = forward(torch, graph, x, Context(torch, mask, params, window))
    want = run_surrogate(graph, x, mask, maps)
    for role, value in got.items():
        np.testing.assert_allclose(value.detach().numpy()[mask], want[role][mask], rtol=1e-9, atol=1e-9)
    tuned = joint_tune(graph, x, mask, maps, steps=15, lr=1e-2)
    report = tuned.report["joint"]
    assert report["loss_last"] < report["loss_first"]


@pytest.mark.crosscheck
def test_stochastic_float32_tuning_is_deterministic_and_helps():
    pytest.importorskip("torch")
    from compiler.distill.joint import joint_tune

    graph = random_bert(seed=3)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((8, 12, graph.validate()[graph.input_node()][0]))
    mask = np.ones((8, 12), bool)
    mask[3, 7:] = False
    maps = distill_graph(graph, x, mask, DistillOptions(features=4, epochs=5))
    runs = [joint_tune(graph, x, mask, maps, steps=12, lr=1e-2, chunk=2, dtype=np.float32, stochastic=True, seed=s)
            for s in (0, 0, 1)]
    for name, layer in runs[0].layers.items():
        assert layer.q_weight.dtype == np.float32
        np.testing.assert_array_equal(layer.q_weight, runs[1].layers[name].q_weight)
        assert not np.array_equal(layer.q_weight, runs[2].layers[name].q_weight)
    want = run_surrogate(graph, x, mask, None)["hidden"][mask]
    err = [np.abs(run_surrogate(graph, x, mask, m)["hidden"][mask] - want).mean() for m in (maps, runs[0])]
    assert err[1] < err[0]
    assert runs[0].report["joint"]["dtype"] == "float32" and len(runs[0].report["joint"]["history"]) == 12
