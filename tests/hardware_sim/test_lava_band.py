"""An encoder's learned window (the W keys nearest each query) on Lava: the band kernels, fed by the
schedule's replayed key and value streams, agree with the golden simulator in float32 (outputs and state
probes) and equal it bit for bit at loihi2 (outputs, probes, saturation counts), in fused, block and
fine processes, and leave nothing behind."""


import numpy as np
import pytest

import compiler
from compiler.distill.maps import FeatureMaps, LayerMaps
from compiler.models import random_bert
from hardware_sim.golden import simulate
from hardware_sim.lava import run_lava
from hardware_sim.lava.schedule import make_plan

pytestmark = pytest.mark.lava


def random_maps(graph, features, window, seed=0):
    rng = np.random.default_rng(seed)
    layers = {}
    for att in graph.of_kind("attention"):
        maps = LayerMaps.initial(rng, att.n_heads, att.n_kv_heads, att.head_dim, features // 2, att.scale)
        maps.q_bias = rng.standard_normal(maps.q_bias.shape)
        maps.log_gain = rng.standard_normal(maps.log_gain.shape)
        layers[att.name] = maps
    return FeatureMaps(layers=layers, window=window)


def compiled(window, precision="float32"):
    graph = random_bert(seed=1)
    return compiler.compile(graph, lowering="learned", feature_maps=random_maps(graph, 8, window), max_tokens=8,
                            precision=precision)


def inputs(net, B=2, T=6):
    x = np.random.default_rng(2).standard_normal((B, T, net.of_kind("input_encoder")[0].size))
    mask = np.ones((B, T), bool)
    mask[B - 1, 4:] = False
    mask[0, 2] = False  # a hole: a token never written, inside other queries' bands
    return x, mask


def relative(got, want, mask):
    return np.abs(got - want)[mask].max() / np.abs(want[mask]).max()


@pytest.mark.parametrize("window", [3, 8])
def test_replayed_streams_arrive_look_ahead_steps_before_their_query(window):
    """Token j's key and value replay at ``W + max(0, T - a) + j``: before read ``j - a`` needs them."""
    net = compiled(window)
    plan = make_plan(net, 6, 1)
    feats, syn = plan.kernels["layer0.attn.features"], plan.kernels["layer0.attn.hebbian"]
    ahead = (window - 1) // 2
    D = max(0, 6 - ahead)
    assert plan.delays["layer0.attn.features"]["key_again"] == plan.delays["layer0.attn.features"]["key"] + D
    assert plan.delays["layer0.attn.hebbian"]["teacher_again"] == plan.delays["layer0.attn.hebbian"]["teacher"] + D
    for kernel in (feats, syn):
        clock = kernel.clock
        for j in range(6):
            step = clock.W + D + j
            assert kernel.replayed(step) == (0, j)
            assert step <= clock.W + clock.T + max(j - ahead, 0)  # arrives by the first read holding it
            assert step >= clock.W + j  # never before it is written


@pytest.mark.parametrize("window,granularity", [(3, "fused"), (4, "fine"), (17, "block")])
def test_an_encoders_window_on_lava_float32_agrees_with_golden(window, granularity, clean):
    """W = 3 (r = 1), 4 (one more key after the query than before), 17 (r >= T: every key).  Measured:
    2.2e-7 to 2.8e-7 of the output's range."""
    net = compiled(window)
    x, mask = inputs(net)
    golden = simulate(net, x, mask, precision="float32", probes=("calcium", "soma", "weights"))
    lava = run_lava(net, x, mask, precision="float32", probes=("all",), granularity=granularity, timeout=120)
    for role, want in golden.outputs.items():
        assert relative(lava.outputs[role], want, mask) < 1e-5, role
    assert set(lava.probes) == set(golden.probes)
    assert any(key.endswith("soma_offset") for key in lava.probes)
    for key, want in golden.probes.items():
        assert np.abs(lava.probes[key] - want).max() <= 1e-5 * max(np.abs(want).max(), 1), key


@pytest.mark.parametrize("window,forced,granularity", [(3, True, "fused"), (4, False, "block"), (17, False, "fine")])
def test_an_encoders_window_on_lava_fixed_pt_is_bit_exact_with_golden_loihi2(window, forced, granularity, clean,
                                                                             squeeze):
    """Outputs, state probes and saturation counts (``forced``: exponents cut below calibration so that
    the features, the calcium, the soma, the Hebbian weights and the read-out all saturate)."""
    net = compiled(window, "loihi2")
    if forced:
        net = squeeze(net)
    x, mask = inputs(net)
    gold = simulate(net, x, mask, precision="loihi2", probes=("all",))
    lava = run_lava(net, x, mask, precision="loihi2", probes=("all",), granularity=granularity, timeout=120)
    assert {k.split("/")[1] for k in lava.probes} == {"calcium", "soma_sum", "soma_offset", "gain", "weights"}
    if forced:
        assert {"layer0.attn.features", "layer0.attn.astrocyte", "layer0.attn.hebbian"} <= set(gold.saturations)
    for role, y in gold.outputs.items():
        assert np.array_equal(lava.outputs[role], y), role
    assert lava.saturations == gold.saturations
    for key, value in lava.probes.items():
        assert np.array_equal(value, gold.probes[key]), key
