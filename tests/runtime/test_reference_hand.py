"""The float reference on cases small enough to compute by hand or by independent code."""

import math

import numpy as np
import pytest

from compiler.attention import AttentionGraph
from compiler.attention import nodes as op
from compiler.errors import InputError
from compiler.models import BertConfig, LlamaConfig, random_bert, random_gpt2, random_llama
from runtime.reference import mean_pool, run_reference


def one_op_graph(node, ports, width):
    g = AttentionGraph()
    g.add(op.Input("x", width=width))
    g.add(node, **{p: "x" for p in ports})
    g.add(op.Output("o"), x=node.name)
    return g


def test_two_token_attention_by_hand():
    # one head, d = 1, q = k = v = x, scale 1: tokens 0 and 1 with values 0 and 1
    g = one_op_graph(op.Attention("a", n_heads=1, n_kv_heads=1, head_dim=1, scale=1.0), "qkv", 1)
    x = np.array([[[0.0], [1.0]]])
    y = run_reference(g, x).outputs["hidden"][0, :, 0]
    # token 0: logits (0, 0) -> weights 1/2, 1/2 -> y = 0.5
    # token 1: logits (0, 1) -> weights 1/(1+e), e/(1+e) -> y = e/(1+e)
    assert y == pytest.approx([0.5, math.e / (1 + math.e)], rel=1e-15)


def test_causal_and_padding_masks_by_hand():
    g = one_op_graph(op.Attention("a", n_heads=1, n_kv_heads=1, head_dim=1, scale=1.0, causal=True), "qkv", 1)
    x = np.array([[[2.0], [1.0], [5.0]]])
    y = run_reference(g, x, mask=np.array([[True, True, False]])).outputs["hidden"][0, :, 0]
    w = np.exp([2.0, 1.0])  # token 1 sees tokens 0, 1 with logits q.k = 2, 1
    assert y[0] == pytest.approx(2.0)
    assert y[1] == pytest.approx((w @ [2.0, 1.0]) / w.sum(), rel=1e-15)
    assert y[2] == pytest.approx((np.exp([10.0, 5.0]) @ [2.0, 1.0]) / np.exp([10.0, 5.0]).sum())


def test_grouped_query_attention_equals_repeated_kv_heads():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 4))
    gqa = AttentionGraph()
    gqa.add(op.Input("q", width=4))
    gqa.add(op.Linear("k", weight=rng.normal(size=(2, 4))), x="q")
    gqa.add(op.Attention("a", n_heads=2, n_kv_heads=1, head_dim=2, scale=0.5), q="q", k="k", v="k")
    gqa.add(op.Output("o"), x="a")
    mha = AttentionGraph()
    mha.add(op.Input("q", width=4))
    w = gqa.node("k").weight
    mha.add(op.Linear("k", weight=np.vstack([w, w])), x="q")
    mha.add(op.Attention("a", n_heads=2, n_kv_heads=2, head_dim=2, scale=0.5), q="q", k="k", v="k")
    mha.add(op.Output("o"), x="a")
    np.testing.assert_allclose(run_reference(gqa, x).outputs["hidden"], run_reference(mha, x).outputs["hidden"],
                               rtol=1e-14)


def test_layernorm_and_rmsnorm_by_hand():
    x = np.array([[[1.0, 2.0, 3.0, 6.0]]])
    ln = one_op_graph(op.LayerNorm("n", weight=np.full(4, 2.0), bias=np.full(4, 1.0), eps=0.0), "x", 4)
    mean, std = 3.0, math.sqrt((4 + 1 + 0 + 9) / 4)
    np.testing.assert_allclose(run_reference(ln, x).outputs["hidden"][0, 0], (x[0, 0] - mean) / std * 2 + 1)
    rms = one_op_graph(op.RMSNorm("n", weight=np.ones(4), eps=0.0), "x", 4)
    np.testing.assert_allclose(run_reference(rms, x).outputs["hidden"][0, 0], x[0, 0] / math.sqrt(50 / 4))


@pytest.mark.parametrize("pairing", ["half", "interleaved"])
def test_rope_rotates_pairs_by_position(pairing):
    rope = op.Rope("r", n_heads=1, head_dim=4, base=100.0, pairing=pairing)
    g = one_op_graph(rope, "x", 4)
    x = np.tile(np.array([1.0, 2.0, 3.0, 4.0]), (1, 3, 1))
    y = run_reference(g, x).outputs["hidden"][0]
    pairs = [(0, 2), (1, 3)] if pairing == "half" else [(0, 1), (2, 3)]
    for p in range(3):
        for i, (a, b) in enumerate(pairs):
            angle = p * 100.0 ** (-2 * i / 4)
            c, s = math.cos(angle), math.sin(angle)
            assert y[p, a] == pytest.approx(x[0, p, a] * c - x[0, p, b] * s, abs=1e-14)
            assert y[p, b] == pytest.approx(x[0, p, b] * c + x[0, p, a] * s, abs=1e-14)
    # rotation preserves the norm of each pair: relative attention depends only on offsets
    np.testing.assert_allclose(np.linalg.norm(y, axis=-1), np.linalg.norm(x[0], axis=-1))


def test_activations_by_hand():
    x = np.array([-1.0, 0.0, 2.0])
    np.testing.assert_allclose(op.activation("relu", x), [0, 0, 2])
    np.testing.assert_allclose(op.activation("silu", x), x / (1 + np.exp(-x)))
    np.testing.assert_allclose(op.activation("gelu_erf", x), [x_ * 0.5 * (1 + math.erf(x_ / math.sqrt(2))) for x_ in x])
    assert op.activation("gelu_tanh", x) == pytest.approx(op.activation("gelu_erf", x), abs=1e-3)


def test_padding_does_not_change_unmasked_tokens():
    for graph in (random_bert(BertConfig(), seed=3), random_llama(LlamaConfig(), seed=3), random_gpt2(seed=3)):
        ids = np.array([[5, 6, 7, 8, 9]])
        short = run_reference(graph, graph.encoder.encode(ids[:, :3])).outputs["hidden"]
        padded_ids = np.array([[5, 6, 7, 0, 0]])
        mask = np.array([[True, True, True, False, False]])
        padded = run_reference(graph, graph.encoder.encode(padded_ids), mask).outputs["hidden"]
        np.testing.assert_allclose(padded[:, :3], short, rtol=1e-12, atol=1e-12)


def test_causal_models_do_not_look_ahead():
    graph = random_llama(seed=4)
    ids = np.array([[1, 2, 3, 4, 5, 6]])
    base = run_reference(graph, graph.encoder.encode(ids)).outputs["logits"]
    changed = ids.copy()
    changed[0, 4:] = [9, 9]
    other = run_reference(graph, graph.encoder.encode(changed)).outputs["logits"]
    np.testing.assert_allclose(other[:, :4], base[:, :4], rtol=1e-13)
    assert not np.allclose(other[:, 4:], base[:, 4:])


def test_float32_tracks_float64():
    graph = random_bert(seed=5)
    x = graph.encoder.encode(np.array([[3, 4, 5, 6]]))
    a = run_reference(graph, x, precision="float64").outputs["hidden"]
    b = run_reference(graph, x, precision="float32").outputs["hidden"]
    assert b.dtype == np.float32
    assert np.linalg.norm(a - b) / np.linalg.norm(a) < 1e-5


def test_mean_pool_ignores_padding():
    hidden = np.array([[[1.0, 0.0], [3.0, 0.0], [100.0, 100.0]]])
    pooled = mean_pool(hidden, np.array([[True, True, False]]), normalize=False)
    np.testing.assert_allclose(pooled, [[2.0, 0.0]])


def test_bad_inputs_are_one_line_errors():
    graph = random_bert(seed=0)
    with pytest.raises(InputError, match=r"shape \(batch, tokens, 32\)"):
        run_reference(graph, np.zeros((1, 3, 5)))
    with pytest.raises(InputError, match="NaN"):
        run_reference(graph, np.full((1, 3, 32), np.nan))
    with pytest.raises(InputError, match="mask must have shape"):
        run_reference(graph, np.zeros((1, 3, 32)), mask=np.ones((1, 4), bool))
    with pytest.raises(InputError, match="outside"):
        graph.encoder.encode(np.array([[1, 1000]]))
    with pytest.raises(InputError, match="unknown float precision"):
        run_reference(graph, np.zeros((1, 3, 32)), precision="float16")
