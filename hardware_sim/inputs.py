"""Checks every backend applies to the token vectors and padding mask it is given."""

from __future__ import annotations

import numpy as np

from compiler.errors import InputError, SimulationError


def check_tokens(x, mask, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(x, mask)`` for token vectors ``x`` (B, T, width) and a padding ``mask`` (B, T) or None.

    Raises a one-line :class:`InputError` for a wrong shape, an empty batch, NaN or infinity, or a
    mask of another shape.
    """
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[2] != width or x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(f"inputs must have shape (batch, tokens, {width}) with at least one token, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise InputError("inputs contain NaN or infinity")
    mask = np.ones(x.shape[:2], dtype=bool) if mask is None else np.asarray(mask).astype(bool)
    if mask.shape != x.shape[:2]:
        raise InputError(f"mask must have shape {x.shape[:2]}, got {mask.shape}")
    return x, mask


def check_token_inputs(net, x, mask, backend: str):
    """Return ``(input encoder node, x, mask)`` for token vectors ``x`` (B, T, width) and ``mask`` (B, T).

    See :func:`check_tokens`; also :class:`SimulationError` for a network without exactly one input.
    """
    entries = net.of_kind("input_encoder")
    if len(entries) != 1:
        raise SimulationError(f"{backend}: network {net.name!r} needs exactly one input encoder, has {len(entries)}")
    x, mask = check_tokens(x, mask, entries[0].size)
    return entries[0], x, mask
