"""The integer steps of learned circuits (map synapses, divisive softmax halves, a window's damping and
its one normaliser) bit for bit against the independent Python-int model in conftest.py, and close to
the float Hedgehog maps."""

from collections import Counter
from fractions import Fraction
from itertools import product
from types import SimpleNamespace

import numpy as np
import pytest

from compiler.distill.hedgehog import hedgehog
from compiler.errors import SimulationError
from hardware_sim.fixed_point import SaturationCounter, quantize_weights, to_float
from hardware_sim.golden.fixed_learned import (
    MapParams,
    floating_reciprocal,
    hedgehog_step,
    learned_output_step,
    learned_soma_step,
    logits_step,
    map_columns,
    map_params,
    normalise_step,
)
from hardware_sim.golden.fixed_window import HybridParams, exp_parts, hybrid_step

RNG = np.random.default_rng(11)


def rand(shape, bits):
    mags = np.floor(2.0 ** RNG.uniform(0, bits, shape)).astype(np.int64)
    return np.where(RNG.random(shape) < 0.5, -mags, mags)


def check(counter: SaturationCounter, model: Counter):
    assert counter.to_dict() == {k: v for k, v in sorted(model.items()) if v}


def learned_op(N=2, d=3, n=4, z_exp=-16, f_exp=-22, seed=0, spread=6):
    """Columns of magnitudes 2**-spread .. 2**spread: one exponent each."""
    rng = np.random.default_rng(seed)
    weight = rng.standard_normal((N, d, n)) * 2.0 ** rng.integers(-spread, spread + 1, (N, 1, n))
    bias = rng.standard_normal((N, n))
    _, e = quantize_weights(map_columns(weight), axis=0)
    quant = {"exp": f_exp, "k_w_exp": [int(v) for v in e], "k_logit_exp": z_exp}
    return SimpleNamespace(name="f", kind="features", k_weight=weight, k_bias=bias, quant=quant)


def test_map_params_are_8_bit_column_mantissas_and_a_rounded_bias(im):
    op = learned_op()
    p = map_params(op, "k", -12)
    N, d, n = op.k_weight.shape
    for h, j, i in product(range(N), range(n), range(d)):
        e = op.quant["k_w_exp"][h * n + j]
        want = max(-128, min(127, im.round_half_up(Fraction(float(op.k_weight[h, i, j])) / Fraction(2) ** e)))
        assert int(p.mantissa[h, j, i]) == want and int(p.w_exp[h, j]) == e
        assert int(p.bias[h, j]) == im.quantize(float(op.k_bias[h, j]), -16)
    assert (p.x_exp, p.z_exp, p.f_exp) == (-12, -16, -22)


def test_map_params_without_recorded_exponents_is_one_line():
    op = learned_op()
    del op.quant["k_w_exp"]
    with pytest.raises(SimulationError, match="no quant\\['k_w_exp'\\] for its 8 map columns"):
        map_params(op, "k", -12)


def test_logits_step_bit_exact(im):
    N, n, d = 2, 5, 4
    mant = rand((N, n, d), 7)
    w_exp = RNG.integers(-14, 0, (N, n))
    bias = rand((N, n), 22)
    p = MapParams(mant, w_exp, bias, x_exp=-18, z_exp=-15, f_exp=-22)
    x = rand((2, N, 3, d), 24)
    counter, model = SaturationCounter(), Counter()
    z = logits_step(p, x, counter, "f")
    for b, h, t, j in product(range(2), range(N), range(3), range(n)):
        acc = sum(int(mant[h, j, i]) * int(x[b, h, t, i]) for i in range(d))
        want = im.sat(im.shift(acc, int(w_exp[h, j]) - 18 + 15) + int(bias[h, j]), 24, model, "f")
        assert int(z[b, h, t, j]) == want
    assert model["f"] > 0  # some logits saturate
    check(counter, model)


def model_normalise(im, zs, z_exp, f_exp, model):
    s = max(zs)
    p = [im.exp(z - s, z_exp, -22, model, "f") for z in zs]
    recip = im.reciprocal(sum(p), -22, -22, model, "f")
    return [im.sat(im.shift(v * recip, -44 - f_exp), 24, model, "f") for v in p]


@pytest.mark.parametrize("f_exp", [-22, -26])
def test_normalise_step_bit_exact(im, f_exp):
    z = rand((3, 2, 6), 21)
    z[0, 0] = 5  # a flat row: every feature 1/n
    counter, model = SaturationCounter(), Counter()
    f = normalise_step(z, -16, f_exp, counter, "f")
    for idx in product(range(3), range(2)):
        assert f[idx].tolist() == model_normalise(im, [int(v) for v in z[idx]], -16, f_exp, model)
    if f_exp == -26:
        assert model["f"] > 0  # a feature of 1 does not fit at 2**-26: saturated and counted
    check(counter, model)


def test_hedgehog_step_is_both_halves_bit_exact(im):
    p = MapParams(rand((1, 3, 2), 7), np.full((1, 3), -8), rand((1, 3), 16), x_exp=-16, z_exp=-14, f_exp=-22)
    x = rand((1, 1, 4, 2), 20)
    counter, model = SaturationCounter(), Counter()
    f = hedgehog_step(p, x, counter, "f")
    for t in range(4):
        zs = [im.sat(im.shift(sum(int(p.mantissa[0, j, i]) * int(x[0, 0, t, i]) for i in range(2)), -8 - 16 + 14)
                     + int(p.bias[0, j]), 24, model, "f") for j in range(3)]
        want = model_normalise(im, zs, -14, -22, model) + model_normalise(im, [-z for z in zs], -14, -22, model)
        assert f[0, 0, t].tolist() == want
    check(counter, model)


def test_integer_features_are_the_float_maps_within_the_rounding():
    """Measured bound: with maps held in 8-bit mantissas, the integer features differ from the float
    maps of those same mantissas by less than 3e-6 absolute (exp table, reciprocal and 2**-22 steps)."""
    op = learned_op(N=3, d=8, n=16, z_exp=-18, spread=0)
    p = map_params(op, "k", -20)
    x = rand((2, 3, 50, 8), 21)
    f = to_float(hedgehog_step(p, x, SaturationCounter(), "f"), -22)
    held = np.ldexp(p.mantissa.astype(np.float64), p.w_exp[..., None]).transpose(0, 2, 1)
    want = hedgehog(to_float(x, -20), held, to_float(p.bias, -18))
    err = np.abs(f - want).max()
    assert err < 3e-6, err
    np.testing.assert_allclose(f.reshape(2, 3, 50, 2, 16).sum(-1), 1.0, atol=2e-5)  # each half sums to 1


def model_exp_parts(im, x, x_exp, model):
    x = im.sat(x, 32, model, "a")
    u = im.shift(x * im.LOG2E, x_exp - 30 + 26)
    return im.interpolate(im.EXP2_TABLE, u % 2**26), max(-200, min(200, u >> 26))


def test_exp_parts_bit_exact_and_close_to_exp(im):
    x = np.concatenate([rand((40,), 24), [0, 2**31, -(2**33)]])
    counter, model = SaturationCounter(), Counter()
    d, n = exp_parts(x, -19, counter, "a")
    for i, v in enumerate(x):
        assert (int(d[i]), int(n[i])) == model_exp_parts(im, int(v), -19, model)
    check(counter, model)
    small = np.abs(x[:40]) < 2**23
    approx = d[:40][small] * 2.0 ** (n[:40][small] - 22.0)
    np.testing.assert_allclose(approx, np.exp(x[:40][small] * 2.0**-19), rtol=3e-7)


def test_hybrid_step_bit_exact(im):
    """Block floating point: exact sums aligned at the larger exponent, the floating reciprocal, the
    mixed read-out cut to 31 bits; gains and offsets of any size (a spans 2**30 at e_s = -19)."""
    p = HybridParams(c_exp=-17, f_exp=-22, s_exp=-19, z_exp=-14, u_exp=-15, v_exp=-18, y_exp=-18)
    c, read = np.abs(rand((2, 3, 4), 23)), np.abs(rand((2, 3, 4), 22))
    esum, a = np.abs(rand((2, 3), 24)), rand((2, 3), 30)
    esum[0, 0], c[0, 0] = 0, 0  # nothing held, nothing written: z = 0 divides nothing
    ev, u = rand((2, 3, 5), 46), rand((2, 3, 5), 23)
    counter, model = SaturationCounter(), Counter()
    y, z = hybrid_step(c, read, esum, ev, a, u, p, counter, "a")
    p_exp = p.c_exp + p.f_exp + 22
    for idx in product(range(2), range(3)):
        rs = [im.sat(im.shift(int(c[idx][j]) * int(read[idx][j]), -22), 24, model, "a") for j in range(4)]
        d, n = model_exp_parts(im, int(a[idx]), p.s_exp, model)
        ze = max(p_exp + n - 22, p.f_exp)
        zz = im.shift(sum(rs) * d, p_exp + n - 22 - ze) + im.shift(int(esum[idx]), p.f_exp - ze)
        assert int(z[idx]) == max(-(2**23), min(2**23 - 1, im.shift(zz, ze - p.z_exp)))
        recip, r_exp = model_reciprocal(im, zz, ze, model)
        for i in range(5):
            me = max(p.u_exp + n - 22, p.f_exp + p.v_exp)
            mixed = im.shift(int(u[idx][i]) * d, p.u_exp + n - 22 - me) + im.shift(int(ev[idx][i]),
                                                                                  p.f_exp + p.v_exp - me)
            k = max(abs(mixed).bit_length() - 31, 0)
            want = im.sat(im.shift(im.shift(mixed, -k) * recip, me + k + r_exp - p.y_exp), 24, model, "a")
            assert int(y[idx][i]) == want
    assert model["a"] > 0
    check(counter, model)


def model_reciprocal(im, z, z_exp, model):
    """1/z at an exponent of its own, r_exp = -22 - (floor(log2 z) + z_exp); 0 for z <= 0."""
    if z <= 0:
        return 0, -22 - z_exp
    r_exp = -22 - (z.bit_length() - 1 + z_exp)
    return im.reciprocal(z, z_exp, r_exp, model, "a"), r_exp


def test_floating_reciprocal_keeps_22_bits_at_any_soma(im):
    z = np.concatenate([np.abs(rand((30,), 24)), [0, 1, 2**23 - 1]])
    counter, model = SaturationCounter(), Counter()
    recip, r_exp = floating_reciprocal(z, -13, counter, "a")
    for i, v in enumerate(z):
        want, e = model_reciprocal(im, int(v), -13, model)
        assert int(recip[i]) == want
        if v > 0:
            assert int(r_exp[i]) == e and 2**21 <= want <= 2**22
    live = z > 0
    np.testing.assert_allclose(recip[live] * 2.0 ** r_exp[live], 1 / (z[live] * 2.0**-13), rtol=5e-7)
    check(counter, model)


@pytest.mark.parametrize("eps", [0.0, 1e-3])
def test_learned_soma_and_output_bit_exact(im, eps):
    c, f = np.abs(rand((2, 3, 6), 23)), np.abs(rand((2, 3, 6), 22))
    c[0, 0] = 0  # nothing written: z = 0 outputs 0
    u = rand((2, 3, 4), 24)
    counter, model = SaturationCounter(), Counter()
    z, recip, r_exp = learned_soma_step(c, f, -15, -22, -12, eps, counter, "a")
    y = learned_output_step(u, recip, r_exp, -11, -17, counter, "a")
    for idx in product(range(2), range(3)):
        rs = [im.sat(im.shift(int(c[idx][j]) * int(f[idx][j]), -22), 24, model, "a") for j in range(6)]
        zz = im.sat(im.shift(sum(rs), -15 - 22 + 22 + 12), 24, model, "a")
        assert int(z[idx]) == zz
        if eps > 0:
            zz += im.quantize(eps, -12, 24, model, "a")
        recip_m, e = model_reciprocal(im, zz, -12, model)
        assert int(recip[idx]) == recip_m
        for i in range(4):
            assert int(y[idx][i]) == im.sat(im.shift(int(u[idx][i]) * recip_m, -11 + e + 17), 24, model, "a")
    assert model["a"] > 0
    check(counter, model)
