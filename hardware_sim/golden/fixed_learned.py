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
read phase ``f(q)`` to the Hebbian synapses, whose ungated ``loihi2`` arithmetic (``H += v f(k)^T``,
``u = H f(q)``) is that of :mod:`.fixed_circuit`, and to the astrocyte: graded calcium ``c += f(k)``,
soma ``z = c.f(q)`` and ``y = u / z`` with a floating reciprocal (:func:`floating_reciprocal`:
``f(q).f(k)`` spans many decades with spiky distilled maps, so ``1/z`` keeps 22 bits at any ``z``).
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
from hardware_sim.fixed_point.tables import floor_log2
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


def floating_reciprocal(z, z_exp, counter, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``R = 1/z`` (``z`` at ``e_z``, one or one per soma) with an exponent of its own per soma,
    ``r_exp = -22 - (floor(log2 z) + e_z)``, so that
    ``R`` lies in ``(2**21, 2**22]`` for any ``z > 0`` (0 for ``z <= 0``: a soma that sums nothing
    outputs 0).  The soma's dynamic range is the context's, not a calibrated one."""
    alive = z > 0
    z_exp = np.broadcast_to(np.asarray(z_exp, dtype=INT), np.shape(z))
    r_exp = -TABLE_FRAC - (floor_log2(np.where(alive, z, 1)) + z_exp)
    recip = np.zeros(np.shape(z), dtype=INT)
    recip[alive] = reciprocal_fixed(z[alive], z_exp[alive], r_exp[alive], counter, name)
    return recip, r_exp


def learned_soma_step(c, f, c_exp: int, f_exp: int, z_exp: int, eps: float, counter, name: str):
    """Soma of a learned circuit: ``r_j = sat(shift(c_j f_j, -22))``, ``z = sat(shift(sum_j r_j,
    e_c + e_f + 22 - e_z))`` and its floating reciprocal (of ``z + eps`` when ``eps > 0``).
    Returns ``z``, ``R`` and ``r_exp``."""
    r = saturate(shift(c * f, -TABLE_FRAC), STATE_BITS, counter, name)
    z = saturate(shift(r.sum(axis=-1), c_exp + f_exp + TABLE_FRAC - z_exp), STATE_BITS, counter, name)
    zz = z + quantize(eps, z_exp, STATE_BITS, counter, name) if eps > 0 else z
    return (z, *floating_reciprocal(zz, z_exp, counter, name))


def learned_output_step(u, recip, r_exp, u_exp: int, y_exp: int, counter, name: str) -> np.ndarray:
    """``y = sat(shift(u R, e_u + r_exp - e_y))``: u (..., dv), R and r_exp (...)."""
    return saturate(shift(u * recip[..., None], u_exp + r_exp[..., None] - y_exp), STATE_BITS, counter, name)


def learned_astrocyte(op, args, run, record_probes):
    """Graded calcium ``c = sat(shift(sum_t f(k_t), e_f - e_c))``, soma and floating reciprocal, output
    ``y = u / z``; with a window :func:`hardware_sim.golden.fixed_window.window_astrocyte`."""
    from hardware_sim.golden.fixed_circuit import scale_q22
    from hardware_sim.golden.stream import continue_sum, fit

    feats, syn = args["features"], args["synapses"]
    if getattr(feats, "ring", None) is not None:
        from hardware_sim.golden.fixed_window import window_astrocyte

        return window_astrocyte(op, args, run, record_probes)
    c_exp, z_exp, y_exp = qexp(op, "calcium_exp"), qexp(op, "soma_exp"), qexp(op)
    acc = continue_sum(feats.write, feats.schedule.mode == "causal", run.initial(op.name, "calcium"))
    run.keep_state(op.name, calcium=acc[:, :, -1:])
    calcium = saturate(shift(np.repeat(acc, feats.group, axis=1), feats.exp - c_exp), STATE_BITS, run.counter,
                       op.name)
    scaled = scale_q22(calcium, fit(run.intervention(op.name, "calcium_scale"), calcium.shape[-1]), run.counter,
                       op.name)
    z, recip, r_exp = learned_soma_step(scaled, feats.read, c_exp, feats.exp, z_exp, op.eps, run.counter, op.name)
    y = learned_output_step(syn.u, recip, r_exp, syn.u_exp, y_exp, run.counter, op.name)
    B, H, T, dv = y.shape
    record_probes(op, feats, run, calcium, c_exp, z, z_exp, None, T)
    return Fx(y.transpose(0, 2, 1, 3).reshape(B, T, H * dv), y_exp)


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
