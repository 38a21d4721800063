"""Golden behaviour of the ``learned`` feature population and its window of exact ring slots.

Feature responses (per head, :func:`compiler.distill.hedgehog.hedgehog`): write of token t
``f(k_t) = [softmax(k_t W_k + b_k), softmax(-(k_t W_k + b_k))]``, read of query i ``f(q_i)`` with the
query maps.  Without a window the write phase drives the Hebbian synapses and the calcium with
``w_t f(k_t)`` as every other feature map does.

With a window of W ring slots, written tokens enter slot ``n_t mod W`` (``n_t`` the count of writes
up to t); the write that reuses a slot first consolidates its old token j into the feature memory:
``c += f(k_j)``, ``H += v_j f(k_j)^T``.  So the feature write of step t is ``f(k_j)`` for the token j
with ``n_t - n_j = W`` (if t is written), and at read i the ring holds the written tokens j with
``n_i - n_j < W`` (bidirectional: ``n_T - n_j < W``).  The ring is kept token-indexed here (slot
``n_j mod W`` holds token j while it is in the ring).  Read of query i: ring slots respond
``exp(scale q_i.k_j - s_i)`` (``s_i`` the soma's offset, the largest such logit), the feature
neurons ``exp(log_gain - s_i) f(q_i)``; the soma sums both parts into one normaliser:
``y_i = (exp(-s_i) g H f(q_i) + sum_ring e_ij v_j) / (exp(-s_i) g c.f(q_i) + sum_ring e_ij)``.

Streaming: the circuit's state between runs is the feature memory (``c``, ``H``) and the ring: the
keys and values of its (at most W) tokens, oldest first, and which slots are full -- W + 2m per
head whatever the context.

The window holds the W keys nearest each query.  In a causal circuit those are the last W written,
the ring above.  In a bidirectional (encoder) circuit they are the keys at offsets ``-floor(W/2) <=
j - i <= floor((W-1)/2)`` (``|i - j| <= r`` for ``W = 2r + 1``): a ring that slides with the query,
written with a look-ahead of ``floor((W-1)/2)`` tokens.  The feature memory then integrates every
written token (``c = sum_t w_t f(k_t)``, ``H = sum_t w_t v_t f(k_t)^T``), and each slot's synapse
also inhibits its own token's feature contribution, so that every key is counted once:
``y_i = (exp(-s_i) g (H f(q_i) - sum_slot w_j v_j f(k_j).f(q_i)) + sum_slot e_ij v_j)
/ (exp(-s_i) g (c.f(q_i) - sum_slot w_j f(k_j).f(q_i)) + sum_slot e_ij)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.distill.hedgehog import expand, hedgehog
from hardware_sim.golden.stream import fit


@dataclass
class RingActivity:
    """Exact slots of a window: ``potential`` (B, H, T, T) ``scale q_i.k_j``, ``held`` (B, 1, T, T),
    true where token j sits in the ring at read i, and ``moves`` (B, T, T), ``w_j`` where the write of
    step t consolidates token j."""

    potential: np.ndarray
    held: np.ndarray
    moves: np.ndarray
    keep: tuple | None = None  # (index (B, W), held (B, W)): the ring's tokens after the run, oldest first
    slot_features: np.ndarray | None = None  # sliding window: (B, G, T, m) feature writes its slots inhibit

    def kept(self, x: np.ndarray) -> np.ndarray:
        """The (B, G, W, n) rows of ``x`` (B, G, P + T, n) that stay in the ring (0 for empty slots)."""
        index, held = self.keep
        return np.take_along_axis(x, index[:, None, :, None], axis=2) * held[:, None, :, None]

    def consolidated(self, x: np.ndarray) -> np.ndarray:
        """Per write step, the (B, G, T, n) activity of the token that step consolidates (0 if none):
        the ring slot being reused holds that token's key and value."""
        return np.matmul(self.moves[:, None], x)


def write_counts(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    written = w > 0
    return written, np.cumsum(written, axis=1)


def consolidations(w: np.ndarray, window: int) -> np.ndarray:
    """(B, T_step, T_token): ``w_j`` where the write of step t consolidates token j."""
    written, n = write_counts(w)
    hit = written[:, :, None] & written[:, None, :] & (n[:, :, None] - n[:, None, :] == window)
    return hit * w[:, None, :]


def ring_held(w: np.ndarray, window: int, causal: bool) -> np.ndarray:
    written, n = write_counts(w)
    reader = n if causal else np.broadcast_to(n[:, -1:], n.shape)
    held = written[:, None, :] & (reader[:, :, None] - n[:, None, :] < window)
    if causal:
        held &= np.tril(np.ones(held.shape[1:], bool))[None]
    return held[:, None]


def kept_ring(w: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Index (B, W) of the last ``window`` written tokens of ``w`` (B, L), oldest first, and whether
    each slot holds one (a ring not yet full keeps its empty slots first)."""
    B, _ = w.shape
    index, held = np.zeros((B, window), dtype=np.int64), np.zeros((B, window), dtype=bool)
    for b in range(B):
        j = np.flatnonzero(w[b] > 0)[-window:]
        index[b, window - j.size :], held[b, window - j.size :] = j, True
    return index, held


def with_ring(op, run, x, w, var: str):
    """``x`` (B, G, T, n) and ``w`` (B, T) after the ring the previous run left (P = W columns of
    earlier tokens, oldest first; none for a run from scratch)."""
    prefix = run.initial(op.name, var)
    if prefix is None:
        return x, w
    held = run.initial(op.name, "ring_held")
    return np.concatenate([prefix.astype(x.dtype), x], axis=2), np.concatenate([held.astype(w.dtype), w], axis=1)


def learned_activity(op, schedule, w, k, q, run, activity_cls):
    """FeatureActivity of a learned population: writes (consolidations with a window), reads, ring.

    A run continuing a stream puts the ring the last run left (its keys and which slots are full)
    before its own tokens: they are read and consolidated as if written just before.
    """
    dtype = run.dtype
    fq = hedgehog(q, op.q_weight.astype(dtype), op.q_bias.astype(dtype))
    if not op.window:
        fk = hedgehog(k, op.k_weight.astype(dtype), op.k_bias.astype(dtype))
        return activity_cls(op, schedule, fk * w[:, None, :, None], read=fq)
    if schedule.mode != "causal":
        return sliding_activity(op, schedule, w, k, q, fq, dtype, activity_cls)
    k, w_all = with_ring(op, run, k, w, "ring_keys")
    fk = hedgehog(k, op.k_weight.astype(dtype), op.k_bias.astype(dtype))
    P = w_all.shape[1] - w.shape[1]
    read = fq * np.exp(op.log_gain.astype(dtype))[None, :, None, None]
    B, H, T, d = q.shape
    kk = np.repeat(k, H // op.n_kv_heads, axis=1)
    potential = np.matmul(q, np.swapaxes(kk, -1, -2)) * dtype(op.scale)
    moves = consolidations(w_all, op.window).astype(dtype)[:, P:]
    held = ring_held(w_all, op.window, schedule.mode == "causal")[:, :, P:]
    ring = RingActivity(potential, held, moves, kept_ring(w_all, op.window))
    run.keep_state(op.name, ring_keys=ring.kept(k), ring_held=ring.keep[1])
    return activity_cls(op, schedule, ring.consolidated(fk), read=read, ring=ring)


def sliding_window(w: np.ndarray, window: int) -> np.ndarray:
    """(B, 1, T, T): the written keys j at offsets ``-floor(W/2) <= j - i <= floor((W-1)/2)`` of read i."""
    T = w.shape[1]
    offset = np.arange(T)[None, :] - np.arange(T)[:, None]
    band = (offset >= -(window // 2)) & (offset <= (window - 1) // 2)
    return (band[None] & (w > 0)[:, None, :])[:, None]


def sliding_activity(op, schedule, w, k, q, fq, dtype, activity_cls):
    """A bidirectional circuit's window: every written token drives the feature memory, and the slots
    around each read hold its nearest keys (their feature writes kept to be inhibited)."""
    fk = hedgehog(k, op.k_weight.astype(dtype), op.k_bias.astype(dtype))
    write = fk * w[:, None, :, None]
    H = q.shape[1]
    kk = np.repeat(k, H // op.n_kv_heads, axis=1)
    potential = np.matmul(q, np.swapaxes(kk, -1, -2)) * dtype(op.scale)
    ring = RingActivity(potential, sliding_window(w, op.window), None, slot_features=write)
    read = fq * np.exp(op.log_gain.astype(dtype))[None, :, None, None]
    return activity_cls(op, schedule, write, read=read, ring=ring)


def ring_values(op, ring: RingActivity, v: np.ndarray, run) -> tuple[np.ndarray, np.ndarray]:
    """Values of a windowed circuit's synapses: (``v`` after the ring's earlier values, the values each
    write consolidates); keeps the ring's values for the next run.  A sliding window writes every value."""
    if ring.slot_features is not None:
        return v, v
    prefix = run.initial(op.name, "ring_values")
    if prefix is not None:
        v = np.concatenate([prefix.astype(v.dtype), v], axis=2)
    run.keep_state(op.name, ring_values=ring.kept(v))
    return v, ring.consolidated(v)


def slot_share(read, ring: RingActivity, v=None, weight_scale=None):
    """What the slots of a sliding window inhibit: their tokens' share of the feature memory seen by each
    read, ``sum_slot w_j f(k_j).r_i`` (B, H, T, 1) for the soma, or with values ``v`` (B, H, T, dv) the
    Hebbian share ``sum_slot v_j (w_j f(k_j).r_i)``, each feature scaled as the synapses' ``weight_scale``
    (B|1, G, dv, m) scales it."""
    H = read.shape[1]
    fk = expand(ring.slot_features, H)
    if v is None:
        return np.where(ring.held, np.matmul(read, np.swapaxes(fk, -1, -2)), 0).sum(-1, keepdims=True)
    if weight_scale is None:
        return np.matmul(np.where(ring.held, np.matmul(read, np.swapaxes(fk, -1, -2)), 0), v)
    B = read.shape[0]
    scale = np.broadcast_to(expand(weight_scale, H), (B, H) + weight_scale.shape[2:])  # (B, H, dv, m)
    held = np.broadcast_to(ring.held, (B, H) + ring.held.shape[2:]).astype(read.dtype)
    return np.einsum("bhim,bhjm,bhdm,bhjd,bhij->bhid", read, fk, scale, v, held, optimize=True)


def hybrid_output(op, feats, syn, calcium, scale, run):
    """Soma offset, normaliser and output of a learned circuit with a ring of exact slots.

    ``calcium`` (B, H, T|1, m): the feature memory seen by each read; ``syn.u``: ``H f(q)`` per read;
    ``syn.teacher``: values (B, G, T, dv).  Returns ``y`` (B, H, T, dv), ``z`` and ``s`` (B, H, T).
    """
    ring = feats.ring
    masked = np.where(ring.held, ring.potential, -np.inf)
    s = masked.max(-1, keepdims=True)
    s = np.where(np.isfinite(s), s, 0)
    e = np.exp(masked - s)
    if scale is not None:
        calcium = calcium * scale
    damp = np.exp(-s)
    H = e.shape[1]
    v = np.repeat(syn.teacher, H // syn.teacher.shape[1], axis=1)
    feature_z, feature_u = (calcium * feats.read).sum(-1, keepdims=True), syn.u
    if ring.slot_features is not None:  # each slot inhibits its own token's feature contribution
        weight_scale = fit(run.intervention(syn.op.name, "weight_scale"), feats.read.shape[-1])
        feature_u = feature_u - slot_share(feats.read, ring, v, weight_scale)
        feature_z = feature_z - slot_share(feats.read if scale is None else feats.read * scale, ring)
    z = feature_z * damp + e.sum(-1, keepdims=True)
    u = feature_u * damp + np.matmul(e, v)
    y = u / np.where(z != 0, z, 1)
    return y, z[..., 0], s[..., 0]
