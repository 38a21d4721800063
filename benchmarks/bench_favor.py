"""Random-feature (favor) attention on a real model: error vs the number of feature neurons m.

all-MiniLM-L6-v2, 8 sentences; layer 0's attention is lowered to a favor circuit (iid and
orthogonal features) and every other layer stays exact, so the error measured at layer 0's
attention output is the circuit's alone.  Prints a table and writes benchmarks/results/favor.json.
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
from compiler.frontends.source import load_source, minilm_dir  # noqa: E402
from hardware_sim.golden import simulate  # noqa: E402
from runtime.reference import run_reference  # noqa: E402
from runtime.text import tokenize  # noqa: E402

SENTENCES = [
    "The astrocyte wraps thousands of synapses with its fine processes.",
    "A transformer attends to every token in its context.",
    "Calcium waves travel slowly through glial networks.",
    "She bought fresh bread at the market this morning.",
    "Neuromorphic chips send graded spikes between their cores.",
    "The committee postponed the vote until next week.",
    "Random features approximate the exponential kernel without bias.",
    "Rain is expected over the northern hills tonight.",
]


def relative_error(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> float:
    a, b = a[mask], b[mask]
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def measure(features: list[int], seeds: int) -> list[dict]:
    source = minilm_dir()
    graph = load_source(source)
    ids, mask, types = tokenize(graph.encoder, SENTENCES)
    x = graph.encoder.encode(ids, types)
    node = "layer0.attn"
    reference = run_reference(graph, x, mask, keep=[node]).values[node]
    rows = []
    for orthogonal in (False, True):
        for m in features:
            errors, seconds = [], []
            for seed in range(seeds):
                net = compiler.compile(graph, lowering="exact", per_layer={node: "favor"}, features=m, seed=seed,
                                       orthogonal=orthogonal, max_tokens=ids.shape[1])
                target = net.meta["layer_outputs"][node]
                start = time.perf_counter()
                out = simulate(net, x, mask, keep=[target]).values[target]
                seconds.append(time.perf_counter() - start)
                errors.append(relative_error(out, reference, mask))
            rows.append({"features": m, "orthogonal": orthogonal, "seeds": seeds,
                         "rel_err_mean": float(np.mean(errors)), "rel_err_std": float(np.std(errors)),
                         "simulate_s": float(np.mean(seconds))})
            print(f"  m={m:6d} {'orthogonal' if orthogonal else 'iid':10s} rel err {np.mean(errors):.4f}", flush=True)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--features", type=int, nargs="+", default=[256, 1024, 4096, 16384])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/favor.json"))
    args = parser.parse_args(argv)
    rows = measure(args.features, args.seeds)
    print(f"\n{'m':>7} {'features':>10} {'rel err (mean ± std)':>22}")
    for r in rows:
        kind = "orthogonal" if r["orthogonal"] else "iid"
        print(f"{r['features']:>7} {kind:>10} {r['rel_err_mean']:>12.4f} ± {r['rel_err_std']:.4f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"model": "all-MiniLM-L6-v2", "node": "layer0.attn",
                                          "sentences": len(SENTENCES), "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
