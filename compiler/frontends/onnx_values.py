"""What an ONNX value holds while a folded graph is mapped onto the attention graph.

Every ONNX value of the folded graph (one sequence of ``T0`` tokens, batch 1) is described by one of:

* :class:`Const` — a constant array;
* :class:`Ids` — a token-id input (``input_ids`` or ``token_type_ids``);
* :class:`Emb` — a sum of embedding-table lookups, not yet in the graph (it becomes the input encoder);
* :class:`Vec` — the per-token output of an attention-graph node, seen through a layout: one label per
  ONNX axis, ``1`` (size one), ``t`` (tokens) and feature labels ``f`` (all features), ``h``/``d``
  (heads, head features) or ``g``/``r``/``d`` (key/value heads, their repetition for grouped-query
  attention, head features).  ``rep`` is how often each key/value head repeats along ``h`` (or, in
  ``f``, each group of ``head_dim`` features); ``scale`` a factor not yet applied;
* :class:`Scores` — attention scores (query tokens ``t``, key tokens ``s``) from a raw ``qk`` matmul;
* :class:`Pending` — a chain of elementwise ops on one node's output not yet recognised
  (a decomposed norm, activation or rotary embedding; see :mod:`compiler.frontends.onnx_recognize`);
* :class:`Pooled` — a reduction over the tokens of a node's output (a sentence-embedding head).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

FEATURE_ORDERS = (("f",), ("h", "d"), ("g", "r", "d"))


@dataclass
class Const:
    value: np.ndarray


@dataclass
class Ids:
    role: str  # tokens or types


@dataclass
class Emb:
    """``x = E_tok[ids] (+ E_pos[offset + t]) (+ E_type[types])``, times ``scale``."""

    tables: dict = field(default_factory=dict)  # tokens/types -> table; positions -> (table, offset)
    scale: float = 1.0


@dataclass
class Vec:
    node: str
    axes: tuple
    sizes: tuple
    rep: int = 1
    scale: float = 1.0
    head_dim: int = 0  # of repeated heads flattened into ``f`` (rep > 1)

    @property
    def features(self) -> tuple:
        return tuple(a for a in self.axes if a not in ("1", "t"))

    def feature_sizes(self) -> dict:
        return {a: s for a, s in zip(self.axes, self.sizes) if a not in ("1", "t")}

    @property
    def width(self) -> int:
        """Width of the node's output (repeated heads counted once)."""
        sizes = self.feature_sizes()
        total = int(np.prod(list(sizes.values()))) if sizes else 1
        if "r" in sizes:
            return total // sizes["r"]
        return total // self.rep

    def flat(self) -> bool:
        """True when the value is the node's output as (1.., t, f)."""
        return self.features == ("f",) and self.axes[-1] == "f" and "t" in self.axes and self.rep == 1

    def with_axes(self, axes, sizes, rep=None, head_dim=None) -> Vec:
        return Vec(self.node, tuple(axes), tuple(sizes), self.rep if rep is None else rep, self.scale,
                   self.head_dim if head_dim is None else head_dim)

    def to_layout(self, x: np.ndarray) -> np.ndarray:
        """Canonical values (T, width) of the node as this ONNX value's array (scale applied)."""
        sizes = self.feature_sizes()
        order = next((o for o in FEATURE_ORDERS if set(o) == set(sizes)), None)
        if order is None:
            raise ValueError(f"unknown feature layout {self.axes}")
        T = x.shape[0]
        if order == ("g", "r", "d"):
            y = x.reshape(T, sizes["g"], 1, sizes["d"])
            y = np.broadcast_to(y, (T, sizes["g"], sizes["r"], sizes["d"]))
        elif order == ("h", "d"):
            y = x.reshape(T, sizes["h"] // self.rep, 1, sizes["d"])
            y = np.broadcast_to(y, (T, y.shape[1], self.rep, sizes["d"])).reshape(T, sizes["h"], sizes["d"])
        elif self.rep > 1:
            y = x.reshape(T, -1, 1, self.head_dim)
            y = np.broadcast_to(y, (T, y.shape[1], self.rep, self.head_dim)).reshape(T, sizes["f"])
        else:
            y = x.reshape(T, sizes["f"])
        labels = ("t",) + order
        present = [a for a in self.axes if a != "1"]
        y = np.transpose(y, [labels.index(a) for a in present])
        return (y.reshape(self.sizes) * self.scale).astype(x.dtype)


@dataclass
class Scores:
    node: str
    axes: tuple
    sizes: tuple
    padding: bool = False
    causal: bool = False
    softmax: bool = False
    softmax_node: str = ""


@dataclass
class Pending:
    """Elementwise ONNX ``nodes`` computing ``out`` from the values ``inputs`` (ONNX name -> Vec of one node)."""

    node: str
    inputs: dict
    nodes: list
    out: object


@dataclass
class Pooled:
    source: Vec
    ops: set = field(default_factory=set)
