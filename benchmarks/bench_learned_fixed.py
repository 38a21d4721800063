"""Learned circuits at the loihi2 precision against float on all-MiniLM-L6-v2.

For each distilled map set in benchmarks/results/learned_maps/ (made by bench_learned.py) the network
is compiled at float64 and at loihi2 (default calibration) and run by the golden simulator on the
held-out texts of bench_learned.py (about 100-250 tokens); the table gives the mean/min cosine of the
sentence embeddings against the float exact model, for float and loihi2, and between the two, with
the saturations counted.  The exact circuit at loihi2 is the reference for what the precision costs.
Writes benchmarks/results/learned_fixed.json.

    python benchmarks/bench_learned_fixed.py [--texts 20] [--maps A.npz,B.npz] [--out FILE.json]
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
from compiler.distill.maps import load_maps  # noqa: E402
from compiler.errors import TripartiteError  # noqa: E402
from compiler.frontends.source import load_source, minilm_dir  # noqa: E402
from hardware_sim.golden import simulate  # noqa: E402
from runtime.inputs import from_texts  # noqa: E402
from runtime.reference import mean_pool  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
MAPS = RESULTS / "learned_maps"


def held_out(graph, count: int):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_learned import held_out_texts

    return from_texts(graph.encoder, held_out_texts()[:count], graph.meta)


def embeddings(net, batch, precision):
    res = simulate(net, batch.x, batch.mask, precision=precision)
    return mean_pool(res.outputs["hidden"], batch.mask), res.saturations


def cosines(a, b):
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def summary(c):
    return {"mean": round(float(c.mean()), 5), "min": round(float(c.min()), 5)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--texts", type=int, default=20)
    ap.add_argument("--maps", default="", help="comma-separated map files (default: the MiniLM ones in learned_maps/)")
    ap.add_argument("--out", default=str(RESULTS / "learned_fixed.json"), help="the JSON file to write")
    args = ap.parse_args()
    graph = load_source(str(minilm_dir()))
    batch = held_out(graph, args.texts)
    T = int(batch.mask.shape[1])
    print(f"{len(batch.mask)} held-out texts of {batch.mask.sum(1).min()}-{batch.mask.sum(1).max()} tokens")
    reference, _ = embeddings(compiler.compile(graph, lowering="exact", max_tokens=T), batch, "float64")
    rows = []
    start = time.perf_counter()
    exact = compiler.compile(graph, lowering="exact", max_tokens=T, precision="loihi2")
    emb, sat = embeddings(exact, batch, "loihi2")
    rows.append({"circuit": "exact", "loihi2_vs_float_exact": summary(cosines(emb, reference)),
                 "saturations": sum(sat.values())})
    files = [Path(p) for p in args.maps.split(",") if p] or sorted(MAPS.glob("minilm_*.npz"))
    for path in files:
        maps = load_maps(path)
        try:
            flt = compiler.compile(graph, lowering="learned", feature_maps=maps, max_tokens=T)
        except TripartiteError as exc:  # e.g. an encoder's maps fitted for the ring window it no longer has
            print(f"  {path.stem}: skipped: {exc}", flush=True)
            continue
        fix = compiler.compile(graph, lowering="learned", feature_maps=maps, max_tokens=T, precision="loihi2")
        ef, _ = embeddings(flt, batch, "float64")
        ei, sat = embeddings(fix, batch, "loihi2")
        rows.append({"circuit": f"learned {path.stem}", "features": maps.features, "window": maps.window,
                     "float_vs_float_exact": summary(cosines(ef, reference)),
                     "loihi2_vs_float_exact": summary(cosines(ei, reference)),
                     "loihi2_vs_float_learned": summary(cosines(ei, ef)), "saturations": sum(sat.values())})
        print(f"  {path.stem}: {time.perf_counter() - start:.0f} s", flush=True)
    print(f"{'circuit':<34} {'float vs exact':>16} {'loihi2 vs exact':>16} {'loihi2 vs float':>16} sat")
    for r in rows:
        cells = [r.get(k) for k in ("float_vs_float_exact", "loihi2_vs_float_exact", "loihi2_vs_float_learned")]
        text = [f"{c['mean']:.4f}/{c['min']:.4f}" if c else "-" for c in cells]
        print(f"{r['circuit']:<34} {text[0]:>16} {text[1]:>16} {text[2]:>16} {r['saturations']}")
    out = Path(args.out)
    out.write_text(json.dumps({"texts": len(batch.mask), "tokens": [int(batch.mask.sum(1).min()),
                                                                      int(batch.mask.sum(1).max())],
                               "rows": rows}, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
