"""``loihi2`` behaviour of feature populations (exact slot circuits).

Heads are laid out (B, heads, T, ...) as in :mod:`.features`.  Feature activity is 24-bit at
``e_f = quant["exp"]`` (a response of 1 is ``2**-e_f``); slot potentials are 24-bit at
``e_s = quant["score_exp"]``.

- Write of token t: slot t fires ``w_t 2**-e_f`` and its afferent synapses store the key payloads
  ``k_t`` (exponent ``e_k``) unchanged.
- Read of query q (exponent ``e_q``): ``A_j = sum_d q_d K_jd`` exactly (exponent ``e_q + e_k``);
  the scale is a 24-bit mantissa ``scale = S 2**e_S`` (``S`` in ``[2**22, 2**23)``):
  ``a = sat32(shift(A, e_q + e_k - e_a))`` with ``e_a = e_s - e_S - 23``, then
  ``l = sat24(shift(a S, -23))`` = ``scale q.K_j`` at ``e_s``.
- The soma offset is ``s = max_j l_j`` over written slots (exact, integer) and the slot response
  ``f_j = exp_fixed(l_j - s, e_s, e_f)`` (0 for unwritten slots); computed by the astrocyte
  (:func:`slot_response_step`) once it knows which slots hold calcium.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from compiler.errors import SimulationError
from hardware_sim.fixed_point import INT, STATE_BITS, exact_product, exp_fixed, saturate, shift, to_float
from hardware_sim.golden.features import check_slots, heads
from hardware_sim.golden.fixed_blocks import by_pairs
from hardware_sim.golden.fixed_offset_exp import MAX_OFFSET, applies, exp_of_offsets
from hardware_sim.golden.fixed_registry import Fx, fixed_behaviour, qexp
from hardware_sim.golden.stream import grow

SCALE_BITS = 23
ACC_BITS = 32


@dataclass
class FixedFeatures:
    """Integer feature activity: ``write`` (B, G, T, m) and ``read`` (B, H, T, m) at ``exp``; exact
    slots hold ``potential`` (B, H, T, m) at ``score_exp`` instead of ``read`` until the astrocyte's
    offset is known."""

    op: object
    schedule: object
    write: np.ndarray
    exp: int
    read: np.ndarray | None = None
    potential: np.ndarray | None = None
    score_exp: int = 0

    @property
    def group(self) -> int:
        return self.op.n_heads // self.op.n_kv_heads


@dataclass(frozen=True)
class ScoreParams:
    """Integer parameters of the slot potential ``l = scale q.K``."""

    scale: int
    scale_exp: int
    qk_exp: int
    score_exp: int


def score_params(op, q_exp: int, k_exp: int) -> ScoreParams:
    if op.scale <= 0:
        raise SimulationError(f"golden loihi2: node {op.name!r} has a non-positive scale {op.scale}")
    frac, e = math.frexp(op.scale)  # scale = frac 2**e, frac in [0.5, 1)
    mant = math.floor(frac * 2**SCALE_BITS + 0.5)
    return ScoreParams(mant, e - SCALE_BITS, q_exp + k_exp, qexp(op, "score_exp"))


def score_step(p: ScoreParams, q, keys, counter, name: str, visible=None) -> np.ndarray:
    """``l = scale q.K_j`` at ``score_exp``: q (..., Tq, d), keys (..., m, d) -> (..., Tq, m).

    ``visible`` (broadcastable to the output, bool) marks the (query, slot) pairs the chip computes;
    the others (a causal query against slots written after it) are zero and never saturate.
    """
    acc = exact_product(q, np.swapaxes(keys, -1, -2))
    if visible is not None:
        acc = np.where(visible, acc, 0)
    a_exp = p.score_exp - p.scale_exp - SCALE_BITS
    a = saturate(shift(acc, p.qk_exp - a_exp), ACC_BITS, counter, name)
    return saturate(shift(a * p.scale, -SCALE_BITS), STATE_BITS, counter, name)


def slot_response_step(potential, written, score_exp: int, f_exp: int, counter, name: str):
    """Offset ``s`` = max potential over written slots (0 if none) and ``f = exp(l - s)`` at ``f_exp``."""
    floor = -(1 << (STATE_BITS + 1))
    fused = potential.size and applies(score_exp, f_exp)  # exp_fixed(-d) by fused passes, the same integers
    if np.all(written) and potential.shape[-1]:  # every slot written: no masking (the same integers)
        s = potential.max(axis=-1, keepdims=True)
        d = s - potential
        if fused and d.max() <= MAX_OFFSET:
            return exp_of_offsets(d, score_exp, f_exp), s[..., 0]
        return exp_fixed(-d, score_exp, f_exp, counter, name), s[..., 0]
    masked = np.where(written, potential, floor)
    s = masked.max(axis=-1, keepdims=True)
    s = np.where(s > floor, s, 0)
    d = np.where(written, s - potential, -floor)
    if fused and d.max() <= MAX_OFFSET:
        f = exp_of_offsets(d, score_exp, f_exp)
    else:
        f = exp_fixed(-d, score_exp, f_exp, counter, name)
    return np.where(written, f, 0), s[..., 0]


def slot_writes_int(op, w: np.ndarray, f_exp: int, start: int = 0, slots: int | None = None) -> np.ndarray:
    """(B, G, T, slots): slot ``start + t`` fires ``w_t`` (payload ``2**-f_exp``) in the write phase
    of token t; ``slots`` defaults to all ``m`` (a run continuing a stream passes ``start + T``)."""
    B, T = w.shape
    check_slots(op, start + T)
    slots = op.m if slots is None else slots
    eye = np.eye(T, slots, k=start, dtype=INT) << INT(-f_exp)
    return np.broadcast_to(w[:, None, :, None] * eye[None, None], (B, op.n_kv_heads, T, slots))


def causal_visibility(T: int, n: int, start: int, group: int) -> np.ndarray:
    """((H/G) T, n) bool: query ``t`` (column ``start + t``) is read before slots after it are written."""
    return np.tile(np.arange(n)[None, :] <= start + np.arange(T)[:, None], (group, 1))


@fixed_behaviour("features")
def features(op, args, run):
    """Exact slots: write-phase firing and stored keys, read-phase potentials (module docstring);
    learned maps: :func:`~hardware_sim.golden.fixed_learned.learned_features`."""
    if op.lowering == "learned":
        from hardware_sim.golden.fixed_learned import learned_features

        return learned_features(op, args, run, FixedFeatures)
    if op.lowering != "exact":
        raise SimulationError(f"golden loihi2: node {op.name!r} uses the {op.lowering!r} lowering; the loihi2 "
                              "precision supports exact and learned circuits; compile with lowering='exact'")
    key: Fx = args["key"]
    query: Fx = args["query"]
    schedule = run.schedule(op.schedule)
    f_exp = qexp(op)
    w = run.written_int(schedule)
    write = slot_writes_int(op, w, f_exp, run.start, run.start + w.shape[1])
    keys = np.where(w[:, None, :, None] != 0, heads(key.q, op.n_kv_heads), 0)  # slot j stores k_j (exact copy)
    earlier = run.initial(op.name, "keys")
    if earlier is not None:
        keys = np.concatenate([earlier, keys], axis=2)
    run.keep_state(op.name, keys=keys)
    q = heads(query.q, op.n_heads)
    B, H, T, d = q.shape
    p = score_params(op, query.exp, key.exp)
    visible = None
    if schedule.mode == "causal":  # read t happens before later slots are written
        visible = causal_visibility(T, keys.shape[2], run.start, H // op.n_kv_heads)
    G, n = op.n_kv_heads, keys.shape[2]
    potential = by_pairs(lambda qb, kb: score_step(p, qb, kb, run.counter, op.name, visible),
                         [q.reshape(B, G, -1, d), keys], (B, G, (H // G) * T, n))  # = score_step on the whole
    return FixedFeatures(op, schedule, write, f_exp, potential=potential.reshape(B, H, T, -1),
                         score_exp=p.score_exp)


def probe_activity(run, feats: FixedFeatures) -> None:
    if "activity" in run.probe_kinds:
        read = grow(to_float(feats.read, feats.exp), feats.op.m)
        run.probe("activity", feats.op.name, "activity", read.transpose(0, 2, 1, 3))
