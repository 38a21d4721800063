"""Registry and value format of the golden simulator's ``loihi2`` (fixed-point) behaviours.

Values between nodes are :class:`Fx`: an int64 array of 24-bit payloads ``q`` and one exponent
``exp`` for the whole population, value ``q * 2**exp`` (the exponent is the producer's
``node.quant["exp"]``).  Circuit nodes pass richer integer states (see :mod:`.fixed_features` and
:mod:`.fixed_circuit`).  Every behaviour is ``fn(op, args, run) -> value`` like the float ones; the
arithmetic itself lives in :mod:`hardware_sim.fixed_point`, called from pure step functions
``step(params, inputs..., counter, name) -> outputs`` that another backend can call token by token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from compiler.errors import SimulationError
from hardware_sim.fixed_point import INT, SaturationCounter, to_float
from hardware_sim.golden.registry import Run

FIXED_BEHAVIOURS: dict[str, Callable] = {}


def fixed_behaviour(kind: str):
    """Register ``fn(op, args, run) -> value`` as the ``loihi2`` behaviour of process kind ``kind``."""

    def register(fn):
        if kind in FIXED_BEHAVIOURS:
            raise TypeError(f"fixed-point behaviour for {kind!r} registered twice")
        FIXED_BEHAVIOURS[kind] = fn
        return fn

    return register


@dataclass
class Fx:
    """Integer payloads ``q`` (int64, 24-bit range) with one shared exponent: value ``q 2**exp``."""

    q: np.ndarray
    exp: int

    def value(self) -> np.ndarray:
        return to_float(self.q, self.exp)


@dataclass
class FixedRun(Run):
    """The float run context plus the run's saturation counter."""

    counter: SaturationCounter = field(default_factory=SaturationCounter)

    def written_int(self, schedule) -> np.ndarray:
        """Write-phase flags ``w_t`` (B, T) as int64 (1 written, 0 skipped)."""
        return self.written(schedule).astype(INT)


def qexp(op, key: str = "exp") -> int:
    """``op.quant[key]`` as an int, or a one-line error saying how to get it."""
    try:
        return int(op.quant[key])
    except (KeyError, TypeError, ValueError):
        raise SimulationError(
            f"golden loihi2: node {op.name!r} ({op.kind}) has no quant[{key!r}]; compile with precision='loihi2' "
            "so the quantize pass records its exponents"
        ) from None
