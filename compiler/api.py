"""The Python entry point of the compiler."""

from __future__ import annotations

from compiler.attention import AttentionGraph
from compiler.passes.base import CompileOptions
from compiler.pipeline import compile_graph
from compiler.process import ProcessGraph


def load_attention_graph(source) -> AttentionGraph:
    """``source`` as an attention graph: itself, a checkpoint directory or a saved graph file."""
    if isinstance(source, AttentionGraph):
        return source
    from compiler.frontends.source import load_source

    return load_source(source)


def compile(source, lowering: str = "exact", precision: str = "float64", features: int = 256, seed: int = 0,
            max_tokens: int | None = None, per_layer: dict[str, str] | None = None, orthogonal: bool = False,
            calibrate=None, progress=None, debug: bool = False, rounding: str = "nearest",
            outlier_ratio: float = 0.0, split_qk: bool = False, tokenizer=None, feature_maps=None,
            window: int | None = None, force: bool = False) -> ProcessGraph:
    """Compile a transformer into a neuron-astrocyte process graph.

    Parameters
    ----------
    source : AttentionGraph, or path to a Hugging Face checkpoint directory or a saved attention graph.
    lowering : exact | favor | relu | elu1 | taylor2, the circuit of every attention node, unless
        ``per_layer`` maps that node's name to another.
    precision : float64 | float32 | loihi2.
    features, seed, orthogonal : random-feature count per head, projection seed, orthogonal rows.
    max_tokens : context length (slots of exact circuits); default 128, or the model's position table or
        trained context if shorter.
    calibrate : sample inputs for the quantize pass (loihi2).
    rounding, outlier_ratio, split_qk : loihi2 weights: mantissa rounding (nearest | compensated), input
        channels louder than ``outlier_ratio`` times the median in groups of their own (0: off), a second
        8-bit group for query and key maps (compiler/passes/rounding.py, split_groups.py).
    progress : called with each pass name once it has run.
    tokenizer : a ``tokenizer.json`` file or its directory, embedded in the network (for sources without one).
    feature_maps, window : the learned lowering's maps (a ``tripartite distill`` file or
        :class:`compiler.distill.FeatureMaps`) and its exact ring slots (default: the window they were fitted for).
    force : compile even when the memory estimate exceeds the available memory, or ``max_tokens`` exceeds a
        rotary model's trained context (compiler/passes/budget.py); a position table is never exceeded.
    """
    graph = load_attention_graph(source)
    if tokenizer is not None:
        from compiler.frontends.tokenizer_file import embed_tokenizer

        graph = embed_tokenizer(graph, tokenizer)
    options = CompileOptions(lowering=lowering, features=features, seed=seed, orthogonal=orthogonal,
                             precision=precision, max_tokens=max_tokens, per_layer=dict(per_layer or {}),
                             calibration=calibrate, debug=debug, rounding=rounding, outlier_ratio=outlier_ratio,
                             split_qk=split_qk, feature_maps=feature_maps, window=window,
                             force=force)
    return compile_graph(graph, options, progress=progress)
