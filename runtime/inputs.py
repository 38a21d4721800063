"""User inputs: text, text files and arrays, turned into token vectors and a padding mask."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from compiler.errors import InputError
from compiler.npzfile import read_npz
from hardware_sim.inputs import check_tokens


@dataclass
class Batch:
    """What a backend consumes: token vectors ``x`` (B, T, width) and ``mask`` (B, T); ``input_ids``
    when the batch came from tokens or text."""

    x: np.ndarray
    mask: np.ndarray
    input_ids: np.ndarray | None = None
    texts: list[str] | None = None
    labels: np.ndarray | None = None


def from_ids(encoder, input_ids, mask=None, token_type_ids=None, texts=None) -> Batch:
    ids = np.asarray(input_ids)
    if encoder is None:
        raise InputError("this network has no input encoder; pass token vectors as array 'x'")
    if mask is None:
        mask = np.ones(ids.shape, dtype=bool)
    mask = np.asarray(mask).astype(bool)
    if mask.shape != ids.shape:
        raise InputError(f"mask shape {mask.shape} differs from input_ids shape {ids.shape}")
    return Batch(x=encoder.encode(ids, token_type_ids), mask=mask, input_ids=ids, texts=texts)


def from_texts(encoder, texts: list[str], meta: dict | None = None) -> Batch:
    from runtime.text import tokenize

    if not texts:
        raise InputError("no text given")
    ids, mask, types = tokenize(encoder, texts, max_length=(meta or {}).get("max_seq_length"))
    return from_ids(encoder, ids, mask, types, texts=texts)


def load_npz_inputs(path: str | Path, encoder, width: int) -> Batch:
    """Read ``--inputs X.npz``: ``input_ids`` (+ ``mask``, ``token_type_ids``), ``x`` token vectors
    (B, T, width) (+ ``mask``) or ``images`` (B, H, W) for image models; optional ``labels`` (B,)
    (class labels for the task-level accuracy of ``verify``).  Read with ``allow_pickle=False``."""
    path = Path(path)
    arrays = read_npz(path)
    batch = batch_from_arrays(path, arrays, encoder, width)
    if "labels" in arrays:
        labels = np.asarray(arrays["labels"])
        if labels.shape != batch.x.shape[:1] or labels.dtype.kind not in "iu":
            raise InputError(f"{path}: 'labels' must be {batch.x.shape[0]} integers, got {labels.dtype} {labels.shape}")
        batch.labels = labels
    return batch


def batch_from_arrays(path: Path, arrays: dict[str, np.ndarray], encoder, width: int) -> Batch:
    mask = arrays.get("mask")
    if "input_ids" in arrays:
        return from_ids(encoder, arrays["input_ids"], mask, arrays.get("token_type_ids"))
    if "images" in arrays:
        if encoder is None or encoder.patch_projection is None:
            raise InputError(f"{path}: this network does not take images; pass 'input_ids' or 'x'")
        x = encoder.encode_patches(arrays["images"])
        return Batch(x=x, mask=np.ones(x.shape[:2], bool))
    if "x" in arrays:
        try:
            x, mask = check_tokens(np.asarray(arrays["x"], dtype=np.float64), mask, width)
        except (InputError, ValueError, TypeError) as exc:
            raise InputError(f"{path}: array 'x': {exc}") from None
        return Batch(x=x, mask=mask)
    raise InputError(f"{path}: expected an array 'input_ids', 'x' or 'images', found {sorted(arrays) or 'none'}")
