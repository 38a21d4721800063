"""The attention graph: a transformer as typed ops over per-token feature vectors."""

from compiler.attention import raw_nodes  # noqa: F401  (registers the raw attention ops)
from compiler.attention.graph import AttentionGraph
from compiler.attention.nodes import NODE_KINDS, EvalContext

__all__ = ["AttentionGraph", "NODE_KINDS", "EvalContext"]
