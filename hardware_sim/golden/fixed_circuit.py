"""``loihi2`` behaviour of the attention circuit's plastic synapses and astrocyte.

Exponents: feature activity ``e_f``, values ``e_v``, Hebbian weights ``e_w = quant["w_exp"]`` of the
synapses, calcium ``e_c``, soma ``e_z``, reciprocal ``e_r`` (``calcium_exp``, ``soma_exp``,
``recip_exp`` of the astrocyte), output ``e_y``.  ``sat`` saturates to 24 bits and counts.

- Hebbian write: ``H^g = sat(shift(sum_t v_t f^g(k_t)^T, e_v + e_f - e_w))`` (exact sums; causal
  reads see the running sum).  Exact slots: ``H_j = v_j``.
- Calcium: ``c = sat(shift(sum_t f(k_t), e_f - e_c))`` (running sum when causal).
- Process response ``r_j = sat(shift(c_j f_j(q), e_c + e_f - e_p))``, ``e_p = e_c + e_f + 22``;
  soma ``z = sat(shift(sum_j r_j, e_p - e_z))``; ``R = reciprocal_fixed(z, e_z, e_r)`` (``z + eps``
  when ``eps > 0``; a soma with ``z = 0`` outputs 0).
- Gliotransmission scales the output synapses by ``1/z``: gated (exact) circuits compute the
  normalised gates ``a_j = sat(shift(r_j R, e_p + e_r + 22))`` (exponent -22, ``0 <= a_j <= 1``) and
  ``y = sat(shift(sum_j H_j a_j, -22 + e_w - e_y))``; ungated ones the read-out
  ``u = sat(shift(H f(q), e_w + e_f - e_u))`` (``e_u`` the synapses' ``exp``) and
  ``y = sat(shift(u R, e_u + e_r - e_y))``.
- Interventions: scales are Q1.22 integers ``round(s 2**22)`` multiplying calcium or weights,
  ``x' = sat(shift(x s_q, -22))``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hardware_sim.fixed_point import (
    INT,
    STATE_BITS,
    TABLE_FRAC,
    exact_product,
    quantize,
    reciprocal_fixed,
    saturate,
    shift,
    to_float,
)
from hardware_sim.golden.circuit import grouped
from hardware_sim.golden.features import heads
from hardware_sim.golden.fixed_blocks import pair_blocks, part
from hardware_sim.golden.fixed_features import FixedFeatures, probe_activity, slot_response_step
from hardware_sim.golden.fixed_registry import Fx, fixed_behaviour, qexp
from hardware_sim.golden.learned import ring_values
from hardware_sim.golden.stream import continue_sum, fit, grow

GATE_EXP = -TABLE_FRAC


@dataclass
class FixedHebbian:
    """Integer Hebbian weights ``H`` (B, G, v_head_dim, m) at ``w_exp`` (after all writes) and, for
    ungated synapses, the read-out ``u`` (B, H, T, v_head_dim) at ``u_exp``."""

    op: object
    weights: np.ndarray
    w_exp: int
    u: np.ndarray | None = None
    u_exp: int = 0
    teacher: np.ndarray | None = None  # a window's values (B, G, P + T, dv) at v_exp, read by its ring slots
    v_exp: int = 0


def scale_q22(x, scale, counter, name: str) -> np.ndarray:
    """``sat(shift(x round(scale 2**22), -22))``: an intervention's scale applied to integers."""
    if scale is None:
        return x
    return saturate(shift(x * quantize(scale, -TABLE_FRAC, 32), -TABLE_FRAC), STATE_BITS, counter, name)


def hebbian_write_step(v, fk, v_exp: int, f_exp: int, w_exp: int, counter, name: str, product=None) -> np.ndarray:
    """``H = sat(shift(v^T f(k), e_v + e_f - e_w))``: v (..., T, dv), fk (..., T, m) -> (..., dv, m);
    ``product``: ``v^T f(k)`` when the caller already has it exactly (:func:`slot_write_product`)."""
    if product is None:
        product = exact_product(np.swapaxes(v, -1, -2), fk)
    return saturate(shift(product, v_exp + f_exp - w_exp), STATE_BITS, counter, name)


def slot_write_product(v, w, f_exp: int, start: int) -> np.ndarray | None:
    """``v^T write`` for exact-slot writes (slot ``start + t`` fires ``w_t 2**-f_exp``, see
    :func:`~hardware_sim.golden.fixed_features.slot_writes_int`) by indexing: column ``start + t``
    is ``v_t w_t 2**-f_exp``, earlier columns 0.  That is :func:`exact_product` of the one-hot
    writes whenever its bound ``max|v| max|write| T`` is below ``2**53``; otherwise None."""
    B, G, T, dv = v.shape
    pulse = w.astype(INT) * (INT(1) << INT(-f_exp))
    bound = float(np.abs(v).max(initial=0)) * float(np.abs(pulse).max(initial=0)) * max(T, 1)
    if not T or bound >= 2.0**53:
        return None
    out = np.zeros((B, G, dv, start + T), dtype=INT)
    out[..., start:] = np.swapaxes(v, -1, -2) * pulse[:, None, None, :]
    return out


def hebbian_read_step(H, fq, f_exp: int, w_exp: int, u_exp: int, counter, name: str) -> np.ndarray:
    """``u = sat(shift(H f(q), e_w + e_f - e_u))``: H (..., dv, m), fq (..., Tq, m) -> (..., Tq, dv)."""
    return saturate(shift(exact_product(fq, np.swapaxes(H, -1, -2)), w_exp + f_exp - u_exp), STATE_BITS, counter,
                    name)


def causal_hebbian(op, v, fk, fq, v_exp, f_exp, w_exp, u_exp, scale, counter, initial=None):
    """Reads of query t see the weights after write t: ``u_t = H_t f(q_t)`` (loop over tokens); the
    exact sum ``acc`` continues from ``initial``.  Returns ``u``, ``H`` and ``acc``."""
    B, G, T, dv = v.shape
    r = op.n_heads // op.n_kv_heads
    fq = fq.reshape(B, G, r, T, -1)
    acc = np.zeros((B, G, dv, fk.shape[-1]), dtype=np.int64) if initial is None else initial
    u = np.empty((B, G, r, T, dv), dtype=np.int64)
    H = acc
    for t in range(T):
        acc = acc + exact_product(v[:, :, t, :, None], fk[:, :, t, None, :])
        H = scale_q22(saturate(shift(acc, v_exp + f_exp - w_exp), STATE_BITS, counter, op.name), scale, counter,
                      op.name)
        u[:, :, :, t] = hebbian_read_step(H, fq[:, :, :, t], f_exp, w_exp, u_exp, counter, op.name)
    return u.reshape(B, op.n_heads, T, dv), H, acc


@fixed_behaviour("hebbian_synapses")
def hebbian(op, args, run):
    """Outer-product writes; ungated synapses also transmit ``u = H f(q)`` in read phases.  Gated
    (exact) weights continue from the last run's ``H`` (each slot is written once); ungated causal
    ones from its exact sum ``acc``."""
    feats: FixedFeatures = args["pre"]
    teacher: Fx = args["teacher"]
    v = v_all = heads(teacher.q, op.n_kv_heads)
    if getattr(feats, "ring", None) is not None:  # a window writes the values it consolidates
        v_all, v = ring_values(op, feats.ring, v, run)
    w_exp, u_exp = qexp(op, "w_exp"), qexp(op)
    n = feats.write.shape[-1]
    scale = fit(run.intervention(op.name, "weight_scale"), n)
    u = None
    if op.gated or feats.schedule.mode != "causal":
        copied = None  # exact slots: the one-hot write product is a copy of the values
        if feats.op.lowering == "exact":
            copied = slot_write_product(v, run.written_int(feats.schedule), feats.exp, run.start)
        H = hebbian_write_step(v, feats.write, teacher.exp, feats.exp, w_exp, run.counter, op.name, copied)
        earlier = grow(run.initial(op.name, "weights"), n)
        if earlier is not None:
            H = earlier + H
        run.keep_state(op.name, weights=H)
        H = scale_q22(H, scale, run.counter, op.name)
        if getattr(feats, "ring", None) is not None and feats.ring.slot_features is not None:
            from hardware_sim.golden.fixed_band import band_readout  # an encoder's band: reads inhibit its share

            u = band_readout(op, v, feats, teacher.exp, w_exp, u_exp, scale, run.counter)
        elif not op.gated:
            B, Hn, T, m = feats.read.shape
            u = hebbian_read_step(H, grouped(feats.read, op.n_kv_heads), feats.exp, w_exp, u_exp, run.counter,
                                  op.name).reshape(B, Hn, T, -1)
    else:
        u, H, acc = causal_hebbian(op, v, feats.write, feats.read, teacher.exp, feats.exp, w_exp, u_exp, scale,
                                   run.counter, run.initial(op.name, "sum"))
        run.keep_state(op.name, sum=acc)
    if "weights" in run.probe_kinds:
        run.probe("weights", op.name, "weights", grow(to_float(H, w_exp), op.m))
    return FixedHebbian(op, H, w_exp, u, u_exp, v_all, teacher.exp)


def soma_step(c, f, c_exp: int, f_exp: int, z_exp: int, r_exp: int, eps: float, counter, name: str):
    """Process responses ``r`` (exponent ``e_p``), soma ``z`` (``z_exp``) and ``R = 1/z`` (``r_exp``)."""
    p_exp = c_exp + f_exp + TABLE_FRAC
    r = saturate(shift(c * f, c_exp + f_exp - p_exp), STATE_BITS, counter, name)
    z = saturate(shift(r.sum(axis=-1), p_exp - z_exp), STATE_BITS, counter, name)
    if eps > 0:
        zz = z + quantize(eps, z_exp, STATE_BITS, counter, name)
        return r, p_exp, z, reciprocal_fixed(zz, z_exp, r_exp, counter, name), np.ones(z.shape, bool)
    alive = z > 0
    recip = np.zeros(z.shape, dtype=z.dtype)  # a soma with z = 0 outputs 0: no division, nothing saturates
    recip[alive] = reciprocal_fixed(z[alive], z_exp, r_exp, counter, name)
    return r, p_exp, z, recip, alive


def gated_output_step(r, recip, H, p_exp: int, r_exp: int, w_exp: int, y_exp: int, n_kv: int, counter, name: str):
    """``a = r/z`` (exponent -22) and ``y = sum_j H_j a_j`` at ``y_exp``: r (B, H, T, m) -> (B, H, T, dv)."""
    a = saturate(shift(r * recip[..., None], p_exp + r_exp - GATE_EXP), STATE_BITS, counter, name)
    B, Hn, T, m = a.shape
    y = exact_product(grouped(a, n_kv), np.swapaxes(H, -1, -2)).reshape(B, Hn, T, -1)
    return saturate(shift(y, GATE_EXP + w_exp - y_exp), STATE_BITS, counter, name)


@fixed_behaviour("astrocyte")
def astrocyte(op, args, run):
    """Calcium integration, process responses, soma sum (and offset) and divisive gain (module docstring)."""
    feats: FixedFeatures = args["features"]
    syn: FixedHebbian = args["synapses"]
    if feats.op.lowering == "learned":
        from hardware_sim.golden.fixed_learned import learned_astrocyte

        return learned_astrocyte(op, args, run, record_probes)
    c_exp, z_exp, r_exp, y_exp = qexp(op, "calcium_exp"), qexp(op, "soma_exp"), qexp(op, "recip_exp"), qexp(op)
    acc = continue_sum(feats.write, feats.schedule.mode == "causal", run.initial(op.name, "calcium"))
    run.keep_state(op.name, calcium=acc[:, :, -1:])
    calcium = saturate(shift(np.repeat(acc, feats.group, axis=1), feats.exp - c_exp), STATE_BITS, run.counter,
                       op.name)
    offset = None
    scale = fit(run.intervention(op.name, "calcium_scale"), calcium.shape[-1])
    if feats.potential is not None and syn.op.gated and op.eps == 0:
        y, z, offset = exact_blocks(op, feats, syn, calcium, scale_q22(calcium, scale, run.counter, op.name), run)
        B, H, T, dv = y.shape
        record_probes(op, feats, run, calcium, c_exp, z, z_exp, offset, T)
        return Fx(y.transpose(0, 2, 1, 3).reshape(B, T, H * dv), y_exp)
    if feats.potential is not None:
        feats.read, offset = slot_response_step(feats.potential, calcium > 0, feats.score_exp, feats.exp,
                                                run.counter, feats.op.name)
    calcium = scale_q22(calcium, scale, run.counter, op.name)
    r, p_exp, z, recip, alive = soma_step(calcium, feats.read, c_exp, feats.exp, z_exp, r_exp, op.eps, run.counter,
                                          op.name)
    if syn.op.gated:
        y = gated_output_step(r, recip, syn.weights, p_exp, r_exp, syn.w_exp, y_exp, syn.op.n_kv_heads,
                              run.counter, op.name)
    else:
        y = saturate(shift(syn.u * recip[..., None], syn.u_exp + r_exp - y_exp), STATE_BITS, run.counter, op.name)
    B, H, T, dv = y.shape
    record_probes(op, feats, run, calcium, c_exp, z, z_exp, offset, T)
    return Fx(y.transpose(0, 2, 1, 3).reshape(B, T, H * dv), y_exp)


def exact_blocks(op, feats, syn, calcium, scaled, run):
    """Slot responses, soma and gated output of an exact circuit (``eps = 0``) on blocks of
    (sequence, key/value heads) (:mod:`.fixed_blocks`): the same integers and saturation counts as
    the whole batch at once.  Sets ``feats.read``; returns ``y`` (B, H, T, dv), ``z`` and the offset."""
    c_exp, z_exp, r_exp, y_exp = qexp(op, "calcium_exp"), qexp(op, "soma_exp"), qexp(op, "recip_exp"), qexp(op)
    pot, written, H = feats.potential, calcium > 0, syn.weights
    B, Hn, T, n = pot.shape
    G = syn.op.n_kv_heads
    r = Hn // G
    read, y = np.empty(pot.shape, dtype=INT), np.empty((B, Hn, T, H.shape[-2]), dtype=INT)
    z, offset = np.empty((B, Hn, T), dtype=INT), np.empty((B, Hn, T), dtype=INT)
    for b, groups in pair_blocks(B, G, r * T * n):
        heads = slice(groups.start * r, groups.stop * r)
        f, s = slot_response_step(part(pot, b, heads), part(written, b, heads), feats.score_exp, feats.exp,
                                  run.counter, feats.op.name)
        resp, p_exp, zb, recip, _ = soma_step(part(scaled, b, heads), f, c_exp, feats.exp, z_exp, r_exp, 0.0,
                                              run.counter, op.name)
        y[b:b + 1, heads] = gated_output_step(resp, recip, part(H, b, groups), p_exp, r_exp, syn.w_exp, y_exp,
                                              groups.stop - groups.start, run.counter, op.name)
        read[b:b + 1, heads], z[b:b + 1, heads], offset[b:b + 1, heads] = f, zb, s
    feats.read = read
    return y, z, offset


def record_probes(op, feats, run, calcium, c_exp, z, z_exp, offset, T):
    """The float simulator's probes, as values of the integers: calcium, soma sum, offset, activity."""
    if "calcium" in run.probe_kinds:
        B, H, _, n = calcium.shape
        c = grow(np.broadcast_to(to_float(calcium, c_exp), (B, H, T, n)), op.m)
        run.probe("calcium", op.name, "calcium", c.transpose(0, 2, 1, 3))
    if "soma" in run.probe_kinds:
        run.probe("soma", op.name, "soma_sum", to_float(z, z_exp).transpose(0, 2, 1))
        if offset is not None:
            run.probe("soma", op.name, "soma_offset", to_float(offset, feats.score_exp).transpose(0, 2, 1))
    probe_activity(run, feats)
