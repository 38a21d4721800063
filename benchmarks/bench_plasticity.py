"""Loihi 2 plasticity check: Lava's LearningDense learns one Hebbian group; error vs golden's weights.

Cases: all-MiniLM-L6-v2 layer 0 (exact slots: one-hot graded spikes), all-MiniLM-L6-v2 layer 0 with
favor features (m = 64, graded spikes f(k)), on one sentence of the MiniLM fixture.  For each: the
relative L2 error of the learned weights (the heads' diagonal blocks) against the golden
simulator's after the write phases, on ``floating_pt`` and on ``fixed_pt`` (7-bit traces, 8-bit
weights).  Prints a table and writes benchmarks/results/plasticity.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import compiler  # noqa: E402
from compiler.frontends.source import minilm_dir  # noqa: E402
from hardware_sim.lava.plasticity_check import check_plasticity  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "plasticity.json"
FIXTURE = ROOT / "tests" / "fixtures" / "minilm_expected.npz"


def main() -> int:
    f = np.load(FIXTURE, allow_pickle=False)
    mask = f["mask"][:1].astype(bool)
    T = int(mask.sum())
    rows = []
    for lowering, features in (("exact", 0), ("favor", 64)):
        net = compiler.compile(str(minilm_dir()), lowering=lowering, features=features or 256, max_tokens=32)
        x = net.encoder.encode(f["input_ids"][:1, :T], f["token_type_ids"][:1, :T])
        r = check_plasticity(net, x, mask[:, :T], node="layer0.attn.hebbian")
        rows.append({"model": "all-MiniLM-L6-v2", "node": r.node, "lowering": lowering, "tokens": r.tokens,
                     "heads": r.heads, "weights": int(r.golden.size), "floating_pt_rel_err": r.errors["floating_pt"],
                     "fixed_pt_rel_err": r.errors["fixed_pt"], "fixed_pt_weight_unit": r.fixed_scale,
                     "seconds": r.seconds})
    print(f"{'case':<34}{'tokens':>7}{'weights':>9}{'floating_pt':>13}{'fixed_pt':>10}")
    for r in rows:
        print(f"{r['model'] + ' ' + r['lowering'] + ' layer0':<34}{r['tokens']:>7}{r['weights']:>9}"
              f"{r['floating_pt_rel_err']:>13.1e}{r['fixed_pt_rel_err']:>10.3f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"rule": "dw = 2 * x0 * x1 * y1 (Loihi3FLearningRule, OVERWRITE)",
                                   "rows": rows}, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
