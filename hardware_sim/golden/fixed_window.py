"""``loihi2`` behaviour of ``learned`` circuits with a window of W exact ring slots (an encoder's band of
nearest keys: :mod:`.fixed_band`).

The ring is that of the float circuit (:mod:`.learned`): written token t enters slot ``n_t mod W``;
the write that reuses a full slot consolidates the token leaving it, ``c += f(k_old)``,
``H += v_old f(k_old)^T`` (integer writes, :mod:`.fixed_circuit`).  Exponents: features ``e_f``,
ring potentials ``e_s`` (``score_exp``), calcium ``e_c``, soma ``e_z``, Hebbian
read-out ``e_u``, values ``e_v`` and output ``e_y``.

- Ring: potentials ``l_j = scale q.k_j`` of the full slots (:func:`.fixed_features.score_step`),
  offset ``s = max_j l_j`` and responses ``e_j = exp(l_j - s)`` at ``e_f``
  (:func:`.fixed_features.slot_response_step`).
- The feature part is weighted by ``exp(log_gain - s)`` (the per-head gain and the soma's offset), a
  table mantissa and a shift ``D = d 2**(n - 22)`` (:func:`exp_parts`, the exp table of
  :mod:`hardware_sim.fixed_point.exp2` without its last shift) of ``a = L - s`` with ``L`` the log
  gain at ``e_s``, so it spans any gain and offset without losing bits; the feature reads stay
  ``f(q)`` in ``[0, 1]``.
- Soma, one normaliser, in block floating point (the gain and offset span many decades: a
  distilled log gain reaches 35): ``r_j = sat(shift(c_j read_j, -22))`` (exponent
  ``e_p = e_c + e_f + 22``), then ``z = d sum_j r_j 2**(e_p + n - 22) + sum_j e_j 2**e_f`` summed
  exactly at the larger of the two exponents (the other term rounded half up), and its floating
  reciprocal ``R`` at ``r_exp`` (:func:`.fixed_learned.floating_reciprocal`; 0 when ``z = 0``).
- Output: ``M = u d 2**(e_u + n - 22) + sum_j e_j v_j 2**(e_f + e_v)`` the same way, cut to 31 bits
  (``M' = shift(M, -k)``) and ``y = sat(shift(M' R, e_M + k + r_exp - e_y))``.  The soma reported to
  probes is ``z`` at ``e_z`` (clipped, not counted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hardware_sim.fixed_point import (
    INT,
    STATE_BITS,
    TABLE_FRAC,
    exact_product,
    int_range,
    quantize,
    saturate,
    shift,
)
from hardware_sim.fixed_point.exp2 import EXP2_TABLE, LOG2E, LOG2E_FRAC, U_FRAC
from hardware_sim.fixed_point.tables import floor_log2, interpolate
from hardware_sim.golden.circuit import grouped
from hardware_sim.golden.features import heads
from hardware_sim.golden.fixed_circuit import scale_q22
from hardware_sim.golden.fixed_features import score_params, score_step, slot_response_step
from hardware_sim.golden.fixed_learned import floating_reciprocal, hedgehog_step
from hardware_sim.golden.fixed_registry import Fx, qexp
from hardware_sim.golden.learned import RingActivity, consolidations, kept_ring, ring_held, with_ring
from hardware_sim.golden.stream import continue_sum, fit

MIX_BITS = 31  # bits the mixed read-out keeps before it is multiplied by the reciprocal


def log_gain_step(op, s_exp: int, counter, name: str) -> np.ndarray:
    """Per-head log gains (H,) as integers at the potentials' exponent ``e_s``."""
    return quantize(np.asarray(op.log_gain, dtype=np.float64), s_exp, STATE_BITS, counter, name)


def exp_parts(x, x_exp: int, counter, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``exp(x 2**x_exp) ~= d 2**(n - 22)``: the table mantissa ``d`` in ``[2**22, 2**23]`` and ``n``."""
    x = saturate(x, 32, counter, name)
    u = shift(x * LOG2E, x_exp - LOG2E_FRAC + U_FRAC)
    n = u >> U_FRAC
    return interpolate(EXP2_TABLE, u & ((INT(1) << U_FRAC) - 1)), np.clip(n, -200, 200)


@dataclass(frozen=True)
class HybridParams:
    """Exponents of a windowed circuit's soma and output (module docstring)."""

    c_exp: int
    f_exp: int
    s_exp: int
    z_exp: int
    u_exp: int
    v_exp: int
    y_exp: int


def aligned_sum(a, a_exp, b, b_exp):
    """``a 2**a_exp + b 2**b_exp`` at the larger of the two exponents (the finer term rounded half up):
    ``(sum, exponent)``, elementwise."""
    e = np.maximum(a_exp, b_exp)
    return shift(a, a_exp - e) + shift(b, b_exp - e), e


def hybrid_step(c, read, esum, ev, a, u, p: HybridParams, counter, name: str):
    """Soma ``z`` and output ``y`` of one normaliser over the feature memory and the ring (block
    floating point: module docstring).

    c, read (..., m); esum, a (...,): ``sum_j e_j`` and ``L - s`` (log gain minus offset, at ``e_s``);
    ev, u (..., dv): ``sum_j e_j v_j`` (exact, exponent ``e_f + e_v``) and the Hebbian read-out.
    Returns ``y`` (..., dv) and ``z`` (...) at ``e_z`` for probes (clipped, not counted).
    """
    r = saturate(shift(c * read, -TABLE_FRAC), STATE_BITS, counter, name)
    p_exp = p.c_exp + p.f_exp + TABLE_FRAC
    d, n = exp_parts(a, p.s_exp, counter, name)
    z, z_exp = aligned_sum(r.sum(axis=-1) * d, p_exp + n - TABLE_FRAC, esum, p.f_exp)
    recip, r_exp = floating_reciprocal(z, z_exp, counter, name)
    m, m_exp = aligned_sum(u * d[..., None], p.u_exp + n[..., None] - TABLE_FRAC, ev, p.f_exp + p.v_exp)
    k = np.maximum(floor_log2(np.abs(m)) + 1 - MIX_BITS, 0)
    y = saturate(shift(shift(m, -k) * recip[..., None], m_exp + k + r_exp[..., None] - p.y_exp), STATE_BITS,
                 counter, name)
    lo, hi = int_range(STATE_BITS)
    return y, np.clip(shift(z, z_exp - p.z_exp), lo, hi)


def ring_visibility(held: np.ndarray, group: int) -> np.ndarray:
    """(B, 1, T, L) ring membership -> (B, 1, group T, L) rows of the grouped query heads."""
    return np.tile(held, (1, 1, group, 1))


def window_features(op, schedule, w, kp, key: Fx, query: Fx, fq, run, features_cls):
    """Consolidation writes, gained reads and ring potentials (with the ring the last run left); an
    encoder's band of nearest keys: :func:`.fixed_band.band_features`."""
    if schedule.mode != "causal":
        from hardware_sim.golden.fixed_band import band_features

        return band_features(op, schedule, w, kp, key, query, fq, run, features_cls)
    k, w_all = with_ring(op, run, heads(key.q, op.n_kv_heads), w, "ring_keys")
    fk = hedgehog_step(kp, k, run.counter, op.name)
    P = w_all.shape[1] - w.shape[1]
    held = ring_held(w_all, op.window, schedule.mode == "causal")[:, :, P:]
    q = heads(query.q, op.n_heads)
    B, H, T, d = q.shape
    p = score_params(op, query.exp, key.exp)
    visible = ring_visibility(held, H // op.n_kv_heads)
    potential = score_step(p, q.reshape(B, op.n_kv_heads, -1, d), k, run.counter, op.name, visible)
    moves = consolidations(w_all, op.window).astype(INT)[:, P:]
    ring = RingActivity(potential.reshape(B, H, T, -1), held, moves, kept_ring(w_all, op.window))
    run.keep_state(op.name, ring_keys=ring.kept(k), ring_held=ring.keep[1])
    feats = features_cls(op, schedule, ring.consolidated(fk), kp.f_exp, read=fq, potential=ring.potential,
                         score_exp=p.score_exp)
    feats.ring = ring
    return feats


def hybrid_params(op, feats_op, syn_op, v_exp: int) -> HybridParams:
    return HybridParams(c_exp=qexp(op, "calcium_exp"), f_exp=qexp(feats_op), s_exp=qexp(feats_op, "score_exp"),
                        z_exp=qexp(op, "soma_exp"), u_exp=qexp(syn_op), v_exp=v_exp,
                        y_exp=qexp(op))


def window_astrocyte(op, args, run, record_probes):
    """Graded calcium of the consolidations, ring responses and the one normaliser (module docstring);
    an encoder's band of nearest keys: :func:`.fixed_band.band_astrocyte`."""
    feats, syn = args["features"], args["synapses"]
    p = hybrid_params(op, feats.op, syn.op, syn.v_exp)
    if feats.ring.slot_features is not None:
        from hardware_sim.golden.fixed_band import band_astrocyte

        return band_astrocyte(op, args, run, record_probes, p)
    acc = continue_sum(feats.write, feats.schedule.mode == "causal", run.initial(op.name, "calcium"))
    run.keep_state(op.name, calcium=acc[:, :, -1:])
    calcium = saturate(shift(np.repeat(acc, feats.group, axis=1), p.f_exp - p.c_exp), STATE_BITS, run.counter,
                       op.name)
    scaled = scale_q22(calcium, fit(run.intervention(op.name, "calcium_scale"), calcium.shape[-1]), run.counter,
                       op.name)
    e, s = slot_response_step(feats.potential, feats.ring.held, p.s_exp, p.f_exp, run.counter, feats.op.name)
    B, H, T, _ = e.shape
    G = syn.op.n_kv_heads
    ev = exact_product(grouped(e, G), syn.teacher).reshape(B, H, T, -1)
    lg = log_gain_step(feats.op, p.s_exp, run.counter, op.name)[:, None]
    y, z = hybrid_step(scaled, feats.read, e.sum(axis=-1), ev, lg - s, syn.u, p, run.counter, op.name)
    record_probes(op, feats, run, calcium, p.c_exp, z, p.z_exp, s, T)
    return Fx(y.transpose(0, 2, 1, 3).reshape(B, T, -1), p.y_exp)
