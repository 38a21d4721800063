"""Synaptic weights: an 8-bit signed mantissa with an exponent shared by the synapse group.

``w ~= m * 2**e`` with ``m`` in ``[-128, 127]``.  The exponent is chosen to minimise the squared
error ``sum (w - m 2**e)**2`` over the candidates ``e0 - 2 .. e0`` where ``e0`` is the smallest
exponent that represents ``max |w|`` without clipping; smaller candidates trade clipping a few
outliers for finer resolution of the bulk.  Mantissas are rounded half up and clipped.

``axis`` gives one exponent per slice (e.g. ``axis=0``: one per post-synaptic neuron row of a
``(post, pre)`` matrix), which the quantize pass uses for per-head groups.
"""

from __future__ import annotations

import numpy as np

from hardware_sim.fixed_point.formats import INT, WEIGHT_BITS, exponent_for, int_range

CANDIDATES = 3


def _mantissa(w: np.ndarray, e, bits: int) -> np.ndarray:
    lo, hi = int_range(bits)
    m = np.floor(np.ldexp(w, -np.asarray(e, dtype=INT)) + 0.5)
    return np.clip(m, lo, hi).astype(INT)


def _best_exponent(w: np.ndarray, bits: int) -> int:
    e0 = exponent_for(float(np.max(np.abs(w))) if w.size else 0.0, bits)
    best, best_err = e0, np.inf
    for e in range(e0, e0 - CANDIDATES, -1):
        err = float(np.sum((w - np.ldexp(_mantissa(w, e, bits).astype(np.float64), e)) ** 2))
        if err < best_err:
            best, best_err = e, err
    return best


def _best_exponents(rows: np.ndarray, bits: int) -> np.ndarray:
    """:func:`_best_exponent` of every row of a 2-D array, vectorised (same candidates and ties)."""
    e0 = np.array([exponent_for(float(v), bits) for v in np.max(np.abs(rows), axis=1, initial=0.0)], dtype=INT)
    errs = []
    for k in range(CANDIDATES):
        e = (e0 - k)[:, None]
        errs.append(np.sum((rows - np.ldexp(_mantissa(rows, e, bits).astype(np.float64), e)) ** 2, axis=1))
    return e0 - np.argmin(np.stack(errs, axis=1), axis=1).astype(INT)


def quantize_weights(w, bits: int = WEIGHT_BITS, axis: int | None = None):
    """Return ``(mantissa, exponent)`` with ``w ~= mantissa * 2**exponent``.

    Parameters
    ----------
    w : array of float weights.
    bits : mantissa width (8 on Loihi).
    axis : ``None`` for one exponent for the whole group (an ``int``); otherwise one exponent per
        index along ``axis`` (an int64 array of shape ``(w.shape[axis],)``).

    Returns
    -------
    mantissa : int64 array of ``w``'s shape, within ``bits``-bit signed range.
    exponent : int or int64 array.
    """
    w = np.asarray(w, dtype=np.float64)
    if axis is None:
        e = _best_exponent(w, bits)
        return _mantissa(w, e, bits), e
    moved = np.moveaxis(w, axis, 0)
    exps = _best_exponents(moved.reshape(moved.shape[0], -1), bits)
    shape = [1] * w.ndim
    shape[axis] = -1
    return _mantissa(w, exps.reshape(shape), bits), exps


def dequantize_weights(mantissa, exponent, axis: int | None = None) -> np.ndarray:
    """``mantissa * 2**exponent`` as float64 (inverse of :func:`quantize_weights`)."""
    e = np.asarray(exponent, dtype=INT)
    if axis is not None:
        shape = [1] * np.ndim(mantissa)
        shape[axis] = -1
        e = e.reshape(shape)
    return np.ldexp(np.asarray(mantissa, dtype=np.float64), e)
