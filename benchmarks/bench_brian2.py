"""Brian2 backend speed: time per token vs the golden simulator on all-MiniLM-L6-v2.

all-MiniLM-L6-v2 (exact lowering, float64), one sequence of 32 random token vectors, one run.
``build``: the Brian2 groups and synapses made from the process graph; ``run``: ``Network.run``,
which includes Brian2's code generation for every object (numpy target) and all time steps.  Steps:
one per token and sweep (MiniLM's six bidirectional layers make seven sweeps).  The relative error
is against the golden simulator's float64 output.  Prints a table and writes
benchmarks/results/bench_brian2.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import compiler  # noqa: E402
from compiler.frontends.source import minilm_dir  # noqa: E402
from hardware_sim.brian2.backend import records  # noqa: E402
from hardware_sim.brian2.model.clock import DT  # noqa: E402
from hardware_sim.brian2.model.network import build_network  # noqa: E402
from hardware_sim.golden import simulate  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "bench_brian2.json"


def measure(tokens: int) -> dict:
    net = compiler.compile(str(minilm_dir()), lowering="exact", max_tokens=max(tokens, 32))
    x = np.random.default_rng(0).normal(size=(1, tokens, 384))
    mask = np.ones((1, tokens), dtype=bool)
    simulate(net, x, mask)  # warm-up
    start = time.perf_counter()
    want = simulate(net, x, mask).outputs["hidden"]
    golden_s = time.perf_counter() - start

    start = time.perf_counter()
    network, build = build_network(records(net), x, mask)
    built = time.perf_counter()
    network.run(build.clock.steps * DT, namespace=build.namespace)
    ran = time.perf_counter()
    got = build.clock.readout(np.asarray(build.recorded["hidden"].y).T)
    synapses = sum(len(obj) for obj in network.objects if type(obj).__name__ == "Synapses")
    groups = sum(1 for obj in network.objects if type(obj).__name__ == "NeuronGroup")
    total = ran - start
    return {
        "model": "all-MiniLM-L6-v2", "lowering": "exact", "precision": "float64", "tokens": tokens,
        "steps": build.clock.steps, "sweeps": build.clock.sweeps, "neuron_groups": groups, "synapses": synapses,
        "build_s": built - start, "run_s": ran - built, "total_s": total,
        "per_token_ms": 1e3 * total / tokens, "per_step_ms": 1e3 * (ran - built) / build.clock.steps,
        "golden_s": golden_s, "golden_per_token_ms": 1e3 * golden_s / tokens, "ratio_vs_golden": total / golden_s,
        "rel_err": float(np.linalg.norm(got - want) / np.linalg.norm(want)),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=32)
    args = parser.parse_args(argv)
    r = measure(args.tokens)
    print(f"{'backend':<10}{'tokens':>7}{'steps':>7}{'build s':>9}{'run s':>9}{'ms/token':>10}{'ms/step':>9}"
          f"{'x golden':>10}{'rel err':>10}")
    print(f"{'golden':<10}{r['tokens']:>7}{'':>7}{'':>9}{r['golden_s']:>9.3f}{r['golden_per_token_ms']:>10.2f}"
          f"{'':>9}{1.0:>10.1f}{0.0:>10.1e}")
    print(f"{'brian2':<10}{r['tokens']:>7}{r['steps']:>7}{r['build_s']:>9.2f}{r['run_s']:>9.2f}"
          f"{r['per_token_ms']:>10.1f}{r['per_step_ms']:>9.1f}{r['ratio_vs_golden']:>10.0f}{r['rel_err']:>10.1e}")
    print(f"({r['neuron_groups']} neuron groups, {r['synapses']} synapses, {r['sweeps']} sweeps)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(r, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
