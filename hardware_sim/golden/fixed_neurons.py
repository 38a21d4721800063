"""``loihi2`` behaviours of the host ends, static synapses, populations and normalising astrocytes.

Every value is an :class:`~hardware_sim.golden.fixed_registry.Fx` (24-bit payloads, one exponent
per population, ``node.quant["exp"]``).  Equations (``e_*`` exponents, ``shift`` rounds half up,
``sat`` saturates to 24 bits and counts under the node's name):

- input encoder: ``q = sat(round(x 2**-e))``.
- synapses: ``y = sat(shift(M x, e_w + e_x - e_y) + b_q)``, ``M`` the 8-bit mantissas of ``W`` at
  ``quant["w_row_exp"]`` (one exponent per post row; the group's ``w_exp`` when absent), ``b_q`` the
  bias at ``e_y``; one-to-one: ``y = sat(shift(x, e_x - e_y))``.
- population: ``u = sat(sum_p shift(in_p, e_p - e_u))`` (product: ``u = sat(shift(in0 in1, e_0 + e_1 -
  e_u))``), ``e_u = quant["in_exp"]``; then identity ``y = sat(shift(u, e_u - e_y))``, activation
  ``y = activation_fixed(f, u, e_u, e_y)``, rotary ``y = sat(shift(a C - b S, e_u - 22 - e_y))`` with
  ``C, S`` the Q1.22 cos/sin of ``p theta``.
- norm astrocyte (``n`` neurons): ``S = sum x``; layer: ``c = x - shift(S N, -s_n)`` with
  ``N = round(2**s_n / n)``, rms: ``c = x``; ``v = sum c**2 + round(n eps 2**(-2 e_x))`` (the value
  ``n (var + eps)``, exact, exponent ``2 e_x``); ``r = rsqrt_fixed(v)`` at ``e_r = gain_exp - k``,
  ``k = floor(log2 n)/2`` (``r = g / sqrt n``); ``t = sat(shift(c r, e_x + e_r + 22))`` (``|c r| <= 1``,
  exponent -22); ``y = sat(shift(t G, -22 + e_G - e_y) + b_q)`` with ``G`` the 24-bit mantissas of
  ``sqrt(n) weight`` (exponent ``e_G``).
- output decoder: ``y = sat(shift(x, e_x - e_y))``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from compiler.attention.nodes import rope_tables
from hardware_sim.fixed_point import (
    INT,
    STATE_BITS,
    TABLE_FRAC,
    WEIGHT_BITS,
    exponent_for,
    int_range,
    quantize,
    rescale,
    rsqrt_fixed,
    saturate,
    shift,
    synaptic_accumulate,
    to_float,
)
from hardware_sim.fixed_point.accumulate import FloatProduct
from hardware_sim.golden.fixed_blocks import by_rows
from hardware_sim.golden.fixed_gate import gate_activation
from hardware_sim.golden.fixed_prepared import node_key, prepared_on_node
from hardware_sim.golden.fixed_registry import Fx, fixed_behaviour, qexp

NORM_T_EXP = -TABLE_FRAC  # normalised activity c r, |c r| <= 1


def mantissas(w, e, bits: int = WEIGHT_BITS) -> np.ndarray:
    """``sat_bits(round(w 2**-e))`` (``e`` an int or one per row of ``w``), int64."""
    e = np.asarray(e, dtype=INT)
    if e.ndim == 1:
        e = e[:, None]
    lo, hi = int_range(bits)
    return np.clip(np.floor(np.ldexp(np.asarray(w, dtype=np.float64), -e) + 0.5), lo, hi).astype(INT)


# ---- synapses ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SynapseParams:
    """Integer parameters of a static synapse group."""

    mantissa: np.ndarray | None
    w_exp: object
    bias: np.ndarray | None
    x_exp: int
    y_exp: int
    product: object = None  # FloatProduct of the mantissas (exact float64 matmul), made by synapse_params


def synapse_params(op, x_exp: int, counter, name: str) -> SynapseParams:
    y_exp = qexp(op)
    if op.weight is None:
        m, w_exp = None, 0
    else:
        rows = op.quant.get("w_row_exp")
        w_exp = np.asarray(rows, dtype=INT) if rows is not None else qexp(op, "w_exp")
        m = mantissas(op.weight, w_exp)
    b = None if op.bias is None else quantize(op.bias, y_exp, STATE_BITS, counter, name)
    return SynapseParams(m, w_exp, b, x_exp, y_exp, None if m is None else FloatProduct(m))


def synapse_step(p: SynapseParams, x, counter, name: str) -> np.ndarray:
    """``y = sat(shift(M x, e_w + e_x - e_y) + b)`` for payloads ``x`` (..., pre)."""
    if p.mantissa is None:
        y = shift(np.asarray(x, dtype=INT), p.x_exp - p.y_exp)
        return saturate(y if p.bias is None else y + p.bias, STATE_BITS, counter, name)
    acc = None if p.product is None else p.product.as_float(x)
    if acc is None:
        return synaptic_accumulate(x, p.mantissa, p.w_exp, p.x_exp, p.y_exp, p.bias, counter, name)
    y = by_rows(lambda a: synapse_output(p, a, counter, name), [acc], acc.shape[-1])
    return y.reshape(np.shape(x)[:-1] + (acc.shape[-1],))


def synapse_output(p: SynapseParams, acc, counter, name: str) -> np.ndarray:
    """``sat(shift(acc, e_w + e_x - e_y) + b)`` for exact sums ``acc`` (float64 holding integers)."""
    y = shift(acc.astype(INT), p.w_exp + p.x_exp - p.y_exp)  # a new array: biased in place
    if p.bias is not None:
        y += p.bias
    return saturate(y, STATE_BITS, counter, name)


# ---- populations ------------------------------------------------------------------------------------
def soma_input(inputs: list[Fx], product: bool, u_exp: int, counter, name: str) -> np.ndarray:
    """``u`` at ``u_exp``: the sum of the inputs, or the product of two."""
    if product:
        a, b = inputs
        return saturate(shift(a.q * b.q, a.exp + b.exp - u_exp), STATE_BITS, counter, name)
    u = sum(shift(i.q, i.exp - u_exp) for i in inputs)
    return saturate(u, STATE_BITS, counter, name)


def rotary_tables(positions, rope: dict) -> tuple[np.ndarray, np.ndarray]:
    """Q1.22 cos and sin of ``p theta_i`` (B, T, rotary_dim/2)."""
    cos, sin = rope_tables(positions, rope["rotary_dim"], rope["base"], np.float64)
    return quantize(cos, -TABLE_FRAC), quantize(sin, -TABLE_FRAC)


def rotary_step(u, cos, sin, rope: dict, u_exp: int, y_exp: int, counter, name: str) -> np.ndarray:
    """``y = sat(shift(a C - b S | b C + a S, e_u - 22 - e_y))`` on each head's rotary pairs."""
    B, T, _ = u.shape
    rd = rope["rotary_dim"]
    uh = u.reshape(B, T, rope["n_heads"], rope["head_dim"])
    cos, sin = cos[:, :, None, :], sin[:, :, None, :]
    rot, rest = uh[..., :rd], uh[..., rd:]
    s = u_exp - TABLE_FRAC - y_exp
    if rope["pairing"] == "half":
        a, b = rot[..., : rd // 2], rot[..., rd // 2:]
        out = np.concatenate([shift(a * cos - b * sin, s), shift(b * cos + a * sin, s)], axis=-1)
    else:
        a, b = rot[..., 0::2], rot[..., 1::2]
        out = np.stack([shift(a * cos - b * sin, s), shift(b * cos + a * sin, s)], axis=-1).reshape(rot.shape)
    out = np.concatenate([out, shift(rest, u_exp - y_exp)], axis=-1).reshape(B, T, -1)
    return saturate(out, STATE_BITS, counter, name)


def population_step(op, inputs: list[Fx], positions, counter) -> np.ndarray:
    """Payloads of a population at ``quant["exp"]`` (module docstring)."""
    u_exp, y_exp = qexp(op, "in_exp"), qexp(op)
    u = soma_input(inputs, op.response == "product", u_exp, counter, op.name)
    if op.response in ("identity", "product"):
        return rescale(u, u_exp, y_exp, counter, op.name)
    if op.response == "rotary":
        cos, sin = rotary_tables(positions, op.rope)
        return rotary_step(u, cos, sin, op.rope, u_exp, y_exp, counter, op.name)
    return gate_activation(op.response, u, u_exp, y_exp, counter, op.name)  # = activation_fixed, fused


# ---- normalising astrocyte ---------------------------------------------------------------------------
@dataclass(frozen=True)
class NormParams:
    """Integer parameters of a normalising astrocyte over ``n`` neurons."""

    n: int
    layer: bool
    inv_n: int
    inv_shift: int
    eps: int
    x_exp: int
    r_exp: int
    gain: np.ndarray
    gain_exp: int
    bias: np.ndarray | None
    y_exp: int


def norm_params(op, x_exp: int, counter) -> NormParams:
    n = op.size
    inv_shift = STATE_BITS - 1 + math.ceil(math.log2(n))
    eps = min(math.floor(n * op.eps * 2.0 ** (-2 * x_exp) + 0.5), 1 << 62)
    g = np.asarray(op.weight, dtype=np.float64) * math.sqrt(n)
    g_exp = exponent_for(float(np.max(np.abs(g))) if g.size else 0.0, STATE_BITS)
    y_exp = qexp(op)
    bias = None if op.bias is None else quantize(op.bias, y_exp, STATE_BITS, counter, op.name)
    return NormParams(n, op.mode == "layer", round(2**inv_shift / n), inv_shift, eps, x_exp,
                      qexp(op, "gain_exp") - int(math.log2(n)) // 2, mantissas(g, g_exp, STATE_BITS), g_exp, bias,
                      y_exp)


def norm_step(p: NormParams, x, counter, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Payloads ``y`` (..., n) at ``e_y`` and ``r = 1/sqrt(n (var + eps))`` (...) at ``r_exp``."""
    x = np.asarray(x, dtype=INT)
    c = x
    if p.layer:
        mean = shift(x.sum(axis=-1, keepdims=True) * p.inv_n, -p.inv_shift)
        c = x - mean
    v = (c * c).sum(axis=-1, keepdims=True) + p.eps
    r = rsqrt_fixed(v, 2 * p.x_exp, p.r_exp, counter, name)
    t = saturate(shift(c * r, p.x_exp + p.r_exp - NORM_T_EXP), STATE_BITS, counter, name)
    y = shift(t * p.gain, NORM_T_EXP + p.gain_exp - p.y_exp)
    if p.bias is not None:
        y = y + p.bias
    return saturate(y, STATE_BITS, counter, name), r[..., 0]


# ---- behaviours -------------------------------------------------------------------------------------
@fixed_behaviour("schedule")
def schedule(op, args, run):
    return None


@fixed_behaviour("input_encoder")
def input_encoder(op, args, run):
    raise AssertionError("input encoders are fed by the simulator")


@fixed_behaviour("output_decoder")
def output_decoder(op, args, run):
    x: Fx = args["x"]
    return Fx(rescale(x.q, x.exp, qexp(op), run.counter, op.name), qexp(op))


@fixed_behaviour("synapses")
def synapses(op, args, run):
    x: Fx = args["pre"]
    p = run.prepared(op.name, "params", lambda: prepared_on_node(
        op, "synapses", node_key(op, x.exp), lambda c: synapse_params(op, x.exp, c, op.name), run.counter))
    return Fx(synapse_step(p, x.q, run.counter, op.name), p.y_exp)


def population_blocks(op, inputs: list[Fx], positions, counter) -> np.ndarray:
    """:func:`population_step` on blocks of tokens (:mod:`.fixed_blocks`; rotary populations whole)."""
    qs = [i.q for i in inputs]
    if op.response == "rotary" or len({q.shape for q in qs}) != 1:
        return population_step(op, inputs, positions, counter)
    exps = [i.exp for i in inputs]
    return by_rows(lambda *qs: population_step(op, [Fx(q, e) for q, e in zip(qs, exps)], positions, counter), qs,
                   qs[0].shape[-1])


@fixed_behaviour("population")
def population(op, args, run):
    y = Fx(population_blocks(op, [args[p] for p in op.input_ports()], run.positions, run.counter), qexp(op))
    if "activity" in run.probe_kinds:  # values are formed only for probes someone asked for
        run.probe("activity", op.name, "activity", y.value())
    return y


@fixed_behaviour("norm_astrocyte")
def norm_astrocyte(op, args, run):
    x: Fx = args["x"]
    p = run.prepared(op.name, "params", lambda: prepared_on_node(
        op, "norm", node_key(op, x.exp), lambda c: norm_params(op, x.exp, c), run.counter))
    y, r = norm_step(p, x.q, run.counter, op.name)
    out = Fx(y, p.y_exp)
    if "activity" in run.probe_kinds:
        run.probe("activity", op.name, "activity", out.value())
    if "soma" in run.probe_kinds:
        run.probe("soma", op.name, "gain", to_float(r, p.r_exp) * math.sqrt(p.n))
    return out
