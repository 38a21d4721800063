"""Reading the files of a Hugging Face-format checkpoint directory without torch.

A checkpoint directory holds ``config.json`` and its weights as one ``model.safetensors`` or as shards
listed by ``model.safetensors.index.json``.  Tensors are read with safetensors' NumPy API; ``BF16``
tensors (which NumPy cannot represent) are widened to float32 from their raw bytes:
``float32 bits = bf16 bits << 16``, which is exact.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from compiler.errors import FrontendError

INDEX_FILE = "model.safetensors.index.json"
LEGACY_RENAMES = ((".LayerNorm.gamma", ".LayerNorm.weight"), (".LayerNorm.beta", ".LayerNorm.bias"))


def read_json(path: Path, required: bool = True) -> Any:
    """Parse the JSON file ``path``; ``None`` when it is absent and not ``required``."""
    if not path.is_file():
        if required:
            raise FrontendError(f"{path}: no such file")
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise FrontendError(f"{path}: not a UTF-8 text file ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise FrontendError(f"{path}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from exc


def weight_files(directory: Path) -> list[Path]:
    """The safetensors files holding the checkpoint's weights, in a deterministic order."""
    index = read_json(directory / INDEX_FILE, required=False)
    if index is not None:
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not weight_map or not all(
                isinstance(v, str) and v and "/" not in v for v in weight_map.values()):
            raise FrontendError(f"{directory / INDEX_FILE}: 'weight_map' must map tensor names to shard file "
                                "names; the shard index is corrupt")
        files = [directory / name for name in sorted(set(weight_map.values()))]
        for file in files:
            try:
                present = file.is_file()
            except OSError as exc:  # e.g. a name longer than the file system allows
                raise FrontendError(f"{directory / INDEX_FILE}: shard name {file.name[:40]!r}... cannot be a file "
                                    f"({exc.strerror}); the shard index is corrupt") from exc
            if not present:
                raise FrontendError(f"{file}: shard listed in {INDEX_FILE} is missing; copy the whole checkpoint")
        return files
    single = directory / "model.safetensors"
    if single.is_file():
        return [single]
    files = sorted(directory.glob("*.safetensors"))
    if files:
        return files
    legacy = [p.name for p in directory.glob("*.bin")] + [p.name for p in directory.glob("*.pt*")]
    hint = (f" (found {', '.join(sorted(legacy))}: convert it to safetensors, e.g. save_pretrained with "
            "safe_serialization=True)") if legacy else ""
    raise FrontendError(f"{directory}: no *.safetensors weight file{hint}")


def _raw_header(path: Path) -> tuple[dict, int]:
    with open(path, "rb") as handle:
        (size,) = struct.unpack("<Q", handle.read(8))
        return json.loads(handle.read(size)), 8 + size


def _read_bf16(path: Path, name: str) -> np.ndarray:
    header, start = _raw_header(path)
    entry = header[name]
    begin, end = entry["data_offsets"]
    raw = np.fromfile(path, dtype="<u2", count=(end - begin) // 2, offset=start + begin)
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(entry["shape"])


def read_file(path: Path) -> dict[str, np.ndarray]:
    """All tensors of one safetensors file as NumPy arrays."""
    from safetensors import SafetensorError, safe_open

    tensors = {}
    try:
        with safe_open(str(path), framework="np") as handle:
            for name in handle.keys():
                try:
                    tensors[name] = handle.get_tensor(name)
                except TypeError:
                    tensors[name] = _read_bf16(path, name)
    except (SafetensorError, OSError, ValueError, KeyError, struct.error) as exc:
        raise FrontendError(f"{path}: corrupt safetensors file ({str(exc).splitlines()[0]})") from exc
    return tensors


def read_tensors(directory: Path) -> dict[str, np.ndarray]:
    """Every weight of the checkpoint by its stored name (shards merged, legacy LayerNorm names renamed)."""
    tensors: dict[str, np.ndarray] = {}
    for file in weight_files(directory):
        for name, value in read_file(file).items():
            for old, new in LEGACY_RENAMES:
                if name.endswith(old):
                    name = name[: -len(old)] + new
            tensors[name] = value
    return tensors


def strip_prefix(tensors: dict[str, np.ndarray], anchor: str, where: str) -> tuple[dict[str, np.ndarray], str]:
    """Remove the saving class's prefix (``model.``, ``bert.``, ``transformer.`` ...) from tensor names.

    The prefix is whatever precedes ``anchor`` (a tensor every checkpoint of the family has, such
    as ``embed_tokens.weight``); names outside the prefix (``lm_head.weight``) stay as they are.
    Returns the renamed dictionary and the prefix found.
    """
    hits = [name for name in tensors if name == anchor or name.endswith("." + anchor)]
    if not hits:
        raise FrontendError(
            f"{where}: no tensor named '...{anchor}'; the weights do not match config.json's model_type"
        )
    if len(hits) > 1:
        raise FrontendError(
            f"{where}: several tensors end in {anchor!r} ({', '.join(sorted(hits))}); ambiguous checkpoint"
        )
    prefix = hits[0][: -len(anchor)]
    renamed = {}
    for name, value in tensors.items():
        short = name[len(prefix):] if prefix and name.startswith(prefix) else name
        if short in renamed:
            raise FrontendError(f"{where}: tensor {short!r} is stored both with and without the prefix {prefix!r}")
        renamed[short] = value
    return renamed, prefix
