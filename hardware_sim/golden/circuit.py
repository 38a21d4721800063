"""Golden behaviour of the attention circuit's plastic synapses and astrocyte.

Per key/value head g and query head h (in group g), with write weights ``w_t`` (0 for masked tokens):

- Hebbian synapses: ``H^g = sum_t w_t v_t f^g(k_t)^T`` (v_head_dim x m).  Causal reads see
  ``H^g_t``, the sum up to write t; bidirectional reads see the sum over all writes.
- Astrocyte calcium: ``c^h_j(t) = sum_{t' <= t} w_t' f^g_j(k_t')`` (causal) or the full sum.
- Read of query t: ``r_j = c_j f^h_j(q_t)``, soma ``z = sum_j r_j``, transmission
  ``u = H f(q_t)`` (or, gated exact slots, ``u = sum_j H_j c_j f_j(q_t)``), output ``y = u / z``
  (0 when nothing was written, ``u / (z + eps)`` when ``eps`` > 0).
- Exact slots: the soma holds the offset ``s_t = max_j scale q_t.K_j`` over slots written by t
  and feeds it back to the slot neurons, whose response is ``exp(scale q_t.K_j - s_t)``.

A run continuing a stream (:mod:`.stream`) starts ``H`` and ``c`` from the state the last run left
and adds its writes in the same order.

Interventions (see :mod:`hardware_sim.golden.interventions`) scale the calcium seen by every read
(``calcium_scale`` on the astrocyte) or the Hebbian weights (``weight_scale`` on the synapses).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hardware_sim.golden.features import FeatureActivity, heads
from hardware_sim.golden.learned import hybrid_output, ring_values
from hardware_sim.golden.registry import behaviour
from hardware_sim.golden.stream import continue_sum, fit, grow


def grouped(x: np.ndarray, n_kv: int) -> np.ndarray:
    """(B, H, T, m) -> (B, G, (H/G) T, m): query heads of one key/value head side by side."""
    B, H, T, m = x.shape
    return x.reshape(B, n_kv, (H // n_kv) * T, m)


@dataclass
class HebbianState:
    """Weights ``H`` (B, G, v_head_dim, m) after all writes (scaled by any intervention; exact
    circuits: the ``n`` slots written so far) and, for ungated synapses, the read transmission
    ``u`` (B, H, T, v_head_dim)."""

    op: object
    weights: np.ndarray
    u: np.ndarray | None = None
    teacher: np.ndarray | None = None  # values (B, G, P + T, dv) read by the ring slots of a window (P: kept ring)


def causal_reads(op, v, fk, fq, scale, initial=None):
    """``u_t = (H_t * scale) f(q_t)`` with ``H_t`` grown write by write from ``initial`` (or 0),
    vectorised over batch and heads."""
    B, G, T, dv = v.shape
    r = op.n_heads // op.n_kv_heads
    fq = fq.reshape(B, G, r, T, -1)
    H = np.zeros((B, G, dv, fk.shape[-1]), dtype=v.dtype) if initial is None else initial.copy()
    u = np.empty((B, G, r, T, dv), dtype=v.dtype)
    for t in range(T):
        H += v[:, :, t, :, None] * fk[:, :, t, None, :]
        Hs = H if scale is None else H * scale
        u[:, :, :, t] = np.einsum("bgvm,bgrm->bgrv", Hs, fq[:, :, :, t])
    return u.reshape(B, op.n_heads, T, dv), H


@behaviour("hebbian_synapses")
def hebbian(op, args, run):
    """Outer-product Hebbian writes; ungated synapses also transmit ``u = H f(q)`` in read phases."""
    feats: FeatureActivity = args["pre"]
    v = heads(args["teacher"], op.n_kv_heads)
    teacher = v
    if feats.ring is not None:  # a window writes the values it consolidates
        v, teacher = ring_values(op, feats.ring, v, run)
    n = feats.write.shape[-1]
    scale = fit(run.intervention(op.name, "weight_scale"), n)
    initial = grow(run.initial(op.name, "weights"), n)
    causal = feats.schedule.mode == "causal"
    if op.gated or not causal:
        H = np.swapaxes(teacher, -1, -2) @ feats.write
        if initial is not None:
            H = initial + H
        Hs = H if scale is None else H * scale
        u = None
        if not op.gated:
            B, Hn, T, m = feats.read.shape
            u = (grouped(feats.read, op.n_kv_heads) @ np.swapaxes(Hs, -1, -2)).reshape(B, Hn, T, -1)
    else:
        u, H = causal_reads(op, teacher, feats.write, feats.read, scale, initial)
        Hs = H if scale is None else H * scale
    run.keep_state(op.name, weights=H)
    run.probe("weights", op.name, "weights", grow(Hs, op.m))
    return HebbianState(op, Hs, u, v)


def slot_response(feats: FeatureActivity, written: np.ndarray, dtype):
    """Soma offset ``s`` (B, H, T) = max potential over written slots; slot responses ``exp(l - s)``."""
    masked = np.where(written, feats.potential, -np.inf)
    s = masked.max(axis=-1, keepdims=True)
    s = np.where(np.isfinite(s), s, dtype(0))
    return np.exp(masked - s), s[..., 0]


@behaviour("astrocyte")
def astrocyte(op, args, run):
    """Calcium integration, process responses, soma sum (and offset) and divisive gain."""
    feats: FeatureActivity = args["features"]
    syn: HebbianState = args["synapses"]
    acc = continue_sum(feats.write, feats.schedule.mode == "causal", run.initial(op.name, "calcium"))
    run.keep_state(op.name, calcium=acc[:, :, -1:])
    calcium = np.repeat(acc, feats.group, axis=1)
    offset = None
    if feats.potential is not None:
        feats.read, offset = slot_response(feats, calcium > 0, run.dtype)
    scale = fit(run.intervention(op.name, "calcium_scale"), calcium.shape[-1])
    if feats.ring is not None:
        y, z, offset = hybrid_output(op, feats, syn, calcium, scale, run)
        B, H, T, dv = y.shape
        record_probes(op, feats, run, calcium, z, offset, T)
        return y.transpose(0, 2, 1, 3).reshape(B, T, H * dv)
    if scale is not None:
        calcium = calcium * scale
    gate = calcium * feats.read
    z = gate.sum(axis=-1)
    if syn.op.gated:
        B, H, T, m = gate.shape
        u = (grouped(gate, syn.op.n_kv_heads) @ np.swapaxes(syn.weights, -1, -2)).reshape(B, H, T, -1)
    else:
        u = syn.u
    if op.eps > 0:
        y = u / (z + run.dtype(op.eps))[..., None]
    else:
        y = u / np.where(z != 0, z, 1)[..., None]
    B, H, T, dv = y.shape
    record_probes(op, feats, run, calcium, z, offset, T)
    return y.transpose(0, 2, 1, 3).reshape(B, T, H * dv)


def record_probes(op, feats, run, calcium, z, offset, T):
    """Per-token probes, token axis second: calcium (B, T, H, m), soma sum and offset (B, T, H)."""
    if "calcium" in run.probe_kinds:
        B, H, _, n = calcium.shape
        c = grow(np.broadcast_to(calcium, (B, H, T, n)), op.m)
        run.probe("calcium", op.name, "calcium", c.transpose(0, 2, 1, 3))
    run.probe("soma", op.name, "soma_sum", z.transpose(0, 2, 1))
    if offset is not None:
        run.probe("soma", op.name, "soma_offset", offset.transpose(0, 2, 1))
        if "activity" in run.probe_kinds:
            run.probe("activity", feats.op.name, "activity", grow(feats.read, op.m).transpose(0, 2, 1, 3))
