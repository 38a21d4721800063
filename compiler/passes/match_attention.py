"""Pass ``match_attention`` (placeholder until raw ops land)."""

from __future__ import annotations

from compiler.passes.base import CompileOptions, Pass


class MatchAttention(Pass):
    name = "match_attention"
    requires = ("validated",)
    ensures = ("attention_matched",)

    def run(self, graph, options: CompileOptions):
        return graph
