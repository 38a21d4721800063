"""Pass ``validate``: the attention graph is well formed and the options fit it."""

from __future__ import annotations

from compiler.errors import GraphError
from compiler.passes.base import CompileOptions, Pass


class Validate(Pass):
    """Check wiring and shapes of the attention graph, and that ``per_layer`` names attention nodes."""

    name = "validate"
    ensures = ("validated",)

    def run(self, graph, options: CompileOptions):
        graph.validate()
        attention = {op.name for op in graph.nodes() if op.kind in ("attention", "matmul")}
        for node in options.per_layer:
            if node not in graph:
                raise GraphError(f"per-layer lowering names unknown node {node!r}; attention nodes: "
                                 f"{', '.join(sorted(attention)) or 'none'}")
        return graph
