"""The registry of golden behaviours (one function per process kind) and the run context they share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from compiler.errors import SimulationError

BEHAVIOURS: dict[str, Callable] = {}

PROBE_KINDS = ("calcium", "soma", "weights", "activity")


def behaviour(kind: str):
    """Register ``fn(op, args, run) -> value`` as the golden behaviour of process kind ``kind``."""

    def register(fn):
        if kind in BEHAVIOURS:
            raise TypeError(f"golden behaviour for {kind!r} registered twice")
        BEHAVIOURS[kind] = fn
        return fn

    return register


@dataclass
class Run:
    """What every behaviour may read: dtype, padding mask (B, T), positions (B, T), the network,
    the probe kinds requested, interventions by node, and the probe records written so far."""

    net: object
    dtype: type
    mask: np.ndarray
    positions: np.ndarray
    probe_kinds: frozenset
    interventions: dict
    probes: dict = field(default_factory=dict)

    def probe(self, kind: str, node: str, var: str, value: np.ndarray) -> None:
        """Record ``value`` as ``node/var`` when probes of ``kind`` were requested."""
        if kind in self.probe_kinds:
            self.probes[f"{node}/{var}"] = np.array(value, copy=True)

    def intervention(self, node: str, action: str):
        """The normalised array of ``action`` on ``node``, or None."""
        return self.interventions.get(node, {}).get(action)

    def schedule(self, name: str):
        op = self.net.node(name) if name in self.net else None
        if op is None or op.kind != "schedule":
            raise SimulationError(f"golden: schedule {name!r} is missing from the network")
        return op

    def written(self, schedule) -> np.ndarray:
        """Write-phase weights ``w_t`` (B, T): 1 for tokens the schedule writes, 0 for masked ones."""
        if schedule.use_padding_mask:
            return self.mask.astype(self.dtype)
        return np.ones(self.mask.shape, dtype=self.dtype)
