"""Helpers shared by the family builders."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from compiler.errors import FrontendError


class Params:
    """Read-only view of a parameter dictionary that names the missing tensor on a miss."""

    def __init__(self, tensors: Mapping[str, np.ndarray], source: str, prefix: str = ""):
        self.tensors = tensors
        self.source = source
        self.prefix = prefix

    def __call__(self, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        key = self.prefix + name
        if key not in self.tensors:
            raise FrontendError(f"{self.source}: tensor {key!r} is missing; is the checkpoint complete?")
        value = np.asarray(self.tensors[key], dtype=np.float64)
        if shape is not None and value.shape != tuple(shape):
            raise FrontendError(f"{self.source}: tensor {key!r} has shape {value.shape}, expected {tuple(shape)}")
        return value

    def optional(self, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
        return self(name, shape) if self.prefix + name in self.tensors else None

    def has(self, name: str) -> bool:
        return self.prefix + name in self.tensors


class RandomParams(dict):
    """Deterministic random parameters: Gaussian weights of std ``scale``, norms near one."""

    def __init__(self, seed: int, scale: float = 0.05):
        super().__init__()
        self.rng = np.random.default_rng(seed)
        self.scale = scale

    def normal(self, name: str, *shape: int, scale: float | None = None) -> None:
        self[name] = self.rng.normal(0.0, self.scale if scale is None else scale, size=shape)

    def gain(self, name: str, n: int) -> None:
        self[name] = 1.0 + self.rng.normal(0.0, 0.1, size=n)
