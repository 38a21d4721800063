"""Lava floating_pt runs agree with independent numpy equations, with the golden simulator (float32,
1e-5 relative) and with each other (fine == fused, bit for bit)."""

import math

import numpy as np
import pytest

import compiler
from compiler.frontends.source import minilm_dir
from compiler.models import LlamaConfig, random_bert, random_gpt2, random_llama
from compiler.process import ProcessGraph
from compiler.process import nodes as pn
from hardware_sim.golden import simulate
from hardware_sim.lava import run_lava

pytestmark = pytest.mark.lava
TOL = 1e-5

# ---- small hand-built process graphs and their equations, written out with numpy ----------------


def dense_net(width=6, hidden=5, seed=0):
    """input -> synapses (W, b) -> gelu population -> (+ skip) -> layer-norm astrocyte -> output."""
    rng = np.random.default_rng(seed)
    net = ProcessGraph("dense")
    net.add(pn.InputEncoderNode("in", size=width))
    net.add(pn.Synapses("up", pre_size=width, post_size=hidden, weight=rng.normal(size=(hidden, width)),
                        bias=rng.normal(size=hidden)), pre="in")
    net.add(pn.Population("act", size=hidden, response="gelu_tanh"), in0="up")
    net.add(pn.Synapses("down", pre_size=hidden, post_size=width, weight=rng.normal(size=(width, hidden))),
            pre="act")
    net.add(pn.Synapses("skip", pre_size=width, post_size=width), pre="in")
    net.add(pn.Population("sum", size=width, fan_in=2), in0="skip", in1="down")
    net.add(pn.NormAstrocyte("norm", size=width, weight=rng.uniform(0.5, 1.5, width), bias=rng.normal(size=width),
                             eps=1e-5), x="sum")
    net.add(pn.OutputDecoder("out", role="hidden", size=width), x="norm")
    params = {k: net.node(k) for k in ("up", "down", "norm")}
    return net, params


def dense_reference(params, x):
    up, down, norm = params["up"], params["down"], params["norm"]
    h = x @ up.weight.T + up.bias
    a = 0.5 * h * (1 + np.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3)))
    s = x + a @ down.weight.T
    c = s - s.mean(-1, keepdims=True)
    return c / np.sqrt((c * c).mean(-1, keepdims=True) + norm.eps) * norm.weight + norm.bias


def attention_net(lowering="exact", mode="bidirectional", heads=2, kv_heads=1, d=4, m=8, width=6, seed=0):
    """An attention circuit fed by q/k/v synapse groups: features, Hebbian synapses, astrocyte."""
    rng = np.random.default_rng(seed)
    net = ProcessGraph("attention")
    net.add(pn.InputEncoderNode("in", size=width))
    sizes = {"q": heads * d, "k": kv_heads * d, "v": kv_heads * d}
    for role, size in sizes.items():
        net.add(pn.Synapses(f"{role}.syn", pre_size=width, post_size=size, weight=rng.normal(size=(size, width))),
                pre="in")
        net.add(pn.Population(role, size=size), in0=f"{role}.syn")
    net.add(pn.Schedule("sched", mode=mode, max_tokens=m))
    projection = rng.normal(size=(kv_heads, m, d)) if lowering in ("favor", "relu") else None
    net.add(pn.FeaturePopulation("feat", lowering=lowering, n_heads=heads, n_kv_heads=kv_heads, head_dim=d, m=m,
                                 scale=1 / math.sqrt(d), schedule="sched", projection=projection),
            key="k", query="q")
    net.add(pn.HebbianSynapses("hebb", n_heads=heads, n_kv_heads=kv_heads, m=m, v_head_dim=d,
                               gated=lowering == "exact"), pre="feat", teacher="v")
    net.add(pn.Astrocyte("astro", n_heads=heads, m=m, v_head_dim=d,
                         offset="running_max" if lowering == "exact" else "none"), synapses="hebb", features="feat")
    net.add(pn.OutputDecoder("out", role="hidden", size=heads * d), x="astro")
    return net


def projections(net, x):
    return {r: x @ net.node(f"{r}.syn").weight.T for r in "qkv"}


def softmax_attention(net, x, mask, causal):
    """Softmax attention over written (unmasked) keys, causal or not; no visible key -> 0."""
    feat = net.node("feat")
    p = projections(net, x)
    B, T, _ = x.shape
    H, G, d = feat.n_heads, feat.n_kv_heads, feat.head_dim
    q = p["q"].reshape(B, T, H, d)
    k = np.repeat(p["k"].reshape(B, T, G, d), H // G, axis=2)
    v = np.repeat(p["v"].reshape(B, T, G, d), H // G, axis=2)
    logits = np.einsum("bihd,bjhd->bhij", q, k) * feat.scale
    visible = mask[:, None, None, :] & (np.tril(np.ones((T, T), bool)) if causal else True)
    logits = np.where(visible, logits, -np.inf)
    peak = np.max(logits, -1, keepdims=True)
    w = np.exp(logits - np.where(np.isfinite(peak), peak, 0))
    w = w / np.where(w.sum(-1, keepdims=True) > 0, w.sum(-1, keepdims=True), 1)
    return np.einsum("bhij,bjhd->bihd", w, v).reshape(B, T, H * d)


def favor_attention(net, x, mask, causal):
    """Linear attention with positive random features, written for this test from the paper."""
    feat = net.node("feat")
    p = projections(net, x)
    B, T, _ = x.shape
    H, G, d, m = feat.n_heads, feat.n_kv_heads, feat.head_dim, feat.m
    root = math.sqrt(feat.scale)
    W = np.repeat(feat.projection, H // G, axis=0)  # (H, m, d)

    def f(z):  # z (B, T, H, d)
        z = z * root
        return np.exp(np.einsum("bthd,hmd->bthm", z, W) - 0.5 * (z * z).sum(-1, keepdims=True)) / math.sqrt(m)

    fq = f(p["q"].reshape(B, T, H, d))
    fk = f(np.repeat(p["k"].reshape(B, T, G, d), H // G, axis=2)) * mask[:, :, None, None]
    v = np.repeat(p["v"].reshape(B, T, G, d), H // G, axis=2)
    kernel = np.einsum("bihm,bjhm->bhij", fq, fk)
    if causal:
        kernel = kernel * np.tril(np.ones((T, T)))
    z = kernel.sum(-1, keepdims=True)
    out = np.einsum("bhij,bjhd->bhid", kernel, v) / np.where(z != 0, z, 1)
    return out.transpose(0, 2, 1, 3).reshape(B, T, H * d)


# ---- tests -------------------------------------------------------------------------------------


def rel_max(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def inputs(width, B=2, T=5, seed=1):
    rng = np.random.default_rng(seed)
    mask = np.ones((B, T), dtype=bool)
    mask[0, T - 2 :] = False
    return rng.normal(size=(B, T, width)), mask


def test_dense_chain_matches_numpy_equations():
    net, params = dense_net()
    x, mask = inputs(6)
    out = run_lava(net, x, mask, precision="float64", granularity="fine", timeout=120).outputs["hidden"]
    assert out.shape == x.shape
    np.testing.assert_allclose(out, dense_reference(params, x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", ["bidirectional", "causal"])
def test_exact_circuit_is_softmax_attention(mode):
    net = attention_net("exact", mode, heads=4, kv_heads=2)
    x, mask = inputs(6, T=6)
    out = run_lava(net, x, mask, precision="float64", timeout=120).outputs["hidden"]
    np.testing.assert_allclose(out, softmax_attention(net, x, mask, mode == "causal"), rtol=1e-9, atol=1e-12)


def test_favor_circuit_is_random_feature_attention():
    net = attention_net("favor", "causal", heads=2, kv_heads=1, m=16)
    x, mask = inputs(6, T=6)
    out = run_lava(net, x, mask, precision="float64", granularity="fine", timeout=120).outputs["hidden"]
    np.testing.assert_allclose(out, favor_attention(net, x, mask, True), rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def bert():
    return compiler.compile(random_bert(), max_tokens=8)


@pytest.fixture(scope="module")
def decoder():
    return compiler.compile(random_llama(LlamaConfig(num_hidden_layers=2)), max_tokens=8)


@pytest.mark.parametrize("name", ["bert", "decoder"])
def test_fused_block_and_fine_agree_with_golden_and_each_other(name, request):
    net = request.getfixturevalue(name)
    x, mask = inputs(net.of_kind("input_encoder")[0].size, B=2, T=6)
    golden = simulate(net, x, mask, precision="float32").outputs
    fused = run_lava(net, x, mask, precision="float32", granularity="fused", timeout=120)
    block = run_lava(net, x, mask, precision="float32", granularity="block", timeout=120)
    fine = run_lava(net, x, mask, precision="float32", granularity="fine", timeout=300)
    assert fine.processes > block.processes > fused.processes
    assert set(fused.outputs) == set(golden)
    for role, want in golden.items():
        assert fused.outputs[role].shape == want.shape
        assert rel_max(fused.outputs[role], want) < TOL, role
        np.testing.assert_array_equal(block.outputs[role], fused.outputs[role])
        np.testing.assert_array_equal(fine.outputs[role], fused.outputs[role])


@pytest.mark.parametrize("model,lowering", [("llama", "favor"), ("llama", "elu1"), ("llama", "taylor2"),
                                            ("bert", "relu"), ("gpt2", "exact")])
def test_other_models_and_lowerings_agree_with_golden(model, lowering):
    graph = {"llama": lambda: random_llama(LlamaConfig(num_hidden_layers=1)), "bert": random_bert,
             "gpt2": random_gpt2}[model]()
    net = compiler.compile(graph, lowering=lowering, features=16, max_tokens=8)
    x, mask = inputs(net.of_kind("input_encoder")[0].size, B=2, T=4)
    golden = simulate(net, x, mask, precision="float32").outputs
    lava = run_lava(net, x, mask, precision="float32", timeout=120).outputs
    for role, want in golden.items():
        assert rel_max(lava[role], want) < TOL, role




def test_minilm_short_inputs_agree_with_golden():
    model_dir = minilm_dir()
    net = compiler.compile(str(model_dir), max_tokens=16)
    x, mask = inputs(net.of_kind("input_encoder")[0].size, B=2, T=8)
    golden = simulate(net, x, mask, precision="float32").outputs["hidden"]
    lava = run_lava(net, x, mask, precision="float32", timeout=600).outputs["hidden"]
    assert rel_max(lava, golden) < TOL


@pytest.mark.parametrize("mode", ["bidirectional", "causal"])
def test_monitored_state_matches_golden_probes(mode):
    """Calcium, soma sum and offset, Hebbian weights and norm gains read by Lava Monitors."""
    net = attention_net("exact", mode, heads=2, kv_heads=1)
    x, mask = inputs(6, B=2, T=4)
    golden = simulate(net, x, mask, precision="float64", probes=("calcium", "soma", "weights")).probes
    lava = run_lava(net, x, mask, precision="float64", granularity="fine", probes=("all",), timeout=120).probes
    assert set(lava) == set(golden)
    for key, want in golden.items():
        assert lava[key].shape == want.shape, key
        np.testing.assert_allclose(lava[key], want, rtol=1e-9, atol=1e-12, err_msg=key)


def test_norm_gain_probe_matches_golden():
    net, _ = dense_net()
    x, mask = inputs(6, B=2, T=3)
    golden = simulate(net, x, mask, precision="float64", probes=("soma",)).probes
    lava = run_lava(net, x, mask, precision="float64", probes=("soma",), timeout=120).probes
    np.testing.assert_allclose(lava["norm/gain"], golden["norm/gain"], rtol=1e-12)
