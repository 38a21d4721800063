"""Circuit state carried from one run of the golden simulator to the next (streaming).

A causal circuit's memory is its state after the last write: the stored keys of exact slots
``K`` (B, G, n, d), the Hebbian weights ``H`` (B, G, v_head_dim, n) (``n`` the slots written so far
for exact circuits, ``m`` for feature circuits), the calcium of every astrocyte process ``c``
(B, G, 1, n).  A run that starts from a state continues the sequences where the last run stopped:
its token ``t`` is column ``start + t`` (exact slot ``start + t``), its reads see every earlier
write, and the state it leaves holds the writes of both runs.  The norm astrocytes, populations and
synapses hold nothing between tokens.

Running ``T`` tokens at once or in pieces gives the same numbers: every running sum continues from
the state with the same additions in the same order (:func:`continue_sum`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class StreamState:
    """``start``: columns already written; ``nodes``: node name -> {variable: array};
    ``cache``: per-node parameters prepared once and reused by later runs (dtype-cast weights,
    integer mantissas)."""

    start: int = 0
    nodes: dict = field(default_factory=dict)
    cache: dict = field(default_factory=dict)


def grow(x: np.ndarray | None, n: int) -> np.ndarray | None:
    """``x`` zero-padded to ``n`` entries along its last axis (None stays None)."""
    if x is None or x.shape[-1] == n:
        return x
    out = np.zeros(x.shape[:-1] + (n,), dtype=x.dtype)
    out[..., : x.shape[-1]] = x
    return out


def fit(x: np.ndarray | None, n: int) -> np.ndarray | None:
    """The first ``n`` entries of the last axis (interventions cover all ``m`` slots; a run uses ``n``)."""
    return None if x is None else x[..., :n]


def continue_sum(write: np.ndarray, causal: bool, initial: np.ndarray | None) -> np.ndarray:
    """State seen by each read: ``initial + running sum`` over ``write`` (B, G, T, n) along the token
    axis, added one write at a time after ``initial`` (B, G, 1, n') so that a split run adds in the
    same order as a whole one; bidirectional: the total, (B, G, 1, n)."""
    if initial is None:
        return np.cumsum(write, axis=2) if causal else write.sum(axis=2, keepdims=True)
    initial = grow(initial, write.shape[-1])
    if not causal:
        return initial + write.sum(axis=2, keepdims=True)
    return np.cumsum(np.concatenate([initial, write], axis=2), axis=2)[:, :, 1:]


class FrozenGraph:
    """A read-only view of a process graph for many short runs: its topological order, each
    node's inputs and the nodes of each kind are worked out once (a 30-layer decoder has about
    900 nodes; sorting them again for every token would cost more than the token's arithmetic).
    The graph must not change while the view is in use."""

    def __init__(self, net):
        self.net = net
        self.g = net.g
        self.name, self.meta, self.encoder = net.name, net.meta, net.encoder
        self._order = net.order()
        self._inputs = {name: net.inputs_of(name) for name in self._order}
        self._nodes = {name: net.node(name) for name in self._order}

    def order(self) -> list[str]:
        return self._order

    def inputs_of(self, name: str) -> dict[str, str]:
        return self._inputs[name]

    def node(self, name: str):
        return self._nodes[name] if name in self._nodes else self.net.node(name)

    def nodes(self) -> list:
        return [self._nodes[n] for n in self._order]

    def of_kind(self, kind: str) -> list:
        return [op for op in self._nodes.values() if op.kind == kind]

    def __contains__(self, name: str) -> bool:
        return name in self._nodes
