"""Run a compiled network on a backend and collect outputs and probes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compiler.atomic import atomic_write
from compiler.errors import InputError
from compiler.npzfile import write_npz
from compiler.process import ProcessGraph
from runtime.inputs import Batch
from runtime.reference import mean_pool

BACKENDS = ("golden", "lava", "brian2")
GRANULARITIES = ("fused", "block", "fine")


@dataclass
class RunResult:
    """Outputs by role (B, T, size), probes by name, saturation counts by population."""

    backend: str
    precision: str
    outputs: dict[str, np.ndarray]
    probes: dict[str, np.ndarray] = field(default_factory=dict)
    saturations: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    values: dict[str, np.ndarray] = field(default_factory=dict)


def float_precision(net: ProcessGraph) -> str:
    """The arithmetic a backend should use for ``net``: float64, float32 or loihi2."""
    return net.meta.get("precision", "float64")


def run_golden(net, batch: Batch, probes, timeout, progress, keep=(), granularity="fused") -> RunResult:
    from hardware_sim.golden import simulate

    result = simulate(net, batch.x, batch.mask, precision=float_precision(net), probes=set(probes), keep=tuple(keep))
    return RunResult("golden", float_precision(net), result.outputs, result.probes, result.saturations,
                     values=result.values)


def run_on_lava(net, batch: Batch, probes, timeout, progress, keep=(), granularity="fused") -> RunResult:
    """Lava reads its outputs through sinks only, so ``keep`` is not served and ``values`` stays
    empty: per-layer errors of a Lava run come from the golden simulator of the same network."""
    from hardware_sim.lava.runner import run_lava

    precision = float_precision(net)
    lava_precision = "float32" if precision in ("float32", "float64") else precision
    result = run_lava(net, batch.x, batch.mask, precision=lava_precision, probes=tuple(probes), timeout=timeout,
                      progress=progress, granularity=granularity)
    return RunResult("lava", lava_precision, result.outputs, result.probes, result.saturations)


def run_on_brian2(net, batch: Batch, probes, timeout, progress, keep=(), granularity="fused") -> RunResult:
    """Brian2 runs float64 arithmetic; ``loihi2`` networks run with their dequantized chip weights."""
    from hardware_sim.brian2.backend import simulate_brian2

    precision = "loihi2" if float_precision(net) == "loihi2" else "float64"
    outputs, values = simulate_brian2(net, batch.x, batch.mask, precision=precision, probes=tuple(probes),
                                      keep=tuple(keep), progress=progress)
    return RunResult("brian2", precision, outputs, values=values)


RUNNERS = {"golden": run_golden, "lava": run_on_lava, "brian2": run_on_brian2}


def run(net: ProcessGraph, batch: Batch, backend: str = "golden", probes=(), timeout: float = 600.0,
        progress=None, keep=(), granularity: str = "fused") -> RunResult:
    """Run ``net`` on ``batch`` with ``backend`` (golden, lava or brian2); ``keep``: process nodes whose values
    (B, T, size) to return in ``values`` (per-layer comparisons); ``granularity``: one Lava process for
    the whole network (``fused``), one per block (``block``) or per circuit element (``fine``), see
    docs/lava_schedule.md."""
    if backend not in RUNNERS:
        raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if granularity not in GRANULARITIES:
        raise InputError(f"unknown granularity {granularity!r}; choose one of {', '.join(GRANULARITIES)}")
    start = time.perf_counter()
    result = RUNNERS[backend](net, batch, probes, timeout, progress, keep=keep, granularity=granularity)
    result.seconds = time.perf_counter() - start
    return result


def output_arrays(net: ProcessGraph, batch: Batch, result: RunResult) -> dict[str, np.ndarray]:
    """The arrays of the ``run -o`` contract: input_ids, mask, hidden, embeddings, logits, probes."""
    arrays: dict[str, np.ndarray] = {"mask": batch.mask}
    if batch.input_ids is not None:
        arrays["input_ids"] = batch.input_ids
    for role, value in result.outputs.items():
        arrays[role] = np.asarray(value)
    if "hidden" in result.outputs and net.meta.get("pooling", "mean") == "mean":
        arrays["embeddings"] = mean_pool(np.asarray(result.outputs["hidden"], dtype=np.float64), batch.mask)
    for name, value in result.probes.items():
        arrays[f"probe/{name}"] = np.asarray(value)
    for name, count in result.saturations.items():
        arrays[f"saturations/{name}"] = np.asarray(count)
    return arrays


def save_outputs(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    path = Path(path)
    with atomic_write(path) as handle:
        write_npz(handle, arrays, compress=True)
    return path
