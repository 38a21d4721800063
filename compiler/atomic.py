"""Files appear whole or not at all: write to a temporary name in the same directory, then rename.

``os.replace`` within one directory is atomic on POSIX file systems, so a reader sees either the
previous file or the complete new one, never a half-written file; a writer that fails or is
interrupted leaves no temporary file behind.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_write(path: str | Path, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on success flush, fsync and rename it to ``path``.

    Parameters
    ----------
    path : the file to create or replace.
    mode : ``"wb"`` (default) or ``"w"`` (text, with ``encoding``, UTF-8 by default).

    Usage::

        with atomic_write("out.npz") as fh:
            np.savez(fh, **arrays)
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write writes new files only (mode 'wb' or 'w'), not {mode!r}")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        kwargs = {"encoding": encoding or "utf-8"} if mode == "w" else {}
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_write(path, "w") as handle:
        handle.write(text)
    return Path(path)


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
