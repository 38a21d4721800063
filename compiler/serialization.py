"""One-file storage for graphs: a structure in JSON plus arrays, in a single ``.npz`` archive.

The archive holds an entry ``__structure__`` (UTF-8 JSON as a uint8 array) and one entry per array.
It is read with ``allow_pickle=False``: object arrays are refused, so a hostile file cannot run code.
The JSON carries ``format`` (the container kind) and ``version``; readers refuse other kinds and
newer versions with a message that says which tool version wrote the file.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from compiler.atomic import atomic_write
from compiler.errors import SerializationError
from compiler.npzfile import READ_ERRORS, write_npz

STRUCTURE_KEY = "__structure__"


def save_archive(path: str | Path, structure: dict[str, Any], arrays: dict[str, np.ndarray]) -> Path:
    """Write ``structure`` (JSON-serialisable) and ``arrays`` to one ``.npz`` file at ``path``."""
    path = Path(path)
    if STRUCTURE_KEY in arrays:
        raise SerializationError(f"array name {STRUCTURE_KEY!r} is reserved")
    blob = np.frombuffer(json.dumps(structure, sort_keys=True).encode("utf-8"), dtype=np.uint8)
    for key, value in arrays.items():
        if value.dtype == object:
            raise SerializationError(f"{path}: array {key!r} has dtype object; store numeric arrays only")
    with atomic_write(path) as handle:
        write_npz(handle, {STRUCTURE_KEY: blob, **arrays})
    return path


def load_archive(
    path: str | Path, expected_format: str, max_version: int
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read a file written by :func:`save_archive`, checking its format name and version."""
    path = Path(path)
    if not path.exists():
        raise SerializationError(f"{path}: no such file")
    if path.is_dir():
        raise SerializationError(f"{path}: is a directory, expected a {expected_format} file")
    if not zipfile.is_zipfile(path):
        raise SerializationError(f"{path}: not a {expected_format} file (not an npz archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if STRUCTURE_KEY not in archive.files:
                raise SerializationError(f"{path}: not a {expected_format} file (no structure entry)")
            members = {key: archive[key] for key in archive.files}
            odd = next((key for key, value in members.items() if not isinstance(value, np.ndarray)), None)
            if odd is not None:
                raise SerializationError(f"{path}: corrupt {expected_format} file (entry {odd!r} is not an array)")
            structure = json.loads(members.pop(STRUCTURE_KEY).tobytes().decode("utf-8"))
            arrays = members
    except SerializationError:
        raise
    except READ_ERRORS as exc:
        raise SerializationError(f"{path}: corrupt {expected_format} file ({exc})") from exc
    if not isinstance(structure, dict):
        raise SerializationError(f"{path}: corrupt {expected_format} file (structure is not an object)")
    found = structure.get("format")
    if found != expected_format:
        raise SerializationError(f"{path}: is a {found!r} file, expected {expected_format!r}")
    version = structure.get("version")
    if not isinstance(version, int) or version > max_version:
        raise SerializationError(
            f"{path}: {expected_format} format version {version!r} is newer than this tripartite "
            f"reads (<= {max_version}); upgrade tripartite"
        )
    return structure, arrays
