"""Static synapse groups and the ports they feed.

A port of a Brian2 group is a summed variable ``in_<port>`` (and a constant bias ``b_<port>``)
on every neuron of the group.  Neuron ``c`` of the consumer reads neuron ``take[c]`` of what feeds
the port: ``take`` is the identity for populations, and for the head inputs of an attention
circuit it copies each key/value head to the query heads of its group.

What feeds a port is either a neuron group (its activity ``y`` reaches the port one to one) or a
static synapse group of the process graph, ``out = W pre + b``::

    in_<port>_post = w * y_pre : 1 (summed)      with w = W[take[c], p] for the synapse p -> c
    b_<port> = b[take[c]]

Sequences of a batch are neuron blocks of the same group: synapses never cross blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from brian2 import Synapses


@dataclass
class Source:
    """What feeds a port: a Brian2 group with activity ``y`` and, for a synapse group, its W and b."""

    group: object
    size: int
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    name: str = ""


@dataclass
class Port:
    """A summed input ``in_<name>`` of ``group`` (``size`` neurons per sequence)."""

    group: object
    name: str
    size: int
    take: np.ndarray | None = None

    def indices(self) -> np.ndarray:
        return np.arange(self.size) if self.take is None else np.asarray(self.take)


def port_equations(*ports: str) -> str:
    """Declarations of the summed input and bias of each port."""
    return "\n".join(f"in_{p} : 1\nb_{p} : 1 (constant)" for p in ports)


def block_pairs(pre: np.ndarray, post: np.ndarray, batch: int, pre_size: int, post_size: int):
    """Synapse index arrays for pairs (pre[k], post[k]) repeated in each sequence block."""
    offsets = np.arange(batch, dtype=np.int64)
    i = (offsets[:, None] * pre_size + pre[None, :]).ravel()
    j = (offsets[:, None] * post_size + post[None, :]).ravel()
    return i.astype(np.int32), j.astype(np.int32)


def connect(source: Source, port: Port, batch: int, order: int, name: str) -> Synapses:
    """Brian2 synapses from ``source`` onto ``port``, summed at ``order``; sets the port's bias."""
    take = port.indices()
    if source.weight is None:
        syn = Synapses(source.group, port.group, f"in_{port.name}_post = y_pre : 1 (summed)", name=name)
        i, j = block_pairs(take, np.arange(port.size), batch, source.size, port.size)
        syn.connect(i=i, j=j)
    else:
        W = np.asarray(source.weight, dtype=np.float64)
        pre, post = np.meshgrid(np.arange(W.shape[1]), np.arange(port.size), indexing="ij")
        syn = Synapses(source.group, port.group, f"w : 1 (constant)\nin_{port.name}_post = w * y_pre : 1 (summed)",
                       name=name)
        i, j = block_pairs(pre.ravel(), post.ravel(), batch, W.shape[1], port.size)
        syn.connect(i=i, j=j)
        syn.w[:] = np.tile(W[take][:, :].T.ravel(), batch)
    if source.bias is not None:
        getattr(port.group, f"b_{port.name}")[:] = np.tile(np.asarray(source.bias, dtype=np.float64)[take], batch)
    syn.summed_updaters[f"in_{port.name}_post"].order = order
    return syn
