"""Learned (distilled Hedgehog) feature maps against favor and exact circuits, at constant memory.

all-MiniLM-L6-v2: maps distilled on the shipped calibration corpus, evaluated on held-out texts of
100-250 tokens (consecutive sentences of tests/fixtures/sentences200.txt, which the corpus does not
contain), by the mean/min cosine of the sentence embeddings against the float model; memory per head
is the number of feature neurons plus exact slots (exact: one slot per token of the context); chip
bytes from ``tripartite report``'s resource model.  A random LLaMA decoder: next-token top-1 agreement
with float on held-out random token sequences.  Writes benchmarks/results/learned.json and
learned.png; distilled maps are kept in benchmarks/results/learned_maps/ and reused.

    python benchmarks/bench_learned.py                       # everything (hours on 2 cores)
    python benchmarks/bench_learned.py --distill-only 64:0   # one MiniLM map set (run several at once)
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
from compiler.distill.fit import DistillOptions, distill_graph  # noqa: E402
from compiler.distill.joint import joint_tune  # noqa: E402
from compiler.distill.maps import load_maps  # noqa: E402
from compiler.frontends.source import load_source, minilm_dir  # noqa: E402
from compiler.models.llama import LlamaConfig, random_llama  # noqa: E402
from hardware_sim.chip import resources  # noqa: E402
from hardware_sim.golden import simulate  # noqa: E402
from runtime.distill import distill  # noqa: E402
from runtime.inputs import from_texts  # noqa: E402
from runtime.reference import mean_pool, run_reference  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
MAPS = RESULTS / "learned_maps"
CONFIGS = "64:0,32:32"  # (2m features : window W) of the MiniLM map sets
FAVOR = [16, 32, 64, 256]


def held_out_texts(count: int = 20, seed: int = 7) -> list[str]:
    """Texts of 9-19 consecutive sentences of the sentence fixture (about 100-250 tokens)."""
    sentences = (ROOT / "tests/fixtures/sentences200.txt").read_text(encoding="utf-8").splitlines()
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(count):
        n = int(rng.integers(9, 20))
        start = int(rng.integers(0, len(sentences) - n))
        texts.append(" ".join(sentences[start:start + n]))
    return texts


def maps_path(features: int, window: int) -> Path:
    return MAPS / f"minilm_f{features}_w{window}.npz"


def distill_minilm(features: int, window: int, epochs: int, texts: int, joint: int) -> Path:
    path = maps_path(features, window)
    if path.exists():
        return path
    MAPS.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    def progress(layer, step, total):
        if step % 10 == 0 or step == total:
            print(f"  f{features} w{window} {layer} {step}/{total} {time.perf_counter() - start:.0f} s", flush=True)

    maps = distill(str(minilm_dir()), features=features, epochs=epochs, window=window, count=texts,
                   progress=progress, joint_steps=joint)
    maps.report["seconds"] = time.perf_counter() - start
    maps.save(path)
    return path


def long_calibration(graph, count: int, seed: int = 5, low: int = 100, high: int = 250):
    """``count`` calibration texts of ``low``-``high`` tokens cut from the shipped corpus (the held-out
    lengths; the held-out sentences are not in it)."""
    from compiler.distill.corpus import calibration_texts

    texts = calibration_texts(8 * count, seed, max_paragraphs=4)
    batch = from_texts(graph.encoder, texts, graph.meta)
    lengths = batch.mask.sum(1)
    keep = np.flatnonzero((lengths >= low) & (lengths <= high))[:count]
    T = int(lengths[keep].max())
    return batch.x[keep, :T], batch.mask[keep, :T]


def joint_path(features: int, window: int, steps: int) -> Path:
    return MAPS / f"minilm_f{features}_w{window}_joint{steps}.npz"


def joint_minilm(features: int, window: int, steps: int, texts: int, lr: float, epochs: int, layer_texts: int) -> Path:
    """Joint tuning (torch, float32, one chunk of 4 texts per Adam step) of the cached layer-by-layer maps on
    ``texts`` calibration texts of 100-250 tokens."""
    import torch

    path = joint_path(features, window, steps)
    if path.exists():
        return path
    torch.set_num_threads(1)
    graph = load_source(str(minilm_dir()))
    maps = load_maps(distill_minilm(features, window, epochs, layer_texts, 0))
    x, mask = long_calibration(graph, texts)
    print(f"joint tuning f{features} w{window}: {len(mask)} texts of {mask.sum(1).min()}-{mask.sum(1).max()} tokens")
    start = time.perf_counter()

    def progress(_, step, total):
        if step % 10 == 0 or step == total:
            print(f"  joint f{features} w{window} {step}/{total} {time.perf_counter() - start:.0f} s", flush=True)

    tuned = joint_tune(graph, x, mask, maps, steps, lr=lr, progress=progress, dtype=np.float32, stochastic=True)
    tuned.report["joint"].update(seconds=time.perf_counter() - start, lr=lr)
    history = tuned.report["joint"]["history"]
    print("  loss by tenths:", [round(float(np.mean(history[i:i + max(steps // 10, 1)])), 4)
                                for i in range(0, steps, max(steps // 10, 1))], flush=True)
    tuned.save(path)
    return path


def embedding_cosines(net, batch, reference) -> np.ndarray:
    hidden = simulate(net, batch.x, batch.mask).outputs["hidden"]
    return (mean_pool(hidden, batch.mask) * reference).sum(-1)


def chip_bytes(net) -> int:
    return int(resources(net)["bytes"])


def row(name, memory, cos, net):
    return {"circuit": name, "memory_per_head": int(memory), "cosine_mean": float(cos.mean()),
            "cosine_min": float(cos.min()), "chip_bytes": chip_bytes(net)}


def minilm_rows(configs, epochs: int, texts: int, joint: int, baselines: bool = True) -> list[dict]:
    source = str(minilm_dir())
    graph = load_source(source)
    batch = from_texts(graph.encoder, held_out_texts(), graph.meta)
    T = int(batch.mask.shape[1])
    reference = mean_pool(run_reference(graph, batch.x, batch.mask).outputs["hidden"], batch.mask)
    print(f"held-out texts: {len(batch.mask)}, tokens {batch.mask.sum(1).min()}-{batch.mask.sum(1).max()}")
    rows = []
    if baselines:
        net = compiler.compile(graph, lowering="exact", max_tokens=T)
        rows.append(row("exact", T, embedding_cosines(net, batch, reference), net))
        for m in FAVOR:
            net = compiler.compile(graph, lowering="favor", features=m, orthogonal=True, max_tokens=T)
            rows.append(row(f"favor m={m}", m, embedding_cosines(net, batch, reference), net))
    for features, window in configs:
        maps = load_maps(distill_minilm(features, window, epochs, texts, joint))
        net = compiler.compile(graph, lowering="learned", feature_maps=maps, max_tokens=T)
        name = f"learned 2m={features}" + (f" + window {window}" if window else "")
        r = row(name, features + window, embedding_cosines(net, batch, reference), net)
        r["row_kl"] = {k: v["kl_after"] for k, v in maps.report.items() if isinstance(v, dict) and "kl_after" in v}
        r["joint_steps"] = maps.report.get("joint", {}).get("steps", 0)
        rows.append(r)
    for r in rows:
        print(f"  {r['circuit']:<28} memory/head {r['memory_per_head']:>4}  cosine mean {r['cosine_mean']:.4f} "
              f"min {r['cosine_min']:.4f}  chip bytes {r['chip_bytes']}", flush=True)
    return rows


def error_sources(features: int, window: int, epochs: int, texts: int, joint: int, count: int = 8) -> dict:
    """Where the error comes from, on ``count`` held-out texts: the row KL of each layer's heads (all
    layers converted, each layer's own softmax rows on the queries and keys it receives as the target)
    and the embedding cosine with only that layer converted."""
    from compiler.distill.fit import row_kl_per_head
    from compiler.distill.surrogate import learned_rows, run_surrogate, split

    graph = load_source(str(minilm_dir()))
    maps = load_maps(distill_minilm(features, window, epochs, texts, joint))
    batch = from_texts(graph.encoder, held_out_texts()[:count], graph.meta)
    attention = [graph.node(n) for n in maps.layers]
    keep = [src for att in attention for src in graph.inputs_of(att.name).values()]
    values = run_surrogate(graph, batch.x, batch.mask, maps, keep=keep)
    reference = mean_pool(run_surrogate(graph, batch.x, batch.mask, None)["hidden"], batch.mask)
    out = {}
    for att in attention:
        inputs = graph.inputs_of(att.name)
        q, k, _ = split(att, {port: values[inputs[port]] for port in ("q", "k", "v")})
        rows = learned_rows(att, q, k, batch.mask, maps.layers[att.name], maps.window)
        kl = row_kl_per_head(att, q, k, batch.mask, rows)
        alone = run_surrogate(graph, batch.x, batch.mask, maps, converted=[att.name])["hidden"]
        cos = (mean_pool(alone, batch.mask) * reference).sum(-1)
        out[att.name] = {"row_kl_per_head": [round(float(v), 4) for v in kl], "cosine_alone": float(cos.mean())}
        print(f"  {att.name}: row KL per head {np.round(kl, 3).tolist()}  cosine with only this layer converted "
              f"{cos.mean():.4f}", flush=True)
    return out


def llama_rows(features: int, window: int, epochs: int, joint: int) -> list[dict]:
    """Random LLaMA (GQA, RoPE): distilled on random sequences, top-1 agreement on held-out ones."""
    graph = random_llama(LlamaConfig(num_hidden_layers=2, max_position_embeddings=256), seed=11)
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 100, size=(24, 128))
    x = graph.encoder.encode(ids)
    mask = np.ones(ids.shape, bool)
    test_ids = rng.integers(1, 100, size=(8, 128))
    tx, tmask = graph.encoder.encode(test_ids), np.ones(test_ids.shape, bool)
    want = run_reference(graph, tx, tmask).outputs["logits"].argmax(-1)
    out = []
    for f, w in [(features, 0), (features // 2, window)]:
        maps = distill_graph(graph, x, mask, DistillOptions(features=f, epochs=epochs, window=w))
        for stage in ("layer by layer", "joint"):
            if stage == "joint":
                if not joint:
                    continue
                maps = joint_tune(graph, x, mask, maps, joint)
            net = compiler.compile(graph, lowering="learned", feature_maps=maps, max_tokens=128)
            got = simulate(net, tx, tmask).outputs["logits"].argmax(-1)
            out.append({"circuit": f"learned 2m={f}" + (f" + window {w}" if w else ""), "stage": stage,
                        "memory_per_head": f + w, "top1_agreement": float((got == want).mean())})
            print(f"  llama {out[-1]}", flush=True)
    return out


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for family, marker in (("favor", "s"), ("learned", "o"), ("window", "^"), ("exact", "*")):
        pts = [r for r in rows if (family in r["circuit"]) and (family != "learned" or "window" not in r["circuit"])]
        if pts:
            ax.plot([r["memory_per_head"] for r in pts], [r["cosine_mean"] for r in pts], marker=marker,
                    linestyle="-" if len(pts) > 1 else "none", label={"window": "learned + window"}.get(family, family))
    ax.set_xscale("log", base=2)
    ax.set_xlabel("memory per head (feature neurons + exact slots)")
    ax.set_ylabel("mean embedding cosine vs float")
    ax.set_title("all-MiniLM-L6-v2, held-out texts of 100-250 tokens")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")  # 2 shared cores: BLAS threads only contend (10-30x slower here)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40, help="L-BFGS iterations per layer")
    parser.add_argument("--texts", type=int, default=32, help="calibration texts")
    parser.add_argument("--joint-steps", type=int, default=30, help="joint tuning steps (torch)")
    parser.add_argument("--configs", default=CONFIGS, help="MiniLM map sets F:W (2m features, window), comma-separated")
    parser.add_argument("--distill-only", metavar="F:W", help="distill one MiniLM map set and stop")
    parser.add_argument("--llama-only", action="store_true", help="only the random LLaMA decoder part")
    parser.add_argument("--joint-only", metavar="F:W", help="jointly tune one cached MiniLM map set and stop")
    parser.add_argument("--joint-texts", type=int, default=48, help="texts of 100-250 tokens for joint tuning")
    parser.add_argument("--joint-lr", type=float, default=3e-3, help="Adam learning rate of joint tuning")
    parser.add_argument("--parts", default="baselines,learned,llama",
                        help="what to measure (merged into learned.json): baselines, learned, sources, llama")
    args = parser.parse_args()
    if args.distill_only:
        features, window = (int(v) for v in args.distill_only.split(":"))
        print(distill_minilm(features, window, args.epochs, args.texts, args.joint_steps))
        return 0
    if args.joint_only:
        features, window = (int(v) for v in args.joint_only.split(":"))
        print(joint_minilm(features, window, args.joint_steps, args.joint_texts, args.joint_lr, args.epochs,
                           args.texts))
        return 0
    if args.llama_only:
        print(json.dumps(llama_rows(64, 32, args.epochs, args.joint_steps), indent=2))
        return 0
    parts = set(args.parts.split(","))
    configs = [tuple(int(v) for v in c.split(":")) for c in args.configs.split(",") if c]
    fresh: dict = {}
    if parts & {"baselines", "learned"}:
        fresh["minilm"] = minilm_rows(configs if "learned" in parts else [], args.epochs, args.texts,
                                      args.joint_steps, baselines="baselines" in parts)
    if "sources" in parts:
        fresh["error_sources"] = {f"{f}:{w}": error_sources(f, w, args.epochs, args.texts, args.joint_steps)
                                  for f, w in configs}
    if "llama" in parts:
        fresh["llama"] = llama_rows(64, 32, args.epochs, args.joint_steps)
    fresh.update(epochs=args.epochs, calibration_texts=args.texts)
    result = merge(RESULTS / "learned.json", fresh)
    plot(result["minilm"], RESULTS / "learned.png")
    return 0


def merge(path: Path, fresh: dict) -> dict:
    """Fold this run's parts into the result file (read now, so parts run side by side all land)."""
    result = json.loads(path.read_text()) if path.exists() else {}
    rows = {r["circuit"]: r for r in result.get("minilm", [])}
    rows.update({r["circuit"]: r for r in fresh.pop("minilm", [])})
    result["minilm"] = sorted(rows.values(), key=lambda r: (r["circuit"].split()[0], r["memory_per_head"],
                                                            r["circuit"]))
    result.setdefault("error_sources", {}).update(fresh.pop("error_sources", {}))
    result.update(fresh, held_out_texts=len(held_out_texts()))
    path.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    sys.exit(main())
