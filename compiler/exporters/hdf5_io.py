"""Safe HDF5 reading and writing shared by the netlist and NIR exporters (h5py only, never pickle).

Attributes follow one rule: a ``bool``, ``int``, ``float`` or ``str`` value is a native HDF5
attribute of that name; any other JSON value (mapping, list, ``None``) is a UTF-8 string attribute
named ``<key>.json`` holding its JSON text.

Opening a file checks it before anything is read: it must exist, be HDF5, contain only hard links
(no soft or external links), no dataset stored outside the file (external or virtual storage), no
groups nested deeper than :data:`MAX_DEPTH`, no dataset over :data:`MAX_ARRAY_BYTES`, and no more
declared array data than the file could hold (:data:`MAX_EXPANSION` times its size), so a
hand-made file cannot make the reader touch other files, recurse without end or allocate unbounded
memory.  Strings are bounded by :data:`MAX_STRING_CHARS`.
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from compiler.errors import SerializationError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
MAX_ARRAY_BYTES = 4 << 30
MAX_EXPANSION = 64
MAX_STRING_CHARS = 64 << 20
MAX_DEPTH = 32
JSON_SUFFIX = ".json"


def is_hdf5(path: str | Path) -> bool:
    """True when ``path`` starts with the HDF5 signature (at offset 0, as h5py writes it)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(HDF5_SIGNATURE)) == HDF5_SIGNATURE
    except OSError:
        return False


@contextmanager
def open_checked(path: str | Path, what: str):
    """Open ``path`` read-only as an HDF5 file after checking it (module docstring); ``what`` names
    the expected kind of file in error messages."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise SerializationError(f"{path}: no such file")
    if path.is_dir():
        raise SerializationError(f"{path}: is a directory, expected a {what} file")
    if not is_hdf5(path):
        raise SerializationError(f"{path}: not a {what} file (not HDF5)")
    try:
        handle = h5py.File(path, "r")
    except (OSError, ValueError) as exc:
        raise SerializationError(f"{path}: corrupt or truncated {what} file ({first_line(exc)})") from None
    try:
        check_tree(handle, path, what)
        yield handle
    except (OSError, KeyError, RuntimeError) as exc:
        raise SerializationError(f"{path}: corrupt or truncated {what} file ({first_line(exc)})") from None
    finally:
        handle.close()


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def check_tree(handle, path: Path, what: str) -> None:
    """Refuse links other than hard links, external or virtual storage, and oversized data."""
    import h5py

    declared = 0
    stack = [handle]
    while stack:
        group = stack.pop()
        if group.name.count("/") > MAX_DEPTH:
            raise SerializationError(f"{path}: groups nested deeper than {MAX_DEPTH} levels at {group.name[:80]}; "
                                     f"not a {what} file")
        for key in group:
            link = group.get(key, getlink=True)
            where = f"{group.name.rstrip('/')}/{key}"
            if not isinstance(link, h5py.HardLink):
                raise SerializationError(f"{path}: {where} is a {type(link).__name__}; a {what} file holds "
                                         "only its own groups and datasets")
            obj = group[key]
            if isinstance(obj, h5py.Group):
                stack.append(obj)
                continue
            if obj.external or obj.is_virtual:
                raise SerializationError(f"{path}: dataset {where} stores its data outside the file; refused")
            nbytes = int(np.prod(obj.shape, dtype=np.float64) * obj.dtype.itemsize) if obj.shape else 0
            if nbytes > MAX_ARRAY_BYTES:
                raise SerializationError(f"{path}: dataset {where} declares {nbytes} bytes; refused")
            declared += nbytes
    size = path.stat().st_size
    if declared > MAX_EXPANSION * size + (1 << 20):
        raise SerializationError(f"{path}: declares {declared} bytes of arrays in a {size}-byte file; "
                                 "corrupt or hostile, refused")


@contextmanager
def atomic_path(path: str | Path):
    """A temporary path beside ``path`` to write; renamed to ``path`` when the block succeeds, removed
    when it fails, so a partial file never replaces a good one."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


# ---- attributes ---------------------------------------------------------------------------------
def _native(value: Any) -> bool:
    if isinstance(value, bool | float | str):
        return True
    return isinstance(value, int) and -(1 << 63) <= value < (1 << 63)


def write_attrs(obj, values: dict[str, Any]) -> None:
    """Store ``values`` as attributes of ``obj`` (native scalars, else ``<key>.json``)."""
    for key, value in values.items():
        if isinstance(value, np.generic):
            value = value.item()
        if _native(value):
            obj.attrs[key] = value
        else:
            obj.attrs[key + JSON_SUFFIX] = json.dumps(value, sort_keys=True)


def to_python(value: Any, where: str) -> Any:
    """An attribute value as a plain Python scalar, or refuse it."""
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise SerializationError(f"{where} is not UTF-8 text") from None
    if isinstance(value, str):
        if len(value) > MAX_STRING_CHARS:
            raise SerializationError(f"{where} is a string of {len(value)} characters; refused")
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()
    if isinstance(value, bool | int | float):
        return value
    raise SerializationError(f"{where} has unsupported type {type(value).__name__} "
                             f"({getattr(value, 'dtype', '')}); scalars and strings only")


def read_attrs(obj, where: str) -> dict[str, Any]:
    """Inverse of :func:`write_attrs`; ``where`` names ``obj`` in error messages."""
    out: dict[str, Any] = {}
    for key in obj.attrs:
        if not isinstance(key, str):
            raise SerializationError(f"{where} has an attribute named {key!r}; names are text")
        value = to_python(obj.attrs[key], f"{where} attribute {key!r}")
        if key.endswith(JSON_SUFFIX):
            if not isinstance(value, str):
                raise SerializationError(f"{where} attribute {key!r} must be JSON text")
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise SerializationError(f"{where} attribute {key!r} is not valid JSON ({exc})") from None
            key = key[: -len(JSON_SUFFIX)]
        out[key] = value
    return out


# ---- datasets ------------------------------------------------------------------------------------
def numeric(dataset, path: Path) -> np.ndarray:
    """Read a numeric dataset (bool, int, uint, float), refusing any other dtype."""
    if dataset.dtype.kind not in "biuf":
        raise SerializationError(f"{path}: dataset {dataset.name} has dtype {dataset.dtype}; numeric arrays only")
    data = np.asarray(dataset[()])
    return data.astype(data.dtype.newbyteorder("=")) if data.dtype.byteorder == ">" else data


def strings(dataset, path: Path) -> list[str]:
    """Read a 1-D dataset of UTF-8 strings."""
    import h5py

    if h5py.check_string_dtype(dataset.dtype) is None or dataset.ndim != 1:
        raise SerializationError(f"{path}: dataset {dataset.name} must be a 1-D array of strings, "
                                 f"got {dataset.dtype} {dataset.shape}")
    return [to_python(s, f"{path}: dataset {dataset.name}") for s in dataset.asstr()[()]]


def text(dataset, path: Path) -> str:
    """Read a scalar UTF-8 string dataset."""
    import h5py

    if h5py.check_string_dtype(dataset.dtype) is None or dataset.shape != ():
        raise SerializationError(f"{path}: dataset {dataset.name} must be a scalar string, "
                                 f"got {dataset.dtype} {dataset.shape}")
    return to_python(dataset.asstr()[()], f"{path}: dataset {dataset.name}")


def write_strings(group, name: str, values: list[str]) -> None:
    import h5py

    group.create_dataset(name, data=np.array(values, dtype=object), dtype=h5py.string_dtype())


def write_text(group, name: str, value: str) -> None:
    import h5py

    group.create_dataset(name, data=value, dtype=h5py.string_dtype())
