"""Behaviour of hardware_sim/fixed_point that the bit-exact tests leave open, each checked against
Python integers, ``fractions.Fraction`` or the independent model of conftest.py: unnamed saturations,
payloads held in float64 (as Lava ports carry them) or narrow integer types, empty operands, the
exact-product bounds at their edges, exponents at log2 rounding edges, ties in the weight exponent,
and the exact text of messages and summaries.
"""

from collections import Counter
from fractions import Fraction

import numpy as np
import pytest

from compiler.errors import SimulationError
from hardware_sim.fixed_point import (
    SaturationCounter,
    activation_fixed,
    dequantize_weights,
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
from hardware_sim.fixed_point import exp2 as exp2_module
from hardware_sim.fixed_point.accumulate import MAX_EXACT_FAN_IN, exact_matmul, exact_product
from hardware_sim.fixed_point.exp2 import exp2_fixed, exp_nonpositive
from hardware_sim.fixed_point.shifts import lshift_clamped, rshift_round

RNG = np.random.default_rng(20261202)
TOP = 2**23 - 1


def ints(values) -> list[int]:
    return [int(v) for v in np.ravel(values)]


def dot(a, b) -> list:
    """Python-int matrix product of nested lists."""
    return [[sum(int(x) * int(y) for x, y in zip(row, col)) for col in zip(*b)] for row in a]


# ---- an unnamed quantity counts under "?" and default widths are 24 bits -------------------------------
UNNAMED = {
    "saturate": lambda c: saturate(np.array([2**23, 5]), counter=c),
    "rescale": lambda c: rescale(np.array([TOP, 1]), 0, -1, counter=c),
    "synaptic_accumulate": lambda c: synaptic_accumulate(np.array([TOP, 1]), None, 0, 0, -1, counter=c),
    "reciprocal_fixed": lambda c: reciprocal_fixed(np.array([0, 4]), 0, -10, counter=c),
    "rsqrt_fixed": lambda c: rsqrt_fixed(np.array([-1, 4]), 0, -10, counter=c),
    "exp2_fixed": lambda c: exp2_fixed(np.array([40 << 26, 0]), 26, 0, counter=c),
    "exp_fixed": lambda c: exp_fixed(np.array([100, 0]), 0, 0, counter=c),
    "quantize": lambda c: quantize(np.array([2.0**23, 1.0]), 0, counter=c),
    "activation_fixed": lambda c: activation_fixed("identity", np.array([2**23, 3]), 0, 0, counter=c),
    "exp_nonpositive": lambda c: exp_nonpositive(np.array([0, -1]), -10, -23, counter=c),
}


@pytest.mark.parametrize("name", sorted(UNNAMED))
def test_an_unnamed_saturation_is_counted_under_a_question_mark_at_24_bits(name):
    counter = SaturationCounter()
    out = UNNAMED[name](counter)
    assert counter.to_dict() == {"?": 1}
    assert int(np.max(out)) == TOP  # the default width is 24 bits


def test_an_unnamed_refusal_says_so():
    with pytest.raises(SimulationError, match=r"^1 value\(s\) of an unnamed quantity overflow 24 bits and no "
                                              r"saturation counter was given; pass a SaturationCounter$"):
        saturate(np.array([-(2**23) - 1]))
    with pytest.raises(SimulationError, match=r"no saturation counter was given; pass a SaturationCounter$"):
        reciprocal_fixed(np.array([0]), 0, 0)


def test_exp_passes_its_width_on(im):
    x = np.array([0, 5000, -5000, 2**20, 30000])
    counter, model = SaturationCounter(), Counter()
    got = ints(exp_fixed(x, -12, -10, counter, "e", bits=16))
    assert got == [im.exp(v, -12, -10, model, "e", bits=16) for v in ints(x)]
    assert counter.to_dict() == dict(model) and model["e"] > 0


def test_saturation_summary_text():
    counter = SaturationCounter()
    assert counter.summary() == "no saturation"
    counter.add("b", 1)
    counter.add("a", 3)
    counter.add("c", 0)
    assert counter.summary() == "4 saturated values (a: 3, b: 1)"


def test_unknown_activation_names_the_known_ones():
    with pytest.raises(ValueError, match=r"^unknown activation 'tanh'; known: relu, identity, gelu_erf, "
                                         r"gelu_tanh, silu$"):
        activation_fixed("tanh", np.array([1]), 0, 0)


# ---- payloads held in float64 or narrow integer types ---------------------------------------------------
HELD = {
    "shift_left": lambda x: shift(x, 5),
    "shift_right": lambda x: shift(x, -5),
    "shift_array": lambda x: shift(x, np.array([3, -3, 0, -1, 2, -7])),
    "rshift_round": lambda x: rshift_round(x, 4),
    "lshift_clamped": lambda x: lshift_clamped(x, 3),
    "saturate": lambda x: saturate(x, 24, SaturationCounter()),
    "floor_log2": tables.floor_log2,
    "interpolate": lambda x: tables.interpolate(np.arange(0, 2**20, 2**10), x),
    "reciprocal": lambda x: reciprocal_fixed(x, -10, -12, SaturationCounter()),
    "rsqrt": lambda x: rsqrt_fixed(x, -10, -12, SaturationCounter()),
    "exp2": lambda x: exp2_fixed(x, 20, -16, SaturationCounter()),
    "exp": lambda x: exp_fixed(x, -20, -16, SaturationCounter()),
    "gelu": lambda x: activation_fixed("gelu_erf", x, -18, -18, SaturationCounter()),
    "accumulate": lambda x: synaptic_accumulate(x, np.arange(-18, 18).reshape(6, 6), -3, -10, -12, None,
                                                SaturationCounter()),
    "matmul": lambda x: exact_matmul(x[None], np.arange(-18, 18).reshape(6, 6)),
    "product": lambda x: exact_product(x[None], np.arange(-18, 18).reshape(6, 6)),
    "product_wide": lambda x: exact_product(x[None], np.full((6, 2), 2**23 + 1)),  # beyond 2**53: int64 path
    "product_wide_right": lambda x: exact_product(np.full((2, 6), 2**23 + 1), x[:, None]),
    "rescale": lambda x: rescale(x, -3, -6, SaturationCounter()),
}


@pytest.mark.parametrize("name", sorted(HELD))
@pytest.mark.parametrize("held", [np.float64, np.int32])
def test_integer_payloads_held_in_float64_or_int32_give_the_int64_result(name, held):
    """Lava ports carry fixed-point messages as float64; every primitive takes them as int64."""
    x = np.array([2**31 - 1, -(2**31), 2**23 - 1, -(2**23), 12345, 0], dtype=np.int64)
    want = HELD[name](x)
    got = HELD[name](x.astype(held))
    assert got.dtype == np.int64 and ints(got) == ints(want)


def test_mantissas_held_in_float64_give_the_int64_product():
    x = np.array([[2**40 + 1, -(2**33) + 5, 7]], dtype=np.int64)  # wide: the integer path
    m = np.array([[127, -128, 3], [1, 1, 1]])
    for held in (m, m.astype(np.float64), m.astype(np.int8)):
        got = exact_matmul(x, held)
        assert got.dtype == np.int64 and got.tolist() == dot(x.tolist(), m.T.tolist())


def test_narrow_operands_are_summed_in_64_bits():
    x = np.array([[2**30, 2**30 - 1, -(2**29)]], dtype=np.int32)
    m = np.array([[127, 127, -128], [-128, 5, 1]], dtype=np.int8)
    want = dot(x.tolist(), m.T.tolist())
    assert exact_matmul(x, m).tolist() == want
    a = np.array([[2**30, 2**30, 2**30]], dtype=np.int32)
    b = np.array([[2**30], [2**30], [-(2**30)]], dtype=np.int32)  # bound 3 2**60: the integer path
    assert exact_product(a, b).tolist() == dot(a.tolist(), b.tolist())


# ---- exact products at the edges of their bounds --------------------------------------------------------
def test_products_are_int64_also_on_the_float_path():
    a, m = RNG.integers(-100, 100, (3, 4)), RNG.integers(-100, 100, (5, 4))
    assert exact_matmul(a, m).dtype == np.int64 and exact_product(a, m.T).dtype == np.int64
    assert exact_matmul(a, m).tolist() == dot(a.tolist(), m.T.tolist())


def test_empty_operands():
    m = np.ones((3, 4), dtype=np.int64)
    assert exact_matmul(np.zeros((0, 4), dtype=np.int64), m).shape == (0, 3)
    assert exact_product(np.zeros((0, 4), dtype=np.int64), m.T).shape == (0, 3)
    assert exact_product(np.zeros((2, 0), dtype=np.int64), np.zeros((0, 3), dtype=np.int64)).tolist() == [[0] * 3] * 2


def test_a_zero_operand_is_never_refused():
    huge = np.full((4, 2), 2**62, dtype=np.int64)
    assert exact_product(np.zeros((3, 4), dtype=np.int64), huge).tolist() == [[0, 0]] * 3
    assert exact_product(np.zeros((0, 4), dtype=np.int64), huge).shape == (0, 2)
    assert exact_matmul(np.ones((2, 4), dtype=np.int64), np.zeros((0, 4), dtype=np.int64)).shape == (2, 0)


def test_one_term_products_up_to_63_bits():
    a, b = np.array([[3 * 2**30]]), np.array([[-(2**31) + 3]])  # bound 1.5 2**62: no sum to overflow
    assert exact_product(a, b).tolist() == [[3 * 2**30 * (-(2**31) + 3)]]


def test_a_product_beyond_53_bits_is_exact():
    a, b = np.array([[2**27 - 1]]), np.array([[2**26 + 1]])  # 2**53 + 2**26 - 1 has no float64 form
    assert exact_product(a, b).tolist() == [[(2**27 - 1) * (2**26 + 1)]]
    a3 = np.array([[[2**27 - 1, 1]]])  # (1, 1, 2): the summed axis is the last one
    b3 = np.array([[2**26 + 1], [1]])
    assert exact_product(a3, b3).tolist() == [[[(2**27 - 1) * (2**26 + 1) + 1]]]


def test_the_summed_axis_of_a_batch_bounds_the_product():
    """A (2, 1, 8) batch: the bound counts the 8 summed terms, not the 1 row."""
    a = np.full((2, 1, 8), 2**26 + 1, dtype=np.int64)
    b = np.full((8, 1), 2**26 + 3, dtype=np.int64)
    assert exact_product(a, b).tolist() == [[[8 * (2**26 + 1) * (2**26 + 3)]]] * 2
    a = np.full((1, 8, 2), 2**25 + 1, dtype=np.int64)  # here the rows outnumber the summed terms
    b = np.full((2, 1), 2**26 + 3, dtype=np.int64)
    assert exact_product(a, b).tolist() == [[[2 * (2**25 + 1) * (2**26 + 3)]] * 8]


@pytest.mark.parametrize("k, mag", [(2, 2**31), (3, 2**31)])
def test_products_that_may_leave_63_bits_are_refused(k, mag):
    """``2 (2**31)**2 = 2**63`` already overflows int64; ``3 2**62`` too."""
    a, b = np.full((1, k), -mag, dtype=np.int64), np.full((k, 1), -mag, dtype=np.int64)
    with pytest.raises(ValueError, match=rf"^integer product of {k} terms may exceed 63 bits"):
        exact_product(a, b)


def test_fan_in_at_the_bound_is_accepted():
    n = MAX_EXACT_FAN_IN
    x = np.zeros((1, n), dtype=np.int64)
    x[0, :3] = [TOP, -(2**23), 17]
    m = np.zeros((1, n), dtype=np.int64)
    m[0, :3] = [127, -128, 3]
    assert exact_matmul(x, m).tolist() == [[TOP * 127 + 2**23 * 128 + 51]]


def test_one_to_one_synapses(im):
    x = RNG.integers(-(2**23), 2**23, 40)
    counter, model = SaturationCounter(), Counter()
    got = ints(synaptic_accumulate(x, None, 1, -10, -10, np.full(40, 5), counter, "o"))
    assert got == [im.sat(im.shift(v, 1) + 5, 24, model, "o") for v in ints(x)]
    assert counter.to_dict() == dict(model)


# ---- divisions: invalid inputs counted once at any exponent ----------------------------------------------
@pytest.mark.parametrize("fn", [reciprocal_fixed, rsqrt_fixed])
@pytest.mark.parametrize("x_exp, y_exp", [(-60, 0), (-90, 10), (0, -23)])
def test_an_invalid_input_is_counted_once_at_any_exponent(fn, x_exp, y_exp):
    counter = SaturationCounter()
    out = fn(np.array([0, -5, 0]), x_exp, y_exp, counter, "d")
    assert ints(out) == [TOP] * 3 and counter.to_dict() == {"d": 3}


# ---- exp2 beyond 200 octaves ----------------------------------------------------------------------------
@pytest.mark.parametrize("u_int, y_exp", [(-250, -230), (-201, -222), (250, 200), (201, 179)])
def test_exp2_octaves_are_clamped_at_200(im, u_int, y_exp):
    u = np.array([u_int << 20, (u_int << 20) + 12345])
    counter, model = SaturationCounter(), Counter()
    assert ints(exp2_fixed(u, 20, y_exp, counter, "x")) == [im.exp2(int(v), 20, y_exp, model, "x") for v in u]
    assert counter.to_dict() == dict(model)


# ---- exponents at log2 rounding edges -----------------------------------------------------------------
@pytest.mark.parametrize("bits", [8, 16, 24])
def test_exponent_for_just_above_a_format_limit(bits):
    """``nextafter(limit 2**e)`` needs ``e + 1`` although ``log2`` of its ratio rounds to ``e``."""
    limit = 2 ** (bits - 1) - 1
    for e in (-40, -7, 0, 5):
        top = float(np.nextafter(limit * 2.0**e, np.inf))
        assert exponent_for(top, bits) == e + 1
        assert exponent_for(limit * 2.0**e, bits) == e
    assert exponent_for(float(TOP)) == 0  # the default headroom is 1


# ---- weights ------------------------------------------------------------------------------------------
def best_exponent(w, bits=8):
    """The exponent of least exact squared error among e0, e0-1, e0-2 (largest on ties)."""
    vals = [Fraction(float(v)) for v in np.ravel(w)]
    top = max((abs(v) for v in vals), default=Fraction(0)) or Fraction(1)
    e0 = next(k for k in range(-80, 80) if top <= (2 ** (bits - 1) - 1) * Fraction(2) ** k)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def err(k):
        return sum((v - max(lo, min(hi, int(np.floor(v / Fraction(2) ** k + Fraction(1, 2))))) * Fraction(2) ** k)
                   ** 2 for v in vals)

    return min((e0, e0 - 1, e0 - 2), key=lambda k: (err(k), -k))


def test_one_exponent_for_a_group_minimises_the_exact_error():
    for seed in range(30):
        w = np.random.default_rng(seed).standard_t(2 + seed % 3, size=(5, 4)) * 2.0 ** (seed % 9 - 4)
        m, e = quantize_weights(w)
        assert isinstance(e, int) and e == best_exponent(w), seed
        assert m.dtype == np.int64
        assert ints(m) == [max(-128, min(127, int(np.floor(Fraction(float(v)) / Fraction(2) ** e + Fraction(1, 2)))))
                           for v in np.ravel(w)]


def test_ties_keep_the_largest_exponent():
    w = np.array([0.5, -0.25, 1.0, 0.0])  # exact at e0, e0-1 and e0-2: every error is 0
    assert quantize_weights(w)[1] == exponent_for(1.0, 8)
    m, e = quantize_weights(np.stack([w, 2 * w]), axis=0)
    assert e.dtype == np.int64 and e.tolist() == [exponent_for(1.0, 8), exponent_for(2.0, 8)]
    assert quantize_weights(np.zeros(3))[1] == exponent_for(1.0, 8)


def test_empty_weights():
    m, e = quantize_weights(np.zeros(0))
    assert m.shape == (0,) and e == exponent_for(1.0, 8)
    m, e = quantize_weights(np.zeros((3, 0)), axis=0)
    assert m.shape == (3, 0) and e.tolist() == [exponent_for(1.0, 8)] * 3


def test_float32_weights_quantise_as_their_exact_values():
    w = (np.random.default_rng(4).standard_normal((6, 7)) * 0.05).astype(np.float32)
    for axis in (None, 0, 1):
        m32, e32 = quantize_weights(w, axis=axis)
        m64, e64 = quantize_weights(w.astype(np.float64), axis=axis)
        assert np.array_equal(m32, m64) and np.array_equal(e32, e64)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_per_axis_exponents_round_trip(axis):
    w = np.random.default_rng(axis).standard_normal((3, 4, 5)) * np.array([1.0, 0.01, 10.0, 0.5, 3.0])
    m, e = quantize_weights(w, axis=axis)
    assert e.shape == (w.shape[axis],) and e.dtype == np.int64
    back = dequantize_weights(m, e, axis=axis)
    shape = [1, 1, 1]
    shape[axis] = -1
    want = [float(Fraction(int(q)) * Fraction(2) ** int(k)) for q, k in
            zip(np.ravel(m), np.ravel(np.broadcast_to(e.reshape(shape), w.shape)))]
    assert back.dtype == np.float64 and np.ravel(back).tolist() == want
    for i in range(w.shape[axis]):
        assert int(e[i]) == best_exponent(np.take(w, i, axis=axis))


# ---- tables ---------------------------------------------------------------------------------------------
def test_interpolation_clamps_at_position_zero_on_a_steep_table(im):
    table = np.array([0, 2**22, 2**22 + 5, 2**22 + 5], dtype=np.int64)
    pos = np.array([-7, 0, 1, 2**15, 2**16 - 1, 2 << 16, (2 << 16) + 9])
    assert ints(tables.interpolate(table, pos)) == [im.interpolate(table.tolist(), int(p)) for p in pos]


def test_tables_are_int64():
    table = tables.make_table(np.exp2, np.arange(5) / 4)
    assert table.dtype == np.int64 and table.tolist()[-2:] == [2**23, 2**23]


def test_float32_values_quantise_as_their_exact_values(im):
    x = (RNG.standard_normal(200) * 3).astype(np.float32)
    for e in (-22, -10, 0):
        counter, model = SaturationCounter(), Counter()
        assert ints(quantize(x, e, 24, counter, "q")) == [im.quantize(float(v), e, 24, model, "q") for v in x]


def test_float_product_of_fixed_mantissas(im):
    from hardware_sim.fixed_point.accumulate import FloatProduct

    m = RNG.integers(-128, 128, (3, 5))
    product = FloatProduct(m)
    x = RNG.integers(-(2**23), 2**23, (4, 5))
    for held in (x, x.astype(np.float64)):
        got = product(held)
        assert got.dtype == np.int64 and got.tolist() == dot(x.tolist(), m.T.tolist())
    assert FloatProduct(m.astype(np.float64))(x).tolist() == dot(x.tolist(), m.T.tolist())
    assert product(np.zeros((0, 5), dtype=np.int64)) is None
    edge = FloatProduct(np.array([[128, 1, -1, 2]]))  # bound = max|x| 128 4: 2**53 exactly at |x| = 2**44
    assert edge(np.array([[2**44, 0, 0, 0]])) is None
    assert edge(np.array([[2**44 - 1, 3, 0, 0]])).tolist() == [[(2**44 - 1) * 128 + 3]]
    wide = FloatProduct(np.ones((1, 2**10), dtype=np.int64))  # the fan-in (last axis) counts, not the rows
    assert wide(np.full((1, 2**10), 2**43)) is None
    assert wide(np.full((1, 2**10), 2**42)).tolist() == [[2**52]]
    assert FloatProduct(np.zeros((2, 3), dtype=np.int64))(np.full((1, 3), 2**60)).tolist() == [[0, 0]]
    assert FloatProduct(np.zeros((0, 3), dtype=np.int64))(np.ones((1, 3), dtype=np.int64)).shape == (1, 0)
    one = FloatProduct(np.array([[128]]))  # a fan-in of one counts once
    assert one(np.array([[2**45]])).tolist() == [[2**52]] and one(np.array([[2**46]])) is None


@pytest.mark.parametrize("k", [0, 1, 3])
def test_left_shifts_clamp_exactly_at_2_to_62(im, k):
    limit = 2 ** (62 - k)
    x = np.array([limit - 1, -(limit - 1), limit, -limit, limit + 1, -limit - 1, 0, 7], dtype=np.int64)
    want = [im.shift(int(v), k) for v in x]
    assert ints(lshift_clamped(x, k)) == want and ints(shift(x, k)) == want
    assert ints(shift(x, np.full(x.shape, k))) == want
    assert ints(shift(x, np.array([0, -1, 0, -2, 0, 0, -3, 0]))) == [
        im.shift(int(v), int(s)) for v, s in zip(x, [0, -1, 0, -2, 0, 0, -3, 0])]


def test_exp_of_nonpositive_inputs_equals_exp_fixed_with_its_table(im, monkeypatch):
    """Before and after the memo table exists: values, dtype and counts of exp_fixed, for inputs in and
    beyond the table's range, held in int64 or float64."""
    monkeypatch.setattr(exp2_module, "_MEMOS", {})
    x_exp, y_exp = -12, -20
    bulk = -np.arange(0, 1 << 18, dtype=np.int64)
    for _ in range(3):  # the table is made once enough values were asked for
        got = exp_nonpositive(bulk, x_exp, y_exp)
        assert got.dtype == np.int64 and np.array_equal(got, exp_fixed(bulk, x_exp, y_exp))
    probe = np.array([0, -1, -2, -777, -(2**20), -(2**31), -(2**31) - 5, -(2**33), 1, 3], dtype=np.int64)
    for x in (probe, probe[:6], probe[:6].astype(np.float64)):
        counter, model = SaturationCounter(), Counter()
        got = exp_nonpositive(x, x_exp, y_exp, counter, "e", 16)
        assert got.dtype == np.int64
        assert ints(got) == [im.exp(int(v), x_exp, y_exp, model, "e", bits=16) for v in x]
        assert counter.to_dict() == {k: v for k, v in model.items() if v}
