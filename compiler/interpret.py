"""Walking a typed graph in topological order: the loop every simulator and the reference share."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from compiler.errors import SimulationError

NUMERIC_ERRORS = (ValueError, FloatingPointError, MemoryError, OverflowError)


def interpret(graph, seeds: dict[str, Any], evaluate: Callable[[Any, dict[str, Any]], Any], keep: Iterable[str],
              who: str) -> dict[str, Any]:
    """Evaluate every node of ``graph`` not in ``seeds``; return the values of the nodes in ``keep``.

    ``evaluate(op, args)`` computes a node's value from its inputs by port.  A value is dropped as
    soon as its last consumer has run, unless kept.  A numeric failure becomes a one-line
    :class:`SimulationError` naming ``who``, the node and its kind.
    """
    kept = set(keep)
    values = dict(seeds)
    users = dict(graph.g.out_degree())
    for name in graph.order():
        inputs = graph.inputs_of(name)
        if name not in seeds:
            op = graph.node(name)
            try:
                values[name] = evaluate(op, {port: values[src] for port, src in inputs.items()})
            except NUMERIC_ERRORS as exc:
                raise SimulationError(f"{who}: node {name!r} ({op.kind}) failed: {exc}") from exc
        for src in inputs.values():
            users[src] -= 1
            if users[src] == 0 and src not in kept:
                del values[src]
    return {name: values[name] for name in kept if name in values}
