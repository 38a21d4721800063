"""An independent model of the ``loihi2`` integer arithmetic, written with Python integers,
``fractions.Fraction`` and ``decimal`` from the equations in the docstrings of
``hardware_sim/fixed_point`` and ``hardware_sim/golden/fixed_*`` (not from their code).

Tables are rebuilt from their definitions at 40 significant digits, so a one-LSB change in an
entry or a constant of the implementation shows up as a bit difference.  Every function takes and
returns Python ints (or nested lists); saturations are counted in a ``collections.Counter``.
"""

import copy
import math
import sys
from collections import Counter
from decimal import Decimal, getcontext
from fractions import Fraction

import pytest

getcontext().prec = 40
HALF = Fraction(1, 2)


def round_half_up(q) -> int:
    """``floor(q + 1/2)`` of a Fraction (or int)."""
    return math.floor(Fraction(q) + HALF)


def shift(x: int, s: int) -> int:
    """``x 2**s``: exact for ``s >= 0`` (clamped to +-2**62), else round half up of ``x / 2**-s``."""
    if s >= 0:
        y = x * 2**s
        return max(-(2**62), min(2**62, y))
    return round_half_up(Fraction(x, 2 ** min(-s, 62)))


def sat(x: int, bits: int, counter: Counter | None = None, name: str = "") -> int:
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    if x < lo or x > hi:
        if counter is not None:
            counter[name] += 1
        return lo if x < lo else hi
    return x


def decimal_table(fn, n: int) -> list[int]:
    """``round_half_up(fn(i) 2**22)`` for i = 0..n, fn returning a Decimal, then the last repeated."""
    t = [round_half_up(Fraction(fn(i) * Decimal(2**22))) for i in range(n + 1)]
    return t + [t[-1]]


EXP2_TABLE = decimal_table(lambda i: Decimal(2) ** (Decimal(i) / 1024), 1024)
LOG2E = round_half_up(Fraction(Decimal(2**30) / Decimal(2).ln()))
RECIP_TABLE = [round_half_up(Fraction(2**22) / (1 + Fraction(2 * i + 1, 2048))) for i in range(1024)]
RSQRT_TABLE = [round_half_up(Fraction(Decimal(2**22) / (Decimal(1) + Decimal(2 * i + 1) / 2048).sqrt()))
               for i in range(1024)]
RSQRT_TABLE += [round_half_up(Fraction(Decimal(2**22) / (Decimal(2) + Decimal(2 * i + 1) / 1024).sqrt()))
                for i in range(1024)]


def interpolate(table: list[int], pos: int) -> int:
    """Linear interpolation at ``pos`` (16 fraction bits below the entry index), clamped to the table."""
    n = len(table) - 2
    pos = max(0, min(pos, n * 2**16))
    i, r = pos // 2**16, pos % 2**16
    return table[i] + round_half_up(Fraction((table[i + 1] - table[i]) * r, 2**16))


def exp2(u: int, u_frac: int, y_exp: int, counter=None, name="", bits=24) -> int:
    """``2**(u 2**-u_frac)`` at ``y_exp``: integer part a shift, fraction (26 bits) by the table."""
    u = shift(u, 26 - u_frac)
    n, f = u >> 26, u % 2**26
    p = interpolate(EXP2_TABLE, f)
    n = max(-200, min(200, n))
    return sat(shift(p, n - 22 - y_exp), bits, counter, name)


def exp(x: int, x_exp: int, y_exp: int, counter=None, name="", bits=24) -> int:
    x = sat(x, 32, counter, name)
    return exp2(shift(x * LOG2E, x_exp - 30 + 26), 26, y_exp, counter, name, bits)


def reciprocal(z: int, z_exp: int, y_exp: int, counter=None, name="", bits=24) -> int:
    """``1/(z 2**z_exp)``: mantissa m in [2**24, 2**25) (truncated), table seed, one Newton step."""
    if z <= 0:
        counter[name] += 1
        return 2 ** (bits - 1) - 1
    p = z.bit_length() - 1
    m = z << (24 - p) if p <= 24 else z >> (p - 24)
    y0 = RECIP_TABLE[(m - 2**24) >> 14] * 4
    t = 2 * 2**24 - round_half_up(Fraction(m * y0, 2**24))
    y1 = round_half_up(Fraction(y0 * t, 2**24))
    return sat(shift(y1, -24 - p - z_exp - y_exp), bits, counter, name)


def rsqrt(v: int, v_exp: int, y_exp: int, counter=None, name="", bits=24) -> int:
    """``1/sqrt(v 2**v_exp)``: value m 2**q with q even, m in [1, 4) at 24 fraction bits, seed, Newton."""
    if v <= 0:
        counter[name] += 1
        return 2 ** (bits - 1) - 1
    p = v.bit_length() - 1
    odd = (p + v_exp) % 2
    q = p + v_exp - odd
    k = p - odd
    m = v << (24 - k) if k <= 24 else v >> (k - 24)
    idx = 1024 + ((m - 2**25) >> 15) if m >= 2**25 else (m - 2**24) >> 14
    y0 = RSQRT_TABLE[idx] * 4
    b = round_half_up(Fraction(m * round_half_up(Fraction(y0 * y0, 2**24)), 2**24))
    y1 = round_half_up(Fraction(y0 * (3 * 2**24 - b), 2**25))
    return sat(shift(y1, -24 - q // 2 - y_exp), bits, counter, name)


def gate_table(fn, range_log2: int) -> list[int]:
    """A gate tabulated at 2**11 + 1 points of [-2**r, 2**r] (double-precision math, Q1.22)."""
    step = Fraction(2 ** (range_log2 + 1), 2**11)
    values = [fn(float(-(2**range_log2) + i * step)) for i in range(2**11 + 1)]
    t = [round_half_up(Fraction(v) * 2**22) for v in values]
    return t + [t[-1]]


GATES = {
    "gelu_erf": (gate_table(lambda x: 0.5 * (1.0 + math.erf(x / math.sqrt(2.0))), 3), 3),
    "gelu_tanh": (gate_table(lambda x: 0.5 * (1.0 + math.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3))),
                             3), 3),
    "silu": (gate_table(lambda x: 1.0 / (1.0 + math.exp(-x)), 4), 4),
}


def activation(function: str, x: int, x_exp: int, y_exp: int, counter=None, name="", bits=24) -> int:
    """``x g(x)`` at ``y_exp`` with the interpolated Q1.22 gate ``g``; relu and identity by shifts."""
    x = sat(x, bits, counter, name)
    if function == "identity":
        return sat(shift(x, x_exp - y_exp), bits, counter, name)
    if function == "relu":
        return sat(shift(max(x, 0), x_exp - y_exp), bits, counter, name)
    table, r = GATES[function]
    step_log2 = r + 1 - 11
    pos = shift(x, x_exp - step_log2 + 16) + 2 ** (10 + 16)
    return sat(shift(x * interpolate(table, pos), x_exp - 22 - y_exp), bits, counter, name)


def quantize(value: float, exponent: int, bits: int = 24, counter=None, name="") -> int:
    """``sat(round_half_up(value / 2**exponent))`` exactly (value a float)."""
    return sat(round_half_up(Fraction(value) / Fraction(2) ** exponent), bits, counter, name)


@pytest.fixture(scope="session")
def im():
    """This module: the independent integer model."""
    return sys.modules[__name__]


def squeezed(net):
    """A copy of ``net`` with the first circuit's exponents cut below calibration: its features, calcium,
    soma, Hebbian weights and read-out saturate."""
    net = copy.deepcopy(net)
    cuts = {"features": {"q_logit_exp": 3, "k_logit_exp": 3, "exp": 1, "score_exp": 4},
            "astrocyte": {"calcium_exp": 8, "soma_exp": 8, "exp": 2},
            "hebbian_synapses": {"w_exp": 8, "exp": 8}}
    for op in net.nodes():
        if op.name.startswith("layer0.attn"):
            for key, cut in cuts.get(op.kind, {}).items():
                op.quant[key] -= cut
    return net


@pytest.fixture(scope="session")
def squeeze():
    """``squeeze(net)``: :func:`squeezed`."""
    return squeezed
