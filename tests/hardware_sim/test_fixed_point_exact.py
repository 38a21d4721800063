"""Every integer primitive of hardware_sim/fixed_point, bit for bit against the independent model in
conftest.py (Python ints, Fractions, 40-digit decimals), on exhaustive or random small inputs.

A one-LSB change to a table entry, a constant or a rounding rule changes some output here.
"""

from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

from hardware_sim.fixed_point import (
    SaturationCounter,
    activation_fixed,
    division,
    exp2,
    exp_fixed,
    exponent_for,
    quantize,
    quantize_weights,
    reciprocal_fixed,
    rescale,
    rsqrt_fixed,
    saturate,
    shift,
    synaptic_accumulate,
    tables,
)
from hardware_sim.fixed_point.accumulate import exact_matmul, exact_product
from hardware_sim.fixed_point.activations import GATES
from hardware_sim.fixed_point.exp2 import exp2_fixed
from hardware_sim.fixed_point.shifts import lshift_clamped, rshift_round

RNG = np.random.default_rng(20261201)


def ints(values) -> list[int]:
    return [int(v) for v in np.ravel(values)]


def wide(n, bits=30):
    """``n`` signed integers of magnitudes spread over 0..2**bits (every size class sampled)."""
    mags = np.floor(2.0 ** RNG.uniform(0, bits, n)).astype(np.int64)
    return np.where(RNG.random(n) < 0.5, -mags, mags)


def edges(bits=24):
    top = 2 ** (bits - 1)
    return np.array([0, 1, -1, 2, -2, 3, top - 1, -top, top, -top - 1, top + 1, 2 * top, -2 * top], dtype=np.int64)


def same_counts(counter: SaturationCounter, model: Counter) -> None:
    assert counter.to_dict() == {k: v for k, v in sorted(model.items()) if v}


# ---- tables and constants ---------------------------------------------------------------------------
def test_tables_and_constants_equal_their_definitions(im):
    assert exp2.EXP2_TABLE.tolist() == im.EXP2_TABLE
    assert exp2.LOG2E == im.LOG2E
    assert division.RECIP_TABLE.tolist() == im.RECIP_TABLE
    assert division.RSQRT_TABLE.tolist() == im.RSQRT_TABLE
    for name, (table, range_log2) in im.GATES.items():
        assert GATES[name].table.tolist() == table, name
        assert GATES[name].range_log2 == range_log2


# ---- shifts, saturation, quantisation -----------------------------------------------------------------
@pytest.mark.parametrize("s", [*range(-64, 0), *range(0, 65, 3)])
def test_shift_bit_exact(im, s):
    x = np.concatenate([edges(), wide(200, 62), np.array([2**62 - 1, -(2**62), 2**61, -(2**61) - 1])])
    assert ints(shift(x, s)) == [im.shift(v, s) for v in ints(x)]


def test_shift_by_array_and_the_two_halves(im):
    x, s = wide(500, 40), RNG.integers(-45, 25, 500)
    assert ints(shift(x, s)) == [im.shift(int(a), int(b)) for a, b in zip(x, s)]
    k = RNG.integers(0, 40, 500)
    assert ints(rshift_round(x, k)) == [im.shift(int(a), -int(b)) for a, b in zip(x, k)]
    assert ints(lshift_clamped(x, k)) == [im.shift(int(a), int(b)) for a, b in zip(x, k)]


@pytest.mark.parametrize("bits", [8, 24, 32])
def test_saturate_bit_exact_and_counted(im, bits):
    x = np.concatenate([edges(bits), wide(300, bits + 2)])
    counter, model = SaturationCounter(), Counter()
    assert ints(saturate(x, bits, counter, "p")) == [im.sat(v, bits, model, "p") for v in ints(x)]
    same_counts(counter, model)


def test_quantize_rounds_half_up_exactly(im):
    x = np.concatenate([RNG.normal(0, 4, 300), np.array([0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 1e30, -1e30, 0.0])])
    for e in (-20, -3, 0, 2):
        counter, model = SaturationCounter(), Counter()
        assert ints(quantize(x, e, 24, counter, "q")) == [im.quantize(float(v), e, 24, model, "q") for v in x]
        same_counts(counter, model)


def test_floor_log2_exhaustive_small_and_random_large():
    x = np.concatenate([np.arange(1, 1 << 16), np.abs(wide(2000, 62)) + 1])
    assert ints(tables.floor_log2(x)) == [int(v).bit_length() - 1 for v in x]
    assert ints(tables.floor_log2(np.array([0, -5]))) == [-1, -1]


def test_interpolation_exhaustive_over_two_entries_and_random(im):
    table = exp2.EXP2_TABLE
    pos = np.concatenate([np.arange(-5, 2 * 2**16 + 5), RNG.integers(-(2**20), 1030 * 2**16, 3000)])
    assert ints(tables.interpolate(table, pos)) == [im.interpolate(im.EXP2_TABLE, int(p)) for p in pos]


# ---- exp, reciprocal, inverse square root --------------------------------------------------------------
@pytest.mark.parametrize("x_exp, y_exp", [(-16, -22), (-20, -16), (-10, -23), (0, -8), (-30, -22)])
def test_exp_bit_exact(im, x_exp, y_exp):
    x = np.concatenate([edges(32), wide(600, 33), np.arange(-300, 300)])
    counter, model = SaturationCounter(), Counter()
    got = ints(exp_fixed(x, x_exp, y_exp, counter, "e"))
    assert got == [im.exp(v, x_exp, y_exp, model, "e") for v in ints(x)]
    same_counts(counter, model)


def test_exp2_bit_exact(im):
    u = np.concatenate([wide(600, 40), np.arange(-3000, 3000, 7)])
    for u_frac, y_exp in ((26, -22), (20, -10), (30, -23)):
        counter, model = SaturationCounter(), Counter()
        assert ints(exp2_fixed(u, u_frac, y_exp, counter, "e")) == [im.exp2(v, u_frac, y_exp, model, "e")
                                                                    for v in ints(u)]
        same_counts(counter, model)


@pytest.mark.parametrize("z_exp, y_exp", [(-20, -22), (-8, -16), (0, -23), (-30, -10)])
def test_reciprocal_bit_exact(im, z_exp, y_exp):
    z = np.concatenate([np.arange(-3, 4097), wide(1500, 40), np.array([2**23 - 1, 2**40 + 12345])])
    counter, model = SaturationCounter(), Counter()
    got = ints(reciprocal_fixed(z, z_exp, y_exp, counter, "r"))
    assert got == [im.reciprocal(v, z_exp, y_exp, model, "r") for v in ints(z)]
    same_counts(counter, model)


@pytest.mark.parametrize("v_exp, y_exp", [(-40, -22), (-13, -20), (0, -23), (-7, -12)])
def test_rsqrt_bit_exact(im, v_exp, y_exp):
    v = np.concatenate([np.arange(-3, 4097), wide(1500, 50), np.array([2**48 - 1, 2**47])])
    counter, model = SaturationCounter(), Counter()
    got = ints(rsqrt_fixed(v, v_exp, y_exp, counter, "s"))
    assert got == [im.rsqrt(x, v_exp, y_exp, model, "s") for x in ints(v)]
    same_counts(counter, model)


def test_division_error_bounds_at_their_measured_values():
    """Relative errors over every 13th input of [1, 2) at 23 fraction bits, outputs at 22 fraction bits:
    the measured maxima (seed, Newton step and output rounding), so a coarser table, a wrong Newton
    constant or another rounding exceeds them.  (Module docstring: reciprocal <= 2**-22 + rounding,
    rsqrt <= 1.5 2**-24 + rounding; output rounding alone is up to 2**-23 = 1.2e-7.)"""
    z = np.arange(1 << 23, 1 << 24, 13, dtype=np.int64)
    counter = SaturationCounter()
    r = reciprocal_fixed(z, -23, -22, counter, "r") * 2.0**-22
    assert np.abs(r * (z * 2.0**-23) - 1).max() == pytest.approx(3.3871e-7, rel=1e-4)
    for v_exp, bound in ((-23, 2.4938e-7), (-22, 3.5938e-7)):
        s = rsqrt_fixed(z, v_exp, -22, counter, "s") * 2.0**-22
        assert np.abs(s * np.sqrt(z * 2.0**v_exp) - 1).max() == pytest.approx(bound, rel=1e-4)
    assert counter.total == 0


# ---- activations ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("function", ["gelu_erf", "gelu_tanh", "silu", "relu", "identity"])
@pytest.mark.parametrize("x_exp, y_exp", [(-18, -18), (-16, -20), (-12, -10)])
def test_activation_bit_exact(im, function, x_exp, y_exp):
    x = np.concatenate([edges(), wide(800, 25), np.arange(-2000, 2000, 3)])
    counter, model = SaturationCounter(), Counter()
    got = ints(activation_fixed(function, x, x_exp, y_exp, counter, "a"))
    assert got == [im.activation(function, v, x_exp, y_exp, model, "a") for v in ints(x)]
    same_counts(counter, model)


# ---- accumulation and weights --------------------------------------------------------------------------
def matvec(M, x):
    return [sum(int(m) * int(v) for m, v in zip(row, x)) for row in M]


@pytest.mark.parametrize("per_row", [False, True])
def test_synaptic_accumulate_bit_exact(im, per_row):
    post, pre = 7, 11
    M = RNG.integers(-128, 128, (post, pre))
    w_exp = RNG.integers(-9, -3, post) if per_row else -6
    bias = RNG.integers(-(2**20), 2**20, post)
    for _ in range(20):
        x = RNG.integers(-(2**23), 2**23, pre)
        counter, model = SaturationCounter(), Counter()
        got = ints(synaptic_accumulate(x, M, w_exp, -12, -14, bias, counter, "s"))
        we = [int(w) for w in np.broadcast_to(w_exp, post)]
        want = [im.sat(im.shift(a, e - 12 + 14) + int(b), 24, model, "s")
                for a, e, b in zip(matvec(M, x), we, bias)]
        assert got == want
        same_counts(counter, model)


def test_exact_products_equal_python_sums():
    a, b = RNG.integers(-(2**23), 2**23, (3, 5, 9)), RNG.integers(-128, 128, (9, 4))
    want = [[[sum(int(a[i, j, k]) * int(b[k, c]) for k in range(9)) for c in range(4)] for j in range(5)]
            for i in range(3)]
    assert exact_product(a, b).tolist() == want
    assert exact_matmul(a, b.T).tolist() == want
    big = RNG.integers(-(2**28), 2**28, (4, 6))  # beyond 2**53 partial sums: the int64 path
    assert exact_product(big, big.T).tolist() == [[sum(int(p) * int(q) for p, q in zip(r, s)) for s in big]
                                                 for r in big]


def test_rescale_bit_exact(im):
    x = wide(500, 30)
    for x_exp, y_exp in ((-10, -14), (-14, -10), (-3, -3)):
        counter, model = SaturationCounter(), Counter()
        assert ints(rescale(x, x_exp, y_exp, counter, "r")) == [im.sat(im.shift(v, x_exp - y_exp), 24, model, "r")
                                                               for v in ints(x)]
        same_counts(counter, model)


def test_weight_exponent_minimises_the_exact_squared_error(im):
    """quantize_weights picks, among e0, e0-1, e0-2 (e0 the first exponent holding max |w|), the one of
    least squared error (the largest on ties); mantissas round half up and clip to 8 bits."""
    for seed in range(25):
        w = np.random.default_rng(seed).standard_t(2 + seed % 3, size=(6, 5)) * 2.0 ** (seed % 7 - 3)
        m, e = quantize_weights(w, axis=0)
        for row, mrow, erow in zip(w, m, e):
            top = max(abs(Fraction(float(v))) for v in row)
            e0 = next(k for k in range(-60, 60) if top <= 127 * Fraction(2) ** k)
            errs = {}
            for k in (e0, e0 - 1, e0 - 2):
                mk = [max(-128, min(127, im.round_half_up(Fraction(float(v)) / Fraction(2) ** k))) for v in row]
                errs[k] = (sum((Fraction(float(v)) - q * Fraction(2) ** k) ** 2 for v, q in zip(row, mk)), mk)
            best = min(errs, key=lambda k: (errs[k][0], -k))
            assert int(erow) == best and ints(mrow) == errs[best][1]


# ---- table builders, exponents, exact paths and refusals ----------------------------------------------
def test_table_builders_reproduce_the_tables_from_their_definitions(im):
    """Rebuilding each table now (not at import) from its gate or function gives the model's entries."""
    from hardware_sim.fixed_point import activations
    from hardware_sim.fixed_point.activations import GateTable
    from hardware_sim.fixed_point.tables import make_table

    gates = {"gelu_erf": activations._phi, "gelu_tanh": activations._tanh_gate, "silu": activations._sigmoid}
    for name, fn in gates.items():
        table, range_log2 = im.GATES[name]
        built = GateTable.build(fn, range_log2, 11)
        assert (built.range_log2, built.index_bits) == (range_log2, 11)
        assert built.table.tolist() == table, name
    xs = np.arange(1025) / 1024
    assert make_table(np.exp2, xs).tolist() == im.EXP2_TABLE


def test_exponent_for_is_the_smallest_that_holds_the_range():
    for top in [1e-9, 0.3, 1.0, 8388607.0, 8388608.0, 3.7e5, 1e12, 2.0**-30, 127.0, 128.0]:
        for bits, headroom in ((24, 1.0), (8, 1.0), (24, 1.5), (16, 4.0)):
            e = exponent_for(top, bits, headroom)
            limit = 2 ** (bits - 1) - 1
            want = Fraction(top) * Fraction(headroom)
            assert want <= limit * Fraction(2) ** e, (top, bits, headroom, e)
            assert not want <= limit * Fraction(2) ** (e - 1), (top, bits, headroom, e)
    unit = exponent_for(1.0)  # -22: (2**23 - 1) 2**-23 < 1
    assert exponent_for(0.0) == exponent_for(float("nan")) == exponent_for(float("inf")) == unit == -22


def test_wide_operands_take_the_exact_integer_path():
    """Beyond 2**53 a float product would round: these must still be exact."""
    x = np.array([[2**50 + 1, -(2**50) + 3, 2**49 + 7]], dtype=np.int64)
    m = np.array([[127, 127, -128], [1, -1, 3]], dtype=np.int64)
    want = [[sum(int(a) * int(b) for a, b in zip(x[0], row)) for row in m]]
    assert exact_matmul(x, m).tolist() == want
    assert exact_product(x, m.T).tolist() == want
    with pytest.raises(ValueError, match="63 bits"):
        exact_product(np.array([[2**40] * 4]), np.array([[2**30]] * 4))
    with pytest.raises(ValueError, match="fan-in 4194305"):
        exact_matmul(np.zeros((1, (1 << 22) + 1), np.int64), np.zeros((1, (1 << 22) + 1), np.int64))


def test_refusals_without_a_counter_name_the_quantity():
    from compiler.errors import SimulationError

    with pytest.raises(SimulationError, match=r"^2 non-positive input\(s\) to soma and no saturation counter"):
        reciprocal_fixed(np.array([0, -3, 5]), 0, -10, None, "soma")
    with pytest.raises(SimulationError, match=r"^1 non-positive input\(s\) to a division"):
        rsqrt_fixed(np.array([0, 4]), 0, -10)
    with pytest.raises(SimulationError, match=r"^1 value\(s\) of ln overflow 24 bits"):
        saturate(np.array([1 << 23, 5]), 24, None, "ln")
    counter = SaturationCounter()
    reciprocal_fixed(np.array([0, -3, 5]), 0, -10, counter)
    assert counter.to_dict() == {"?": 2}
