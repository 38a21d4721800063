"""Speed of the golden simulator at float32, float64 and loihi2 against transformers on torch.

Model: all-MiniLM-L6-v2, exact lowering (the loihi2 network calibrated as in bench_fidelity.py).
Inputs: sentences of tests/fixtures/sentences200.txt joined and cut to ``T`` real tokens per row,
for every batch shape ``B x T`` asked for (default 1x128 and 4x128).  Every backend runs the same
token ids with the same number of BLAS / torch threads (``--threads``, default 1: on a shared
2-core machine a second thread mostly measures the other jobs); each time is the best of
``--repeats`` runs, interleaved backend by backend, and the ratios come from the same run.  Each run
is timed by the wall clock and by the process's CPU time: on a machine shared with other jobs the
CPU time of a one-thread run is the steadier figure (it leaves out the time other processes held the
core; with more threads it adds up every thread's time, so only the wall clock counts there).

Targets: golden loihi2 <= 2x golden float32; golden float32 <= 2x torch.  torch is timed where
``torch`` and ``transformers`` are installed (``transformers.BertModel`` loaded from the same
checkpoint directory); the table says so when they are not.

Prints a table and writes benchmarks/results/integer_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_fidelity import compile_minilm  # noqa: E402

import compiler  # noqa: E402
from compiler.frontends.source import minilm_dir  # noqa: E402
from hardware_sim.golden import simulate  # noqa: E402
from runtime.text import read_text_file, tokenize  # noqa: E402

SENTENCES = ROOT / "tests/fixtures/sentences200.txt"
RESULT = ROOT / "benchmarks/results/integer_speed.json"
TARGET_LOIHI2_OVER_F32 = 2.0
TARGET_F32_OVER_TORCH = 2.0


def best_of_interleaved(runs: dict, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """Best wall-clock and best CPU time of each callable over ``repeats`` rounds; every round runs
    each once, so a burst of load on the shared machine hits all of them alike."""
    wall = {label: float("inf") for label in runs}
    cpu = dict(wall)
    for _ in range(repeats):
        for label, fn in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            cpu[label] = min(cpu[label], time.process_time() - start_cpu)
            wall[label] = min(wall[label], time.perf_counter() - start)
    return wall, cpu


def limit_threads(n: int) -> str:
    """Limit numpy's BLAS (and torch, when present) to ``n`` threads; returns what was limited."""
    done = []
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
        done.append("blas")
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(n)
        done.append("torch")
    except ImportError:
        pass
    return "+".join(done) or "none"


def token_ids(graph, batch: int, tokens: int):
    """(ids, mask, types) of ``batch`` rows of ``tokens`` real tokens each, cut from the fixture sentences."""
    texts = read_text_file(SENTENCES)
    rows = [" ".join(texts[(i * 9 + j) % len(texts)] for j in range(40)) for i in range(batch)]
    ids, mask, types = tokenize(graph, rows, max_length=tokens)
    if ids.shape[1] != tokens or not mask.all():
        raise SystemExit(f"could not make {batch} rows of {tokens} tokens from {SENTENCES}")
    return ids, mask, types


def torch_model():
    """transformers' BertModel of the MiniLM checkpoint in eval mode, or a reason it is unavailable."""
    try:
        import torch  # noqa: F401
        from transformers import BertModel
    except ImportError as exc:
        return None, f"not installed ({exc.name})"
    model = BertModel.from_pretrained(str(minilm_dir()))
    model.eval()
    return model, ""


def torch_forward(model, ids, mask, types):
    import torch

    args = dict(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask.astype(np.int64)),
                token_type_ids=torch.from_numpy(types))

    def forward():
        with torch.inference_mode():
            return model(**args).last_hidden_state.numpy()

    return forward


def measure(graph, nets, model, why, batch: int, tokens: int, repeats: int) -> dict:
    ids, mask, types = token_ids(graph, batch, tokens)
    row = {"batch": batch, "tokens": tokens}
    runs = {}
    for label, (net, precision) in nets.items():
        x = net.encoder.encode(ids, types)
        runs[label] = lambda net=net, x=x, precision=precision: simulate(net, x, mask,
                                                                          precision=precision).outputs["hidden"]
    if model is not None:
        runs["torch"] = torch_forward(model, ids, mask, types)
    outputs = {label: fn() for label, fn in runs.items()}  # first runs: warm-up (tables, caches)
    wall, cpu = best_of_interleaved(runs, repeats)
    row.update({f"{label}_s": t for label, t in wall.items()})
    row.update({f"{label}_cpu_s": t for label, t in cpu.items()})
    if model is not None:
        row["torch_rel_err_vs_float64"] = rel(outputs["torch"], outputs["golden_float64"])
    else:
        row["torch_s"], row["torch"] = None, why
    row["float32_rel_err_vs_float64"] = rel(outputs["golden_float32"], outputs["golden_float64"])
    row["loihi2_rel_err_vs_float64"] = rel(outputs["golden_loihi2"], outputs["golden_float64"])
    row["loihi2_over_float32"] = row["golden_loihi2_s"] / row["golden_float32_s"]
    row["loihi2_over_float32_cpu"] = row["golden_loihi2_cpu_s"] / row["golden_float32_cpu_s"]
    row["float32_over_torch"] = row["golden_float32_s"] / row["torch_s"] if row["torch_s"] else None
    return row


def rel(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def print_table(res: dict) -> None:
    print(f"all-MiniLM-L6-v2, exact lowering, {res['threads']} thread(s) ({res['limited']}), "
          f"best of {res['repeats']}")
    head = f"{'B x T':>8}{'float32 s':>11}{'float64 s':>11}{'loihi2 s':>11}{'torch s':>10}" \
           f"{'loihi2/f32':>12}{'f32/torch':>11}{'loihi2/f32 cpu':>16}"
    print(head)
    for r in res["rows"]:
        torch_s = f"{r['torch_s']:>10.4f}" if r["torch_s"] else f"{'n/a':>10}"
        f32_torch = f"{r['float32_over_torch']:>11.2f}" if r["float32_over_torch"] else f"{'n/a':>11}"
        print(f"{str(r['batch']) + 'x' + str(r['tokens']):>8}{r['golden_float32_s']:>11.4f}"
              f"{r['golden_float64_s']:>11.4f}{r['golden_loihi2_s']:>11.4f}{torch_s}"
              f"{r['loihi2_over_float32']:>12.2f}{f32_torch}{r['loihi2_over_float32_cpu']:>16.2f}")
    if res["torch"]:
        print(f"torch: {res['torch']}")
    print(f"targets: loihi2/f32 <= {TARGET_LOIHI2_OVER_F32}, f32/torch <= {TARGET_F32_OVER_TORCH}")


def parse_shape(text: str) -> tuple[int, int]:
    b, t = text.lower().split("x")
    return int(b), int(t)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", nargs="+", default=["1x128", "4x128"], help="batch x tokens, e.g. 4x128")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="BLAS and torch threads for every backend (default 1: "
                    "on a shared machine more threads measure the other jobs)")
    ap.add_argument("--json", default=str(RESULT))
    args = ap.parse_args(argv)
    limited = limit_threads(args.threads)
    graph, loihi2 = compile_minilm()
    shapes = [parse_shape(s) for s in args.shapes]
    T = max(t for _, t in shapes)
    nets = {"golden_float32": (compiler.compile(graph, lowering="exact", precision="float32", max_tokens=T),
                               "float32"),
            "golden_float64": (compiler.compile(graph, lowering="exact", precision="float64", max_tokens=T),
                               "float64"),
            "golden_loihi2": (loihi2, "loihi2")}
    model, why = torch_model()
    rows = [measure(graph, nets, model, why, b, t, args.repeats) for b, t in shapes]
    res = {"model": "all-MiniLM-L6-v2", "lowering": "exact", "threads": args.threads, "limited": limited,
           "repeats": args.repeats, "torch": why, "load_average": os.getloadavg(), "rows": rows,
           "targets": {"loihi2_over_float32": TARGET_LOIHI2_OVER_F32, "float32_over_torch": TARGET_F32_OVER_TORCH}}
    print_table(res)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
