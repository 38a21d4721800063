"""The compiler pipeline: attention graph in, process graph out, one pass after another."""

from __future__ import annotations

from compiler.attention import AttentionGraph
from compiler.passes.base import CompileOptions, Pass, PassManager
from compiler.passes.budget import Budget
from compiler.passes.lower_attention import LowerAttention
from compiler.passes.lower_ops import LowerOps
from compiler.passes.match_attention import MatchAttention
from compiler.passes.place import Place
from compiler.passes.quantize import Quantize
from compiler.passes.validate import Validate
from compiler.process import ProcessGraph


def passes(options: CompileOptions) -> list[Pass]:
    """The passes, in order."""
    order: list[Pass] = [
        Validate(),         # wiring, shapes, per-layer names
        MatchAttention(),   # raw matmul/scale/mask/softmax/matmul chains -> attention nodes
        Budget(),           # --max-tokens within the position table; the compile fits in memory
        LowerAttention(),   # attention -> features, Hebbian synapses, astrocyte, schedule
        LowerOps(),         # linear, residual, norms, activations, products, rope -> neurons and synapses
    ]
    if options.precision == "loihi2":
        order += loihi_passes()
    return order


def loihi_passes() -> list[Pass]:
    """Quantize (24-bit state, 8-bit weights) and place on cores: the loihi2 precision only."""
    return [Quantize(), Place()]


def compile_graph(graph: AttentionGraph, options: CompileOptions, progress=None) -> ProcessGraph:
    """Compile ``graph`` with ``options``; ``progress(pass_name)`` is called after each pass."""
    return PassManager(passes(options)).run(graph, options, progress=progress)
