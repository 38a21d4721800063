"""The distillation loss's analytic gradient against central finite differences."""

import numpy as np
import pytest

from compiler.distill.hedgehog import hedgehog, logits, row_loss, softmax_rows, visibility, window_slots


def problem(causal, window, seed=0):
    rng = np.random.default_rng(seed)
    B, H, G, T, d, m = 2, 4, 2, 7, 3, 4
    q, k = rng.standard_normal((B, H, T, d)), rng.standard_normal((B, G, T, d))
    mask = np.ones((B, T), bool)
    mask[1, 5:] = False
    vis = visibility(mask, causal)
    win = window_slots(vis, window, causal)
    target = softmax_rows(logits(q, k, 0.7), vis) * mask[:, None, :, None]
    params = {"q_weight": rng.standard_normal((H, d, m)), "q_bias": rng.standard_normal((H, m)),
              "k_weight": rng.standard_normal((G, d, m)), "k_bias": rng.standard_normal((G, m)),
              "log_gain": rng.standard_normal(H) * 0.3}
    return q, k, target, vis, win, params


@pytest.mark.parametrize("causal,window", [(False, 0), (True, 0), (False, 3), (False, 4), (True, 2)])
def test_gradient_matches_finite_differences(causal, window):
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
    if window == 0:
        assert not grads["log_gain"].any()


def test_features_are_two_softmaxes():
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((1, 2, 5, 3)), rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 4))
    f = hedgehog(x, w, b)
    z = np.einsum("bntd,ndm->bntm", x, w) + b[None, :, None]
    np.testing.assert_allclose(f[..., :4], np.exp(z) / np.exp(z).sum(-1, keepdims=True))
    np.testing.assert_allclose(f[..., 4:], np.exp(-z) / np.exp(-z).sum(-1, keepdims=True))


def test_window_holds_the_keys_nearest_the_query():
    mask = np.array([[True, True, True, True, True, True, False]])
    win = window_slots(visibility(mask, causal=True), 2, True)[0, 0]  # causal: the two most recent
    assert win[3].tolist() == [False, False, True, True, False, False, False]
    assert win[0].tolist() == [True, False, False, False, False, False, False]
    win = window_slots(visibility(mask, causal=False), 3, False)[0, 0]  # encoder: |i - j| <= 1
    assert win[0].tolist() == [True, True, False, False, False, False, False]
    assert win[3].tolist() == [False, False, True, True, True, False, False]
    assert win[5].tolist() == [False, False, False, False, True, True, False]  # the padded key stays out
    win = window_slots(visibility(mask, causal=False), 4, False)[0, 0]  # even W: one more key before
    assert win[3].tolist() == [False, True, True, True, True, False, False]
