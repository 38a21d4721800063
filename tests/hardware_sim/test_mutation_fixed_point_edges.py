"""Edges of the integer arithmetic, bit for bit and count for count against the Python-int model of
conftest.py: the exponential's table of its own values (made, refused, used, bypassed), saturation
names and widths passed on, shifts by zero of values beyond 2**62, float32 inputs rounded as their
exact values, table positions beyond either end."""

from collections import Counter

import numpy as np
import pytest

from hardware_sim.fixed_point import SaturationCounter, exp_fixed, quantize, shift
from hardware_sim.fixed_point import exp2 as exp2_module
from hardware_sim.fixed_point.exp2 import exp_direct, exp_nonpositive
from hardware_sim.fixed_point.tables import interpolate


def ints(values) -> list[int]:
    return [int(v) for v in np.asarray(values).ravel()]


def check_exp(im, fn, x, x_exp, y_exp, bits, name="e"):
    counter, model = SaturationCounter(), Counter()
    got = fn(np.asarray(x, dtype=np.int64), x_exp, y_exp, counter, name, bits)
    assert got.dtype == np.int64
    assert ints(got) == [im.exp(int(v), x_exp, y_exp, model, name, bits=bits) for v in x]
    assert counter.to_dict() == {k: v for k, v in model.items() if v}
    return model


def test_the_table_once_made_serves_only_inputs_in_its_range(im, monkeypatch):
    """Inputs below -2**31 (counted as saturated) or above 0 go to the arithmetic, never the table."""
    monkeypatch.setattr(exp2_module, "_MEMOS", {})
    x_exp, y_exp = -4, -16
    warm = -np.arange(300, dtype=np.int64)
    for _ in range(2):
        np.testing.assert_array_equal(exp_nonpositive(warm, x_exp, y_exp), exp_direct(warm, x_exp, y_exp))
    assert exp2_module._MEMOS[(x_exp, y_exp, 24)].table is not None
    below = [0, -3, -(2**31) - 5, -(2**31) - 2**30]
    assert check_exp(im, exp_nonpositive, below, x_exp, y_exp, 24)["e"] == 2
    for above in ([0, -3, 1], [0, -3, 1, 5], [2, 7]):
        check_exp(im, exp_nonpositive, above, x_exp, y_exp, 24)
    check_exp(im, exp_nonpositive, [0, -1, -199, -200, -5000, -(2**31)], x_exp, y_exp, 24)


@pytest.mark.parametrize("bits", [20, 24])
def test_a_table_that_would_saturate_is_never_made(im, monkeypatch, bits):
    """exp(0) at 2**-19 needs 21 bits: at 20 bits every call saturates and is counted under the caller's
    name, however often it is asked; at 24 bits the table is made and gives the same integers."""
    monkeypatch.setattr(exp2_module, "_MEMOS", {})
    x_exp, y_exp = -4, -19
    x = -np.arange(300, dtype=np.int64)
    for _ in range(3):
        model = check_exp(im, exp_nonpositive, x, x_exp, y_exp, bits)
        assert (model["e"] > 0) == (bits == 20)
    memo = exp2_module._MEMOS[(x_exp, y_exp, bits)]
    assert (memo.table is None) == (bits == 20)


def test_exp_fixed_passes_counter_name_and_width_to_the_table_path(im, monkeypatch):
    monkeypatch.setattr(exp2_module, "_MEMOS", {})
    x = -np.arange(0, 3000, 7, dtype=np.int64)
    for _ in range(2):
        assert check_exp(im, exp_fixed, x, -6, -22, 20, "soft")["soft"] > 0
    assert check_exp(im, exp_fixed, x, -6, -12, 16, "soft")["soft"] == 0


def test_exp_of_no_values():
    for fn in (exp_fixed, exp_nonpositive, exp_direct):
        out = fn(np.zeros((0,), dtype=np.int64), -4, -16)
        assert out.shape == (0,)
    assert exp_fixed(np.zeros((2, 0), dtype=np.int64), -4, -16).shape == (2, 0)


def test_an_unnamed_exp_saturation_is_counted_under_a_question_mark():
    counter = SaturationCounter()
    exp_direct(np.array([0, -1]), -10, -23, counter)
    assert counter.to_dict() == {"?": 1}


def test_a_shift_by_zero_clamps_values_beyond_2_to_62(im):
    x = np.array([2**62 + 5, 7, 2**62 + 3, -5], dtype=np.int64)
    s = np.array([0, -1, -2, 0])
    assert ints(shift(x, s)) == [im.shift(int(v), int(k)) for v, k in zip(x, s)]
    assert int(shift(x, s)[0]) == 2**62


def test_float32_inputs_round_as_their_exact_values(im):
    """0.5 - 2**-25 rounds to 0 (its float32 sum with 0.5 would round up to 1)."""
    x = np.array([0.5 - 2**-25, -(0.5 + 2**-24), 2.5 - 2**-22, 1.5], dtype=np.float32)
    counter, model = SaturationCounter(), Counter()
    got = quantize(x, 0, 24, counter, "q")
    assert ints(got) == [im.quantize(float(v), 0, 24, model, "q") for v in x] == [0, -1, 2, 2]


def test_table_positions_beyond_either_end_are_clamped(im):
    table = np.array([5, 2**22, 2**22 + 3, 2**23, 2**23], dtype=np.int64)
    n = table.shape[0] - 2
    for pos in ([(n + 3) << 16], [(n + 1) << 16, 2**16], [-5], [-(2**16) - 1, 3 << 15], [0, n << 16]):
        assert ints(interpolate(table, np.array(pos))) == [im.interpolate(table.tolist(), p) for p in pos]


def test_the_table_is_made_once_callers_asked_for_as_many_values_as_it_holds(monkeypatch):
    """However the values are asked for (here one call of N - 2 values and then one at a time), the
    table exists exactly from the call that brings the total to N, and every answer is exp_direct's."""
    monkeypatch.setattr(exp2_module, "_MEMOS", {})
    x_exp, y_exp = -4, -16
    first = np.array([-3])
    np.testing.assert_array_equal(exp_nonpositive(first, x_exp, y_exp), exp_direct(first, x_exp, y_exp))
    memo = exp2_module._MEMOS[(x_exp, y_exp, 24)]
    n = memo.n
    assert n > 10 and int(exp_direct(np.array([-n]), x_exp, y_exp)[0]) == 0
    chunk = -np.arange(n - 2, dtype=np.int64)
    np.testing.assert_array_equal(exp_nonpositive(chunk, x_exp, y_exp), exp_direct(chunk, x_exp, y_exp))
    assert memo.table is None and exp2_module._MEMOS[(x_exp, y_exp, 24)] is memo  # n - 1 asked
    last = np.array([-7])
    np.testing.assert_array_equal(exp_nonpositive(last, x_exp, y_exp), exp_direct(last, x_exp, y_exp))
    assert exp2_module._MEMOS[(x_exp, y_exp, 24)] is memo and memo.table is not None  # n asked


def test_products_bounded_by_the_largest_magnitude_of_either_sign():
    """A large negative operand counts in the exactness bound: the product stays exact (int64 path)."""
    from hardware_sim.fixed_point.accumulate import FloatProduct, exact_product

    a = np.array([[-(2**40) - 12345, 7]])
    b = np.array([[2**20 + 977], [3]])
    assert exact_product(a, b).tolist() == [[(-(2**40) - 12345) * (2**20 + 977) + 21]]
    assert exact_product(b.T, -a.T).tolist() == [[(2**40 + 12345) * (2**20 + 977) - 21]]
    one = FloatProduct(np.array([[128]]))
    assert one(np.array([[-(2**46)]])) is None and one(np.array([[-(2**45)]])).tolist() == [[-(2**52)]]


def test_the_summed_axis_of_a_batched_product_bounds_it():
    """(2, 1, 1024) @ (1024, 3): the 1024 summed terms, not the batch's middle axis, set the bound."""
    from hardware_sim.fixed_point.accumulate import exact_product

    rng = np.random.default_rng(5)
    a = rng.integers(2**22, 2**23, (2, 1, 1024))
    b = rng.integers(2**22, 2**23, (1024, 3))
    got = exact_product(a, b)
    want = [[[sum(int(a[i, 0, k]) * int(b[k, j]) for k in range(1024)) for j in range(3)]] for i in range(2)]
    assert got.dtype == np.int64 and got.tolist() == want


@pytest.mark.parametrize("y_exp", [-31, -32])
def test_a_table_of_values_beyond_31_bits_keeps_them(im, monkeypatch, y_exp):
    """At 40 bits, exp(0) at 2**-31 is 2**31 and at 2**-32 is 2**32: read from the table, they are
    still exp_direct's integers."""
    monkeypatch.setattr(exp2_module, "_MEMOS", {})
    x = -np.arange(0, 4000, 3, dtype=np.int64)
    for _ in range(2):
        got = exp_nonpositive(x, -6, y_exp, bits=40)
        np.testing.assert_array_equal(got, exp_direct(x, -6, y_exp, bits=40))
    assert exp2_module._MEMOS[(-6, y_exp, 40)].table is not None
    assert int(got[0]) == 2 ** (-31 - y_exp + 31) and got.dtype == np.int64
    check_exp(im, exp_nonpositive, [0, -1, -2, -64], -6, y_exp, 40)


def test_narrow_integer_payloads_and_mantissas_convert_in_float64():
    """int8 mantissas and payloads (numpy would compute ldexp of int8 in float16) give exact float64 values,
    exponents held as floats (as read back from a record) too."""
    from hardware_sim.fixed_point import dequantize_weights
    from hardware_sim.fixed_point.formats import to_float

    m = np.array([[127, -128, 3], [1, -1, 77]], dtype=np.int8)
    e = np.array([-30, 20])
    want = [[float(v) * 2.0 ** int(e[i]) for v in row] for i, row in enumerate(m.tolist())]
    got = dequantize_weights(m, e, axis=0)
    assert got.dtype == np.float64 and got.tolist() == want
    q = np.array([100, -7, 127], dtype=np.int8)
    for exponent in (-20, np.int64(-20), -20.0, np.array([-20.0, -20.0, -20.0])):
        got = to_float(q, exponent)
        assert got.dtype == np.float64 and got.tolist() == [100 * 2.0**-20, -7 * 2.0**-20, 127 * 2.0**-20]
    assert to_float(np.array([2049], dtype=np.int16), 0).tolist() == [2049.0]


def test_float16_weights_quantise_as_their_exact_values():
    from hardware_sim.fixed_point import quantize_weights

    rng = np.random.default_rng(9)
    w = (rng.standard_normal((4, 6)) * 2.0 ** rng.integers(-12, 8, (4, 1))).astype(np.float16)
    for axis in (None, 0):
        got_m, got_e = quantize_weights(w, axis=axis)
        want_m, want_e = quantize_weights(w.astype(np.float64), axis=axis)
        assert got_m.tolist() == want_m.tolist() and np.array_equal(got_e, want_e)


def test_table_entries_round_a_float32_function_exactly():
    """round(fn(x) 2**22) of the function's own (float32) values: 1 + 2**-23 + 2**-24 rounds up to
    2**22 + 1 (a float32 sum with 0.5 would round to even first)."""
    from fractions import Fraction

    from hardware_sim.fixed_point.tables import make_table

    xs = np.arange(9) / 8
    values = (np.exp2(xs) + 2.0**-23 + 2.0**-24).astype(np.float32)
    values[0] = np.float32(1 + 2**-23)  # 2**22 + 0.5 exactly: half up
    table = make_table(lambda t: values, xs)
    want = [int(np.floor(Fraction(float(v)) * 2**22 + Fraction(1, 2))) for v in values]
    assert table.tolist() == want + want[-1:]
    assert table[0] == 2**22 + 1


@pytest.mark.parametrize("exponent", [-3.0, np.array([-3.0, -2.0])])
def test_exponents_held_as_floats(im, exponent):
    """Exponents read back as floats (an integer value) work as the integers they hold."""
    from hardware_sim.fixed_point import dequantize_weights

    x = np.array([0.3, -1.7])
    ints_e = np.asarray(exponent, dtype=np.int64)
    assert ints(quantize(x, exponent)) == ints(quantize(x, ints_e))
    m = np.array([[3, -5], [7, 1]])
    assert dequantize_weights(m, exponent).tolist() == dequantize_weights(m, ints_e).tolist()


def test_shift_counts_held_as_floats(im):
    from hardware_sim.fixed_point.shifts import lshift_clamped

    x = np.array([3, -5, 2**61, -(2**60) - 1])
    for k in (2.0, np.array([2.0, 0.0, 1.0, 3.0])):
        want = [im.shift(int(v), int(s)) for v, s in zip(x, np.broadcast_to(k, x.shape))]
        assert ints(lshift_clamped(x, k)) == want


def test_float_held_inputs_read_from_the_table(im, monkeypatch):
    """Integer inputs held in float64 give the table's integers once it exists."""
    monkeypatch.setattr(exp2_module, "_MEMOS", {})
    x = -np.arange(0, 600, dtype=np.int64)
    for _ in range(2):
        exp_nonpositive(x, -4, -16)
    assert exp2_module._MEMOS[(-4, -16, 24)].table is not None
    held = x.astype(np.float64)
    got = exp_nonpositive(held, -4, -16)
    assert got.dtype == np.int64 and np.array_equal(got, exp_direct(x, -4, -16))
    assert np.array_equal(exp_fixed(held, -4, -16), got)


def test_right_shift_counts_held_as_floats(im):
    from hardware_sim.fixed_point.shifts import rshift_round

    x = np.array([5, -5, 2**40 + 3, -7])
    k = np.array([1.0, 1.0, 20.0, 0.0])
    assert ints(rshift_round(x, k)) == [im.shift(int(v), -int(s)) for v, s in zip(x, k)]
