"""Golden simulator: exact circuits reproduce the float reference; state interventions act as the
circuit equations say; causal circuits stream."""

import math

import numpy as np
import pytest

import compiler
from compiler.attention import EvalContext
from compiler.models import random_bert, random_gpt2, random_llama
from hardware_sim.golden import simulate
from runtime.reference import run_reference

MODELS = {"bert": random_bert, "llama": random_llama, "gpt2": random_gpt2}


def inputs(width, B=3, T=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(B, T, width))
    mask = np.ones((B, T), dtype=bool)
    mask[1, 8:] = False
    mask[B - 1, 3:] = False
    return x, mask


def rel(a, b):
    return np.linalg.norm(a - b) / np.linalg.norm(b)


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request):
    g = MODELS[request.param]()
    return g, compiler.compile(g, max_tokens=16)


def test_exact_lowering_reproduces_reference(model):
    g, net = model
    x, mask = inputs(g.encoder.width)
    ref = run_reference(g, x, mask, keep=list(net.meta["layer_outputs"]))
    out = simulate(net, x, mask, keep=list(net.meta["layer_outputs"].values()))
    assert out.outputs.keys() == ref.outputs.keys()
    for role in ref.outputs:
        assert rel(out.outputs[role], ref.outputs[role]) <= 1e-9
    for src, node in net.meta["layer_outputs"].items():
        assert rel(out.values[node], ref.values[src]) <= 1e-9, src


def test_float32_is_close(model):
    g, net = model
    x, mask = inputs(g.encoder.width)
    ref = run_reference(g, x, mask)
    out = simulate(net, x, mask, precision="float32")
    assert out.outputs["hidden"].dtype == np.float32
    assert rel(out.outputs["hidden"], ref.outputs["hidden"]) <= 1e-5


def circuit_io(net, name="layer0.attn"):
    """Process nodes feeding the circuit's query, key and value ports."""
    feats = net.inputs_of(f"{name}.features")
    return feats["query"], feats["key"], net.inputs_of(f"{name}.hebbian")["teacher"]


def attention_logits(net, values, name="layer0.attn"):
    """scale q.k per head, (B, H, T, T), from the simulated query/key populations."""
    f = net.node(f"{name}.features")
    q, k, _ = (values[n] for n in circuit_io(net, name))
    B, T, _ = q.shape
    qh = q.reshape(B, T, f.n_heads, f.head_dim).transpose(0, 2, 1, 3)
    kh = k.reshape(B, T, f.n_kv_heads, f.head_dim).transpose(0, 2, 1, 3)
    kh = np.repeat(kh, f.n_heads // f.n_kv_heads, axis=1)
    return f.scale * qh @ kh.transpose(0, 1, 3, 2)


def test_soma_sum_is_softmax_denominator(model):
    g, net = model
    x, mask = inputs(g.encoder.width)
    out = simulate(net, x, mask, probes={"soma"}, keep=circuit_io(net))
    logits = attention_logits(net, out.values)
    T = mask.shape[1]
    visible = np.broadcast_to(mask[:, None, None, :], logits.shape)
    if net.node("layer0.attn.schedule").mode == "causal":
        visible = visible & np.tril(np.ones((T, T), dtype=bool))
    s = out.probes["layer0.attn.astrocyte/soma_offset"].transpose(0, 2, 1)
    z = out.probes["layer0.attn.astrocyte/soma_sum"].transpose(0, 2, 1)
    want = np.where(visible, np.exp(logits - s[..., None]), 0).sum(-1)
    np.testing.assert_allclose(z, want, rtol=1e-12, atol=0)
    assert np.all(z[visible.any(-1)] >= 1 - 1e-12)  # the offset is the largest logit


@pytest.mark.parametrize("name", ["llama", "gpt2"])
@pytest.mark.parametrize("lowering", ["exact", "favor"])
def test_causal_output_never_depends_on_later_tokens(name, lowering):
    g = MODELS[name]()
    net = compiler.compile(g, lowering=lowering, features=64, max_tokens=16)
    x, mask = inputs(g.encoder.width, B=2)
    base = simulate(net, x, mask).outputs["hidden"]
    for t in (0, 4, 9):
        y = x.copy()
        y[:, t + 1:] += np.random.default_rng(t).normal(size=y[:, t + 1:].shape)
        moved = simulate(net, y, mask).outputs["hidden"]
        np.testing.assert_allclose(moved[:, : t + 1], base[:, : t + 1], rtol=0, atol=1e-12)
        assert not np.allclose(moved[:, t + 1:], base[:, t + 1:])


def masked_attention(g, net, values, mask, name="layer0.attn"):
    q, k, v = (values[n] for n in circuit_io(net, name))
    ctx = EvalContext(dtype=np.float64, mask=mask, positions=np.broadcast_to(np.arange(mask.shape[1]), mask.shape))
    return g.node(name).evaluate({"q": q, "k": k, "v": v}, ctx)


@pytest.mark.parametrize("name", ["bert", "llama"])
def test_zero_calcium_equals_masking_the_token(name):
    g = MODELS[name]()
    net = compiler.compile(g, max_tokens=16)
    x, mask = inputs(g.encoder.width)
    j = 1
    calcium = np.ones((net.node("layer0.attn.astrocyte").n_heads, 16))
    calcium[:, j] = 0.0
    out = simulate(net, x, mask, keep=circuit_io(net) + ("layer0.attn.astrocyte",),
                   interventions={"layer0.attn.astrocyte": {"calcium_scale": calcium}})
    dropped = mask.copy()
    dropped[:, j] = False
    want = masked_attention(g, net, out.values, dropped)
    got = out.values["layer0.attn.astrocyte"]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    plain = simulate(net, x, mask, keep=("layer0.attn.astrocyte",)).values["layer0.attn.astrocyte"]
    assert not np.allclose(got, plain)


def test_scaling_one_slot_changes_only_its_value_contribution():
    g = random_bert()
    net = compiler.compile(g, max_tokens=16)
    x, mask = inputs(g.encoder.width)
    j, alpha = 4, 3.0
    hebb = net.node("layer0.attn.hebbian")
    scale = np.ones((hebb.n_kv_heads, hebb.v_head_dim, 16))
    scale[:, :, j] = alpha
    keep = circuit_io(net) + ("layer0.attn.astrocyte",)
    base = simulate(net, x, mask, keep=keep).values
    out = simulate(net, x, mask, keep=keep, interventions={"layer0.attn.hebbian": {"weight_scale": scale}}).values
    logits = attention_logits(net, base)
    logits = np.where(mask[:, None, None, :], logits, -np.inf)
    a = np.exp(logits - logits.max(-1, keepdims=True))
    a /= a.sum(-1, keepdims=True)
    B, T, _ = mask.shape + (0,)
    vh = base[circuit_io(net)[2]].reshape(B, T, hebb.n_kv_heads, hebb.v_head_dim)
    delta = (alpha - 1) * a[:, :, :, j, None] * vh[:, None, j, :, :].transpose(0, 2, 1, 3)
    want = base["layer0.attn.astrocyte"] + delta.transpose(0, 2, 1, 3).reshape(B, T, -1)
    np.testing.assert_allclose(out["layer0.attn.astrocyte"], want, rtol=1e-12, atol=1e-12)
    assert not mask[2, j] and np.array_equal(out["layer0.attn.astrocyte"][2], base["layer0.attn.astrocyte"][2])


def test_exact_calcium_trajectory_is_causal_and_skips_masked_tokens():
    g = random_llama()
    net = compiler.compile(g, max_tokens=16)
    x, mask = inputs(g.encoder.width)
    c = simulate(net, x, mask, probes={"calcium"}).probes["layer0.attn.astrocyte/calcium"]
    T = mask.shape[1]
    want = np.tril(np.ones((T, 16)), 0) * np.pad(mask, ((0, 0), (0, 16 - T)))[:, None, :]
    np.testing.assert_array_equal(c[:, :, 0, :], want)


def test_errors_name_the_problem():
    g = random_bert()
    net = compiler.compile(g, max_tokens=8)
    x, mask = inputs(g.encoder.width)
    with pytest.raises(Exception, match="8 slots but the input has 12 tokens"):
        simulate(net, x, mask)
    with pytest.raises(Exception, match="no intervention 'weight_scale'"):
        simulate(net, x[:, :8], mask[:, :8], interventions={"layer0.attn.astrocyte": {"weight_scale": 1.0}})
    with pytest.raises(Exception, match="unknown probe"):
        simulate(net, x[:, :8], mask[:, :8], probes={"spikes"})
    assert math.isfinite(float(simulate(net, x[:, :8], mask[:, :8]).outputs["hidden"].sum()))
