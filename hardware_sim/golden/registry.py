"""The registry of golden behaviours (one function per process kind) and the run context they share."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from compiler.errors import SimulationError
from hardware_sim.golden.stream import StreamState

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
    the probe kinds requested, interventions by node, and the probe records written so far.

    ``stream`` is the circuit state the run starts from (:mod:`.stream`; empty for a run from
    scratch); ``final`` collects the state circuits leave for the next run.
    """

    net: object
    dtype: type
    mask: np.ndarray
    positions: np.ndarray
    probe_kinds: frozenset
    interventions: dict
    probes: dict = field(default_factory=dict)
    stream: StreamState = field(default_factory=StreamState)
    final: dict = field(default_factory=dict)

    @property
    def start(self) -> int:
        """Columns written before this run: token ``t`` of this run is column ``start + t``."""
        return self.stream.start

    def initial(self, node: str, var: str):
        """State variable ``var`` of ``node`` left by the previous run, or None."""
        return self.stream.nodes.get(node, {}).get(var)

    def keep_state(self, node: str, **arrays) -> None:
        """Record the state ``node`` leaves for the next run."""
        self.final.setdefault(node, {}).update(arrays)

    def prepared(self, node: str, what: str, make):
        """``make()``, computed once per node and stream (weights cast to the run's dtype, mantissas)."""
        key = (node, what)
        if key not in self.stream.cache:
            self.stream.cache[key] = make()
        return self.stream.cache[key]

    def cast(self, op, attr: str):
        """``op.<attr>`` in the run's dtype (None stays None), cast once per stream."""
        value = getattr(op, attr)
        if value is None or value.dtype == self.dtype:
            return value
        return self.prepared(op.name, attr, lambda: value.astype(self.dtype))

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
