"""Learned circuits on Lava floating_pt agree with the golden simulator; a window is refused there."""

import numpy as np
import pytest

import compiler
from compiler.distill.maps import FeatureMaps, LayerMaps
from compiler.errors import TripartiteError
from compiler.models import LlamaConfig, random_bert, random_llama
from hardware_sim.golden import simulate
from hardware_sim.lava import run_lava

pytestmark = pytest.mark.lava


def random_maps(graph, features, window):
    rng = np.random.default_rng(0)
    layers = {att.name: LayerMaps.initial(rng, att.n_heads, att.n_kv_heads, att.head_dim, features // 2, att.scale)
              for att in graph.of_kind("attention")}
    return FeatureMaps(layers=layers, window=window)


@pytest.mark.parametrize("model", ["bert", "llama"])
def test_learned_circuit_on_lava_agrees_with_golden(model):
    graph = random_bert(seed=1) if model == "bert" else random_llama(LlamaConfig(num_hidden_layers=1), seed=1)
    net = compiler.compile(graph, lowering="learned", feature_maps=random_maps(graph, 8, 0), max_tokens=8)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, net.of_kind("input_encoder")[0].size))
    mask = np.ones((2, 5), bool)
    mask[1, 3:] = False
    golden = simulate(net, x, mask, precision="float32").outputs
    lava = run_lava(net, x, mask, precision="float32", timeout=120).outputs
    for role, want in golden.items():
        err = np.abs(lava[role] - want)[mask].max() / np.abs(want[mask]).max()
        assert err < 1e-5, role


def test_a_window_is_refused_on_lava_with_one_line():
    graph = random_bert(seed=1)
    net = compiler.compile(graph, lowering="learned", feature_maps=random_maps(graph, 8, 2), max_tokens=8)
    x = np.zeros((1, 3, net.of_kind("input_encoder")[0].size))
    with pytest.raises(TripartiteError, match="window run on the golden simulator only"):
        run_lava(net, x, np.ones((1, 3), bool), precision="float32", timeout=60)
