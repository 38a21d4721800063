"""Integer parameters of a node (mantissas, quantised biases and gains), prepared once per node.

Quantising a MiniLM's weights to mantissas costs as much as running it, and the result depends on
the node alone: its arrays, its ``quant`` record and the exponent of its input.  They are kept on
the node itself (an attribute outside the dataclass fields, so never saved or compared) and reused
by every later run while those inputs are the same objects with the same values: a node whose
weight array is replaced, or whose ``quant`` changes, is prepared again.

Saturations counted while preparing (a bias beyond 24 bits) are counted again into the run that
first uses the parameters, exactly as when each run prepared its own.
"""

from __future__ import annotations

import copy

import numpy as np

from hardware_sim.fixed_point import SaturationCounter

ATTRIBUTE = "_loihi2_prepared"


def _same(a, b) -> bool:
    """Arrays are the same object; records hold equal values; anything else compares equal."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return a is b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal_value(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _equal_value(a, b) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return np.array_equal(a, b)
    if isinstance(a, (list, tuple)):  # e.g. one exponent per row: numbers compare in one C-level pass
        if len(a) != len(b):
            return False
        try:
            return bool(a == b)
        except ValueError:  # an array among the elements: compare element by element
            return all(_equal_value(x, y) for x, y in zip(a, b))
    return bool(a == b)


def node_key(op, *extra) -> tuple:
    """What the prepared parameters of ``op`` depend on: its ``weight`` and ``bias`` arrays (by
    identity), its ``quant`` record (by value) and ``extra`` (e.g. the input exponent)."""
    return (getattr(op, "weight", None), getattr(op, "bias", None), op.quant or {}) + extra


def prepared_on_node(op, what: str, key: tuple, make, counter):
    """``make(counter)`` for node ``op``, computed once while ``key`` holds; the saturations it
    counted are added to ``counter`` on every call."""
    cache = op.__dict__.setdefault(ATTRIBUTE, {})
    hit = cache.get(what)
    if hit is None or len(hit[0]) != len(key) or not all(_same(a, b) for a, b in zip(hit[0], key)):
        own = SaturationCounter()
        stored = tuple(copy.deepcopy(k) if isinstance(k, dict) else k for k in key)
        hit = cache[what] = (stored, make(own), own.to_dict())
    for name, n in hit[2].items():
        counter.add(name, n)
    return hit[1]
