"""Compensated rounding of 8-bit mantissas against nearest rounding and a brute-force search."""

import itertools

import numpy as np
import pytest

from compiler.passes.rounding import compensated_mantissas, output_error, round_group, second_moment
from hardware_sim.fixed_point import dequantize_weights, quantize_weights


def correlated_inputs(rng, n_tok, pre, rank=4, loud=()):
    """Inputs on a few shared directions plus noise (as real activations are), some channels loud."""
    x = rng.normal(size=(n_tok, rank)) @ rng.normal(size=(rank, pre)) + 0.1 * rng.normal(size=(n_tok, pre))
    x[:, list(loud)] *= 30.0
    return x


@pytest.mark.parametrize("seed", range(6))
def test_never_worse_than_nearest_on_calibration_inputs(seed):
    rng = np.random.default_rng(seed)
    pre, post = int(rng.integers(3, 40)), int(rng.integers(1, 20))
    x = correlated_inputs(rng, int(rng.integers(5, 200)), pre, loud=range(seed % 3))
    w = rng.normal(size=(post, pre)) * 10.0 ** rng.uniform(-3, 1)
    h = second_moment(x)
    m, e, kept = compensated_mantissas(w, h)
    mn, en = quantize_weights(w, axis=0)
    assert np.array_equal(e, en)  # the same exponents: only the mantissas change
    assert m.min() >= -128 and m.max() <= 127 and m.dtype == np.int64
    err, err_nearest = output_error(w, m, e, h), output_error(w, mn, en, h)
    assert np.all(err <= err_nearest * (1 + 1e-12))
    # the measured output error on the inputs themselves, independent of output_error
    direct = np.sum((x @ (w - dequantize_weights(m, e, axis=0)).T) ** 2, axis=0) / len(x)
    assert np.allclose(direct, err, rtol=1e-9, atol=1e-30)


def test_clearly_better_on_correlated_inputs():
    rng = np.random.default_rng(7)
    x = correlated_inputs(rng, 400, 64, loud=(3, 17))
    w = rng.normal(size=(32, 64)) * 0.05
    h = second_moment(x)
    m, e, kept = compensated_mantissas(w, h, damp=0.01)  # light dampening: the fit to these inputs is tight
    mn, _ = quantize_weights(w, axis=0)
    assert kept == 32
    assert output_error(w, m, e, h).sum() < 0.5 * output_error(w, mn, e, h).sum()


def test_weights_on_the_grid_stay_exact():
    rng = np.random.default_rng(1)
    m0 = rng.integers(-128, 128, size=(6, 10))
    m0[:, 0] = 127  # every row uses its full range, so the exponent is the one the weights were made with
    w = dequantize_weights(m0, np.array([-7, -5, -9, -6, -8, -7]), axis=0)
    h = second_moment(correlated_inputs(rng, 50, 10))
    m, e, _ = compensated_mantissas(w, h)
    assert np.array_equal(m, m0) and np.all(output_error(w, m, e, h) == 0)


def test_matches_brute_force_on_a_tiny_problem():
    """Two inputs, one row: the best mantissa pair within +-2 of nearest is found by enumeration; the
    compensated rounding is no worse than nearest and no better than that optimum."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(50, 1)) @ np.array([[1.0, 0.98]]) + 0.01 * rng.normal(size=(50, 2))
    w = np.array([[80.3, 51.4]]) / 256  # nearest errors of the same sign on two near-copies of one input
    h = second_moment(x)
    m, e, _ = compensated_mantissas(w, h)
    mn, _ = quantize_weights(w, axis=0)
    best = min(output_error(w, mn + np.array([[a, b]]), e, h)[0] for a, b in itertools.product(range(-2, 3), repeat=2))
    got = output_error(w, m, e, h)[0]
    assert best <= got + 1e-18 <= output_error(w, mn, e, h)[0] + 1e-18
    assert got < 0.5 * output_error(w, mn, e, h)[0]  # the correlated pair lets errors cancel


def test_deterministic_and_silent_channels():
    rng = np.random.default_rng(5)
    x = correlated_inputs(rng, 30, 12)
    x[:, [2, 9]] = 0.0  # channels never active in calibration
    w = rng.normal(size=(5, 12))
    h = second_moment(x)
    a, b = compensated_mantissas(w, h), compensated_mantissas(w, h)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert np.all(np.isfinite(dequantize_weights(a[0], a[1], axis=0)))


def test_round_group_dispatch():
    w = np.random.default_rng(0).normal(size=(3, 4))
    assert np.array_equal(round_group(w, None, "nearest")[0], quantize_weights(w, axis=0)[0])
    with pytest.raises(ValueError, match="unknown rounding 'stochastic'"):
        round_group(w, np.eye(4), "stochastic")


def test_second_moment_uses_masked_tokens_only():
    x = np.arange(24, dtype=float).reshape(2, 3, 4)
    mask = np.array([[True, False, True], [False, True, False]])
    sel = x[mask]
    assert np.allclose(second_moment(x, mask), sel.T @ sel / 3)
