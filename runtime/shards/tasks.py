"""What a worker does with one shard: build its batch, run (or verify) it, return a ShardOutcome.

A failure of the shard (bad input, a simulator error) comes back as the outcome's one-line
``error`` instead of an exception, so the other shards go on and the caller can name the lines.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from compiler.errors import TripartiteError
from runtime.inputs import Batch, batch_from_arrays, from_ids
from runtime.limits import token_limit, truncate_arrays
from runtime.shards.sources import Shard


@dataclass(frozen=True)
class ShardJob:
    """The options every shard of a run shares."""

    mode: str = "run"  # run | verify
    backend: str = "golden"
    granularity: str = "fused"
    probes: tuple = ()
    timeout: float = 600.0
    truncate: bool = False
    source: str = ""
    raise_errors: bool = False  # a run of one shard fails as an unsharded run does


@dataclass
class ShardOutcome:
    """A finished shard: output ``arrays`` (run) or mergeable ``stats`` (verify), or an ``error``."""

    index: int
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    stats: dict = field(default_factory=dict)
    sequences: int = 0
    tokens: int = 0
    seconds: float = 0.0
    error: str = ""


def shard_batch(net, shard: Shard, job: ShardJob) -> Batch:
    """Token vectors of one shard, tokenized (texts) or cut from the input arrays."""
    limit = token_limit(net) if job.truncate else None
    if shard.texts is not None:
        from runtime.text import tokenize

        if net.encoder is None:
            raise TripartiteError(f"network {net.name!r} has no input encoder; pass token vectors with --inputs")
        max_length = limit if job.truncate else net.meta.get("max_seq_length")
        ids, mask, types = tokenize(net.encoder, shard.texts, max_length=max_length)
        return from_ids(net.encoder, ids, mask, types, texts=shard.texts)
    arrays = truncate_arrays(dict(shard.arrays), limit)
    width = next(op.size for op in net.nodes() if op.kind == "input_encoder")
    batch = batch_from_arrays(job.source, arrays, net.encoder, width)
    if "labels" in arrays:
        batch.labels = np.asarray(arrays["labels"])
    return batch


def run_shard(net, shard: Shard, job: ShardJob, reference=None) -> ShardOutcome:
    """Run (``job.mode == 'run'``) or verify one shard; errors become ``outcome.error``."""
    start = time.perf_counter()
    outcome = ShardOutcome(shard.index)
    try:
        batch = shard_batch(net, shard, job)
        outcome.sequences, outcome.tokens = int(batch.mask.shape[0]), int(batch.mask.sum())
        if job.mode == "verify":
            outcome.stats = verify_stats(net, reference, batch, job)
        else:
            outcome.arrays = run_arrays(net, batch, job)
    except TripartiteError as exc:
        if job.raise_errors:
            raise
        outcome.error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    except (ValueError, TypeError, OSError, MemoryError, RuntimeError) as exc:
        outcome.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    outcome.seconds = time.perf_counter() - start
    return outcome


def run_arrays(net, batch: Batch, job: ShardJob) -> dict[str, np.ndarray]:
    from runtime.run import output_arrays, run

    result = run(net, batch, backend=job.backend, probes=job.probes, timeout=job.timeout,
                 granularity=job.granularity)
    return output_arrays(net, batch, result)


def verify_stats(net, reference, batch: Batch, job: ShardJob) -> dict:
    from runtime.shards.merge import shard_statistics
    from runtime.verify import verify

    report = verify(net, reference, batch, backend=job.backend, timeout=job.timeout, probes=(),
                    granularity=job.granularity)
    return shard_statistics(report, batch)
