"""Greedy generation with a compiled decoder: append the arg-max token, run again."""

from __future__ import annotations

import numpy as np

from compiler.errors import InputError
from runtime.inputs import Batch, from_ids
from runtime.run import RunResult, run


def pad_right(sequences: list[list[int]], pad: int) -> tuple[np.ndarray, np.ndarray]:
    T = max(len(s) for s in sequences)
    ids = np.full((len(sequences), T), pad, dtype=np.int64)
    mask = np.zeros((len(sequences), T), dtype=bool)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = True
    return ids, mask


def generate(net, batch: Batch, steps: int, backend: str = "golden", timeout: float = 600.0) -> tuple[Batch, RunResult]:
    """Extend every sequence of ``batch`` by ``steps`` greedy tokens; return the final batch and run.

    Each step reruns the network on the whole prefix (the circuit's state is rebuilt by the write
    phases), reads ``logits`` at each sequence's last real token and appends the arg-max id.
    """
    if batch.input_ids is None:
        raise InputError("--generate needs token inputs (text or input_ids), not token vectors")
    if steps < 0:
        raise InputError("--generate takes a non-negative number of tokens")
    sequences = [list(ids[m]) for ids, m in zip(batch.input_ids, batch.mask)]
    result = run(net, batch, backend=backend, timeout=timeout)
    if "logits" not in result.outputs:
        raise InputError("--generate needs a model with an output head (logits); this network has none")
    for _ in range(steps):
        logits = result.outputs["logits"]
        for i, seq in enumerate(sequences):
            seq.append(int(np.argmax(logits[i, len(seq) - 1])))
        ids, mask = pad_right(sequences, net.encoder.pad_token_id)
        batch = from_ids(net.encoder, ids, mask, texts=batch.texts)
        result = run(net, batch, backend=backend, timeout=timeout)
    return batch, result
