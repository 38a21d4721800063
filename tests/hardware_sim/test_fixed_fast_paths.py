"""The fast paths of the integer arithmetic give the general paths' results bit for bit: shifts and
saturation that skip their clamp passes, table interpolation, the float64 synaptic product, the
memo table of exp, the one-hot slot write as a copy, and parameters prepared once per node."""

import dataclasses
import math

import numpy as np
import pytest

from hardware_sim.fixed_point import SaturationCounter, exact_matmul, exact_product, exp_fixed, saturate, shift
from hardware_sim.fixed_point import exp2 as exp2_module
from hardware_sim.fixed_point.accumulate import FloatProduct
from hardware_sim.fixed_point.exp2 import exp_direct, exp_nonpositive
from hardware_sim.fixed_point.shifts import lshift_clamped, rshift_round
from hardware_sim.fixed_point.tables import interpolate
from hardware_sim.golden.fixed_circuit import slot_write_product
from hardware_sim.golden.fixed_features import slot_writes_int
from hardware_sim.golden.fixed_neurons import SynapseParams, synapse_params, synapse_step
from hardware_sim.golden.fixed_prepared import node_key, prepared_on_node

RNG = np.random.default_rng(11)
BIG = 1 << 62


def wrap(x: int) -> int:
    """``x`` as int64 arithmetic leaves it (two's complement wrap-around)."""
    return (x + (1 << 63)) % (1 << 64) - (1 << 63)


def py_shift(x: int, s: int) -> int:
    """``x 2**s``: round half up for s < 0 (shifts capped at 62 bits), clamped to +-2**62 for s >= 0
    (int64's own ``|x|`` of -2**63 is negative, so that value wraps instead)."""
    if s >= 0:
        s = min(s, 62)
        return wrap(x << s) if abs(wrap(abs(x))) < (BIG >> s) or x == -(1 << 63) else (BIG if x >= 0 else -BIG)
    k = min(-s, 62)
    return wrap(x + (1 << (k - 1))) >> k


def mixed(shape, bits=63):
    """Signed int64 values of every magnitude up to 2**bits, with the int64 extremes mixed in."""
    mags = np.floor(2.0 ** RNG.uniform(0, bits - 1, shape)).astype(np.int64)
    x = np.where(RNG.random(shape) < 0.5, -mags, mags)
    x.flat[:4] = [BIG, -BIG, BIG - 1, (1 << 63) - 1][: x.size]
    return x


@pytest.mark.parametrize("s", [0, 1, 5, 40, 62, 70, -1, -7, -40, -62, -70])
def test_scalar_shift_matches_python_ints_with_clamps(s):
    x = mixed((400,))
    assert shift(x, s).tolist() == [py_shift(int(v), s) for v in x]
    small = RNG.integers(-(1 << 23), 1 << 23, 300)  # the fast case: nothing to clamp
    assert shift(small, s).tolist() == [py_shift(int(v), s) for v in small]


def test_shift_by_zero_still_clamps_beyond_62_bits():
    x = np.array([BIG, -BIG, BIG + 5, -(1 << 63), 3], dtype=np.int64)
    assert lshift_clamped(x, 0).tolist() == [BIG, -BIG, BIG, -(1 << 63), 3]
    assert shift(x, np.array([0, 0, 0, -1, -1])).tolist() == [BIG, -BIG, BIG, -(1 << 62), 2]


def test_array_shifts_match_python_ints():
    for _ in range(50):
        x = mixed((6, 5))
        s = RNG.integers(-70, 3, size=5) if RNG.random() < 0.5 else RNG.integers(-70, 1, size=(6, 1))
        want = [[py_shift(int(x[i, j]), int(np.broadcast_to(s, x.shape)[i, j])) for j in range(5)] for i in range(6)]
        assert shift(x, s).tolist() == want
        k = RNG.integers(0, 70, size=5)
        assert rshift_round(x, k).tolist() == [[py_shift(int(v), -int(kk)) if kk else int(v)
                                                 for v, kk in zip(row, k)] for row in x]


@pytest.mark.parametrize("bits", [8, 24, 32])
def test_saturation_counts_and_clamps_in_both_paths(bits):
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    for x in (RNG.integers(lo, hi + 1, 500), mixed((500,), bits + 2)):
        counter = SaturationCounter()
        y = saturate(x, bits, counter, "p")
        assert y.tolist() == [min(max(int(v), lo), hi) for v in x]
        assert counter.to_dict().get("p", 0) == sum(1 for v in x if not lo <= v <= hi)


def test_interpolation_inside_and_outside_the_table():
    table = np.append(RNG.integers(-(1 << 22), 1 << 22, 17), 0).astype(np.int64)
    table[-1] = table[-2]
    n = len(table) - 2
    for pos in (RNG.integers(0, n << 16, 300), RNG.integers(-(1 << 30), 1 << 30, 300)):
        want = []
        for p in pos.tolist():
            p = min(max(p, 0), n << 16)
            i, r = p >> 16, p & 0xFFFF
            want.append(int(table[i]) + ((int(table[i + 1] - table[i]) * r + (1 << 15)) >> 16))
        assert interpolate(table, pos).tolist() == want


def test_float_product_is_the_exact_integer_product_or_declines():
    m = RNG.integers(-128, 128, size=(7, 300))
    x = RNG.integers(-(1 << 23), 1 << 23, size=(3, 5, 300))
    got = FloatProduct(m)(x)
    want = [[[sum(int(a) * int(b) for a, b in zip(row, col)) for col in m] for row in rows] for rows in x]
    assert got.dtype == np.int64 and got.tolist() == want
    assert np.array_equal(got, exact_matmul(x, m))
    wide = x.copy()
    wide[0, 0, 0] = 1 << 40  # 2**40 * 128 * 300 > 2**53: not provably exact in float64
    assert FloatProduct(m)(wide) is None


def test_synapse_step_with_and_without_the_float_product():
    op = dataclasses.make_dataclass("Op", ["name", "weight", "bias", "quant"])(
        "s", RNG.normal(size=(9, 40)), RNG.normal(size=9) * 1e3, {"exp": -12, "w_exp": -8,
                                                                 "w_row_exp": list(range(-10, -1))})
    counter = SaturationCounter()
    p = synapse_params(op, -20, counter, "s")
    assert p.product is not None
    plain = SynapseParams(p.mantissa, p.w_exp, p.bias, p.x_exp, p.y_exp)
    x = RNG.integers(-(1 << 23), 1 << 23, size=(4, 40))
    a, b = SaturationCounter(), SaturationCounter()
    assert np.array_equal(synapse_step(p, x, a, "s"), synapse_step(plain, x, b, "s"))
    assert a.to_dict() == b.to_dict() and a.total > 0  # the biases of 1e3 at exponent -12 saturate outputs


def test_exp_memo_equals_the_arithmetic_before_and_after_its_table(monkeypatch):
    monkeypatch.setattr(exp2_module, "_MEMOS", {})
    x = -np.arange(0, 1 << 21, 3, dtype=np.int64)  # 700k values over the whole nonzero range and beyond
    x = np.concatenate([x, [-(1 << 25), -(1 << 31)]])
    first = exp_nonpositive(x[:1000], -15, -21)  # too few values asked for: no table yet
    assert exp2_module._MEMOS[(-15, -21, 24)].table is None
    assert np.array_equal(first, exp_direct(x[:1000], -15, -21))
    want = exp_direct(x, -15, -21)
    assert np.array_equal(exp_nonpositive(x, -15, -21), want)
    assert exp2_module._MEMOS[(-15, -21, 24)].table is not None
    assert np.array_equal(exp_fixed(x, -15, -21), want)  # the public function reads the same table
    assert np.array_equal(exp_fixed(x[::7], -15, -21), want[::7])
    counter_a, counter_b = SaturationCounter(), SaturationCounter()
    beyond = np.array([5, -3, -(1 << 33)], dtype=np.int64)  # positive and 32-bit-saturating inputs: the arithmetic
    got = exp_fixed(beyond, -15, -21, counter_a, "e")
    assert np.array_equal(got, exp_direct(beyond, -15, -21, counter_b, "e"))
    assert counter_a.to_dict() == counter_b.to_dict() == {"e": 1}


@pytest.mark.parametrize("start", [0, 5])
def test_slot_write_copy_equals_the_one_hot_product(start):
    op = dataclasses.make_dataclass("Op", ["name", "m", "n_kv_heads"])("f", 40, 2)
    B, G, T, dv = 3, 2, 9, 4
    w = (RNG.random((B, T)) < 0.7).astype(np.int64)
    v = RNG.integers(-(1 << 23), 1 << 23, size=(B, G, T, dv))
    write = slot_writes_int(op, w, -21, start, start + T)
    want = exact_product(np.swapaxes(v, -1, -2), write)
    got = slot_write_product(v, w, -21, start)
    assert got.shape == want.shape and np.array_equal(got, want)
    assert slot_write_product(v, w, -40, start) is None  # 2**23 2**40 9 >= 2**53: left to exact_product


def test_parameters_prepared_once_per_node_and_remade_when_it_changes():
    op = dataclasses.make_dataclass("Op", ["name", "weight", "bias", "quant"])(
        "s", RNG.normal(size=(3, 4)), np.array([1e9, 0.0, 0.0]), {"exp": -4, "w_exp": -7})
    made = []

    def prepare(x_exp, counter):
        def make(own):
            made.append(x_exp)
            return synapse_params(op, x_exp, own, op.name)
        return prepared_on_node(op, "synapses", node_key(op, x_exp), make, counter)

    runs = [SaturationCounter() for _ in range(3)]
    first = prepare(-10, runs[0])
    assert prepare(-10, runs[1]) is first and made == [-10]
    assert runs[0].to_dict() == runs[1].to_dict() == {"s": 1}  # the saturating bias counts in every run
    op.quant["exp"] = -3
    assert prepare(-10, runs[2]) is not first and len(made) == 2
    op.weight = op.weight * 2
    again = prepare(-10, SaturationCounter())
    assert len(made) == 3 and np.array_equal(again.mantissa, synapse_params(op, -10, SaturationCounter(), "s").mantissa)
    assert prepare(-9, SaturationCounter()).x_exp == -9 and len(made) == 4


@pytest.mark.parametrize("function", ["gelu_erf", "gelu_tanh", "silu", "relu", "identity"])
def test_fused_gate_activation_equals_activation_fixed(function):
    from hardware_sim.fixed_point import activation_fixed
    from hardware_sim.golden.fixed_gate import gate_activation, gate_tables

    x = np.concatenate([RNG.integers(-(1 << 25), 1 << 25, 2000), RNG.integers(-(1 << 12), 1 << 12, 2000),
                        np.arange(-3000, 3000), [-(1 << 23) - 1, -(1 << 23), (1 << 23) - 1, 1 << 23, 0]])
    fused = 0
    for x_exp in range(-28, 0, 3):
        fused += gate_tables(function, x_exp) is not None
        for y_exp in (x_exp - 2, x_exp, x_exp + 3):
            want_n, got_n = SaturationCounter(), SaturationCounter()
            want = activation_fixed(function, x.reshape(-1, 5), x_exp, y_exp, want_n, "p")
            got = gate_activation(function, x.reshape(-1, 5), x_exp, y_exp, got_n, "p")
            assert got.dtype == want.dtype and np.array_equal(got, want), (x_exp, y_exp)
            assert got_n.to_dict() == want_n.to_dict() and want_n.total > 0
    # a left shift by 0..15 bits: exponents -23 .. -8 for gelu (steps 2**-7), -22 .. -7 for silu (2**-6)
    assert fused == {"gelu_erf": 5, "gelu_tanh": 5, "silu": 6}.get(function, 0)


@pytest.mark.parametrize("x_exp,y_exp", [(-16, -21), (-17, -21), (-20, -20), (-12, -16), (3, 0)])
def test_fused_offset_exp_equals_exp_direct(x_exp, y_exp):
    from hardware_sim.golden.fixed_offset_exp import MAX_OFFSET, applies, exp_of_offsets

    assert applies(x_exp, y_exp)
    n = min(math.ceil((2 - y_exp) * math.log(2) * 2.0 ** (-x_exp)) + 64, 1 << 21)  # every offset with exp > 0
    d = np.concatenate([np.arange(n), RNG.integers(0, MAX_OFFSET + 1, 20000), [MAX_OFFSET]]).astype(np.int64)
    counter = SaturationCounter()
    want = exp_direct(-d, x_exp, y_exp, counter, "f")
    assert np.array_equal(exp_of_offsets(d, x_exp, y_exp), want) and counter.total == 0
    assert not applies(4, -21) and not applies(-16, -22)  # a left first shift; exp(0) beyond 2**22


@pytest.mark.parametrize("all_written", [True, False])
def test_slot_responses_by_fused_exp_equal_exp_fixed(all_written):
    from hardware_sim.golden.fixed_features import slot_response_step

    potential = RNG.integers(-(1 << 23), 1 << 23, (2, 3, 5, 40))
    potential[0, 0, 0] = RNG.integers(-(1 << 23), -(1 << 22), 40)  # offsets over the whole 24-bit range
    written = np.ones((2, 3, 1, 40), bool) if all_written else RNG.random((2, 3, 1, 40)) < 0.6
    written[1, 1] = all_written  # a head with no written slot (offset 0, responses 0) when masked
    floor = -(1 << 25)
    s = np.where(written, potential, floor).max(axis=-1, keepdims=True)
    s = np.where(s > floor, s, 0)
    want = np.where(written, exp_fixed(np.where(written, potential - s, floor), -16, -21, SaturationCounter(), "f"), 0)
    counter = SaturationCounter()
    f, offset = slot_response_step(potential, written, -16, -21, counter, "f")
    assert np.array_equal(f, want) and np.array_equal(offset, s[..., 0]) and counter.total == 0
