"""Inputs of a sharded run, split into numbered shards of ``shard_size`` sequences.

Texts come from a UTF-8 file (one text per non-empty line), a JSONL file (``.jsonl``/``.ndjson``:
one JSON object per non-empty line with a string field ``text``) or ``--text`` arguments; arrays from
an ``.npz`` file (every array whose first axis is the batch is cut into rows).  Each shard remembers
the input lines (or rows) it covers, so a failure can name them, and a digest of its content, so
``--resume`` reuses a finished shard only when its inputs are unchanged.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compiler.errors import InputError
from compiler.npzfile import read_npz

JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass
class Shard:
    """Sequences ``first..last`` (1-based input lines, or rows of an npz) of one shard."""

    index: int
    first: int
    last: int
    unit: str
    texts: list[str] | None = None
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    digest: str = ""

    @property
    def size(self) -> int:
        return len(self.texts) if self.texts is not None else int(next(iter(self.arrays.values())).shape[0])

    def describe(self) -> str:
        return f"{self.unit} {self.first}" if self.first == self.last else f"{self.unit}s {self.first}-{self.last}"


def decoded_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file, or a one-line InputError for a missing or binary file."""
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a regular file; give a text file with one text per line")
    data = path.read_bytes()
    nul = data.find(b"\x00")
    if nul >= 0:
        raise InputError(f"{path}: binary file (NUL byte at {nul}); give UTF-8 text, one text per line")
    try:
        return data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: non-UTF-8 file (byte {exc.start}); give UTF-8 text, one text per line") from None


def numbered_texts(path: str | Path) -> list[tuple[int, str]]:
    """``(line number, text)`` of every non-empty line; JSONL files give each object's ``text``."""
    path = Path(path)
    jsonl = path.suffix.lower() in JSONL_SUFFIXES
    out = []
    for number, line in enumerate(decoded_lines(path), start=1):
        line = line.strip()
        if not line:
            continue
        if jsonl:
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not valid JSON ({exc.msg}); give one object per line") from None
            text = record.get("text") if isinstance(record, dict) else None
            if not isinstance(text, str):
                raise InputError(f"{path}:{number}: expected an object with a string field 'text'")
            line = text.strip()
            if not line:
                continue
        out.append((number, line))
    if not out:
        raise InputError(f"{path}: holds no text; give one text per line")
    return out


def digest(*parts) -> str:
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            h.update(str((part.dtype.str, part.shape)).encode())
            h.update(np.ascontiguousarray(part).tobytes())
        else:
            h.update(json.dumps(part, sort_keys=True).encode())
    return h.hexdigest()[:24]


def text_shards(numbered: list[tuple[int, str]], shard_size: int, unit: str = "line") -> list[Shard]:
    shards = []
    for index, start in enumerate(range(0, len(numbered), shard_size)):
        part = numbered[start : start + shard_size]
        texts = [t for _, t in part]
        shards.append(Shard(index, part[0][0], part[-1][0], unit, texts=texts, digest=digest(texts)))
    return shards


def array_shards(path: str | Path, arrays: dict[str, np.ndarray], shard_size: int) -> list[Shard]:
    """Rows of the batch arrays (``input_ids``/``x``/``images`` decide the batch size)."""
    main = next((arrays[k] for k in ("input_ids", "x", "images") if k in arrays), None)
    if main is None or main.ndim == 0:
        raise InputError(f"{path}: expected an array 'input_ids', 'x' or 'images', found {sorted(arrays) or 'none'}")
    B = main.shape[0]
    if B == 0:
        raise InputError(f"{path}: the batch is empty")
    for key, value in arrays.items():
        if value.ndim == 0 or value.shape[0] != B:
            raise InputError(f"{path}: array {key!r} has {value.shape[0] if value.ndim else 'no'} rows, "
                             f"expected {B} like the others")
    shards = []
    for index, start in enumerate(range(0, B, shard_size)):
        part = {k: v[start : start + shard_size] for k, v in arrays.items()}
        stop = min(start + shard_size, B)
        shards.append(Shard(index, start + 1, stop, "row", arrays=part, digest=digest(*sorted(part), *part.values())))
    return shards


def make_shards(args, shard_size: int) -> tuple[list[Shard], str]:
    """The shards of the parsed command-line inputs and a description of where they came from."""
    if shard_size < 1:
        raise InputError(f"--shard-size {shard_size}: give a positive number of sequences per shard")
    if getattr(args, "inputs", None):
        return array_shards(args.inputs, read_npz(args.inputs), shard_size), str(args.inputs)
    if getattr(args, "text_file", None):
        return text_shards(numbered_texts(args.text_file), shard_size), str(args.text_file)
    return text_shards(list(enumerate(args.text, start=1)), shard_size, unit="text"), "--text"
