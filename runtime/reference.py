"""The float transformer reference: executes an attention graph in float64 or float32.

It is the yardstick every other backend is checked against.  It walks the graph in topological
order and calls each node's own :meth:`evaluate`; a failure names the node.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from compiler.attention import AttentionGraph, EvalContext
from compiler.errors import InputError
from compiler.interpret import interpret
from hardware_sim.inputs import check_tokens

DTYPES = {"float64": np.float64, "float32": np.float32}


@dataclass
class ReferenceResult:
    """Outputs by role (each (B, T, width)) and, when kept, every node's value."""

    outputs: dict[str, np.ndarray]
    values: dict[str, np.ndarray] = field(default_factory=dict)


def resolve_dtype(precision: str | type) -> type:
    if isinstance(precision, str):
        try:
            return DTYPES[precision]
        except KeyError:
            raise InputError(f"unknown float precision {precision!r}; use float64 or float32") from None
    return np.dtype(precision).type


def run_reference(
    graph: AttentionGraph,
    x: np.ndarray,
    mask: np.ndarray | None = None,
    precision: str | type = "float64",
    keep: bool | list[str] = False,
) -> ReferenceResult:
    """Run ``graph`` on token vectors ``x`` (B, T, width) with padding ``mask`` (B, T).

    ``keep=True`` keeps every node's value, a list keeps those nodes'.  Positions are 0..T-1.
    """
    dtype = resolve_dtype(precision)
    shapes = graph.validate()
    entry = graph.input_node()
    x, mask = check_tokens(x, mask, shapes[entry][0])
    B, T = mask.shape
    ctx = EvalContext(dtype=dtype, mask=mask, positions=np.broadcast_to(np.arange(T), (B, T)))
    outputs = {op.role: op.name for op in graph.nodes() if op.kind == "output"}
    kept = set(graph.g.nodes) if keep is True else set(keep or [])

    def evaluate(op, args):
        return op.evaluate(args, ctx).astype(dtype, copy=False)

    values = interpret(graph, {entry: x.astype(dtype)}, evaluate, kept | set(outputs.values()), "reference")
    return ReferenceResult(outputs={role: values[name] for role, name in outputs.items()},
                           values={n: values[n] for n in kept if n in values})


def mean_pool(hidden: np.ndarray, mask: np.ndarray, normalize: bool = True) -> np.ndarray:
    """Sentence embeddings: mean of ``hidden`` over unmasked tokens, optionally L2-normalised."""
    weights = mask.astype(hidden.dtype)[..., None]
    pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    if normalize:
        pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)
    return pooled
