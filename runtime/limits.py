"""Limits checked before a run allocates: memory, context length and ``--truncate``.

Memory estimate of running ``net`` on ``B`` sequences of ``T`` tokens (bytes, float64 or int64
words of 8 bytes)::

    weights   sum of every node's arrays
    values    2 B T sum_n size_n              (each node's output, plus one temporary)
    circuits  6 B H T m per features node     (potentials, responses, process responses, gates)
              + B G dv m per Hebbian group    (the written weights)
    probes    B T H m per astrocyte (calcium), B G dv m per Hebbian group (weights)

It is an upper-bound style estimate (the simulators free values once consumed); runs above the
memory available are refused unless forced.
"""

from __future__ import annotations

from compiler.passes.budget import WORD, MemoryLimitError, array_bytes, available_memory

__all__ = ["MemoryLimitError", "available_memory", "check_memory", "run_bytes", "token_limit", "truncate_arrays"]


def run_bytes(net, B: int, T: int, probes=()) -> int:
    """Estimated peak bytes of a run of ``B`` x ``T`` tokens (module docstring)."""
    total = array_bytes(net)
    total += 2 * B * T * sum(int(getattr(op, "size", 0) or 0) for op in net.nodes()) * WORD
    for op in net.of_kind("features"):
        total += 6 * B * op.n_heads * T * op.m * WORD
    for op in net.of_kind("hebbian_synapses"):
        hebbian = B * op.n_kv_heads * op.v_head_dim * op.m * WORD
        total += hebbian * (2 if "weights" in probes else 1)
    if "calcium" in probes:
        total += sum(B * T * op.n_heads * op.m * WORD for op in net.of_kind("astrocyte"))
    return total


def check_memory(net, B: int, T: int, probes=(), copies: int = 1, force: bool = False) -> int:
    """Refuse (MemoryLimitError) a run whose estimate times ``copies`` (parallel workers) exceeds the
    available memory, unless ``force``; returns the estimate."""
    need = run_bytes(net, B, T, probes) * max(1, copies)
    have = available_memory()
    if need > have and not force:
        per = f" ({copies} workers)" if copies > 1 else ""
        raise MemoryLimitError(
            f"network {net.name!r}: a run of {B} sequence(s) x {T} tokens{per} needs about {need / 2**30:.1f} GiB, "
            f"{have / 2**30:.1f} GiB are available; use a smaller --shard-size or fewer --workers "
            "(or --force to try anyway)")
    return need


def token_limit(net) -> int | None:
    """The most tokens a sequence may have: the slots of exact circuits (``max_tokens``), the
    tokenizer's ``max_seq_length`` and the position table, whichever is smallest."""
    limits = [net.meta.get("max_tokens"), net.meta.get("max_seq_length")]
    if net.encoder is not None:
        limits.append(net.encoder.max_positions)
    limits = [int(v) for v in limits if v]
    return min(limits) if limits else None


def truncate_arrays(arrays: dict, limit: int | None) -> dict:
    """``--truncate`` for array inputs: keep the first ``limit`` tokens of every (B, T, ...) array."""
    if limit is None:
        return arrays
    return {k: (v[:, :limit] if k in ("input_ids", "mask", "token_type_ids", "x") and v.ndim >= 2 else v)
            for k, v in arrays.items()}
