"""Deterministic ``.npz`` writing: the same arrays always give the same bytes.

``numpy.savez`` stamps every member with the current time, so two saves of identical arrays
differ.  :func:`write_npz` writes the same archive layout (one ``NAME.npy`` member per array, read
back by ``numpy.load``) with a fixed timestamp, in the order the arrays are given, and never
pickles (object arrays are refused).
"""

from __future__ import annotations

import struct
import tokenize
import zipfile
import zlib
from typing import IO

import numpy as np

FIXED_TIME = (1980, 1, 1, 0, 0, 0)

# What numpy.load raises on a corrupt or hostile archive: a bad zip, a bad .npy header (parsed with
# Python's tokenizer and literal_eval), truncated or undecompressable data, a compression method zipfile
# lacks, an absurd shape.
READ_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, UnicodeDecodeError, SyntaxError,
               tokenize.TokenError, struct.error, MemoryError, OverflowError, NotImplementedError, zlib.error)


def read_npz(path, what: str = "inputs") -> dict[str, np.ndarray]:
    """Every array of the ``.npz`` file ``path`` (read with ``allow_pickle=False``).

    Raises
    ------
    InputError, one line naming ``path``: missing, not an archive, unreadable, or an entry that is
    not an array (``what`` names the file's role in the message).
    """
    from pathlib import Path

    from compiler.errors import InputError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path}: not an .npz archive")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except READ_ERRORS as exc:
        raise InputError(f"{path}: unreadable {what} ({exc})") from None
    odd = next((k for k, v in arrays.items() if not isinstance(v, np.ndarray)), None)
    if odd is not None:
        raise InputError(f"{path}: unreadable {what} (entry {odd!r} is not an array)")
    return arrays


def write_npz(handle: IO[bytes], arrays: dict[str, np.ndarray], compress: bool = False) -> None:
    """Write ``arrays`` to the binary file ``handle`` as an ``.npz`` archive (deflated when ``compress``).

    Raises
    ------
    ValueError for an object array (nothing here is ever pickled).
    """
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(handle, mode="w", compression=method, allowZip64=True) as archive:
        for name, value in arrays.items():
            array = np.asanyarray(value)
            if array.dtype.hasobject:
                raise ValueError(f"array {name!r} has dtype object; store numeric arrays only")
            info = zipfile.ZipInfo(f"{name}.npy", date_time=FIXED_TIME)
            info.compress_type = method
            info.external_attr = 0o644 << 16
            with archive.open(info, mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)
