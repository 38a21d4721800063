"""``loihi2`` behaviour of ``learned`` feature populations (distilled Hedgehog maps).

Per head the map ``(W, b)`` (W: d x n, b: n, ``n = m/2``) is folded into the afferent synapses of the
feature neurons and each half of the population is normalised by a divisive astrocyte:

- Logits (synapses): ``z_j = sat(shift(sum_d M_jd x_d, e_Wj + e_x - e_z) + b_j)``, ``M_jd`` the 8-bit
  mantissas of column j of W at its own exponent ``e_Wj`` (``quant["q_w_exp"]``/``["k_w_exp"]``, one
  per head and column), ``b`` rounded to the logit exponent ``e_z`` (``quant["q_logit_exp"]``/
  ``["k_logit_exp"]``), ``x`` the query or key payloads at ``e_x``.
- Divisive normalisation, each half: offset ``s = max_j z_j`` (second half: ``-min_j z_j`` of ``-z``),
  ``p_j = exp_fixed(+-z_j - s, e_z, -22)`` (``0 < p_j <= 1``, the project's exp table),
  ``P = sum_j p_j`` (exact, exponent -22, ``1 <= P <= n``), ``R = reciprocal_fixed(P, -22, -22)``
  (``1/P <= 1``) and ``f_j = sat(shift(p_j R, -44 - e_f))`` at the feature exponent ``e_f``.

So ``f(x) = [softmax(z), softmax(-z)]`` in integers.  The write phase sends ``w_t f(k_t)`` and the
read phase ``f(q)`` to the Hebbian synapses and astrocyte, whose ungated ``loihi2`` arithmetic
(graded calcium ``c += f(k)``, ``H += v f(k)^T``, soma ``z = c.f(q)``, ``y = u / z``) is that of
:mod:`.fixed_circuit`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.errors import SimulationError
from hardware_sim.fixed_point import (
    INT,
    STATE_BITS,
    TABLE_FRAC,
    exact_product,
    exp_fixed,
    quantize,
    reciprocal_fixed,
    saturate,
    shift,
)
from hardware_sim.golden.features import heads
from hardware_sim.golden.fixed_neurons import mantissas
from hardware_sim.golden.fixed_registry import Fx, qexp

P_EXP = -TABLE_FRAC  # exponentials p_j and the reciprocal 1/P, both in (0, 1]


@dataclass(frozen=True)
class MapParams:
    """Integer parameters of one side's maps: ``mantissa`` (N, n, d), column exponents ``w_exp`` (N, n),
    ``bias`` (N, n) at ``z_exp``, input exponent ``x_exp``, feature exponent ``f_exp``."""

    mantissa: np.ndarray
    w_exp: np.ndarray
    bias: np.ndarray
    x_exp: int
    z_exp: int
    f_exp: int


def map_columns(weight: np.ndarray) -> np.ndarray:
    """(N, d, n) maps as (N n, d) rows: one synapse row per feature neuron of each head."""
    N, d, n = weight.shape
    return np.ascontiguousarray(np.swapaxes(weight, 1, 2).reshape(N * n, d))


def map_params(op, side: str, x_exp: int, counter=None) -> MapParams:
    """The ``side`` ("q" or "k") maps of learned population ``op`` in integers (module docstring)."""
    weight, bias = getattr(op, f"{side}_weight"), getattr(op, f"{side}_bias")
    N, d, n = weight.shape
    rows = op.quant.get(f"{side}_w_exp")
    if rows is None or len(rows) != N * n:
        raise SimulationError(f"golden loihi2: node {op.name!r} has no quant[{side + '_w_exp'!r}] for its {N * n} "
                              "map columns; compile with precision='loihi2' so the quantize pass records them")
    e = np.asarray(rows, dtype=INT)
    z_exp = qexp(op, f"{side}_logit_exp")
    mant = mantissas(map_columns(weight), e).reshape(N, n, d)
    b = quantize(bias, z_exp, STATE_BITS, counter, op.name)
    return MapParams(mant, e.reshape(N, n), b, x_exp, z_exp, qexp(op))


def logits_step(p: MapParams, x, counter, name: str) -> np.ndarray:
    """``z = sat(shift(M x, e_W + e_x - e_z) + b)``: x (..., N, T, d) -> (..., N, T, n)."""
    acc = exact_product(x, np.swapaxes(p.mantissa, -1, -2))
    s = (p.w_exp + p.x_exp - p.z_exp)[:, None, :]
    return saturate(shift(acc, s) + p.bias[:, None, :], STATE_BITS, counter, name)


def normalise_step(z, z_exp: int, f_exp: int, counter, name: str) -> np.ndarray:
    """One half's divisive normalisation: ``f = softmax(z)`` at ``f_exp`` from logits z (..., n)."""
    s = z.max(axis=-1, keepdims=True)
    p = exp_fixed(z - s, z_exp, P_EXP, counter, name)
    recip = reciprocal_fixed(p.sum(axis=-1, keepdims=True), P_EXP, P_EXP, counter, name)
    return saturate(shift(p * recip, 2 * P_EXP - f_exp), STATE_BITS, counter, name)


def hedgehog_step(p: MapParams, x, counter, name: str) -> np.ndarray:
    """Integer ``f(x) = [softmax(z), softmax(-z)]``: x (..., N, T, d) -> (..., N, T, 2n) at ``f_exp``."""
    z = logits_step(p, x, counter, name)
    return np.concatenate([normalise_step(z, p.z_exp, p.f_exp, counter, name),
                           normalise_step(-z, p.z_exp, p.f_exp, counter, name)], axis=-1)


def learned_features(op, args, run, features_cls):
    """Write ``w_t f(k_t)`` per key/value head and read ``f(q)`` per query head, in integers; with a
    window, :func:`hardware_sim.golden.fixed_window.window_features`."""
    key: Fx = args["key"]
    query: Fx = args["query"]
    schedule = run.schedule(op.schedule)
    w = run.written_int(schedule)
    kp = map_params(op, "k", key.exp, run.counter)
    qp = map_params(op, "q", query.exp, run.counter)
    fq = hedgehog_step(qp, heads(query.q, op.n_heads), run.counter, op.name)
    if op.window:
        from hardware_sim.golden.fixed_window import window_features

        return window_features(op, schedule, w, kp, key, query, fq, run, features_cls)
    fk = hedgehog_step(kp, heads(key.q, op.n_kv_heads), run.counter, op.name)
    return features_cls(op, schedule, fk * w[:, None, :, None], kp.f_exp, read=fq)
