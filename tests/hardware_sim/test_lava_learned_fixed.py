"""Learned circuits (with and without a window of ring slots) on Lava fixed_pt equal the golden
simulator at loihi2 bit for bit: outputs, saturation counts (natural and forced in every integer step
of the circuit) and state probes; a Lava session continues a windowed circuit as one golden run."""

import copy

import numpy as np
import pytest

import compiler
from compiler.distill.maps import FeatureMaps, LayerMaps
from compiler.models import LlamaConfig, random_bert, random_llama
from hardware_sim.golden import simulate
from hardware_sim.lava import run_lava
from runtime.session import Session

pytestmark = pytest.mark.lava


def random_maps(graph, features, window=0, seed=0):
    rng = np.random.default_rng(seed)
    layers = {}
    for att in graph.of_kind("attention"):
        maps = LayerMaps.initial(rng, att.n_heads, att.n_kv_heads, att.head_dim, features // 2, att.scale)
        maps.q_bias = rng.standard_normal(maps.q_bias.shape)
        maps.log_gain = rng.standard_normal(maps.log_gain.shape)
        layers[att.name] = maps
    return FeatureMaps(layers=layers, window=window)


MODELS = {"bert": lambda: random_bert(seed=1),
          "llama": lambda: random_llama(LlamaConfig(num_hidden_layers=1, num_key_value_heads=2), seed=1)}


def squeeze(net):
    """Exponents below calibration in the first circuit: logits, features, calcium, soma, weights and
    read-out all saturate."""
    net = copy.deepcopy(net)
    cuts = {"features": {"q_logit_exp": 3, "k_logit_exp": 3, "exp": 1, "score_exp": 4},
            "astrocyte": {"calcium_exp": 8, "soma_exp": 8, "exp": 2},
            "hebbian_synapses": {"w_exp": 8, "exp": 8}}
    for op in net.nodes():
        if op.name.startswith("layer0.attn"):
            for key, cut in cuts.get(op.kind, {}).items():
                if key in op.quant:
                    op.quant[key] -= cut
    return net


def assert_bit_exact(lava, gold):
    for role, y in gold.outputs.items():
        assert np.array_equal(lava.outputs[role], y), role
    assert lava.saturations == gold.saturations
    for key, value in lava.probes.items():
        assert np.array_equal(value, gold.probes[key]), key


@pytest.mark.parametrize("model,window", [("bert", 0), ("llama", 0), ("llama", 2)])
@pytest.mark.parametrize("forced", [False, True])
def test_learned_fixed_pt_is_bit_exact_with_golden_loihi2(model, forced, window):
    graph = MODELS[model]()
    net = compiler.compile(graph, lowering="learned", feature_maps=random_maps(graph, 8, window), max_tokens=8,
                           precision="loihi2")
    if forced:
        net = squeeze(net)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 6, net.of_kind("input_encoder")[0].size))
    mask = np.ones((2, 6), bool)
    mask[1, 4:] = False
    mask[0, 2] = False  # a hole: a token never written (nor entering the ring)
    gold = simulate(net, x, mask, precision="loihi2", probes=("all",))
    lava = run_lava(net, x, mask, precision="loihi2", probes=("all",), timeout=120)
    records = {"calcium", "soma_sum", "gain", "weights"} | ({"soma_offset"} if window else set())
    assert {k.split("/")[1] for k in lava.probes} == records
    if forced:
        kinds = {net.node(n).kind for n in gold.saturations}
        assert {"features", "astrocyte", "hebbian_synapses"} <= kinds
    assert_bit_exact(lava, gold)


def test_a_lava_session_continues_a_windowed_circuit_bit_for_bit(clean):
    graph = MODELS["llama"]()
    net = compiler.compile(graph, lowering="learned", feature_maps=random_maps(graph, 8, 2), max_tokens=12,
                           precision="loihi2")
    ids = np.random.default_rng(4).integers(0, graph.encoder.vocab_size, (1, 9))
    with Session(net, backend="lava", budget=9, timeout=120) as s:
        got = np.concatenate([s.feed(ids[:, :4]).outputs["logits"]] +
                             [s.feed(ids[:, t : t + 1]).outputs["logits"] for t in range(4, 9)], axis=1)
    with Session(net) as s:
        want = s.feed(ids).outputs["logits"]
    assert np.array_equal(got, want)
