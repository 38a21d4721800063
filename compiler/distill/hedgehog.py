"""Hedgehog feature maps and the distillation loss with its analytic gradient.

Per head, with ``z = x W + b`` (W: d x m, b: m) the feature response is

    f(x) = [softmax(z), softmax(-z)]                          (2m features)

with separate maps for queries (one per query head) and keys (one per key/value head).  The circuit's
normalised attention row for query i is ``a_ij = S_ij / sum_l S_il`` over the keys j visible to i,
``S_ij = f(q_i).f(k_j)``; with a window of exact slots (``window`` W > 0) the W visible keys nearest
the query (:func:`window_slots`: the most recent ones when causal, ``|i - j| <= r`` otherwise) respond
exactly, ``S_ij = exp(l_ij - s_i)`` (``l_ij = scale q_i.k_j``, ``s_i`` the row maximum over the window),
and the others ``S_ij = g exp(-s_i) f(q_i).f(k_j)`` with a per-head gain ``g = exp(theta)``.

The loss is the soft cross-entropy between the softmax rows ``p_ij`` and ``a_ij``:
``L = -sum_ij p_ij log a_ij / rows``.  Its gradient: ``dL/dS_ij = (M_ij w_i / Z_i - p_ij / S_ij) / rows``
(``M`` visibility, ``w_i = sum_j p_ij`` 1 for counted rows, ``Z_i = sum_l M_il S_il``), then
``dL/df(q) = G f(k)``, ``dL/df(k) = G^T f(q)`` and, through ``s = softmax(z)``,
``dL/dz = s (g_s - g_s.s) - s' (g_s' - g_s'.s')`` for the two halves.
"""

from __future__ import annotations

import numpy as np


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def hedgehog(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Features of ``x`` (B, N, T, d) with per-head ``weight`` (N, d, m) and ``bias`` (N, m): (B, N, T, 2m)."""
    z = x @ weight.astype(x.dtype)[None] + bias.astype(x.dtype)[None, :, None, :]
    return np.concatenate([softmax(z), softmax(-z)], axis=-1)


def hedgehog_backward(x, weight, bias, grad_f):
    """Gradients of a loss with respect to ``weight`` and ``bias`` given ``grad_f`` = dL/df (B, N, T, 2m)."""
    m = weight.shape[-1]
    z = x @ weight[None] + bias[None, :, None, :]
    s1, s2 = softmax(z), softmax(-z)
    g1, g2 = grad_f[..., :m], grad_f[..., m:]
    dz = s1 * (g1 - (g1 * s1).sum(-1, keepdims=True)) - s2 * (g2 - (g2 * s2).sum(-1, keepdims=True))
    B, N, T, d = x.shape
    xt = np.ascontiguousarray(x.transpose(1, 3, 0, 2).reshape(N, d, B * T))
    return bmm(xt, dz.transpose(1, 0, 2, 3).reshape(N, B * T, -1)), dz.sum(axis=(0, 2))


def visibility(mask: np.ndarray, causal: bool) -> np.ndarray:
    """(B, 1, T, T) keys visible to each query: unmasked keys (and j <= i when causal)."""
    B, T = mask.shape
    vis = np.broadcast_to(mask[:, None, None, :], (B, 1, T, T)).copy()
    if causal:
        vis &= np.tril(np.ones((T, T), dtype=bool))[None, None]
    return vis


def window_slots(vis: np.ndarray, window: int, causal: bool, sinks: bool = False) -> np.ndarray:
    """(B, 1, T, T): the exact slots of a window of ``window`` W, the W keys nearest each query.

    Causal: the W most recent visible keys (a ring of the last W writes).  Bidirectional: the visible
    keys at offsets ``-floor(W/2) <= j - i <= floor((W-1)/2)`` from the query (``|i - j| <= r`` for
    ``W = 2r + 1``), a band that slides with the query.  ``sinks``: besides, the first and the last
    visible key of each query (:func:`sink_slots`; an encoder's [CLS] and [SEP]) are exact slots too.
    """
    if sinks:
        return window_slots(vis, window, causal) | sink_slots(vis)
    if window <= 0:
        return np.zeros_like(vis)
    if not causal:
        T = vis.shape[-1]
        offset = np.arange(T)[None, :] - np.arange(T)[:, None]
        return vis & ((offset >= -(window // 2)) & (offset <= (window - 1) // 2))[None, None]
    later = np.cumsum(vis[..., ::-1], axis=-1)[..., ::-1]  # visible keys at or after j
    return vis & (later <= window)


def sink_slots(vis: np.ndarray) -> np.ndarray:
    """(B, 1, T, T): the first and the last visible key of each query ("attention sinks"): in an
    encoder the text's first token ([CLS]) and its last real token ([SEP]); causal, the first token and
    the query itself.  Rows without any visible key hold none."""
    T = vis.shape[-1]
    first = vis.argmax(-1)[..., None]
    last = T - 1 - vis[..., ::-1].argmax(-1)[..., None]
    j = np.arange(T)
    return vis & ((j == first) | (j == last))


def expand(x: np.ndarray, H: int) -> np.ndarray:
    """(B, G, ...) -> (B, H, ...): each key/value head repeated for the query heads of its group."""
    G = x.shape[1]
    return x if G == H else np.repeat(x, H // G, axis=1)


def bmm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched ``a @ b`` on contiguous operands (numpy's stacked matmul uses BLAS only then)."""
    return np.matmul(np.ascontiguousarray(a), np.ascontiguousarray(b))


def logits(q: np.ndarray, k: np.ndarray, scale: float) -> np.ndarray:
    """``scale q.k`` for query heads (B, H, T, d) against key heads (B, G, T, d): (B, H, T, T)."""
    return bmm(q, np.swapaxes(expand(k, q.shape[1]), -1, -2)) * scale


def softmax_rows(lg: np.ndarray, vis: np.ndarray) -> np.ndarray:
    """Softmax attention rows over visible keys (rows without any visible key are 0)."""
    masked = np.where(vis, lg, -np.inf)
    peak = masked.max(-1, keepdims=True)
    e = np.exp(masked - np.where(np.isfinite(peak), peak, 0))
    total = e.sum(-1, keepdims=True)
    return e / np.where(total > 0, total, 1)


def group_sum(x: np.ndarray, G: int) -> np.ndarray:
    """(B, H, ...) -> (B, G, ...): sum over the query heads sharing a key/value head."""
    B, H = x.shape[:2]
    return x.reshape(B, G, H // G, *x.shape[2:]).sum(axis=2)


def circuit_scores(fq, fk, lg, vis, win, gain):
    """Unnormalised circuit rows ``S`` (B, H, T, T), the feature kernel ``K = f(q).f(k)`` and, with a
    window, the factor ``g exp(-s)`` (B, H, T, 1) on the feature part."""
    K = bmm(fq, np.swapaxes(expand(fk, fq.shape[1]), -1, -2))
    if not win.any():
        return np.where(vis, K, 0), K, None
    s = np.where(win, lg, -np.inf).max(-1, keepdims=True)
    s = np.where(np.isfinite(s), s, 0)
    exact = np.exp(np.where(win, lg - s, -np.inf))
    factor = gain[None, :, None, None] * np.exp(-s)
    return np.where(win, exact, np.where(vis, K * factor, 0)), K, factor


def row_loss(q, k, target, vis, win, params, scale=1.0, need_grad=True):
    """Soft cross-entropy between ``target`` rows and the circuit's rows, and its gradient.

    ``params``: dict with ``q_weight`` (H, d, m), ``q_bias`` (H, m), ``k_weight`` (G, d, m), ``k_bias``
    (G, m), ``log_gain`` (H,).  Returns ``(loss, grads)`` with grads keyed like ``params``.
    """
    fq = hedgehog(q, params["q_weight"], params["q_bias"])
    fk = hedgehog(k, params["k_weight"], params["k_bias"])
    gain = np.exp(params["log_gain"])
    lg = logits(q, k, scale) if win.any() else None
    S, K, factor = circuit_scores(fq, fk, lg, vis, win, gain)
    Z = S.sum(-1, keepdims=True)
    weight = target.sum(-1, keepdims=True)  # 1 for rows that count, 0 for padded queries
    rows = max(int((weight > 0).sum()), 1)
    tiny = np.finfo(S.dtype).tiny
    loss = -(target * (np.log(np.maximum(S, tiny)) - np.log(np.maximum(Z, tiny)))).sum() / rows
    if not need_grad:
        return loss, None
    G = (np.where(vis, weight, 0.0) / np.maximum(Z, tiny) - target / np.maximum(S, tiny)) / rows
    G = np.where(vis, G, 0)
    grads = {"log_gain": np.zeros_like(params["log_gain"])}
    if factor is not None:
        dK = np.where(win | ~vis, 0, G * factor)
        grads["log_gain"] = (dK * K).sum(axis=(0, 2, 3))
    else:
        dK = G
    grad_fq = bmm(dK, expand(fk, fq.shape[1]))
    grad_fk = group_sum(bmm(np.swapaxes(dK, -1, -2), fq), fk.shape[1])
    grads["q_weight"], grads["q_bias"] = hedgehog_backward(q, params["q_weight"], params["q_bias"], grad_fq)
    grads["k_weight"], grads["k_bias"] = hedgehog_backward(k, params["k_weight"], params["k_bias"], grad_fk)
    return loss, grads
