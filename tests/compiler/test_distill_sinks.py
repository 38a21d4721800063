"""Sink slots (each query's first and last visible keys held exact beside the window): the slots, the
loss's analytic gradient with them, the torch circuit against numpy, and the distillation fitting them."""

import numpy as np
import pytest

from compiler.distill.fit import DistillOptions, distill_graph
from compiler.distill.hedgehog import (
    circuit_scores,
    hedgehog,
    logits,
    row_loss,
    sink_slots,
    softmax_rows,
    visibility,
    window_slots,
)
from compiler.distill.maps import LayerMaps
from compiler.distill.surrogate import learned_attention as numpy_attention
from compiler.distill.surrogate import run_surrogate
from compiler.models.bert import random_bert


def test_sinks_are_the_first_and_last_real_keys():
    mask = np.array([[True] * 6 + [False] * 2, [True] * 8])
    enc = sink_slots(visibility(mask, causal=False))[:, 0]
    for b, last in ((0, 5), (1, 7)):
        for i in range(8):  # every query, padded ones included, sees [CLS] and [SEP] as its sinks
            assert np.flatnonzero(enc[b, i]).tolist() == [0, last]
    dec = sink_slots(visibility(mask, causal=True))[0, 0]
    assert np.flatnonzero(dec[0]).tolist() == [0]
    assert np.flatnonzero(dec[4]).tolist() == [0, 4]  # causal: the first token and the query itself
    win = window_slots(visibility(mask, causal=False), 3, False, sinks=True)[0, 0]
    assert np.flatnonzero(win[3]).tolist() == [0, 2, 3, 4, 5]  # band |i - j| <= 1, [CLS], [SEP]
    assert np.flatnonzero(win[0]).tolist() == [0, 1, 5]  # a sink inside the band is one slot
    assert not win[:, 6:].any()  # padded keys never


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("window", [0, 3, 4])
def test_sinks_off_leaves_the_window_unchanged(causal, window):
    mask = np.ones((2, 9), bool)
    mask[1, 6:] = False
    vis = visibility(mask, causal)
    plain = window_slots(vis, window, causal)
    np.testing.assert_array_equal(window_slots(vis, window, causal, sinks=False), plain)
    np.testing.assert_array_equal(window_slots(vis, window, causal, sinks=True), plain | sink_slots(vis))
    T = 9
    offset = np.arange(T)[None, :] - np.arange(T)[:, None]
    if not causal and window:
        band = (offset >= -(window // 2)) & (offset <= (window - 1) // 2)
        np.testing.assert_array_equal(plain, vis & band[None, None])


def problem(causal, window, seed=0):
    rng = np.random.default_rng(seed)
    B, H, G, T, d, m = 2, 4, 2, 9, 3, 4
    q, k = rng.standard_normal((B, H, T, d)), rng.standard_normal((B, G, T, d))
    mask = np.ones((B, T), bool)
    mask[1, 6:] = False
    vis = visibility(mask, causal)
    win = window_slots(vis, window, causal, sinks=True)
    target = softmax_rows(logits(q, k, 0.7), vis) * mask[:, None, :, None]
    params = {"q_weight": rng.standard_normal((H, d, m)), "q_bias": rng.standard_normal((H, m)),
              "k_weight": rng.standard_normal((G, d, m)), "k_bias": rng.standard_normal((G, m)),
              "log_gain": rng.standard_normal(H) * 0.3}
    return q, k, target, vis, win, params


@pytest.mark.parametrize("causal,window", [(False, 0), (False, 3), (False, 4), (True, 2)])
def test_gradient_with_sinks_matches_finite_differences(causal, window):
    q, k, target, vis, win, params = problem(causal, window)
    _, grads = row_loss(q, k, target, vis, win, params, scale=0.7)
    eps = 1e-6
    for name, value in params.items():
        numeric = np.zeros_like(value)
        for idx in np.ndindex(value.shape):
            for sign in (1, -1):
                shifted = {**params, name: value.copy()}
                shifted[name][idx] += sign * eps
                numeric[idx] += sign * row_loss(q, k, target, vis, win, shifted, 0.7, need_grad=False)[0]
        numeric /= 2 * eps
        np.testing.assert_allclose(grads[name], numeric, rtol=1e-5, atol=1e-8, err_msg=name)
    assert np.abs(grads["log_gain"]).max() > 1e-6  # the sinks make the gain matter even without a window


def test_sink_rows_are_exact_on_sinks_and_features_elsewhere():
    q, k, _, vis, win, params = problem(False, 3, seed=4)
    fq = hedgehog(q, params["q_weight"], params["q_bias"])
    fk = hedgehog(k, params["k_weight"], params["k_bias"])
    lg = logits(q, k, 0.7)
    S = circuit_scores(fq, fk, lg, vis, win, np.exp(params["log_gain"]))[0]
    b, h, i = 0, 2, 5  # keys 4-6 in the band, 0 and 8 sinks, the rest features
    s = lg[b, h, i, [0, 4, 5, 6, 8]].max()
    for j in (0, 4, 5, 6, 8):
        assert S[b, h, i, j] == pytest.approx(np.exp(lg[b, h, i, j] - s))
    g = np.exp(params["log_gain"][h])
    for j in (1, 2, 3, 7):
        assert S[b, h, i, j] == pytest.approx(g * np.exp(-s) * fq[b, h, i] @ fk[b, h // 2, j])


@pytest.mark.crosscheck
@pytest.mark.parametrize("window", [0, 3])
def test_torch_attention_with_sinks_matches_numpy(window):
    torch = pytest.importorskip("torch")
    from compiler.distill.joint import Context, learned_attention

    graph = random_bert(seed=2)
    att = graph.node(next(n for n in graph.order() if graph.node(n).kind == "attention"))
    rng = np.random.default_rng(3)
    B, T = 3, 10
    mask = np.ones((B, T), bool)
    mask[1, 6:] = False
    args = {p: rng.standard_normal((B, T, att.n_heads * att.head_dim)) for p in ("q", "k", "v")}
    maps = LayerMaps.initial(rng, att.n_heads, att.n_kv_heads, att.head_dim, 3, att.scale)
    maps.log_gain = rng.standard_normal(att.n_heads)
    want = numpy_attention(att, args, mask, maps, window, sinks=True)
    params = {att.name: {key: torch.as_tensor(v) for key, v in maps.as_dict().items()}}
    ctx = Context(torch, mask, params, window, sinks=True)
    got = learned_attention(torch)(att, {p: torch.as_tensor(v) for p, v in args.items()}, ctx)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)
    assert not np.allclose(want, numpy_attention(att, args, mask, maps, window))


@pytest.mark.parametrize("window", [0, 3])
def test_the_distillation_fits_sinks_and_their_gain(window):
    """``DistillOptions(sinks=True)``: the loss holds the sink slots, so the maps differ from a fit without
    them, and the gain is fitted even without a window (with no exact slot at all it cancels out)."""
    graph = random_bert(seed=2)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 10, graph.validate()[graph.input_node()][0]))
    mask = np.ones((4, 10), bool)
    mask[1, 6:] = False
    plain = distill_graph(graph, x, mask, DistillOptions(features=4, epochs=3, window=window, rows=6, chunk=2))
    sinks = distill_graph(graph, x, mask, DistillOptions(features=4, epochs=3, window=window, rows=6, chunk=2,
                                                         sinks=True))
    name = next(iter(plain.layers))
    assert not np.array_equal(sinks.layers[name].q_weight, plain.layers[name].q_weight)
    assert not np.array_equal(sinks.layers[name].log_gain, plain.layers[name].log_gain)
    with_slots = run_surrogate(graph, x, mask, sinks, sinks=True)["hidden"]
    assert not np.allclose(with_slots, run_surrogate(graph, x, mask, sinks)["hidden"])
