"""Golden ``learned`` circuits (with and without a window of exact ring slots) against the float
model whose attention rows are computed directly from the maps (compiler.distill.surrogate)."""

import json

import numpy as np
import pytest

import compiler
from compiler.distill.maps import FeatureMaps, LayerMaps, load_maps
from compiler.distill.surrogate import run_surrogate
from compiler.errors import InputError, PassError
from compiler.models.bert import random_bert
from compiler.models.llama import LlamaConfig, random_llama
from hardware_sim.golden import simulate


def random_maps(graph, features, window, seed=0):
    rng = np.random.default_rng(seed)
    layers = {}
    for att in graph.of_kind("attention"):
        maps = LayerMaps.initial(rng, att.n_heads, att.n_kv_heads, att.head_dim, features // 2, att.scale)
        maps.q_bias = rng.standard_normal(maps.q_bias.shape)
        maps.log_gain = rng.standard_normal(att.n_heads)
        layers[att.name] = maps
    return FeatureMaps(layers=layers, window=window)


def tokens(graph, B=3, T=11, seed=1):
    rng = np.random.default_rng(seed)
    width = graph.validate()[graph.input_node()][0]
    mask = np.ones((B, T), bool)
    mask[1, 7:] = False
    mask[2, 4:6] = False  # a hole: tokens that are never written
    return rng.standard_normal((B, T, width)), mask


MODELS = {"bert": lambda: random_bert(seed=3),
          "llama": lambda: random_llama(LlamaConfig(num_key_value_heads=2), seed=4)}


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("window", [0, 1, 4])
def test_golden_learned_matches_the_maps_float_model(model, window):
    graph = MODELS[model]()
    maps = random_maps(graph, features=6, window=window)
    net = compiler.compile(graph, lowering="learned", feature_maps=maps, max_tokens=16)
    x, mask = tokens(graph)
    got = simulate(net, x, mask).outputs["hidden"]
    want = run_surrogate(graph, x, mask, maps)["hidden"]
    exact = run_surrogate(graph, x, mask, None)["hidden"]
    scale = np.abs(want).max()
    assert np.abs(got - want)[mask].max() <= 1e-9 * scale
    assert np.abs(want - exact)[mask].max() > 1e-3 * scale  # the maps do change the model


@pytest.mark.parametrize("model", sorted(MODELS))
@pytest.mark.parametrize("window", [0, 3])
def test_golden_learned_in_float32_is_close_to_float64(model, window):
    graph = MODELS[model]()
    maps = random_maps(graph, features=6, window=window)
    net = compiler.compile(graph, lowering="learned", feature_maps=maps, max_tokens=16)
    x, mask = tokens(graph)
    got = simulate(net, x, mask, precision="float32").outputs["hidden"]
    want = simulate(net, x, mask).outputs["hidden"]
    assert got.dtype == np.float32
    assert np.abs(got - want)[mask].max() <= 1e-5 * np.abs(want).max()


@pytest.mark.parametrize("model,window", [("bert", 21), ("llama", 11)])
def test_a_window_as_long_as_the_context_is_exact_attention(model, window):
    graph = MODELS[model]()  # an encoder's window reaches 11 tokens either side of a query at W = 21
    maps = random_maps(graph, features=4, window=window)
    net = compiler.compile(graph, lowering="learned", feature_maps=maps, max_tokens=16)
    x, mask = tokens(graph)
    got = simulate(net, x, mask).outputs["hidden"]
    want = run_surrogate(graph, x, mask, None)["hidden"]
    np.testing.assert_allclose(got[mask], want[mask], rtol=1e-9, atol=1e-9)


def test_feature_memory_does_not_grow_with_the_context():
    graph = random_bert(seed=5)
    maps = random_maps(graph, features=8, window=2)
    net = compiler.compile(graph, lowering="learned", feature_maps=maps, max_tokens=64)
    for op in net.nodes():
        if op.kind == "features":
            assert op.m == 8 and op.window == 2


def test_maps_for_another_model_are_refused_by_name():
    graph = random_bert(seed=5)
    maps = random_maps(random_llama(seed=1), features=4, window=0)
    with pytest.raises(PassError, match="layer0.attn/k_weight has shape"):
        compiler.compile(graph, lowering="learned", feature_maps=maps)
    maps.layers = {"other.attn": maps.layers["layer0.attn"]}
    with pytest.raises(PassError, match="no entry for attention node 'layer0.attn'"):
        compiler.compile(graph, lowering="learned", feature_maps=maps)
    with pytest.raises(PassError, match="needs feature maps"):
        compiler.compile(graph, lowering="learned")
    with pytest.raises(PassError, match="fitted for a window of 0"):
        compiler.compile(graph, lowering="learned", feature_maps=random_maps(graph, 4, 0), window=3)


@pytest.mark.parametrize("alpha", [0.0, 0.4])
def test_scaling_an_encoders_feature_memory_scales_its_gain(alpha):
    """Calcium and Hebbian weights of layer 0 scaled by alpha: the slots' inhibition follows, so the
    circuit is the one whose feature gain is alpha g (alpha = 0: softmax over the band alone)."""
    graph = random_bert(seed=5)
    maps = random_maps(graph, features=6, window=3)
    net = compiler.compile(graph, lowering="learned", feature_maps=maps, max_tokens=16)
    hebb, astro = net.node("layer0.attn.hebbian"), net.node("layer0.attn.astrocyte")
    x, mask = tokens(graph)
    scaled = simulate(net, x, mask, interventions={
        "layer0.attn.astrocyte": {"calcium_scale": np.full((astro.n_heads, astro.m), alpha)},
        "layer0.attn.hebbian": {"weight_scale": np.full((hebb.n_kv_heads, hebb.v_head_dim, hebb.m), alpha)}})
    maps.layers["layer0.attn"].log_gain = maps.layers["layer0.attn"].log_gain + (np.log(alpha) if alpha else -800.0)
    want = simulate(compiler.compile(graph, lowering="learned", feature_maps=maps, max_tokens=16), x, mask)
    got, want = scaled.outputs["hidden"], want.outputs["hidden"]
    np.testing.assert_allclose(got[mask], want[mask], rtol=1e-9, atol=1e-9 * np.abs(want).max())


def test_maps_record_which_keys_their_window_held(tmp_path):
    graph = random_bert(seed=5)
    random_maps(graph, 4, 3).save(tmp_path / "near.npz")
    assert load_maps(tmp_path / "near.npz").window_keys == "nearest"
    with np.load(tmp_path / "near.npz") as data:  # a file from before the window held the nearest keys
        arrays = {key: data[key] for key in data.files}
    meta = json.loads(str(arrays["meta"]))
    del meta["window_keys"]
    arrays["meta"] = np.array(json.dumps(meta))
    np.savez(tmp_path / "last.npz", **arrays)
    old = load_maps(tmp_path / "last.npz")
    assert old.window_keys == "last"
    with pytest.raises(PassError, match=r"'layer0\.attn' were fitted for a window of the last 3 tokens of the "
                       r"text; an encoder's window now holds the 3 keys nearest each query") as err:
        compiler.compile(graph, lowering="learned", feature_maps=old)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="fitted for a window of the last 3 tokens"):
        x, mask = tokens(graph)
        run_surrogate(graph, x, mask, old)
    llama = MODELS["llama"]()  # causal: the last W keys are the nearest ones, so old files still serve
    causal = random_maps(llama, 4, 3)
    causal.window_keys = "last"
    x, mask = tokens(llama)
    net = compiler.compile(llama, lowering="learned", feature_maps=causal, max_tokens=16)
    got = simulate(net, x, mask).outputs["hidden"]
    np.testing.assert_allclose(got[mask], run_surrogate(llama, x, mask, causal)["hidden"][mask], rtol=1e-9,
                               atol=1e-9)


def state_bytes(session) -> dict[str, int]:
    return {f"{node}/{var}": a.nbytes for node, state in session.stream.state.nodes.items() for var, a in state.items()}


@pytest.mark.parametrize("window", [0, 3])
def test_a_session_continues_a_learned_circuit_at_constant_memory(window):
    """Fed in pieces (a prompt, single tokens, a longer piece) a session equals one run over the whole
    sequence, and the state it carries (ring keys and values, calcium, Hebbian weights) has the same
    size after 3 tokens as after 30."""
    from runtime.session import Session

    graph = random_llama(LlamaConfig(num_key_value_heads=2), seed=4)
    net = compiler.compile(graph, lowering="learned", feature_maps=random_maps(graph, 6, window), max_tokens=32)
    ids = np.random.default_rng(3).integers(0, graph.encoder.vocab_size, (2, 30))
    with Session(net) as s:
        want = s.feed(ids).outputs["logits"]
    with Session(net) as s:
        parts = [s.feed(ids[:, :3]).outputs["logits"]]
        early = state_bytes(s)
        parts += [s.feed(ids[:, t : t + 1]).outputs["logits"] for t in range(3, 8)]
        parts.append(s.feed(ids[:, 8:]).outputs["logits"])
        assert state_bytes(s) == early
    if window:
        assert {"layer0.attn.features/ring_keys", "layer0.attn.hebbian/ring_values"} <= set(early)
    np.testing.assert_allclose(np.concatenate(parts, axis=1), want, rtol=0, atol=1e-12 * np.abs(want).max())


def test_chip_counts_a_windowed_circuit_as_2m_plus_window_slots_per_head():
    """Feature neurons, astrocyte processes and Hebbian values: 2m + W per head, whatever the context;
    the astrocyte and synapses cost what an exact circuit with 2m + W slots costs."""
    from hardware_sim.chip import resources
    from hardware_sim.chip.counts import counted, node_cost
    from hardware_sim.chip.spec import load_chip

    graph = random_llama(LlamaConfig(num_key_value_heads=2), seed=4)
    att = graph.of_kind("attention")[0]
    H, dv, layers = att.n_heads, att.v_head_dim, len(graph.of_kind("attention"))
    maps = random_maps(graph, features=8, window=4)
    short, long = (compiler.compile(graph, lowering="learned", feature_maps=maps, max_tokens=n) for n in (16, 64))
    exact = compiler.compile(graph, lowering="exact", max_tokens=12)
    kinds = resources(short)["by_kind"]
    assert kinds == resources(long)["by_kind"]
    assert kinds["features"]["neurons"] == layers * H * (8 + 4)
    assert kinds["astrocyte"]["neurons"] == layers * H * (8 + 4 + 1)  # processes and one soma per head
    chip = load_chip("loihi2")
    for kind in ("astrocyte", "hebbian_synapses"):
        op = short.of_kind(kind)[0]
        mine, theirs = node_cost(counted(short, op.name), chip), node_cost(exact.node(op.name), chip)
        assert (mine.neurons, mine.synapses, mine.synapse_bytes) == (theirs.neurons, theirs.synapses,
                                                                      theirs.synapse_bytes), kind
    assert node_cost(counted(short, f"{att.name}.hebbian"), chip).synapses == H * (8 + 4) * dv + H * dv
