"""Typed node payloads shared by the attention graph and the process graph.

A node kind is a dataclass with a class-level ``kind`` string and ``ports`` (the names of its inputs).
Fields holding arrays are declared with :func:`array_field`; everything else must be JSON-serialisable.
Each kind checks its own attributes in :meth:`Node.check` and registers itself in the registry of its
graph family, so serialisation and round-trip tests find every kind by iterating the registry.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np

from compiler.errors import NodeAttributeError, SerializationError


def array_field(optional: bool = False) -> Any:
    """Declare a dataclass field that holds a numpy array (``None`` allowed when ``optional``)."""
    return dataclasses.field(default=None if optional else dataclasses.MISSING, metadata={"array": True})


class Registry(dict):
    """Maps a kind name to its node class, for one graph family."""

    def __init__(self, family: str):
        super().__init__()
        self.family = family

    def register(self, cls: type[Node]) -> type[Node]:
        if cls.kind in self:
            raise TypeError(f"{self.family} node kind {cls.kind!r} registered twice")
        self[cls.kind] = cls
        return cls

    def lookup(self, kind: str, where: str) -> type[Node]:
        try:
            return self[kind]
        except KeyError:
            raise SerializationError(
                f"{where}: unknown {self.family} node kind {kind!r}; known: {', '.join(sorted(self))}"
            ) from None


@dataclasses.dataclass
class Node:
    """Base of all node payloads.  Subclasses are dataclasses with ``kind`` and ``ports``."""

    kind: ClassVar[str] = "node"
    ports: ClassVar[tuple[str, ...]] = ()
    optional_ports: ClassVar[tuple[str, ...]] = ()

    name: str

    # ---- attribute checking -------------------------------------------------------------------
    def input_ports(self) -> tuple[str, ...]:
        """Required input ports (kinds with a variable fan-in override this)."""
        return self.ports

    def check(self) -> None:
        """Raise :class:`NodeAttributeError` when the node's own attributes are invalid."""
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("array") and value is None and f.default is dataclasses.MISSING:
                self.fail(f"array {f.name} is missing; it is required for this kind")
            if f.metadata.get("array") and value is not None:
                if not isinstance(value, np.ndarray):
                    self.fail(f"attribute {f.name} must be a numpy array, got {type(value).__name__}")
                if value.dtype.kind not in "biuf":
                    self.fail(f"array {f.name} has dtype {value.dtype}; numeric arrays only")
                if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
                    self.fail(f"array {f.name} contains NaN or infinity; fix the weights at the source")

    def fail(self, message: str, error: type[Exception] = NodeAttributeError) -> None:
        raise error(f"node {self.name!r} ({self.kind}): {message}")

    def expect_shape(self, field_name: str, shape: tuple[int, ...]) -> None:
        """Check that array ``field_name`` has ``shape`` (``-1`` matches any size)."""
        value = getattr(self, field_name)
        if value is None:
            return
        ok = value.ndim == len(shape) and all(s in (-1, v) for s, v in zip(shape, value.shape))
        if not ok:
            self.fail(f"array {field_name} has shape {value.shape}, expected {shape}")

    # ---- serialisation ------------------------------------------------------------------------
    def to_record(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Return (JSON attributes, arrays) describing this node."""
        attrs: dict[str, Any] = {"kind": self.kind}
        arrays: dict[str, np.ndarray] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("array"):
                if value is not None:
                    arrays[f.name] = np.asarray(value)
                attrs[f.name] = None if value is None else "@array"
            else:
                attrs[f.name] = list(value) if isinstance(value, tuple) else value
        return attrs, arrays

    @classmethod
    def from_record(cls, attrs: dict[str, Any], arrays: dict[str, np.ndarray], where: str) -> Node:
        """Rebuild a node from :meth:`to_record` output, rejecting unknown or missing attributes."""
        names = {f.name: f for f in dataclasses.fields(cls)}
        extra = set(attrs) - set(names) - {"kind"}
        if extra:
            raise SerializationError(f"{where}: {cls.kind} node has unknown attributes {sorted(extra)}")
        kwargs: dict[str, Any] = {}
        for fname, f in names.items():
            if f.metadata.get("array"):
                if attrs.get(fname) == "@array":
                    if fname not in arrays:
                        raise SerializationError(f"{where}: array {fname!r} is missing from the file")
                    kwargs[fname] = arrays[fname]
                elif fname in attrs:
                    kwargs[fname] = None
            elif fname in attrs:
                value = attrs[fname]
                default = f.default if f.default is not dataclasses.MISSING else None
                kwargs[fname] = tuple(value) if isinstance(default, tuple) and value is not None else value
        try:
            node = cls(**kwargs)
        except TypeError as exc:
            raise SerializationError(f"{where}: cannot rebuild {cls.kind} node ({exc})") from exc
        return node

    def arrays_equal(self, other: Node) -> bool:
        """True when ``other`` has the same kind, attributes and arrays (bitwise)."""
        if type(other) is not type(self):
            return False
        a_attrs, a_arrays = self.to_record()
        b_attrs, b_arrays = other.to_record()
        if a_attrs != b_attrs or a_arrays.keys() != b_arrays.keys():
            return False
        return all(
            a_arrays[k].dtype == b_arrays[k].dtype and np.array_equal(a_arrays[k], b_arrays[k])
            for k in a_arrays
        )
