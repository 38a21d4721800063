"""Golden behaviour of feature neurons: the response ``f`` of each lowering.

Heads are laid out (B, heads, T, ...).  With ``x' = x sqrt(scale)``:

- favor:   ``f(x) = exp(W x' - |x'|^2/2) / sqrt(m)``  so ``E[f(q).f(k)] = exp(scale q.k)``
- relu:    ``f(x) = relu(W x')``
- elu1:    ``f(x) = elu(x') + 1``
- taylor2: ``f(x) = [1, x', vec(x' x'^T)/sqrt 2]``  so ``f(q).f(k) = 1 + s + s^2/2``, ``s = q'.k'``
- learned: distilled Hedgehog maps, optionally next to a window of exact ring slots
  (:mod:`hardware_sim.golden.learned`)
- exact:   slot neurons; write of token t makes slot t fire 1 and stores ``k_t`` on its afferent
  synapses (``K = sum_t w_t e_t k_t^T``); the read potential of slot j is ``l_j = scale q.K_j``,
  the response ``exp(l_j - s)`` for written slots (the offset ``s`` comes from the astrocyte soma).
  Only the slots written so far take part (``n = start + T`` of the ``m``; a run continuing a
  stream starts at slot ``start``, see :mod:`.stream`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compiler.errors import SimulationError
from hardware_sim.golden.learned import learned_activity
from hardware_sim.golden.registry import behaviour


def heads(x: np.ndarray, n: int) -> np.ndarray:
    """(B, T, n*d) -> (B, n, T, d)."""
    B, T, _ = x.shape
    return x.reshape(B, T, n, -1).transpose(0, 2, 1, 3)


def favor(x, op, w):
    """Positive random features of ``x`` (B, G, T, d) with projection ``w`` (G, m, d)."""
    proj = x @ np.swapaxes(w, -1, -2)[None]
    return np.exp(proj - 0.5 * (x * x).sum(-1, keepdims=True)) / np.sqrt(x.dtype.type(op.m))


def relu(x, op, w):
    return np.maximum(x @ np.swapaxes(w, -1, -2)[None], 0)


def elu1(x, op, w):
    return np.where(x > 0, x + 1, np.exp(np.minimum(x, 0)))


def taylor2(x, op, w):
    B, G, T, d = x.shape
    one = np.ones((B, G, T, 1), dtype=x.dtype)
    outer = (x[..., :, None] * x[..., None, :]).reshape(B, G, T, d * d) / np.sqrt(x.dtype.type(2))
    return np.concatenate([one, x, outer], axis=-1)


FEATURE_MAPS = {"favor": favor, "relu": relu, "elu1": elu1, "taylor2": taylor2}


@dataclass
class FeatureActivity:
    """Activity of a feature population over a run.

    ``write``: (B, G, T, m) write-phase responses ``w_t f(k_t)`` per key/value head (0 for tokens
    not written).  ``read``: (B, H, T, m) read-phase responses ``f(q_t)``; for exact slots it is
    filled in by the astrocyte once the soma's offset is known, and ``potential`` (B, H, T, n)
    holds ``scale q_t.K_j``.  ``keys``: (B, G, n, d) keys stored on exact slots.  Exact circuits
    carry only the ``n`` slots written so far (``m`` at most) on their last axis.
    """

    op: object
    schedule: object
    write: np.ndarray
    read: np.ndarray | None = None
    potential: np.ndarray | None = None
    keys: np.ndarray | None = None
    ring: object = None  # learned circuits with a window: hardware_sim.golden.learned.RingActivity

    @property
    def group(self) -> int:
        return self.op.n_heads // self.op.n_kv_heads


def check_slots(op, used: int) -> None:
    """A one-line error when ``used`` columns exceed the ``m`` slots of exact circuit ``op``."""
    if used > op.m:
        raise SimulationError(f"golden: node {op.name!r} has {op.m} slots but the input has {used} tokens; "
                              f"compile with --max-tokens {used} or more")


def slot_writes(op, w: np.ndarray, dtype, start: int = 0) -> np.ndarray:
    """(B, G, T, start + T): slot ``start + t`` fires ``w_t`` in the write phase of token t."""
    B, T = w.shape
    check_slots(op, start + T)
    eye = np.eye(T, start + T, k=start, dtype=dtype)
    return np.broadcast_to(w[:, None, :, None] * eye[None, None], (B, op.n_kv_heads, T, start + T))


def exact_features(op, schedule, w, k, q, run) -> FeatureActivity:
    """Slot writes, stored keys ``K`` (earlier runs' slots, then this run's ``w_t k_t``) and the read
    potentials ``scale q.K_j`` over the slots written so far."""
    write = slot_writes(op, w, run.dtype, run.start)
    keys = w[:, None, :, None].astype(run.dtype) * k
    earlier = run.initial(op.name, "keys")
    if earlier is not None:
        keys = np.concatenate([earlier, keys], axis=2)
    run.keep_state(op.name, keys=keys)
    B, H, T, d = q.shape
    qg = q.reshape(B, op.n_kv_heads, -1, d)
    potential = (qg @ np.swapaxes(keys, -1, -2)).reshape(B, H, T, -1) * run.dtype(op.scale)
    return FeatureActivity(op, schedule, write, potential=potential, keys=keys)


@behaviour("features")
def features(op, args, run):
    """Write-phase responses to keys and read-phase responses (or exact potentials) to queries."""
    schedule = run.schedule(op.schedule)
    w = run.written(schedule)
    k = heads(args["key"], op.n_kv_heads)
    q = heads(args["query"], op.n_heads)
    if op.lowering == "exact":
        return exact_features(op, schedule, w, k, q, run)
    if op.lowering == "learned":
        activity = learned_activity(op, schedule, w, k, q, run, FeatureActivity)
        run.probe("activity", op.name, "activity", activity.read.transpose(0, 2, 1, 3))
        return activity
    root = run.dtype(np.sqrt(op.scale))
    proj = run.cast(op, "projection")
    fmap = FEATURE_MAPS[op.lowering]
    write = fmap(k * root, op, proj) * w[:, None, :, None]
    B, H, T, d = q.shape
    qg = q.reshape(B, op.n_kv_heads, -1, d) * root
    read = fmap(qg, op, proj).reshape(B, H, T, -1)
    run.probe("activity", op.name, "activity", read.transpose(0, 2, 1, 3))
    return FeatureActivity(op, schedule, write, read=read)
