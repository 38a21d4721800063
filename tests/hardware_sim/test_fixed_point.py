"""Loihi-class integer arithmetic against float math and exact rational references."""

from fractions import Fraction
from math import floor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.attention.nodes import activation
from compiler.errors import SimulationError
from hardware_sim.fixed_point import (
    SaturationCounter,
    activation_fixed,
    dequantize_weights,
    exact_matmul,
    exp_fixed,
    exponent_for,
    quantize,
    quantize_weights,
    reciprocal_fixed,
    rsqrt_fixed,
    saturate,
    shift,
    synaptic_accumulate,
    to_float,
)
from hardware_sim.fixed_point.tables import floor_log2

I24 = st.integers(-(2**23), 2**23 - 1)


# ---- shifts and saturation ------------------------------------------------------------------------
@given(st.integers(-(2**50), 2**50), st.integers(-40, 10))
def test_shift_rounds_half_up_exactly(x, s):
    want = x * 2**s if s >= 0 else floor(Fraction(x, 2**-s) + Fraction(1, 2))
    assert int(shift(np.int64(x), s)) == want


def test_shift_examples_and_array_shifts():
    assert shift(np.array([5, -5, -6, 3]), -1).tolist() == [3, -2, -3, 2]  # 2.5->3, -2.5->-2, -3->-3, 1.5->2
    assert shift(np.array([3, 3]), np.array([2, -1])).tolist() == [12, 2]


def test_saturation_is_counted_per_population():
    c = SaturationCounter()
    y = saturate(np.array([2**23, -(2**23) - 5, 7, 2**23 - 1]), 24, c, "pop_a")
    assert y.tolist() == [2**23 - 1, -(2**23), 7, 2**23 - 1]
    saturate(np.array([10**9]), 24, c, "pop_b")
    assert c.to_dict() == {"pop_a": 2, "pop_b": 1} and c.total == 3
    other = SaturationCounter()
    other.merge(c)
    other.merge({"pop_a": 1})
    assert other.to_dict() == {"pop_a": 3, "pop_b": 1}
    assert "3 saturated" in c.summary()


def test_saturation_without_counter_is_an_error():
    with pytest.raises(SimulationError, match="pop_x"):
        saturate(np.array([2**30]), 24, None, "pop_x")
    assert saturate(np.array([5]), 24, None, "pop_x").tolist() == [5]  # no overflow, no counter needed


def test_forced_saturation_in_accumulation_is_counted():
    c = SaturationCounter()
    m = np.full((3, 64), 127)
    x = np.full((1, 64), 2**22)
    y = synaptic_accumulate(x, m, 0, 0, 0, counter=c, name="layer0.ffn")
    assert (y == 2**23 - 1).all() and c.to_dict() == {"layer0.ffn": 3}


# ---- weights ------------------------------------------------------------------------------------------
def test_weight_quantization_range_and_error():
    w = np.random.default_rng(0).normal(0, 0.05, size=(64, 96))
    m, e = quantize_weights(w)
    assert m.dtype == np.int64 and m.min() >= -128 and m.max() <= 127
    err = np.abs(dequantize_weights(m, e) - w)
    inside = np.abs(w) <= 127 * 2.0**e
    assert err[inside].max() <= 2.0 ** (e - 1) + 1e-15
    rel = np.sqrt(np.mean(err**2) / np.mean(w**2))
    assert rel < 0.02  # 8-bit mantissa on a Gaussian: measured ~0.008


def test_weight_exponent_minimises_squared_error_among_neighbours():
    rng = np.random.default_rng(1)
    w = np.concatenate([rng.normal(0, 0.01, 500), [1.0]])  # one outlier: clipping it pays off
    m, e = quantize_weights(w)
    best = quantize_weights(w)[1]
    errs = {}
    for cand in range(e - 4, e + 4):
        mc = np.clip(np.floor(w / 2.0**cand + 0.5), -128, 127)
        errs[cand] = np.sum((w - mc * 2.0**cand) ** 2)
    assert errs[best] <= min(errs.values()) + 1e-18
    assert e < exponent_for(1.0, 8)  # the outlier is clipped


def test_per_row_exponents():
    w = np.stack([np.linspace(-1, 1, 10), np.linspace(-1e-3, 1e-3, 10)])
    m, e = quantize_weights(w, axis=0)
    assert e.shape == (2,) and e[1] < e[0] - 8
    err = np.abs(dequantize_weights(m, e, axis=0) - w).max(axis=1)
    assert np.all(err <= np.abs(w).max(axis=1) / 128)


# ---- accumulation -------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 12), st.integers(0, 2**31 - 1), st.integers(-30, 5))
def test_accumulation_is_exact_then_rounded(pre, post, seed, shift_by):
    rng = np.random.default_rng(seed)
    m = rng.integers(-128, 128, size=(post, pre))
    x = rng.integers(-(2**23), 2**23, size=(3, pre))
    bias = rng.integers(-1000, 1000, size=post)
    c = SaturationCounter()
    y = synaptic_accumulate(x, m, shift_by, 0, 0, bias, c, "g")
    for b in range(3):
        for i in range(post):
            acc = sum(int(m[i, j]) * int(x[b, j]) for j in range(pre))
            v = acc * 2**shift_by if shift_by >= 0 else floor(Fraction(acc, 2**-shift_by) + Fraction(1, 2))
            v = min(max(v + int(bias[i]), -(2**23)), 2**23 - 1)
            assert int(y[b, i]) == v


def test_float_and_integer_matmul_paths_agree():
    rng = np.random.default_rng(2)
    m = rng.integers(-128, 128, size=(50, 3000))
    x = rng.integers(-(2**23), 2**23, size=(4, 3000))
    assert np.array_equal(exact_matmul(x, m), np.einsum("bj,ij->bi", x, m))


def test_accumulation_matches_float_layer():
    rng = np.random.default_rng(3)
    w, xf = rng.normal(0, 0.05, (32, 128)), rng.normal(0, 1, (5, 128))
    m, e_w = quantize_weights(w)
    x = quantize(xf, -18)
    y = synaptic_accumulate(x, m, e_w, -18, -18, counter=SaturationCounter())
    ref = to_float(x, -18) @ dequantize_weights(m, e_w).T
    assert np.abs(to_float(y, -18) - ref).max() <= 2.0**-19 + 1e-12


# ---- exp ---------------------------------------------------------------------------------------------------
def test_exp_accuracy():
    x = quantize(np.linspace(-30, 2, 200001), -18)
    y = exp_fixed(x, -18, -20, SaturationCounter(), "exp")
    ref = np.exp(to_float(x, -18))
    err = np.abs(to_float(y, -20) - ref)
    # table + interpolation: relative; output rounding: half a step of 2**-20
    assert np.all(err <= 3e-7 * ref + 2.0**-21)  # measured 2.7e-7 * ref + 2**-21


def test_exp_overflow_saturates_and_counts():
    c = SaturationCounter()
    y = exp_fixed(quantize(np.array([0.0, 4.0, 100.0]), -16), -16, -20, c, "feat")
    assert y[2] == 2**23 - 1 and y[1] == 2**23 - 1 and c.to_dict() == {"feat": 2}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(-(2**31), 2**27), min_size=2, max_size=50), st.integers(-24, -10))
def test_exp_is_monotone(xs, x_exp):
    x = np.sort(np.array(xs, dtype=np.int64))
    y = exp_fixed(x, x_exp, -22, SaturationCounter(), "e")
    assert np.all(np.diff(y) >= 0)


def test_exp_table_monotone_dense():
    x = np.arange(-(2**20), 2**19, dtype=np.int64)
    y = exp_fixed(x, -16, -22, SaturationCounter(), "e")
    assert np.all(np.diff(y) >= 0)


# ---- reciprocal and inverse square root -----------------------------------------------------------
Z24 = np.unique(np.round(np.geomspace(1, 2**23 - 1, 400000)).astype(np.int64))


@pytest.mark.parametrize("z_exp", [-20, 0, 9])
def test_reciprocal_accuracy_whole_24bit_range(z_exp):
    k = floor_log2(Z24)
    y_exp = -k - 22 - z_exp
    r = reciprocal_fixed(Z24, z_exp, y_exp, SaturationCounter(), "r")
    ref = 1.0 / to_float(Z24, z_exp)
    assert (np.abs(to_float(r, y_exp) - ref) / ref).max() < 4e-7  # measured ~3.6e-7


@pytest.mark.parametrize("v_exp", [-21, 0, 6])
def test_rsqrt_accuracy_whole_24bit_range(v_exp):
    k = floor_log2(Z24)
    y_exp = -((k + v_exp) // 2) - 22
    r = rsqrt_fixed(Z24, v_exp, y_exp, SaturationCounter(), "s")
    ref = 1.0 / np.sqrt(to_float(Z24, v_exp))
    assert (np.abs(to_float(r, y_exp) - ref) / ref).max() < 4e-7


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 2**23 - 1), st.integers(-30, 30))
def test_reciprocal_bound_property(z, z_exp):
    y_exp = -int(floor_log2(np.array([z]))[0]) - 22 - z_exp
    r = reciprocal_fixed(np.array([z]), z_exp, y_exp, SaturationCounter(), "r")
    exact = Fraction(1, z) / Fraction(2) ** z_exp
    got = Fraction(int(r[0])) * Fraction(2) ** y_exp
    assert abs(got - exact) / exact < Fraction(4, 10**7)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 2**40), st.integers(-40, 0))
def test_reciprocal_of_wide_accumulator(z, z_exp):
    y_exp = -int(floor_log2(np.array([z]))[0]) - 22 - z_exp
    r = reciprocal_fixed(np.array([z]), z_exp, y_exp, SaturationCounter(), "r")
    ref = 2.0**-z_exp / z
    assert abs(to_float(r, y_exp)[0] - ref) / ref < 4e-7


def test_division_by_nonpositive_saturates_and_counts():
    c = SaturationCounter()
    r = reciprocal_fixed(np.array([0, -3, 4]), 0, -20, c, "soma")
    s = rsqrt_fixed(np.array([0, 16]), 0, -20, c, "norm")
    assert r.tolist()[:2] == [2**23 - 1] * 2 and r[2] == 2**18
    assert s.tolist() == [2**23 - 1, 2**18] and c.to_dict() == {"soma": 2, "norm": 1}
    with pytest.raises(SimulationError):
        reciprocal_fixed(np.array([0]), 0, -20, None, "soma")


# ---- activations -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "function,bound", [("gelu_erf", 6e-6), ("gelu_tanh", 6e-6), ("silu", 8e-6), ("relu", 2.0**-19), ("identity", 0)]
)
def test_activation_accuracy(function, bound):
    x = quantize(np.linspace(-24, 24, 480001), -18)
    y = activation_fixed(function, x, -18, -18, SaturationCounter(), function)
    ref = activation("relu" if function == "identity" else function, to_float(x, -18))
    if function == "identity":
        ref = to_float(x, -18)
    assert np.abs(to_float(y, -18) - ref).max() <= bound


def test_activation_changes_exponent():
    x = quantize(np.array([-3.0, 0.5, 3.0]), -16)
    y = activation_fixed("gelu_erf", x, -16, -20, SaturationCounter(), "a")
    np.testing.assert_allclose(to_float(y, -20), activation("gelu_erf", np.array([-3.0, 0.5, 3.0])), atol=2e-6)
