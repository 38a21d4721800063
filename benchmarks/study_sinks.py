"""Study: exact "sink" slots for [CLS] and [SEP] beside the band window of MiniLM's learned circuit.

Per query i the exact slots are the band ``|i - j| <= r`` (W = 2r + 1) and the text's first and last
real tokens ([CLS], [SEP]; :func:`compiler.distill.hedgehog.sink_slots`); the feature memory carries
every other key.  Memory per head 2m + W + 2, constant in the context length.  The maps are fitted
with bench_learned's MiniLM recipe (32 calibration texts of the shipped corpus, 40 L-BFGS iterations
per layer, 64 query rows per chunk, seed 0; joint: 240 Adam steps in float32 on 48 corpus texts of
100-250 tokens, one chunk of 4 texts per step) and evaluated on bench_learned's 20 held-out texts by
the surrogate forward (numpy float64; the golden simulator has no sinks): mean/min cosine of the
sentence embeddings against the float model, the cosine with one layer converted alone, and the
rows' L1 error on the exact slots and on the feature-carried keys.  The fit and the forward are the
distillation's own (``DistillOptions(sinks=True)``, ``run_surrogate(sinks=True)``).  A study: the compiler
and the simulators do not implement sinks.  Maps are kept in /tmp/study_sinks (not in learned_maps/, whose
files compile takes for band maps).  Writes benchmarks/results/study_sinks.json.

    python benchmarks/study_sinks.py --check      # no-sink 16:47 maps, sinks off: 0.966/0.917 (joint 0.968/0.947)
    python benchmarks/study_sinks.py --configs 16:45,16:45:240    # 2m=16 + W=45 + 2 sinks, then joint
    python benchmarks/study_sinks.py --configs 16:45 --held-out 4 --epochs 5 --texts 8   # a quick estimate
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_learned import held_out_texts, long_calibration, maps_path, parse_configs  # noqa: E402

from compiler.distill.corpus import calibration_texts  # noqa: E402
from compiler.distill.fit import DistillOptions, distill_graph  # noqa: E402
from compiler.distill.hedgehog import logits, softmax_rows, window_slots  # noqa: E402
from compiler.distill.maps import FeatureMaps, load_maps  # noqa: E402
from compiler.distill.surrogate import attention_visibility, learned_rows, run_surrogate, split  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CACHE = Path("/tmp/study_sinks")


def cosines(hidden, mask, reference) -> np.ndarray:
    from runtime.reference import mean_pool

    return (mean_pool(hidden, mask) * reference).sum(-1)


def row_errors(graph, batch, maps: FeatureMaps, sinks: bool) -> dict[str, list[float]]:
    """Per layer (every layer converted): the rows' L1 error ``sum_j |a_ij - p_ij|`` (mean over real
    queries and heads) on the exact slots and on the keys the features carry."""
    attention = [graph.node(n) for n in maps.layers]
    keep = [graph.inputs_of(att.name)[p] for att in attention for p in ("q", "k")]
    values = run_surrogate(graph, batch.x, batch.mask, maps, keep=keep, sinks=sinks)
    out = {}
    for att in attention:
        inputs = graph.inputs_of(att.name)
        q, k = split(att, {p: values[inputs[p]] for p in ("q", "k")} | {"v": values[inputs["k"]]})[:2]
        vis = attention_visibility(att, batch.mask)
        win = window_slots(vis, maps.window, att.causal, sinks)
        rows = learned_rows(att, q, k, batch.mask, maps.layers[att.name], maps.window, sinks)
        err = np.abs(rows - softmax_rows(logits(q, k, att.scale), vis)) * batch.mask[:, None, :, None]
        total = batch.mask.sum() * q.shape[1]
        out[att.name] = [round(float((err * win).sum() / total), 4), round(float((err * (vis & ~win)).sum() / total),
                                                                            4)]
    return out


def evaluate(graph, batch, reference, maps: FeatureMaps, sinks: bool, alone: bool = True) -> dict:
    """Mean/min embedding cosine with every layer converted, and per layer with it alone converted."""
    cos = cosines(run_surrogate(graph, batch.x, batch.mask, maps, sinks=sinks)["hidden"], batch.mask, reference)
    out = {"cosine_mean": float(cos.mean()), "cosine_min": float(cos.min()),
           "cosine_per_text": [round(float(c), 4) for c in cos]}
    if alone:
        out["cosine_alone"] = {name: round(float(cosines(run_surrogate(graph, batch.x, batch.mask, maps,
                                                                       converted=[name], sinks=sinks)["hidden"],
                                                         batch.mask, reference).mean()), 4) for name in maps.layers}
        out["row_l1_exact_features"] = row_errors(graph, batch, maps, sinks)
    return out


def cache_path(features: int, window: int, joint: int, epochs: int, texts: int) -> Path:
    return CACHE / (f"minilm_f{features}_w{window}_sinks_e{epochs}_t{texts}" + (f"_joint{joint}" if joint else "")
                    + ".npz")


def distilled(graph, features: int, window: int, args) -> FeatureMaps:
    """Layer-by-layer maps with sinks (cached in /tmp), bench_learned's recipe."""
    from runtime.inputs import from_texts

    path = cache_path(features, window, 0, args.epochs, args.texts)
    if path.exists():
        return load_maps(path)
    batch = from_texts(graph.encoder, calibration_texts(args.texts, 0), graph.meta)
    start = time.perf_counter()

    def progress(layer, step, total):
        if step % 10 == 0 or step == total:
            print(f"  f{features} w{window}+sinks {layer} {step}/{total} {time.perf_counter() - start:.0f} s",
                  flush=True)

    options = DistillOptions(features=features, epochs=args.epochs, seed=0, window=window, sinks=True)
    maps = distill_graph(graph, batch.x, batch.mask, options, progress)
    maps.report["seconds"] = time.perf_counter() - start
    CACHE.mkdir(parents=True, exist_ok=True)
    maps.save(path)
    return maps


def jointly_tuned(graph, features: int, window: int, steps: int, args) -> FeatureMaps:
    """bench_learned's joint recipe with sinks: float32 Adam, one chunk of 4 texts per step, 48 texts."""
    from compiler.distill.joint import joint_tune

    path = cache_path(features, window, steps, args.epochs, args.texts)
    if path.exists():
        return load_maps(path)
    maps = distilled(graph, features, window, args)
    x, mask = long_calibration(graph, args.joint_texts)
    start = time.perf_counter()

    def progress(_, step, total):
        if step % 10 == 0 or step == total:
            print(f"  joint f{features} w{window}+sinks {step}/{total} {time.perf_counter() - start:.0f} s", flush=True)

    tuned = joint_tune(graph, x, mask, maps, steps, lr=3e-3, progress=progress, dtype=np.float32, stochastic=True,
                       sinks=True)
    tuned.report["joint"].update(seconds=time.perf_counter() - start, lr=3e-3)
    CACHE.mkdir(parents=True, exist_ok=True)
    tuned.save(path)
    return tuned


def print_row(r: dict) -> None:
    print(f"  {r['circuit']:<44} memory/head {r['memory_per_head']:>3}  cosine mean {r['cosine_mean']:.4f} "
          f"min {r['cosine_min']:.4f}", flush=True)
    if "cosine_alone" in r:
        print(f"    one layer alone: {list(r['cosine_alone'].values())}", flush=True)
        print(f"    row L1 error exact slots / feature keys: {list(r['row_l1_exact_features'].values())}", flush=True)


def main() -> int:
    from threadpoolctl import threadpool_limits

    from compiler.frontends.source import load_source, minilm_dir
    from runtime.inputs import from_texts
    from runtime.reference import mean_pool, run_reference

    threadpool_limits(1, user_api="blas")
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="", help="F:W[:J] map sets with sinks (2m, window, joint steps)")
    parser.add_argument("--check", action="store_true",
                        help="evaluate bench_learned's no-sink 16:47 maps (layer by layer and joint 240) with and "
                             "without sinks at inference")
    parser.add_argument("--epochs", type=int, default=40, help="L-BFGS iterations per layer")
    parser.add_argument("--texts", type=int, default=32, help="calibration texts of the layer-by-layer fit")
    parser.add_argument("--joint-texts", type=int, default=48, help="texts of 100-250 tokens for joint tuning")
    parser.add_argument("--held-out", type=int, default=20, help="held-out texts evaluated (first N of 20)")
    parser.add_argument("--no-alone", action="store_true", help="skip the one-layer-alone cosines and row errors")
    parser.add_argument("--out", default=str(RESULTS / "study_sinks.json"))
    args = parser.parse_args()

    graph = load_source(str(minilm_dir()))
    batch = from_texts(graph.encoder, held_out_texts()[:args.held_out], graph.meta)
    reference = mean_pool(run_reference(graph, batch.x, batch.mask).outputs["hidden"], batch.mask)
    print(f"held-out texts: {len(batch.mask)}, tokens {batch.mask.sum(1).min()}-{batch.mask.sum(1).max()}", flush=True)
    rows = []
    for joint in (0, 240) if args.check else ():
        path = maps_path(16, 47)
        maps = load_maps(path.with_name(path.stem + f"_joint{joint}.npz") if joint else path)
        for sinks in (False, True):
            start = time.perf_counter()
            r = {"circuit": "bench_learned 2m=16 + W=47 maps (no-sink fit" + (", joint 240)" if joint else ")")
                 + (", sinks at inference" if sinks else ""),
                 "memory_per_head": 63 + 2 * sinks, "sinks": sinks,
                 "fit": ("joint 240 steps" if joint else "layer by layer") + ", without sinks",
                 **evaluate(graph, batch, reference, maps, sinks, alone=not args.no_alone)}
            r["seconds"] = round(time.perf_counter() - start, 1)
            print_row(r)
            rows.append(r)
    for features, window, joint in parse_configs(args.configs):
        maps = jointly_tuned(graph, features, window, joint, args) if joint else distilled(graph, features, window,
                                                                                            args)
        r = {"circuit": f"2m={features} + W={window} + 2 sinks" + (f", joint {joint}" if joint else ""),
             "memory_per_head": features + window + 2, "sinks": True,
             "fit": f"joint {joint} steps" if joint else "layer by layer",
             **evaluate(graph, batch, reference, maps, True, alone=not args.no_alone),
             "row_kl": {k: round(v["kl_after"], 4) for k, v in maps.report.items() if isinstance(v, dict)
                        and "kl_after" in v},
             "fit_seconds": round(maps.report.get("seconds", 0) + maps.report.get("joint", {}).get("seconds", 0))}
        print_row(r)
        rows.append(r)
    table(merge(Path(args.out), rows, args))
    return 0


def table(result: dict) -> None:
    """Every row of the result file: circuit, memory per head, fit, mean/min cosine, held-out texts."""
    print(f"\n{'circuit':<76} {'memory/head':>11} {'mean':>7} {'min':>7} {'texts':>5}")
    for r in result["rows"]:
        print(f"{r['circuit']:<76} {r['memory_per_head']:>11} {r['cosine_mean']:>7.4f} {r['cosine_min']:>7.4f} "
              f"{r['held_out_texts']:>5}")


def merge(path: Path, rows: list[dict], args) -> dict:
    """Fold this run's rows into the result file (by circuit and evaluation size)."""
    result = json.loads(path.read_text()) if path.exists() else {}
    old = {(r["circuit"], r.get("held_out_texts")): r for r in result.get("rows", [])}
    for r in rows:
        r.update(held_out_texts=args.held_out, epochs=args.epochs, calibration_texts=args.texts)
        old[(r["circuit"], args.held_out)] = r
    result["rows"] = list(old.values())
    result["model"] = "all-MiniLM-L6-v2"
    result["evaluation"] = "surrogate forward, float64, mean-pooled embedding cosine vs float"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    sys.exit(main())
