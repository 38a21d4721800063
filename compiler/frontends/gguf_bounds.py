"""A walk over a GGUF file's metadata that checks every length against the bytes left in the file.

The gguf reader does not stop at the end of the file: a slice past it is empty and an array whose
count is far beyond the file is read element by element for as long as the count says.  This walk
runs first and refuses such a file in one line.  Layout (little- or big-endian): magic ``GGUF``,
``u32`` version, ``u64`` tensor count, ``u64`` field count, then per field a string key (``u64``
length + bytes), a ``u32`` value type and the value; an array value is a ``u32`` item type, a ``u64``
count and the items.
"""

from __future__ import annotations

import struct
from pathlib import Path

from compiler.errors import FrontendError

FIXED_SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # value type -> bytes
STRING, ARRAY = 8, 9
MAX_NESTING = 4


class MetadataWalk:
    def __init__(self, path: Path, handle, size: int, endian: str):
        self.path, self.handle, self.size, self.endian = path, handle, size, endian
        self.pos = 24

    def fail(self, what: str) -> FrontendError:
        return FrontendError(f"{self.path}: truncated or corrupt GGUF file (metadata {what}); download it again")

    def take(self, n: int, what: str) -> bytes:
        if n > self.size - self.pos:
            raise self.fail(f"{what} needs {n} bytes, {self.size - self.pos} are left")
        self.pos += n
        return self.handle.read(n)

    def number(self, fmt: str, what: str) -> int:
        data = self.take(struct.calcsize(fmt), what)
        return struct.unpack(self.endian + fmt, data)[0]

    def skip(self, n: int, what: str) -> None:
        if n > self.size - self.pos:
            raise self.fail(f"{what} needs {n} bytes, {self.size - self.pos} are left")
        self.pos += n
        self.handle.seek(self.pos)

    def value(self, kind: int, key: str, depth: int = 0) -> None:
        if kind in FIXED_SIZES:
            self.skip(FIXED_SIZES[kind], f"field {key!r}")
        elif kind == STRING:
            self.skip(self.number("Q", f"field {key!r}"), f"string of field {key!r}")
        elif kind == ARRAY and depth < MAX_NESTING:
            item, count = self.number("I", f"field {key!r}"), self.number("Q", f"field {key!r}")
            least = FIXED_SIZES.get(item, 8 if item == STRING else 12)
            if count * least > self.size - self.pos:
                raise self.fail(f"field {key!r} claims {count} items, more than the {self.size - self.pos} bytes "
                                "left hold")
            if item in FIXED_SIZES:
                self.skip(count * FIXED_SIZES[item], f"items of field {key!r}")
            else:
                for _ in range(count):
                    self.value(item, key, depth + 1)
        else:
            raise self.fail(f"field {key!r} has value type {kind}, unknown or nested too deeply")


def check_metadata_bounds(path: Path) -> None:
    """Raise a one-line FrontendError when a metadata length of the GGUF file ``path`` runs past its end."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(24)
        if len(head) < 24 or head[:4] != b"GGUF":
            return  # the reader's own checks name these
        endian = "<" if struct.unpack("<I", head[4:8])[0] < 0x10000 else ">"
        fields = struct.unpack(endian + "Q", head[16:24])[0]
        walk = MetadataWalk(path, handle, size, endian)
        if fields * 13 > size - 24:
            raise walk.fail(f"claims {fields} fields, more than the file holds")
        for _ in range(fields):
            key = walk.take(walk.number("Q", "a field's key"), "a field's key").decode("utf-8", "replace")
            walk.value(walk.number("I", f"field {key!r}"), key)
