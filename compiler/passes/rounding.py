"""Rounding of 8-bit weight mantissas: to nearest, or compensating the output error on calibration inputs.

A synapse group ``y = W x`` (``W`` of shape ``(post, pre)``) is stored as mantissas ``M`` with one
power-of-two exponent per post-synaptic row, ``W ~= Q = diag(2**e) M``, ``M`` in ``[-128, 127]``.
What matters is the group's output, so the error of row ``i`` on calibration inputs ``x_t`` is

    E_i = (1/N) sum_t ((w_i - q_i) . x_t)**2 = (w_i - q_i)^T H (w_i - q_i),   H = (1/N) sum_t x_t x_t^T.

``nearest`` rounds every weight on its own (``m = floor(w 2**-e + 1/2)``, clipped), which minimises
``|w_i - q_i|`` but not ``E_i``.  ``compensated`` is the optimal-brain-surgeon column sweep (as in
GPTQ) on the mantissa grid of each row: columns are taken in order of decreasing ``H_jj`` (the
loudest input channels first); column ``j`` is rounded to the grid, and its error is spread over
the columns not yet rounded so that the output on the calibration inputs is preserved,

    delta_i = (w_ij - q_ij) / U_jj,    w_ik <- w_ik - delta_i U_jk   (k after j),

where ``U`` is the upper Cholesky factor of ``(H + lambda I)^-1`` with the dampening ``lambda =
DAMP * mean(diag H)`` (which also makes ``H`` invertible when there are fewer calibration tokens than
inputs).  Channels never active in calibration (``H_jj = 0``) take no error from the others.  The
sweep is done in blocks of ``BLOCK`` columns (the update of the later columns is one matrix
product per block).  Finally every row keeps whichever of its nearest and compensated mantissas
gives the smaller ``E_i``, so on the calibration inputs ``compensated`` is never worse than
``nearest``.  The exponents are those of :func:`hardware_sim.fixed_point.quantize_weights`.  Everything
is deterministic (no random numbers; ties in the channel order are broken by index).
"""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_limits

from hardware_sim.fixed_point import WEIGHT_BITS, int_range, quantize_weights

ROUNDINGS = ("nearest", "compensated")
DAMP = 1.0  # measured: held-out output error of every MiniLM group below nearest (0.01 overfits)
BLOCK = 32


def second_moment(x, mask=None) -> np.ndarray:
    """``H = (1/N) sum_t x_t x_t^T`` over the tokens selected by ``mask`` of ``x`` (..., pre)."""
    x = np.asarray(x, dtype=np.float64)
    if mask is not None and x.ndim >= 2 and x.shape[:2] == np.shape(mask):
        x = x[np.asarray(mask, bool)]
    x = x.reshape(-1, x.shape[-1])
    return x.T @ x / max(len(x), 1)


def grid_round(w, scale, bits: int = WEIGHT_BITS) -> np.ndarray:
    """Mantissas ``clip(floor(w / scale + 1/2))`` (``scale`` broadcast against ``w``), as float64."""
    lo, hi = int_range(bits)
    return np.clip(np.floor(w / scale + 0.5), lo, hi)


def output_error(w, mantissa, exps, h) -> np.ndarray:
    """``E_i = (w_i - q_i)^T H (w_i - q_i)`` per row, ``q = diag(2**e) M``."""
    d = np.asarray(w, dtype=np.float64) - np.ldexp(np.asarray(mantissa, dtype=np.float64), np.asarray(exps)[:, None])
    return np.sum((d @ h) * d, axis=1)


def _inverse_factor(h: np.ndarray, damp: float) -> np.ndarray:
    """Upper Cholesky factor ``U`` of ``(H + lambda I)^-1`` (``U^T U = (H + lambda I)^-1``)."""
    n = len(h)
    lam = damp * float(np.mean(np.diag(h))) if np.any(np.diag(h) > 0) else 1.0
    h = h + np.eye(n) * max(lam, 1e-300)
    chol = np.linalg.cholesky(h)  # H = L L^T  ->  H^-1 = L^-T L^-1
    linv = np.linalg.solve(chol, np.eye(n))
    return np.linalg.cholesky(linv.T @ linv).T


def _sweep(w: np.ndarray, scale: np.ndarray, u: np.ndarray, bits: int) -> np.ndarray:
    """The blocked column sweep (module docstring) over columns already in sweep order; works on
    ``w`` transposed so that each column is contiguous."""
    wt = np.ascontiguousarray(w.T)
    m = np.empty_like(wt)
    s = scale[:, 0]
    n = len(wt)
    for a in range(0, n, BLOCK):
        b = min(a + BLOCK, n)
        blk, ub = wt[a:b], u[a:b, a:b]
        err = np.empty_like(blk)
        for j in range(b - a):
            m[a + j] = grid_round(blk[j], s, bits)
            err[j] = (blk[j] - m[a + j] * s) / ub[j, j]
            blk[j + 1:] -= np.outer(ub[j, j + 1:], err[j])
        wt[b:] -= u[a:b, b:].T @ err
    return m.T


def compensated_mantissas(w, h, bits: int = WEIGHT_BITS, damp: float = DAMP):
    """Mantissas and per-row exponents of ``w`` (post, pre) rounded to preserve ``w x`` on inputs
    with second moment ``h`` (pre, pre); see the module docstring.  Returns ``(mantissa int64,
    exponents int64, rows_compensated)``, the last the number of rows that kept the compensated
    rounding."""
    with threadpool_limits(limits=1, user_api="blas"):  # many small products: threads only contend
        return _compensated(np.asarray(w, dtype=np.float64), np.asarray(h, dtype=np.float64), bits, damp)


def _compensated(w, h, bits, damp):
    nearest, exps = quantize_weights(w, bits, axis=0)
    diag = np.diag(h).copy()
    order = np.lexsort((np.arange(len(diag)), -diag))  # loudest channels first, ties by index
    hp = h[np.ix_(order, order)].copy()
    dead = np.diag(hp) <= 0
    hp[dead, :], hp[:, dead] = 0.0, 0.0
    hp[dead, dead] = 1.0 if dead.all() else float(np.mean(np.diag(hp)[~dead]))
    scale = np.ldexp(1.0, exps)[:, None]
    swept = np.empty_like(w)
    swept[:, order] = _sweep(w[:, order], scale, _inverse_factor(hp, damp), bits)
    better = output_error(w, swept, exps, h) < output_error(w, nearest, exps, h)
    mant = np.where(better[:, None], swept, nearest).astype(np.int64)
    return mant, exps, int(better.sum())


def round_group(w, h, rounding: str, bits: int = WEIGHT_BITS, damp: float = DAMP):
    """``(mantissa, row exponents)`` of ``w`` (post, pre) by ``rounding`` (one of :data:`ROUNDINGS`);
    ``h`` is the inputs' second moment, used by ``compensated`` only."""
    if rounding == "nearest" or h is None:
        return quantize_weights(w, bits, axis=0)
    if rounding == "compensated":
        mant, exps, _ = compensated_mantissas(w, h, bits, damp)
        return mant, exps
    raise ValueError(f"unknown rounding {rounding!r}; choose one of {', '.join(ROUNDINGS)}")
