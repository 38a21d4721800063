"""The phase schedule of a process graph as the Brian2 simulation clock.

One time step ``dt`` is one token presented to the whole network.  Within a step every summed
variable, response update and write event runs in topological order (the ``order`` of each Brian2
object inside the ``groups`` slot), so a token crosses the whole feed-forward network in one step:
the one-step latency Brian2 gives each hop through a summed variable by default is removed by
ordering, not by waiting.

Bidirectional circuits store every token before they recall any, so the clock makes *sweeps* over
the sequence: in sweep ``s`` the circuits of level ``s`` (those with ``s`` bidirectional circuits
upstream) write token by token while every circuit below them recalls; the last sweep only
recalls, and the outputs are read from it.  A network with ``S`` levels runs ``(S + 1) T`` steps.
Causal circuits write token t and recall query t in the same step, so they all live in the last
sweep (a causal circuit upstream of a bidirectional one is refused).

Step ``n`` presents token ``n mod T`` in sweep ``n // T``; masked tokens are never written
(unless the schedule's ``use_padding_mask`` is false).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from brian2 import TimedArray, ms

DT = 1 * ms


class ScheduleError(ValueError):
    """The schedules of a network cannot be laid out on one clock."""


@dataclass
class Clock:
    """Step tables of one run: B sequences of T tokens in ``sweeps`` sweeps."""

    batch: int
    tokens: int
    sweeps: int

    @property
    def steps(self) -> int:
        return self.sweeps * self.tokens

    def token(self) -> np.ndarray:
        """Token index presented at each step (also the rotary position)."""
        return np.tile(np.arange(self.tokens), self.sweeps)

    def sweep(self) -> np.ndarray:
        return np.repeat(np.arange(self.sweeps), self.tokens)

    def token_array(self) -> TimedArray:
        """``token_of(t)``: the token (position) presented at time t."""
        return TimedArray(self.token().astype(np.float64), dt=DT)

    def inputs(self, x: np.ndarray) -> TimedArray:
        """``x_in(t, i)``: neuron i = b * width + k of the input encoder carries x[b, token, k]."""
        per_step = x[:, self.token(), :].transpose(1, 0, 2).reshape(self.steps, -1)
        return TimedArray(np.ascontiguousarray(per_step, dtype=np.float64), dt=DT)

    def writes(self, written: np.ndarray, sweep: int) -> TimedArray:
        """``write(t, b)``: 1 when sequence b writes the token of time t in ``sweep``, else 0."""
        table = written[:, self.token()].T.astype(np.float64) * (self.sweep() == sweep)[:, None]
        return TimedArray(np.ascontiguousarray(table), dt=DT)

    def readout(self, recorded: np.ndarray) -> np.ndarray:
        """(steps, B * size) values recorded each step -> (B, T, size) of the last sweep."""
        last = recorded[(self.sweeps - 1) * self.tokens:]
        return last.reshape(self.tokens, self.batch, -1).transpose(1, 0, 2)


def circuit_levels(circuits: dict[str, str], upstream: dict[str, set[str]]) -> tuple[dict[str, int], int]:
    """Write sweep of each attention circuit and the number of sweeps.

    ``circuits``: astrocyte node -> schedule mode; ``upstream``: astrocyte node -> the astrocyte
    nodes whose recall it depends on.  A bidirectional circuit writes in sweep ``1 + max`` of the
    bidirectional circuits below it (0 if none); causal circuits write in the last sweep.
    """
    level: dict[str, int] = {}

    def of(name):
        if name not in level:
            below = [of(u) + 1 for u in upstream[name] if circuits[u] == "bidirectional"]
            level[name] = max(below, default=0)
        return level[name]

    bidirectional = [c for c, mode in circuits.items() if mode == "bidirectional"]
    sweeps = 1 + max((of(c) + 1 for c in bidirectional), default=0)
    for name, mode in circuits.items():
        if mode == "causal":
            feeds = [c for c in bidirectional if name in upstream[c]]
            if feeds:
                raise ScheduleError(f"causal circuit {name!r} feeds the bidirectional circuit {feeds[0]!r}; "
                                    f"one clock cannot serve both")
            level[name] = sweeps - 1
        else:
            of(name)
    return level, sweeps
