"""Learned circuits on Lava floating_pt agree with the golden simulator, with and without a window of
exact ring slots (fused and fine processes, state probes), and a Lava session continues a windowed
circuit token by token as one golden run over the whole sequence."""

import numpy as np
import pytest

import compiler
from compiler.distill.maps import FeatureMaps, LayerMaps
from compiler.models import LlamaConfig, random_bert, random_llama
from hardware_sim.golden import simulate
from hardware_sim.lava import run_lava
from runtime.session import Session

pytestmark = pytest.mark.lava


def random_maps(graph, features, window):
    rng = np.random.default_rng(0)
    layers = {}
    for att in graph.of_kind("attention"):
        maps = LayerMaps.initial(rng, att.n_heads, att.n_kv_heads, att.head_dim, features // 2, att.scale)
        maps.q_bias = rng.standard_normal(maps.q_bias.shape)
        maps.log_gain = rng.standard_normal(att.n_heads)
        layers[att.name] = maps
    return FeatureMaps(layers=layers, window=window)


def model(name):
    return random_bert(seed=1) if name == "bert" else random_llama(
        LlamaConfig(num_hidden_layers=1, num_key_value_heads=2), seed=1)


def relative(got, want, mask):
    return np.abs(got - want)[mask].max() / np.abs(want[mask]).max()


@pytest.mark.parametrize("name,window", [("bert", 0), ("llama", 0), ("llama", 2)])
def test_learned_circuit_on_lava_agrees_with_golden(name, window):
    graph = model(name)
    net = compiler.compile(graph, lowering="learned", feature_maps=random_maps(graph, 8, window), max_tokens=8)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, net.of_kind("input_encoder")[0].size))
    mask = np.ones((2, 6), bool)
    mask[1, 4:] = False
    mask[0, 2] = False  # a hole: a token that never enters the ring
    golden = simulate(net, x, mask, precision="float32", probes=("calcium", "soma", "weights"))
    lava = run_lava(net, x, mask, precision="float32", probes=("all",), timeout=120)
    for role, want in golden.outputs.items():
        assert relative(lava.outputs[role], want, mask) < 1e-5, role
    assert set(lava.probes) == set(golden.probes)
    assert any(key.endswith("soma_offset") for key in lava.probes) == (window > 0)
    for key, want in golden.probes.items():
        assert np.abs(lava.probes[key] - want).max() <= 1e-5 * max(np.abs(want).max(), 1), key


def test_windowed_circuit_in_fine_processes_equals_fused():
    graph = model("llama")
    net = compiler.compile(graph, lowering="learned", feature_maps=random_maps(graph, 4, 3), max_tokens=8)
    x = np.random.default_rng(3).standard_normal((1, 7, net.of_kind("input_encoder")[0].size))
    mask = np.ones((1, 7), bool)
    fused = run_lava(net, x, mask, precision="float32", timeout=120).outputs
    fine = run_lava(net, x, mask, precision="float32", granularity="fine", timeout=120).outputs
    for role, y in fused.items():
        assert np.array_equal(fine[role], y), role


def test_a_lava_session_continues_a_windowed_circuit(clean):
    graph = model("llama")
    net = compiler.compile(graph, lowering="learned", feature_maps=random_maps(graph, 8, 2), max_tokens=12,
                           precision="float32")
    ids = np.random.default_rng(4).integers(0, graph.encoder.vocab_size, (1, 9))
    with Session(net, backend="lava", budget=9, timeout=120) as s:
        got = np.concatenate([s.feed(ids[:, :4]).outputs["logits"]] +
                             [s.feed(ids[:, t : t + 1]).outputs["logits"] for t in range(4, 9)], axis=1)
    with Session(net) as s:
        want = s.feed(ids).outputs["logits"]
    assert relative(got, want, np.ones((1, 9), bool)) < 1e-5
