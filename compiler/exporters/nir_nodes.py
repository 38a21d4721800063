"""Process nodes as NIR nodes and back: standard primitives where NIR expresses a node exactly,
nested ``NIRGraph`` dialect nodes elsewhere (the dialect is documented in docs/netlist.md).

Standard (NIR's equations are the node's, in float):

- ``input_encoder`` -> ``Input`` (shape ``(size,)``); ``output_decoder`` -> ``Output``.
- ``synapses`` -> ``Affine(W, b)`` with a bias, ``Linear(W)`` without, ``Scale(1)`` one-to-one.
- ``population`` with the identity response -> ``Scale(1)``: NIR sums the edges into a node,
  which is the population's ``u = sum_p in_p``.

Every other node (products, rotary and nonlinear responses, normalising astrocytes, feature maps,
Hebbian groups, astrocytes) is a dialect node: a ``NIRGraph`` ``input -> body -> output`` whose
``input`` has the node's input size, ``output`` its output size and ``body`` a placeholder
``Linear`` of zeros (uint8) that only fixes those types; its metadata names the kind and carries
every parameter.  A reader that does not implement the kind must refuse the node.

Every node's metadata holds ``tripartite.kind``, ``tripartite.attributes`` (JSON: the node's
scalar fields, ``"@array"``/``null`` for its array fields) and ``tripartite.inputs`` (JSON: port
-> source node); dialect nodes add ``tripartite.arrays`` (field -> array), and the feature populations
of learned circuits with a window ``tripartite.window_kind`` (``ring`` or ``band``,
:mod:`compiler.exporters.window_kind`).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from compiler.exporters.window_kind import ATTR as WINDOW_KIND

KIND, ATTRS, INPUTS, ARRAYS, PORTS = (f"tripartite.{k}" for k in ("kind", "attributes", "inputs", "arrays", "ports"))
WINDOW = f"tripartite.{WINDOW_KIND}"  # a learned window's kind (compiler.exporters.window_kind)
ADAPTER_PORT, ADAPTER_TARGET, ADAPTER_OFFSET = "tripartite.port", "tripartite.target", "tripartite.offset"
# kinds whose ports are separate signals (concatenated into the dialect node's input by adapters)
CONCATENATING = {"features", "hebbian_synapses", "astrocyte"}


def concatenates(op) -> bool:
    """True when ``op``'s ports are distinct signals, not summed (NIR sums every edge into a node)."""
    return op.kind in CONCATENATING or (op.kind == "population" and op.response == "product")


def port_layout(op) -> list[tuple[str, int, int]]:
    """(port, offset, size) of each port in the dialect node's concatenated input."""
    layout, offset = [], 0
    for port in op.input_ports():
        size = op.input_sizes()[port]
        layout.append((port, offset, size))
        offset += size
    return layout


def input_size(op) -> int:
    if concatenates(op):
        return sum(size for _, _, size in port_layout(op))
    sizes = set(op.input_sizes().values())
    return sizes.pop() if sizes else op.out_size()


def record_metadata(op, inputs: dict[str, str]) -> dict[str, Any]:
    attrs, _ = op.to_record()
    return {KIND: op.kind, ATTRS: json.dumps(attrs, sort_keys=True), INPUTS: json.dumps(inputs, sort_keys=True)}


def _ones(n: int) -> np.ndarray:
    return np.ones(n, dtype=np.float64)


def _synapses(nir, op, meta):
    if op.weight is None:
        if op.bias is not None:
            return nir.Affine(weight=np.eye(op.post_size), bias=op.bias, metadata=meta)
        return nir.Scale(scale=_ones(op.post_size), metadata=meta)
    if op.bias is None:
        return nir.Linear(weight=op.weight, metadata=meta)
    return nir.Affine(weight=op.weight, bias=op.bias, metadata=meta)


def _population(nir, op, meta):
    return nir.Scale(scale=_ones(op.size), metadata=meta) if op.response == "identity" else None


STANDARD = {
    "input_encoder": lambda nir, op, meta: nir.Input(input_type=np.array([op.size]), metadata=meta),
    "output_decoder": lambda nir, op, meta: nir.Output(output_type=np.array([op.size]), metadata=meta),
    "synapses": _synapses,
    "population": _population,
}


def to_nir(op, inputs: dict[str, str]):
    """The NIR node of process node ``op`` fed by ``inputs`` (port -> source)."""
    import nir

    meta = record_metadata(op, inputs)
    standard = STANDARD.get(op.kind)
    node = standard(nir, op, meta) if standard else None
    return node if node is not None else dialect(nir, op, meta)


def dialect(nir, op, meta):
    _, arrays = op.to_record()
    meta[ARRAYS] = dict(arrays)
    if concatenates(op):
        meta[PORTS] = json.dumps([{"port": p, "offset": o, "size": s} for p, o, s in port_layout(op)])
    n_in, n_out = input_size(op), op.out_size()
    nodes = {
        "input": nir.Input(input_type=np.array([n_in])),
        "body": nir.Linear(weight=np.zeros((n_out, n_in), dtype=np.uint8)),
        "output": nir.Output(output_type=np.array([n_out])),
    }
    return nir.NIRGraph(nodes=nodes, edges=[("input", "body"), ("body", "output")], metadata=meta, type_check=False)


def adapter(nir, op, port: str, offset: int, size: int):
    """Feeds ``port`` of ``op``: a 0/1 ``Linear`` placing the port's signal at ``offset`` of the
    concatenated input (concatenating kinds), or ``Scale(1)`` (a summed port whose source feeds
    another port of the same node too: NIR allows one edge per pair of nodes)."""
    meta = {ADAPTER_TARGET: op.name, ADAPTER_PORT: port, ADAPTER_OFFSET: offset}
    if not concatenates(op):
        return nir.Scale(scale=_ones(size), metadata=meta)
    weight = np.zeros((input_size(op), size), dtype=np.uint8)
    weight[offset + np.arange(size), np.arange(size)] = 1
    return nir.Linear(weight=weight, metadata=meta)


# ---- back from NIR ---------------------------------------------------------------------------------
def standard_arrays(op_kind: str, node) -> dict[str, np.ndarray]:
    """The array fields a standard NIR node carries for a process node of ``op_kind``."""
    if op_kind != "synapses":
        return {}
    arrays = {}
    if hasattr(node, "weight"):
        arrays["weight"] = np.asarray(node.weight)
    if hasattr(node, "bias"):
        arrays["bias"] = np.asarray(node.bias)
    return arrays
