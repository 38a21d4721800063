"""The Brian2 backend computes what the golden simulator computes: float64 agreement on BERT,
LLaMA (grouped-query, RoPE) and GPT-2 graphs with padding, for every lowering; loihi2 networks with
their chip weights; bad inputs refused with one line."""

import numpy as np
import pytest

import compiler
from compiler.errors import InputError, SimulationError
from compiler.models import random_bert, random_gpt2, random_llama
from compiler.models.llama import LlamaConfig
from hardware_sim.brian2.backend import chip_weights, simulate_brian2
from hardware_sim.golden import simulate

MODELS = {
    "bert": lambda: random_bert(seed=1),
    "llama": lambda: random_llama(LlamaConfig(num_attention_heads=4, num_key_value_heads=2), seed=1),
    "gpt2": lambda: random_gpt2(seed=1),
}


def inputs(width, B=2, T=7, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, width))
    mask = np.ones((B, T), dtype=bool)
    mask[1, 4:] = False
    return x, mask


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.mark.parametrize("lowering", ["exact", "favor"])
@pytest.mark.parametrize("model", sorted(MODELS))
def test_brian2_agrees_with_golden_float64(model, lowering):
    g = MODELS[model]()
    net = compiler.compile(g, lowering=lowering, features=24, max_tokens=8)
    x, mask = inputs(g.encoder.width)
    kept = list(net.meta["layer_outputs"].values())
    want = simulate(net, x, mask, keep=kept)
    got, values = simulate_brian2(net, x, mask, keep=kept)
    assert got.keys() == want.outputs.keys()
    for role in got:
        assert got[role].shape == want.outputs[role].shape
        assert rel(got[role], want.outputs[role]) <= 1e-9, role
    for node in kept:
        assert rel(values[node], want.values[node]) <= 1e-9, node


def test_linear_and_taylor_circuits_agree_with_golden():
    g = random_llama(LlamaConfig(num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2), seed=3)
    layers = {"layer0.attn": "relu", "layer1.attn": "elu1", "layer2.attn": "taylor2"}
    net = compiler.compile(g, per_layer=layers, features=16, max_tokens=8)
    x, mask = inputs(g.encoder.width, seed=1)
    want = simulate(net, x, mask).outputs
    got, _ = simulate_brian2(net, x, mask)
    for role in want:
        assert rel(got[role], want[role]) <= 1e-9, role


def learned_net(graph, window):
    from compiler.distill.maps import FeatureMaps, LayerMaps

    rng = np.random.default_rng(0)
    layers = {att.name: LayerMaps.initial(rng, att.n_heads, att.n_kv_heads, att.head_dim, 4, att.scale)
              for att in graph.of_kind("attention")}
    return compiler.compile(graph, lowering="learned", feature_maps=FeatureMaps(layers=layers, window=window),
                            max_tokens=8)


def test_learned_circuits_agree_with_golden():
    """Distilled softmax feature maps: each half's softmax is a normaliser neuron's divisive gain."""
    g = MODELS["llama"]()
    net = learned_net(g, window=0)
    x, mask = inputs(g.encoder.width, seed=2)
    want = simulate(net, x, mask).outputs
    got, _ = simulate_brian2(net, x, mask)
    for role in want:
        assert rel(got[role], want[role]) <= 1e-9, role
    with pytest.raises(SimulationError, match="learned features with a window of exact slots have no Brian2"):
        simulate_brian2(learned_net(g, window=2), x, mask)


def test_padding_is_never_written():
    """Changing a masked token's vector leaves every unmasked output unchanged."""
    g = MODELS["bert"]()
    net = compiler.compile(g, max_tokens=8)
    x, mask = inputs(g.encoder.width)
    y = x.copy()
    y[1, 5] += 3.0
    a, _ = simulate_brian2(net, x, mask)
    b, _ = simulate_brian2(net, y, mask)
    assert np.array_equal(a["hidden"][mask], b["hidden"][mask])


def test_large_batches_run_in_chunks(monkeypatch):
    """With a budget of one sequence per network the batch runs sequence by sequence, same outputs."""
    from hardware_sim.brian2.model import network

    g = MODELS["gpt2"]()
    net = compiler.compile(g, max_tokens=8)
    x, mask = inputs(g.encoder.width, B=3)
    monkeypatch.setattr(network, "SYNAPSE_BUDGET", 1)
    got, _ = simulate_brian2(net, x, mask)
    want = simulate(net, x, mask).outputs
    for role in want:
        assert got[role].shape == want[role].shape and rel(got[role], want[role]) <= 1e-9, role


@pytest.fixture(scope="module")
def loihi2_net():
    g = random_bert(seed=4)
    return g, compiler.compile(g, precision="loihi2", max_tokens=8)


def test_loihi2_network_runs_with_its_chip_weights(loihi2_net):
    """Brian2 on a loihi2 network = float64 golden on the same network with the dequantized weights."""
    g, net = loihi2_net
    x, mask = inputs(g.encoder.width)
    got, _ = simulate_brian2(net, x, mask, precision="loihi2")
    dequantized = compiler.compile(g, max_tokens=8)
    float_weights = simulate(dequantized, x, mask).outputs["hidden"]
    for op in dequantized.of_kind("synapses"):
        chip = net.node(op.name)
        op.weight = chip_weights(chip, chip.to_record()[1]).get("weight")
    want = simulate(dequantized, x, mask).outputs["hidden"]
    assert rel(got["hidden"], want) <= 1e-9
    assert rel(got["hidden"], float_weights) > 1e-4


def test_loihi2_float_arithmetic_against_integer_golden(loihi2_net):
    """Measured: chip weights in float arithmetic vs golden's 24-bit integer arithmetic, rel L2 2.4e-6
    over the unmasked tokens (the weights' own quantization error, vs float weights, is 1.4e-2)."""
    g, net = loihi2_net
    x, mask = inputs(g.encoder.width)
    got, _ = simulate_brian2(net, x, mask, precision="loihi2")
    want = simulate(net, x, mask, precision="loihi2").outputs["hidden"]
    m = mask[..., None]
    assert rel(got["hidden"] * m, want * m) <= 1e-5


def test_bad_inputs_are_one_line_errors():
    g = MODELS["bert"]()
    net = compiler.compile(g, max_tokens=4)
    x, mask = inputs(g.encoder.width, T=4)
    bad = x.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        simulate_brian2(net, bad, mask)
    with pytest.raises(InputError, match=r"shape \(batch, tokens, 32\)"):
        simulate_brian2(net, x[..., :5], mask)
    with pytest.raises(InputError, match="probe"):
        simulate_brian2(net, x, mask, probes=("calcium",))
    long, long_mask = inputs(g.encoder.width, T=6)
    with pytest.raises(SimulationError, match="has 4 slots but the input has 6 tokens") as err:
        simulate_brian2(net, long, long_mask)
    assert "\n" not in str(err.value)


def test_causal_circuit_feeding_bidirectional_is_refused():
    g = MODELS["bert"]()
    net = compiler.compile(g, max_tokens=8)
    net.node("layer0.attn.schedule").mode = "causal"
    x, mask = inputs(g.encoder.width)
    with pytest.raises(SimulationError, match="causal circuit 'layer0.attn.astrocyte' feeds the bidirectional"):
        simulate_brian2(net, x, mask)
