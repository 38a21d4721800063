"""Text to token ids with the tokenizer a model carries, padded and masked as transformers does.

``tokenize`` reproduces ``AutoTokenizer(texts, padding=True, truncation=True, max_length=L)``: each
text is encoded with its special tokens, truncated to ``L`` tokens (special tokens included), and the
batch is padded on the right with the pad id to its longest member; ``mask`` is true on real tokens.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from compiler.attention import AttentionGraph
from compiler.encoder import InputEncoder
from compiler.errors import InputError


def encoder_and_limit(model: InputEncoder | AttentionGraph) -> tuple[InputEncoder, int | None]:
    """The input encoder of ``model`` and its default token limit.

    The limit is ``meta['max_seq_length']`` (sentence-transformers' setting, 256 for all-MiniLM-L6-v2)
    capped by the encoder's position table, else the position table's length, else none (RoPE).
    """
    if isinstance(model, AttentionGraph):
        encoder, limit = model.encoder, model.meta.get("max_seq_length")
        if encoder is None:
            raise InputError(f"graph {model.name!r} has no input encoder; pass token vectors instead of text")
    elif isinstance(model, InputEncoder):
        encoder, limit = model, None
    else:
        raise InputError(f"expected an attention graph or an input encoder, got {type(model).__name__}")
    positions = encoder.max_positions
    if limit is None:
        return encoder, positions
    return encoder, int(limit) if positions is None else min(int(limit), positions)


def pad_id(encoder: InputEncoder) -> int:
    """The tokenizer's own padding id when its document names one, else the model's ``pad_token_id``."""
    padding = json.loads(encoder.tokenizer_json or "{}").get("padding") or {}
    value = padding.get("pad_id")
    return int(value) if isinstance(value, int) else int(encoder.pad_token_id)


def tokenize(model: InputEncoder | AttentionGraph, texts: list[str], max_length: int | None = None):
    """Token ids, mask and token types of ``texts`` for ``model`` (a graph or its input encoder).

    Returns
    -------
    input_ids : int64 (B, T), padded with the pad id on the right
    mask : bool (B, T), true on real tokens
    token_type_ids : int64 (B, T), zero on padding
    """
    if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
        raise InputError("texts must be a list of strings")
    if not texts:
        raise InputError("no texts to tokenize; give at least one")
    encoder, default = encoder_and_limit(model)
    limit = default if max_length is None else int(max_length)
    tokenizer = encoder.tokenizer()
    if limit is not None:
        if limit < 1:
            raise InputError(f"max_length must be positive, got {limit}")
        tokenizer.enable_truncation(max_length=limit)
    try:
        encodings = tokenizer.encode_batch(list(texts))
    except BaseException as exc:  # a corrupt tokenizer can make the Rust library panic (a BaseException)
        if type(exc).__name__ != "PanicException":
            raise
        raise InputError(f"the tokenizer of {getattr(model, 'name', 'the model')!r} failed on these texts "
                         f"({str(exc).splitlines()[0][:80]}); its tokenizer file is corrupt: take it again "
                         "from the checkpoint") from None
    T = max(len(e.ids) for e in encodings)
    ids = np.full((len(texts), T), pad_id(encoder), dtype=np.int64)
    types = np.zeros((len(texts), T), dtype=np.int64)
    mask = np.zeros((len(texts), T), dtype=bool)
    for row, enc in enumerate(encodings):
        n = len(enc.ids)
        ids[row, :n], types[row, :n], mask[row, :n] = enc.ids, enc.type_ids, True
    return ids, mask, types


def read_text_file(path: str | Path) -> list[str]:
    """The texts of a UTF-8 file, one per non-empty line (surrounding whitespace removed)."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file; give a text file with one text per line")
    data = path.read_bytes()
    try:
        if b"\x00" in data:
            raise UnicodeDecodeError("utf-8", data, data.index(b"\x00"), data.index(b"\x00") + 1, "NUL byte")
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: binary or non-UTF-8 file (byte {exc.start}); give UTF-8 text, one text per line"
        ) from None
    lines = [line.strip() for line in text.splitlines()]
    texts = [line for line in lines if line]
    if not texts:
        raise InputError(f"{path}: holds no text; give one text per line")
    return texts
