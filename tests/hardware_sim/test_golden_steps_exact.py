"""The integer step functions of the golden simulator (score, slot response, soma, gated output,
Hebbian write/read, synapses, population input, rotary, norm), bit for bit against the independent
model in conftest.py, on random small inputs that include saturating ones."""

import math
from collections import Counter
from fractions import Fraction
from itertools import product
from types import SimpleNamespace

import numpy as np
import pytest

from hardware_sim.fixed_point import SaturationCounter
from hardware_sim.golden.fixed_circuit import (
    gated_output_step,
    hebbian_read_step,
    hebbian_write_step,
    scale_q22,
    soma_step,
)
from hardware_sim.golden.fixed_features import ScoreParams, score_params, score_step, slot_response_step
from hardware_sim.golden.fixed_neurons import (
    NormParams,
    SynapseParams,
    norm_params,
    norm_step,
    rotary_step,
    soma_input,
    synapse_step,
)
from hardware_sim.golden.fixed_registry import Fx

RNG = np.random.default_rng(7)


def rand(shape, bits):
    """Signed integers of mixed magnitudes up to 2**bits."""
    mags = np.floor(2.0 ** RNG.uniform(0, bits, shape)).astype(np.int64)
    return np.where(RNG.random(shape) < 0.5, -mags, mags)


def check(counter: SaturationCounter, model: Counter):
    assert counter.to_dict() == {k: v for k, v in sorted(model.items()) if v}


def test_score_params_is_the_scale_in_24_bits():
    for scale in (0.125, 1 / math.sqrt(32), 1 / math.sqrt(3), 0.7071067811865476, 3.0):
        p = score_params(SimpleNamespace(scale=scale, name="f", kind="features", quant={"score_exp": -12}), -10, -9)
        assert 2**22 <= p.scale < 2**23 and (p.qk_exp, p.score_exp) == (-19, -12)
        assert abs(Fraction(p.scale) * Fraction(2) ** p.scale_exp - Fraction(scale)) <= Fraction(2) ** (
            p.scale_exp - 1)


@pytest.mark.parametrize("causal", [False, True])
def test_score_step_bit_exact(im, causal):
    p = ScoreParams(scale=6000000, scale_exp=-25, qk_exp=-30, score_exp=-14)
    q, keys = rand((2, 3, 4), 24), rand((2, 5, 4), 24)
    visible = np.arange(5)[None, :] <= np.arange(3)[:, None] if causal else None
    counter, model = SaturationCounter(), Counter()
    got = score_step(p, q, keys, counter, "f", visible)
    a_exp = p.score_exp - p.scale_exp - 23
    for b, t, j in product(range(2), range(3), range(5)):
        acc = sum(int(q[b, t, d]) * int(keys[b, j, d]) for d in range(4)) if not causal or j <= t else 0
        a = im.sat(im.shift(acc, p.qk_exp - a_exp), 32, model, "f")
        assert int(got[b, t, j]) == im.sat(im.shift(a * p.scale, -23), 24, model, "f")
    check(counter, model)


def test_slot_response_step_bit_exact(im):
    potential = rand((2, 3, 6), 22)
    written = RNG.random((2, 1, 6)) < 0.6
    written[1, 0] = False  # a head with nothing written: offset 0, no response
    counter, model = SaturationCounter(), Counter()
    f, s = slot_response_step(potential, written, -14, -20, counter, "f")
    for b, t in product(range(2), range(3)):
        ws = [j for j in range(6) if written[b, 0, j]]
        offset = max((int(potential[b, t, j]) for j in ws), default=0)
        assert int(s[b, t]) == offset
        for j in range(6):
            want = im.exp(int(potential[b, t, j]) - offset, -14, -20, model, "f") if j in ws else 0
            assert int(f[b, t, j]) == want
    check(counter, model)


@pytest.mark.parametrize("eps", [0.0, 1e-3])
def test_soma_step_bit_exact(im, eps):
    c = np.abs(rand((2, 2, 3, 5), 23))
    f = np.abs(rand((2, 2, 3, 5), 23))
    f[0, 0, 0] = 0  # a soma with nothing to sum
    c_exp, f_exp, z_exp, r_exp = -20, -22, -18, -12
    counter, model = SaturationCounter(), Counter()
    r, p_exp, z, recip, alive = soma_step(c, f, c_exp, f_exp, z_exp, r_exp, eps, counter, "a")
    assert p_exp == c_exp + f_exp + 22
    for idx in product(range(2), range(2), range(3)):
        rs = [im.sat(im.shift(int(c[idx][j]) * int(f[idx][j]), -22), 24, model, "a") for j in range(5)]
        assert r[idx].tolist() == rs
        zz = im.sat(im.shift(sum(rs), p_exp - z_exp), 24, model, "a")
        assert int(z[idx]) == zz
        if eps > 0:
            want = im.reciprocal(zz + im.quantize(eps, z_exp, 24, model, "a"), z_exp, r_exp, model, "a")
        else:
            want = im.reciprocal(zz, z_exp, r_exp, model, "a") if zz > 0 else 0
            assert bool(alive[idx]) == (zz > 0)
        assert int(recip[idx]) == want
    check(counter, model)


@pytest.mark.parametrize("n_kv", [1, 2])
def test_gated_output_step_bit_exact(im, n_kv):
    r, recip = np.abs(rand((2, 2, 3, 4), 23)), np.abs(rand((2, 2, 3), 20))
    H = rand((2, n_kv, 5, 4), 23)
    p_exp, r_exp, w_exp, y_exp = -40, -8, -12, -10
    counter, model = SaturationCounter(), Counter()
    y = gated_output_step(r, recip, H, p_exp, r_exp, w_exp, y_exp, n_kv, counter, "a")
    for b, h, t in product(range(2), range(2), range(3)):
        a = [im.sat(im.shift(int(r[b, h, t, j]) * int(recip[b, h, t]), p_exp + r_exp + 22), 24, model, "a")
             for j in range(4)]
        g = h // (2 // n_kv)
        for i in range(5):
            acc = sum(int(H[b, g, i, j]) * a[j] for j in range(4))
            assert int(y[b, h, t, i]) == im.sat(im.shift(acc, -22 + w_exp - y_exp), 24, model, "a")
    check(counter, model)


def test_hebbian_write_and_read_bit_exact(im):
    v, fk, fq = rand((2, 3, 4), 23), rand((2, 3, 5), 23), rand((2, 6, 5), 23)
    counter, model = SaturationCounter(), Counter()
    H = hebbian_write_step(v, fk, -10, -20, -16, counter, "h")
    u = hebbian_read_step(H, fq, -20, -16, -9, counter, "h")
    for b in range(2):
        Hm = [[im.sat(im.shift(sum(int(v[b, t, i]) * int(fk[b, t, j]) for t in range(3)), -10 - 20 + 16), 24,
                      model, "h") for j in range(5)] for i in range(4)]
        assert H[b].tolist() == Hm
        for t, i in product(range(6), range(4)):
            acc = sum(Hm[i][j] * int(fq[b, t, j]) for j in range(5))
            assert int(u[b, t, i]) == im.sat(im.shift(acc, -16 - 20 + 9), 24, model, "h")
    check(counter, model)


def test_scale_q22_bit_exact(im):
    x = rand((40,), 24)
    for scale in (0.0, 0.3, 1.0, 1.7):
        counter, model = SaturationCounter(), Counter()
        q = im.quantize(scale, -22, 32)
        want = [im.sat(im.shift(int(v) * q, -22), 24, model, "w") for v in x]
        assert scale_q22(x, scale, counter, "w").tolist() == want
        check(counter, model)


@pytest.mark.parametrize("kind", ["dense", "per_row", "one_to_one"])
def test_synapse_step_bit_exact(im, kind):
    M = None if kind == "one_to_one" else RNG.integers(-128, 128, (4, 6))
    w_exp = RNG.integers(-8, -2, 4) if kind == "per_row" else -5
    bias = rand((4 if M is not None else 6,), 21)
    p = SynapseParams(M, w_exp, bias, -11, -13)
    x = rand((3, 6), 24)
    counter, model = SaturationCounter(), Counter()
    got = synapse_step(p, x, counter, "s")
    for b in range(3):
        if M is None:
            want = [im.sat(im.shift(int(x[b, i]), 2) + int(bias[i]), 24, model, "s") for i in range(6)]
        else:
            we = np.broadcast_to(w_exp, 4)
            want = [im.sat(im.shift(sum(int(M[i, j]) * int(x[b, j]) for j in range(6)), int(we[i]) - 11 + 13)
                           + int(bias[i]), 24, model, "s") for i in range(4)]
        assert got[b].tolist() == want
    check(counter, model)


def test_soma_input_sum_and_product_bit_exact(im):
    a, b, c = Fx(rand((3, 5), 24), -10), Fx(rand((3, 5), 24), -14), Fx(rand((3, 5), 24), -7)
    counter, model = SaturationCounter(), Counter()
    got = soma_input([a, b, c], False, -12, counter, "p")
    want = [[im.sat(sum(im.shift(int(i.q[r, k]), i.exp + 12) for i in (a, b, c)), 24, model, "p")
             for k in range(5)] for r in range(3)]
    assert got.tolist() == want
    got = soma_input([a, b], True, -20, counter, "p")
    want = [[im.sat(im.shift(int(a.q[r, k]) * int(b.q[r, k]), -10 - 14 + 20), 24, model, "p") for k in range(5)]
            for r in range(3)]
    assert got.tolist() == want
    check(counter, model)


@pytest.mark.parametrize("pairing", ["half", "interleaved"])
def test_rotary_step_bit_exact(im, pairing):
    rope = {"n_heads": 2, "head_dim": 6, "rotary_dim": 4, "pairing": pairing, "base": 10000.0}
    u = rand((2, 3, 12), 24)
    cos, sin = rand((2, 3, 2), 22), rand((2, 3, 2), 22)
    counter, model = SaturationCounter(), Counter()
    got = rotary_step(u, cos, sin, rope, -12, -13, counter, "rot")
    s = -12 - 22 + 13
    for b, t, h in product(range(2), range(3), range(2)):
        x = [int(v) for v in u[b, t, h * 6 : (h + 1) * 6]]
        pairs = [(0, 2), (1, 3)] if pairing == "half" else [(0, 1), (2, 3)]
        out = list(x)
        for i, (ia, ib) in enumerate(pairs):
            C, S = int(cos[b, t, i]), int(sin[b, t, i])
            out[ia] = im.shift(x[ia] * C - x[ib] * S, s)
            out[ib] = im.shift(x[ib] * C + x[ia] * S, s)
        out[4:] = [im.shift(v, -12 + 13) for v in x[4:]]
        assert got[b, t, h * 6 : (h + 1) * 6].tolist() == [im.sat(v, 24, model, "rot") for v in out]
    check(counter, model)


@pytest.mark.parametrize("mode, n", [("layer", 6), ("rms", 6), ("layer", 8)])
def test_norm_params_and_step_bit_exact(im, mode, n):
    weight, bias = RNG.normal(1, 0.3, n), RNG.normal(0, 0.2, n)
    op = SimpleNamespace(name="ln", kind="norm_astrocyte", size=n, mode=mode, eps=1e-5, weight=weight,
                         bias=bias if mode == "layer" else None, quant={"exp": -18, "gain_exp": -16})
    counter, model = SaturationCounter(), Counter()
    p = norm_params(op, -14, counter)
    s = 23 + math.ceil(math.log2(n))
    g = [Fraction(float(w)) * Fraction(math.sqrt(n)) for w in weight]
    assert isinstance(p, NormParams) and (p.n, p.layer, p.inv_shift) == (n, mode == "layer", s)
    assert p.inv_n == im.round_half_up(Fraction(2**s, n))
    assert p.eps == im.round_half_up(Fraction(n) * Fraction(1e-5) * 2**28)
    assert p.r_exp == -16 - int(math.log2(n)) // 2
    assert p.gain.tolist() == [im.quantize(float(v), p.gain_exp) for v in g]
    assert 2**22 <= max(abs(int(v)) for v in p.gain) < 2**23
    x = rand((4, n), 22)
    y, r = norm_step(p, x, counter, "ln")
    for row in range(4):
        xs = [int(v) for v in x[row]]
        c = [v - im.shift(sum(xs) * p.inv_n, -s) for v in xs] if mode == "layer" else xs
        rr = im.rsqrt(sum(v * v for v in c) + p.eps, -28, p.r_exp, model, "ln")
        assert int(r[row]) == rr
        t = [im.sat(im.shift(v * rr, -14 + p.r_exp + 22), 24, model, "ln") for v in c]
        out = [im.shift(tv * int(gv), -22 + p.gain_exp + 18) for tv, gv in zip(t, p.gain)]
        if p.bias is not None:
            out = [o + int(bv) for o, bv in zip(out, p.bias)]
        assert y[row].tolist() == [im.sat(o, 24, model, "ln") for o in out]
    check(counter, model)
