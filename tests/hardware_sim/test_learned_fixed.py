"""Learned circuits at the ``loihi2`` precision on the golden simulator: the quantize pass's records and
bounds, accuracy against float (measured bounds), streaming, and what is refused."""

import numpy as np
import pytest

import compiler
from compiler.distill.maps import FeatureMaps, LayerMaps
from compiler.models import LlamaConfig, random_bert, random_llama
from hardware_sim.fixed_point import quantize_weights
from hardware_sim.golden import simulate
from hardware_sim.golden.fixed_learned import map_columns
from runtime.session import Session


def random_maps(graph, features, window=0, seed=0):
    rng = np.random.default_rng(seed)
    layers = {}
    for att in graph.of_kind("attention"):
        maps = LayerMaps.initial(rng, att.n_heads, att.n_kv_heads, att.head_dim, features // 2, att.scale)
        maps.q_bias = rng.standard_normal(maps.q_bias.shape)
        maps.k_bias = rng.standard_normal(maps.k_bias.shape)
        maps.log_gain = rng.standard_normal(maps.log_gain.shape)
        layers[att.name] = maps
    return FeatureMaps(layers=layers, window=window)


MODELS = {"bert": lambda: random_bert(seed=3),
          "llama": lambda: random_llama(LlamaConfig(num_key_value_heads=2), seed=4)}


def tokens(width, B=2, T=9, seed=1):
    rng = np.random.default_rng(seed)
    mask = np.ones((B, T), bool)
    if B > 1:
        mask[1, 6:] = False
    return rng.standard_normal((B, T, width)), mask


def compiled(model, precision, max_tokens=16, features=8, window=0):
    graph = MODELS[model]()
    return graph, compiler.compile(graph, lowering="learned", feature_maps=random_maps(graph, features, window),
                                   max_tokens=max_tokens, precision=precision)


def test_quantize_records_map_columns_and_holds_their_values():
    graph, net = compiled("llama", "loihi2")
    maps = random_maps(graph, 8)
    for op in net.of_kind("features"):
        original = maps.layers[op.name.removesuffix(".features")]
        for side in ("q", "k"):
            held = getattr(op, f"{side}_weight")
            mant, e = quantize_weights(map_columns(getattr(original, f"{side}_weight")), axis=0)
            assert op.quant[f"{side}_w_exp"] == [int(v) for v in e]
            np.testing.assert_array_equal(map_columns(held), np.ldexp(mant.astype(float), e[:, None]))
            assert isinstance(op.quant[f"{side}_logit_exp"], int)
        astro = net.node(op.name.replace("features", "astrocyte"))
        # calcium c_j <= max_tokens and the soma z <= 2 max_tokens fit (factor-2 headroom)
        assert 2**23 * 2.0 ** astro.quant["calcium_exp"] >= 2 * 16
        assert 2**23 * 2.0 ** astro.quant["soma_exp"] >= 2 * 32


@pytest.mark.parametrize("model,window", [("bert", 0), ("llama", 0), ("llama", 3)])
def test_loihi2_is_close_to_float(model, window):
    """Measured (seeds here): the integer circuit differs from float on its own rounded weights by at
    most 1.4e-4 of the output's range (llama logits; 9e-5 with a window of 3), and the whole loihi2
    network (8-bit model weights included) from the float network by 1.4-1.9%, as exact circuits do
    (1.6-1.9%)."""
    graph, fixed = compiled(model, "loihi2", window=window)
    _, flt = compiled(model, "float64", window=window)
    x, mask = tokens(graph.encoder.width)
    mask[0, 2] = False  # a hole: a token never written
    got = simulate(fixed, x, mask, precision="loihi2")
    assert got.saturations == {}
    same_weights = simulate(fixed, x, mask, precision="float64").outputs
    reference = simulate(flt, x, mask, precision="float64").outputs
    for role, y in got.outputs.items():
        scale = np.abs(reference[role][mask]).max()
        assert np.abs(y - same_weights[role])[mask].max() < 3e-4 * scale, role
        assert np.abs(y - reference[role])[mask].max() < 0.03 * scale, role
        assert np.abs(y - reference[role])[mask].max() > 1e-4 * scale, role  # the precision does change it


@pytest.mark.parametrize("window", [0, 2])
def test_a_context_of_max_tokens_does_not_saturate(window):
    """Identical tokens make every feature's calcium grow by the same f_j each write: the longest
    context the schedule allows stays inside the quantize pass's bounds."""
    graph, net = compiled("llama", "loihi2", max_tokens=24, window=window)
    x = np.repeat(np.random.default_rng(0).standard_normal((1, 1, graph.encoder.width)), 24, axis=1)
    res = simulate(net, x, np.ones((1, 24), bool), precision="loihi2")
    assert res.saturations == {}


@pytest.mark.parametrize("window", [0, 2])
def test_a_session_fed_token_by_token_equals_one_run_bit_for_bit(window):
    graph, net = compiled("llama", "loihi2", window=window)
    x, _ = tokens(graph.encoder.width, B=1, T=7)
    ids = np.random.default_rng(3).integers(0, graph.encoder.vocab_size, (1, 7))
    with Session(net) as whole:
        want = whole.feed(ids).outputs["logits"]
    with Session(net) as s:
        got = np.concatenate([s.feed(ids[:, :3]).outputs["logits"]] +
                             [s.feed(ids[:, t : t + 1]).outputs["logits"] for t in range(3, 7)], axis=1)
    assert np.array_equal(got, want)
