"""Pass ``budget``: refuse a compile the machine cannot hold, or a context the model cannot embed.

Context length. ``--max-tokens`` (the slots of exact circuits, the longest sequence a network will
take; when not given, 128 or the model's limit if that is smaller) may not exceed the model's position
table (learned position embeddings: no row exists beyond it; refused always) or its trained context
(``meta["context_length"]`` of rotary models: refused unless forced, since rotary angles extrapolate but
the model never saw them).

Memory, estimated before anything is lowered (bytes; words of 8 bytes)::

    source      S = sum of the attention graph's arrays           (already resident)
    process     S                                                   (synapses copy the weights)
    circuits    per attention node, per lowering with m features per head:
                  exact      8 (G (d + dv) m)                      Hebbian slots, m = max_tokens
                  others     8 (2 H d m + G (d + dv) m)            feature projections and memory
    loihi2      S / 8 + S                                          mantissas, and dequantised copies
                + 8 B T (2 sum_n width_n + 6 sum_att H m)          the calibration run (B x T tokens)

It is an upper-bound style estimate; compiles above the memory available are refused unless forced.
"""

from __future__ import annotations

from compiler.errors import InputError
from compiler.passes.base import DEFAULT_MAX_TOKENS, CompileOptions, Pass

WORD = 8
CALIBRATION_BATCH, CALIBRATION_TOKENS = 4, 16


class MemoryLimitError(InputError):
    """A compile or a run would need more memory than the machine has available."""


class ContextLengthError(InputError):
    """A context length beyond what the model can embed."""


def available_memory() -> int:
    """Bytes of memory available to new allocations (``MemAvailable`` of /proc/meminfo)."""
    import os

    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def array_bytes(graph) -> int:
    """Bytes of every array the nodes of ``graph`` hold (encoder tables included)."""
    total = sum(int(a.nbytes) for op in graph.nodes() for a in op.to_record()[1].values())
    encoder = getattr(graph, "encoder", None)
    if encoder is not None:
        total += sum(int(getattr(encoder, name).nbytes) for name in vars(encoder)
                     if hasattr(getattr(encoder, name), "nbytes"))
    return total


def features_per_head(att, lowering: str, options: CompileOptions) -> int:
    """m: the slots (exact), features (+ window slots, learned) of one head of ``att``'s circuit."""
    from compiler.passes.lower_attention import feature_count

    if lowering != "learned":
        return feature_count(lowering, att.head_dim, options)
    from compiler.passes.learned_maps import feature_maps

    maps = feature_maps(options)
    layer = maps.layers.get(att.name)
    return (2 * layer.m if layer is not None else 0) + int(maps.window if options.window is None else options.window)


def circuit_bytes(att, lowering: str, options: CompileOptions) -> int:
    """Bytes of one attention node's circuit arrays and memory (module docstring)."""
    d, dv, m = att.head_dim, att.v_head_dim or att.head_dim, features_per_head(att, lowering, options)
    memory = att.n_kv_heads * (d + dv) * m
    projections = 0 if lowering == "exact" else 2 * att.n_heads * d * m
    return WORD * (memory + projections)


def compile_bytes(graph, options: CompileOptions) -> int:
    """Estimated peak bytes of compiling ``graph`` with ``options`` (module docstring)."""
    source = array_bytes(graph)
    total = 2 * source
    for att in graph.of_kind("attention"):
        total += circuit_bytes(att, options.per_layer.get(att.name, options.lowering), options)
    if options.precision == "loihi2":
        total += source // 8 + source + calibration_bytes(graph, options)
    return total


def calibration_bytes(graph, options: CompileOptions) -> int:
    """The quantize pass's calibration run: every node's value and a temporary, and each circuit's
    potentials, responses and gates (6 B H T m), for B x T calibration tokens."""
    B, T = CALIBRATION_BATCH, min(CALIBRATION_TOKENS, options.max_tokens)
    if options.calibration is not None and hasattr(options.calibration, "shape"):
        B, T = options.calibration.shape[:2]
    widths = sum(int(shape[-1]) if shape else 1 for shape in graph.validate().values())
    circuits = sum(att.n_heads * features_per_head(att, options.per_layer.get(att.name, options.lowering), options)
                   for att in graph.of_kind("attention"))
    return WORD * B * T * (2 * widths + 6 * circuits)


def position_limits(graph) -> tuple[int | None, int | None]:
    """(rows of the position table, trained context of a rotary model); None where there is none."""
    encoder = getattr(graph, "encoder", None)
    table = encoder.max_positions if encoder is not None else None
    context = graph.meta.get("context_length")
    return table, (int(context) if context else None)


def resolve_context(graph, options: CompileOptions) -> None:
    """Set ``options.max_tokens`` when it was not given: DEFAULT_MAX_TOKENS, or the model's limit if smaller;
    refuse an explicit one beyond the position table (always) or the trained context (unless forced)."""
    table, context = position_limits(graph)
    if options.max_tokens is None:
        options.max_tokens = min(v for v in (DEFAULT_MAX_TOKENS, table, context) if v is not None)
        return
    if table is not None and options.max_tokens > table:
        raise ContextLengthError(
            f"model {graph.name!r}: --max-tokens {options.max_tokens} exceeds its position table of {table} "
            f"positions; use --max-tokens {table} or less")
    if context is not None and options.max_tokens > context and not options.force:
        raise ContextLengthError(
            f"model {graph.name!r}: --max-tokens {options.max_tokens} exceeds the {context} tokens it was trained "
            f"on; use --max-tokens {context} or less (or --force to extrapolate its rotary positions)")


def size_text(nbytes: int) -> str:
    """``nbytes`` for a message: GiB with one decimal from 1 GiB, MiB below."""
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**30 else f"{nbytes / 2**20:.1f} MiB"


def check_compile_memory(graph, options: CompileOptions) -> int:
    need, have = compile_bytes(graph, options), available_memory()
    if need > have and not options.force:
        raise MemoryLimitError(
            f"model {graph.name!r}: compiling it needs about {size_text(need)}, {size_text(have)} are "
            "available; use a cheaper lowering or fewer --max-tokens/--features (or --force to try anyway)")
    return need


class Budget(Pass):
    """Refuse context lengths beyond the position table and compiles beyond the available memory."""

    name = "budget"
    requires = ("attention_matched",)

    def run(self, graph, options: CompileOptions):
        resolve_context(graph, options)
        check_compile_memory(graph, options)
        return graph
