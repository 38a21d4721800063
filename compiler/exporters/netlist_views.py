"""Views a netlist adds to a node for readers outside tripartite: derived, written and checked.

Each view is computed from the node and the network's metadata alone.  The writer stores it beside
the node's own attributes; the reader recomputes it from what it rebuilt and refuses the file when
the stored view disagrees (a hand edit of one and not the other), so the views can be trusted by
another toolchain that reads only them.

- every placed node: ``cores`` (the cores it occupies, from ``meta["placement"]["nodes"]``).
- static synapses of a ``loihi2`` network: ``weight_mantissa`` (int8, (post, pre)), the 8-bit signed
  mantissas the integer arithmetic multiplies by, and ``weight_exponent`` (int32, (post,)), one
  exponent per post-synaptic row: ``W ~= weight_mantissa * 2**weight_exponent[:, None]``.
- Hebbian groups: ``equation`` (the rule in words) and the rule in Lava's learning-rule syntax
  (``lava_dw``, ``lava_graded_spike_cfg``): a ``LearningDense`` from the feature population (graded
  pre-synaptic spikes ``f(k)``, which Lava's ``OVERWRITE`` mode stores as the trace ``x1 = f/2``) onto
  the output neurons (post-synaptic trace ``y1 = v``) with ``dw = 2 rate x0 x1 y1`` (``x0``: the
  pre-synaptic spike) writes ``H += rate v f(k)^T``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from compiler.errors import SerializationError

MANTISSA_DATASET, EXPONENT_DATASET = "weight_mantissa", "weight_exponent"
VIEW_ATTRS = ("cores", "equation", "lava_dw", "lava_graded_spike_cfg")
VIEW_DATASETS = (MANTISSA_DATASET, EXPONENT_DATASET)


def _weight_bits() -> int:
    from hardware_sim.fixed_point import WEIGHT_BITS

    return WEIGHT_BITS


def loihi2_weights(op) -> tuple[np.ndarray, np.ndarray] | None:
    """(mantissas int8, row exponents int32) of a quantized static synapse group, else None."""
    if op.kind != "synapses" or op.weight is None or "w_row_exp" not in op.quant:
        return None
    from hardware_sim.golden.fixed_neurons import mantissas

    exps = np.asarray(op.quant["w_row_exp"], dtype=np.int64)
    return mantissas(op.weight, exps, _weight_bits()).astype(np.int8), exps.astype(np.int32)


def lava_rule(op) -> dict[str, str]:
    """Hebbian rule of ``op`` in words and in Lava's learning-rule form."""
    rate = float(op.rate)
    factor = "2" if rate == 1.0 else repr(2.0 * rate)
    return {
        "equation": f"H^g += {rate!r} * v_t^g f^g(k_t)^T per key/value head g, each write phase",
        "lava_dw": f"{factor} * x0 * x1 * y1",
        "lava_graded_spike_cfg": "OVERWRITE",
    }


def node_views(op, meta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The derived (attributes, datasets) of node ``op`` in a network with metadata ``meta``."""
    attrs: dict[str, Any] = {}
    arrays: dict[str, np.ndarray] = {}
    parts = (meta.get("placement") or {}).get("nodes", {}).get(op.name)
    if parts:
        attrs["cores"] = sorted({int(p[0]) for p in parts})
    if op.kind == "hebbian_synapses":
        attrs.update(lava_rule(op))
    quantized = loihi2_weights(op)
    if quantized is not None:
        arrays[MANTISSA_DATASET], arrays[EXPONENT_DATASET] = quantized
    return attrs, arrays


def check_mantissa_range(where: str, mantissa: np.ndarray) -> None:
    """Refuse stored mantissas that are not integers of the weight width."""
    bits = _weight_bits()
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if mantissa.dtype.kind not in "iu":
        raise SerializationError(f"{where}: weight mantissas must be integers, got dtype {mantissa.dtype}")
    if mantissa.size and (int(mantissa.min()) < lo or int(mantissa.max()) > hi):
        raise SerializationError(f"{where}: weight mantissa out of the {bits}-bit range [{lo}, {hi}] "
                                 f"(found {int(mantissa.min())}..{int(mantissa.max())}); the file was edited "
                                 "or written by another tool: re-export it")


def check_views(op, meta, attrs: dict[str, Any], arrays: dict[str, np.ndarray], where: str) -> None:
    """Refuse a node whose stored views disagree with those recomputed from the rebuilt node."""
    if MANTISSA_DATASET in arrays:
        check_mantissa_range(f"{where}/{MANTISSA_DATASET}", arrays[MANTISSA_DATASET])
    want_attrs, want_arrays = node_views(op, meta)
    for key in sorted(set(want_attrs) | set(attrs)):
        if key not in attrs:
            raise SerializationError(f"{where}: attribute {key!r} is missing; re-export the network")
        if attrs[key] != want_attrs.get(key):
            raise SerializationError(f"{where}: attribute {key!r} = {str(attrs[key])[:60]!r} disagrees with the "
                                     f"node's parameters (expected {str(want_attrs.get(key))[:60]!r})")
    for key in sorted(set(want_arrays) | set(arrays)):
        if key not in arrays:
            raise SerializationError(f"{where}/{key}: dataset is missing; re-export the network")
        if key not in want_arrays:
            raise SerializationError(f"{where}/{key}: dataset does not belong to this node; remove it")
        got, want = arrays[key], want_arrays[key]
        if got.shape != want.shape:
            raise SerializationError(f"{where}/{key}: shape {got.shape}, expected {want.shape}")
        if not np.array_equal(got, want):
            raise SerializationError(f"{where}/{key}: values disagree with the float weights and the row "
                                     "exponents in quant; the file was edited: re-export it")
