"""Property tests over generated transformers: every random attention graph (family, width, heads,
key/value heads, head size, causal or not, LayerNorm or RMSNorm, activation, padding pattern)
compiles ``exact`` and the golden simulator equals the float reference in float64; saving and
loading attention graphs, process graphs and netlists is an identity (same graph, same bytes)."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compiler.api import compile as compile_model
from compiler.attention import AttentionGraph
from compiler.exporters.netlist import read_netlist, write_netlist
from compiler.models import BertConfig, LlamaConfig, random_bert, random_llama
from compiler.models.gpt2 import Gpt2Config, random_gpt2
from compiler.process import ProcessGraph
from hardware_sim.golden import simulate
from runtime.reference import run_reference

SETTINGS = settings(max_examples=20, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
ACTS = ("gelu_erf", "gelu_tanh", "silu", "relu")


@st.composite
def models(draw):
    """A random transformer: (graph, token ids (B, T), mask (B, T))."""
    family = draw(st.sampled_from(["bert", "llama", "gpt2"]))
    heads = draw(st.sampled_from([1, 2, 4]))
    head_dim = draw(st.sampled_from([2, 4, 8]))
    act = draw(st.sampled_from(ACTS))
    layers = draw(st.integers(1, 2))
    seed = draw(st.integers(0, 2**16))
    if family == "bert":
        cfg = BertConfig(hidden_size=heads * head_dim, num_attention_heads=heads, num_hidden_layers=layers,
                         intermediate_size=draw(st.sampled_from([8, 24])), hidden_act=act)
        graph = random_bert(cfg, seed=seed)
    elif family == "llama":
        kv = draw(st.sampled_from([k for k in (1, 2, 4) if heads % k == 0]))
        width = draw(st.sampled_from([8, 16]))
        cfg = LlamaConfig(hidden_size=width, num_attention_heads=heads, num_key_value_heads=kv, head_dim=head_dim,
                          num_hidden_layers=layers, intermediate_size=draw(st.sampled_from([8, 24])), hidden_act=act,
                          attention_bias=draw(st.booleans()))
        graph = random_llama(cfg, seed=seed)
    else:
        cfg = Gpt2Config(n_embd=heads * head_dim, n_head=heads, n_layer=layers, activation_function=act)
        graph = random_gpt2(cfg, seed=seed)
    B, T = draw(st.integers(1, 3)), draw(st.integers(1, 7))
    ids = np.array(draw(st.lists(st.lists(st.integers(1, 99), min_size=T, max_size=T), min_size=B, max_size=B)))
    pattern = draw(st.sampled_from(["none", "right", "random"]))
    mask = np.ones((B, T), bool)
    if pattern == "right":
        for b in range(B):
            mask[b, draw(st.integers(1, T)):] = False
    elif pattern == "random":
        mask = np.array(draw(st.lists(st.lists(st.booleans(), min_size=T, max_size=T), min_size=B, max_size=B)))
        mask[:, draw(st.integers(0, T - 1))] = True  # at least one real token per sequence
    return graph, ids, mask


@SETTINGS
@given(models())
def test_random_graphs_compile_exact_and_match_the_float_reference(case):
    graph, ids, mask = case
    net = compile_model(graph, lowering="exact", precision="float64", max_tokens=8)
    x = graph.encoder.encode(ids)
    got = simulate(net, x, mask, precision="float64").outputs
    want = run_reference(graph, x, mask, "float64").outputs
    assert set(got) & set(want)
    for role in set(got) & set(want):
        a, b = np.asarray(got[role])[mask], np.asarray(want[role])[mask]
        assert np.abs(a - b).max() <= 1e-9 * max(1.0, np.abs(b).max()), role


@SETTINGS
@given(models(), st.sampled_from(["float64", "loihi2"]))
def test_save_load_is_an_identity(tmp_path_factory, case, precision):
    graph, _, _ = case
    root = tmp_path_factory.mktemp("roundtrip")
    graph.save(root / "g.tpg")
    back = AttentionGraph.load(root / "g.tpg")
    assert back.same_as(graph)
    back.save(root / "g2.tpg")
    assert (root / "g2.tpg").read_bytes() == (root / "g.tpg").read_bytes()
    net = compile_model(graph, lowering="exact", precision=precision, max_tokens=8)
    net.save(root / "n.tpn")
    loaded = ProcessGraph.load(root / "n.tpn")
    assert loaded.same_as(net)
    loaded.save(root / "n2.tpn")
    assert (root / "n2.tpn").read_bytes() == (root / "n.tpn").read_bytes()
    write_netlist(net, root / "n.h5")
    assert read_netlist(root / "n.h5").same_as(net)
