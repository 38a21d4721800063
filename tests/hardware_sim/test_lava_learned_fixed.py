"""Learned circuits on Lava fixed_pt equal the golden simulator at loihi2 bit for bit: outputs,
saturation counts (natural and forced in every integer step of the circuit) and state probes."""

import copy

import numpy as np
import pytest

import compiler
from compiler.distill.maps import FeatureMaps, LayerMaps
from compiler.models import LlamaConfig, random_bert, random_llama
from hardware_sim.golden import simulate
from hardware_sim.lava import run_lava

pytestmark = pytest.mark.lava


def random_maps(graph, features, seed=0):
    rng = np.random.default_rng(seed)
    layers = {}
    for att in graph.of_kind("attention"):
        maps = LayerMaps.initial(rng, att.n_heads, att.n_kv_heads, att.head_dim, features // 2, att.scale)
        maps.q_bias = rng.standard_normal(maps.q_bias.shape)
        layers[att.name] = maps
    return FeatureMaps(layers=layers)


MODELS = {"bert": lambda: random_bert(seed=1),
          "llama": lambda: random_llama(LlamaConfig(num_hidden_layers=1, num_key_value_heads=2), seed=1)}


def squeeze(net):
    """Exponents below calibration in the first circuit: logits, features, calcium, soma, weights and
    read-out all saturate."""
    net = copy.deepcopy(net)
    cuts = {"features": {"q_logit_exp": 3, "k_logit_exp": 3, "exp": 1},
            "astrocyte": {"calcium_exp": 8, "soma_exp": 8, "recip_exp": 3, "exp": 2},
            "hebbian_synapses": {"w_exp": 8, "exp": 8}}
    for op in net.nodes():
        if op.name.startswith("layer0.attn"):
            for key, cut in cuts.get(op.kind, {}).items():
                op.quant[key] -= cut
    return net


def assert_bit_exact(lava, gold):
    for role, y in gold.outputs.items():
        assert np.array_equal(lava.outputs[role], y), role
    assert lava.saturations == gold.saturations
    for key, value in lava.probes.items():
        assert np.array_equal(value, gold.probes[key]), key


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("forced", [False, True])
def test_learned_fixed_pt_is_bit_exact_with_golden_loihi2(model, forced):
    graph = MODELS[model]()
    net = compiler.compile(graph, lowering="learned", feature_maps=random_maps(graph, 8), max_tokens=8,
                           precision="loihi2")
    if forced:
        net = squeeze(net)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 5, net.of_kind("input_encoder")[0].size))
    mask = np.ones((2, 5), bool)
    mask[1, 3:] = False
    gold = simulate(net, x, mask, precision="loihi2", probes=("all",))
    lava = run_lava(net, x, mask, precision="loihi2", probes=("all",), timeout=120)
    assert {k.split("/")[1] for k in lava.probes} == {"calcium", "soma_sum", "gain", "weights"}
    if forced:
        kinds = {net.node(n).kind for n in gold.saturations}
        assert {"features", "astrocyte", "hebbian_synapses"} <= kinds
    assert_bit_exact(lava, gold)
