"""``loihi2`` behaviour of an encoder's window: the W keys nearest each query (a band) beside the feature
memory of every token.

The float circuit is that of :mod:`.learned` (encoders): read i holds exact slots for the written keys j
at offsets ``-floor(W/2) <= j - i <= floor((W-1)/2)``, the feature memory integrates every written token,
and each slot inhibits its own token's feature share.  In integers, with the exponents of
:mod:`.fixed_window` (features ``e_f``, values ``e_v``, Hebbian weights ``e_w``, read-out ``e_u``,
calcium ``e_c``):

- Feature memory: every written token drives the exact sums ``C = sum_t w_t f(k_t)`` (astrocyte, at
  ``e_f``) and ``A = sum_t w_t v_t f(k_t)^T`` (Hebbian synapses, at ``e_v + e_f``); the states the
  circuit holds (and probes report) are the calcium ``c = sat(shift(C, e_f - e_c))`` and the weights
  ``H = sat(shift(A, e_v + e_f - e_w))``.
- Inhibition: each slot's synapse subtracts its own token's share from the exact sums before they are
  rounded, so read i sees the feature memory of exactly the tokens outside its band:
  ``c_i = sat(shift(C - sum_band w_j f(k_j), e_f - e_c))``,
  ``H_i = sat(shift(A - sum_band w_j v_j f(k_j)^T, e_v + e_f - e_w))`` and the read-out
  ``u_i = sat(shift(H_i f(q_i), e_w + e_f - e_u))``.
- Slots: potentials ``l_ij = scale q_i.k_j`` of the band (:func:`.fixed_features.score_step`), offset
  ``s_i = max_j l_ij``, responses ``exp(l_ij - s_i)`` and the one normaliser in block floating point
  (:func:`.fixed_window.hybrid_step` with ``c_i`` and ``u_i``), as the causal window.

The band sums are exact integers; :func:`band_sums` forms them from prefix sums over the tokens, a
token-by-token circuit (the Lava kernels) by adding the W slots it holds -- the same integers.
"""

from __future__ import annotations

import numpy as np

from hardware_sim.fixed_point import STATE_BITS, exact_product, saturate, shift
from hardware_sim.golden.circuit import grouped
from hardware_sim.golden.features import heads
from hardware_sim.golden.fixed_circuit import hebbian_read_step, scale_q22
from hardware_sim.golden.fixed_features import score_params, score_step, slot_response_step
from hardware_sim.golden.fixed_learned import hedgehog_step
from hardware_sim.golden.fixed_registry import Fx
from hardware_sim.golden.fixed_window import hybrid_step, log_gain_step
from hardware_sim.golden.learned import RingActivity, sliding_window
from hardware_sim.golden.stream import continue_sum, fit


def band_limits(T: int, window: int) -> tuple[np.ndarray, np.ndarray]:
    """First and one-past-last token of each read's band: ``lo_i = max(i - floor(W/2), 0)``,
    ``hi_i = min(i + floor((W-1)/2), T - 1) + 1``."""
    i = np.arange(T)
    return np.maximum(i - window // 2, 0), np.minimum(i + (window - 1) // 2, T - 1) + 1


def band_sums(x: np.ndarray, window: int) -> np.ndarray:
    """``sum_{j in band(i)} x_j`` for every read i: integers x (B, N, T, ...) -> (B, N, T, ...), exact."""
    T = x.shape[2]
    prefix = np.concatenate([np.zeros_like(x[:, :, :1]), np.cumsum(x, axis=2)], axis=2)
    lo, hi = band_limits(T, window)
    return prefix[:, :, hi] - prefix[:, :, lo]


def band_features(op, schedule, w, kp, key: Fx, query: Fx, fq, run, features_cls):
    """Feature writes of every written token, reads ``f(q)`` and the band's potentials."""
    k = heads(key.q, op.n_kv_heads)
    write = hedgehog_step(kp, k, run.counter, op.name) * w[:, None, :, None]
    held = sliding_window(w, op.window)
    q = heads(query.q, op.n_heads)
    B, H, T, d = q.shape
    group = H // op.n_kv_heads
    p = score_params(op, query.exp, key.exp)
    potential = score_step(p, q.reshape(B, op.n_kv_heads, -1, d), k, run.counter, op.name,
                           np.tile(held, (1, 1, group, 1)))
    ring = RingActivity(potential.reshape(B, H, T, -1), held, None, slot_features=write)
    feats = features_cls(op, schedule, write, kp.f_exp, read=fq, potential=ring.potential, score_exp=p.score_exp)
    feats.ring = ring
    return feats


def band_readout(op, v, feats, v_exp: int, w_exp: int, u_exp: int, scale, counter) -> np.ndarray:
    """``u_i = H_i f(q_i)`` (B, H, T, dv): each read's weights without its band's share (module docstring),
    one sequence at a time (the weights of every read are (G, T, dv, m) integers).

    v (B, G, T, dv) values at ``v_exp``; ``feats.write`` (B, G, T, m) at ``feats.exp``."""
    B, H, T, m = feats.read.shape
    G = op.n_kv_heads
    fq = feats.read.reshape(B, G, H // G, T, m).transpose(0, 1, 3, 2, 4)  # (B, G, T, r, m)
    u = np.empty((B, G, T, H // G, v.shape[-1]), dtype=np.int64)
    for b in range(B):
        terms = v[b : b + 1, ..., :, None] * feats.write[b : b + 1, ..., None, :]  # w_j v_j f(k_j)^T, exact
        total = terms.sum(axis=2, keepdims=True)
        weights = saturate(shift(total - band_sums(terms, feats.op.window), v_exp + feats.exp - w_exp), STATE_BITS,
                           counter, op.name)
        scaled = None if scale is None else scale[min(b, scale.shape[0] - 1) :][:1, :, None]
        weights = scale_q22(weights, scaled, counter, op.name)
        u[b : b + 1] = hebbian_read_step(weights, fq[b : b + 1], feats.exp, w_exp, u_exp, counter, op.name)
    return u.transpose(0, 1, 3, 2, 4).reshape(B, H, T, -1)


def band_astrocyte(op, args, run, record_probes, p):
    """Calcium of every token, each read's calcium outside its band, slot responses and the normaliser."""
    feats, syn = args["features"], args["synapses"]
    acc = continue_sum(feats.write, False, run.initial(op.name, "calcium"))
    run.keep_state(op.name, calcium=acc)
    outside = acc - band_sums(feats.write, feats.op.window)
    calcium = saturate(shift(np.repeat(acc, feats.group, axis=1), p.f_exp - p.c_exp), STATE_BITS, run.counter,
                       op.name)
    seen = saturate(shift(np.repeat(outside, feats.group, axis=1), p.f_exp - p.c_exp), STATE_BITS, run.counter,
                    op.name)
    seen = scale_q22(seen, fit(run.intervention(op.name, "calcium_scale"), seen.shape[-1]), run.counter, op.name)
    e, s = slot_response_step(feats.potential, feats.ring.held, p.s_exp, p.f_exp, run.counter, feats.op.name)
    log_gain = log_gain_step(feats.op, p.s_exp, run.counter, op.name)
    B, H, T, _ = e.shape
    ev = exact_product(grouped(e, syn.op.n_kv_heads), syn.teacher).reshape(B, H, T, -1)
    y, z = hybrid_step(seen, feats.read, e.sum(axis=-1), ev, log_gain[:, None] - s, syn.u, p, run.counter, op.name)
    record_probes(op, feats, run, calcium, p.c_exp, z, p.z_exp, s, T)
    return Fx(y.transpose(0, 2, 1, 3).reshape(B, T, -1), p.y_exp)

