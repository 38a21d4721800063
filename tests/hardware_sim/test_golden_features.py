"""Random-feature circuits: the astrocyte response is phi(q).sum_i phi(k_i), and its error against the
softmax denominator falls like 1/sqrt(m)."""

import numpy as np
import pytest

import compiler
from compiler.attention import AttentionGraph
from compiler.attention import nodes as op
from hardware_sim.golden import simulate

H, D, T = 2, 16, 24


def one_attention(causal=False, seed=0, spread=0.3) -> AttentionGraph:
    """Input -> q, k, v projections -> attention -> output, logits of std about ``spread``."""
    rng = np.random.default_rng(seed)
    w = H * D
    g = AttentionGraph("one-attention", meta={"layer_outputs": []})
    x = g.add(op.Input("input", width=w))
    s = spread ** 0.5 / w ** 0.5
    q, k, v = (g.add(op.Linear(n, weight=rng.normal(0, s if n != "v" else 1, (w, w))), x=x) for n in "qkv")
    a = g.add(op.Attention("attn", n_heads=H, n_kv_heads=H, head_dim=D, scale=D ** -0.5, causal=causal), q=q, k=k, v=v)
    g.add(op.Output("out", role="hidden"), x=a)
    return g


def data(seed=1, B=2):
    rng = np.random.default_rng(seed)
    mask = np.ones((B, T), dtype=bool)
    mask[1, 20:] = False
    return rng.normal(size=(B, T, H * D)), mask


def heads(a):
    B, T_, _ = a.shape
    return a.reshape(B, T_, H, -1).transpose(0, 2, 1, 3)


def run(g, m, seed=0, orthogonal=False):
    net = compiler.compile(g, lowering="favor", features=m, seed=seed, orthogonal=orthogonal)
    x, mask = data()
    out = simulate(net, x, mask, probes={"soma"}, keep=("q", "k"))
    q, k = heads(out.values["q"]), heads(out.values["k"])
    return net, mask, q, k, out.probes["attn.astrocyte/soma_sum"].transpose(0, 2, 1)


def denominator(q, k, mask):
    logits = q @ k.transpose(0, 1, 3, 2) * D ** -0.5
    return np.where(mask[:, None, None, :], np.exp(logits), 0).sum(-1)


def test_astrocyte_response_is_phi_q_dot_sum_phi_k():
    net, mask, q, k, z = run(one_attention(), 64)
    W = net.node("attn.features").projection           # (H, m, D)
    r = D ** -0.25

    def phi(x):
        x = x * r
        return np.exp(np.einsum("bhtd,hmd->bhtm", x, W) - (x * x).sum(-1, keepdims=True) / 2) / np.sqrt(64)

    want = np.einsum("bhtm,bhm->bht", phi(q), (phi(k) * mask[:, None, :, None]).sum(2))
    np.testing.assert_allclose(z, want, rtol=1e-13, atol=0)


def mean_error(m, orthogonal=False, seeds=range(4)):
    errs = []
    for seed in seeds:
        _, mask, q, k, z = run(one_attention(), m, seed=seed, orthogonal=orthogonal)
        den = denominator(q, k, mask)
        errs.append(np.mean(np.abs(z - den) / den))
    return float(np.mean(errs))


@pytest.fixture(scope="module")
def errors():
    return {m: mean_error(m) for m in (256, 1024, 4096)}


def test_denominator_error_falls_like_inverse_sqrt_m(errors):
    ms = np.array(sorted(errors))
    e = np.array([errors[m] for m in ms])
    slope = np.polyfit(np.log(ms), np.log(e), 1)[0]
    assert -0.65 < slope < -0.35, (errors, slope)
    assert e[0] > e[1] > e[2]
    assert e[-1] < 0.05


def test_orthogonal_features_no_worse_than_iid(errors):
    assert mean_error(256, orthogonal=True) <= errors[256] * 1.02


def test_orthogonal_projection_rows_are_orthogonal_in_blocks():
    net = compiler.compile(one_attention(), lowering="favor", features=40, orthogonal=True)
    W = net.node("attn.features").projection[0]
    block = W[:D] / np.linalg.norm(W[:D], axis=1, keepdims=True)
    np.testing.assert_allclose(block @ block.T, np.eye(D), atol=1e-12)


@pytest.mark.parametrize("lowering", ["elu1", "taylor2", "relu", "favor"])
@pytest.mark.parametrize("causal", [False, True])
def test_linear_lowerings_match_their_kernel(lowering, causal):
    """y_i = sum_j k(q_i, k_j) v_j / sum_j k(q_i, k_j) with each lowering's kernel, computed directly."""
    g = one_attention(causal=causal)
    net = compiler.compile(g, lowering=lowering, features=32)
    x, mask = data()
    out = simulate(net, x, mask, keep=("q", "k", "v", "attn.astrocyte"))
    q, k, v = (heads(out.values[n]) * (D ** -0.25 if n != "v" else 1) for n in "qkv")
    s = q @ k.transpose(0, 1, 3, 2)
    if lowering == "elu1":
        f = lambda a: np.where(a > 0, a + 1, np.exp(np.minimum(a, 0)))  # noqa: E731
        kern = f(q) @ f(k).transpose(0, 1, 3, 2)
    elif lowering == "taylor2":
        kern = 1 + s + s * s / 2
    else:
        W = net.node("attn.features").projection
        f = net_features(lowering, W)
        kern = f(q) @ f(k).transpose(0, 1, 3, 2)
    visible = mask[:, None, None, :] & (np.tril(np.ones((T, T), bool)) if causal else True)
    kern = np.where(visible, kern, 0)
    want = (kern @ v) / kern.sum(-1, keepdims=True)
    got = heads(out.values["attn.astrocyte"])
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def net_features(lowering, W):
    if lowering == "relu":
        return lambda a: np.maximum(np.einsum("bhtd,hmd->bhtm", a, W), 0)
    m = W.shape[1]
    return lambda a: np.exp(np.einsum("bhtd,hmd->bhtm", a, W) - (a * a).sum(-1, keepdims=True) / 2) / np.sqrt(m)


def test_grouped_query_causal_favor_matches_its_kernel():
    from compiler.models import random_llama

    net = compiler.compile(random_llama(), lowering="favor", features=16)
    B, T = 2, 9
    x = np.random.default_rng(0).normal(size=(B, T, 32))
    mask = np.ones((B, T), dtype=bool)
    mask[1, 5:] = False
    f = net.node("layer0.attn.features")
    qn, kn = net.inputs_of(f.name)["query"], net.inputs_of(f.name)["key"]
    vn = net.inputs_of("layer0.attn.hebbian")["teacher"]
    out = simulate(net, x, mask, keep=(qn, kn, vn, "layer0.attn.astrocyte")).values
    q = out[qn].reshape(B, T, 4, 8).transpose(0, 2, 1, 3) * 8 ** -0.25
    k, v = (out[n].reshape(B, T, 2, 8).transpose(0, 2, 1, 3) for n in (kn, vn))
    k = k * 8 ** -0.25
    ys = []
    for h in range(4):
        W = f.projection[h // 2]

        def phi(a):
            return np.exp(a @ W.T - (a * a).sum(-1, keepdims=True) / 2) / 4  # noqa: B023

        kern = phi(q[:, h]) @ phi(k[:, h // 2]).transpose(0, 2, 1)
        kern = np.where(mask[:, None, :] & np.tril(np.ones((T, T), bool)), kern, 0)
        ys.append(kern @ v[:, h // 2] / kern.sum(-1, keepdims=True))
    want = np.stack(ys, 2).reshape(B, T, -1)
    np.testing.assert_allclose(out["layer0.attn.astrocyte"], want, rtol=1e-12, atol=1e-14)
