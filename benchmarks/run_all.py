"""Run every benchmark, then write benchmarks/results/summary.json and summary.md (a Markdown table).

``make bench`` calls this.  Each benchmark is its own script (printing its own table and writing
its own JSON under benchmarks/results/); this file runs them one after another in fresh
interpreters and condenses their JSON into one table with the machine it ran on.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SCRIPTS = ["bench_golden.py", "bench_lava.py", "bench_favor.py", "bench_fidelity.py", "bench_export.py",
           "bench_brian2.py", "bench_plasticity.py", "bench_generate.py", "bench_integer_speed.py"]


def run_scripts() -> dict[str, float]:
    seconds = {}
    for script in SCRIPTS:
        path = ROOT / "benchmarks" / script
        if not path.exists():
            print(f"== {script}: not present, skipped", flush=True)
            continue
        print(f"== {script}", flush=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, str(path)], check=True, cwd=ROOT)
        seconds[script] = time.perf_counter() - start
    return seconds


def load(name: str) -> dict | None:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


def golden_rows(data: dict) -> list[tuple[str, str, str]]:
    g, c = data["golden_vs_reference"], data["compile_minilm"]
    return [
        ("golden / float reference time (6x384 BERT, 128 tokens, float64, exact)",
         f"{g['ratio']:.2f}x (rel err {g['rel_err']:.1e})", "<= 3x"),
        ("compile all-MiniLM-L6-v2", f"{c.get('seconds', float('nan')):.2f} s", "<= 5 s"),
    ]


def lava_rows(data: dict) -> list[tuple[str, str, str]]:
    rows = []
    for r in data["rows"]:
        if r["backend"] == "golden":
            continue
        rows.append((f"{r['backend']} vs golden per token ({r['model']}, {r['tokens']} tokens, "
                     f"{r['processes']} Lava processes)",
                     f"{r['ratio_vs_golden']:.1f}x ({r['per_token_ms']:.1f} ms/token)",
                     "<= 20x (fused, MiniLM)" if "MiniLM" in r["model"] and r["backend"] == "lava-fused" else ""))
    return rows


def favor_rows(data: dict) -> list[tuple[str, str, str]]:
    return [(f"favor m={r['features']} ({'orthogonal' if r['orthogonal'] else 'iid'}), MiniLM {data['node']} "
             "output rel err", f"{r['rel_err_mean']:.3f} ± {r['rel_err_std']:.3f}", "") for r in data["rows"]]


def fidelity_rows(data: dict) -> list[tuple[str, str, str]]:
    keys = [k for k in ("cosine_mean", "cosine_min") if k in data]
    targets = {"cosine_mean": ">= 0.995", "cosine_min": ">= 0.98"}
    return [(f"loihi2 vs float MiniLM embeddings: {k}", f"{data[k]:.5f}", targets[k]) for k in keys]


def export_rows(data: dict) -> list[tuple[str, str, str]]:
    rows = []
    for r in data["rows"]:
        same = "identical outputs" if r["same_graph"] and r["identical_outputs"] else "OUTPUTS DIFFER"
        nodes = (f"; {r['standard_total']} standard / {r['dialect_total']} dialect nodes, "
                 f"{r['adapters_total']} port adapters") if r["format"] == "nir" else ""
        result = f"write {r['write_s']:.1f} s, read {r['read_s']:.1f} s, {r['megabytes']:.0f} MB, {same}{nodes}"
        rows.append((f"export {data['model']} ({r['precision']}) as {r['format']}", result, ""))
    return rows


def brian2_rows(data: dict) -> list[tuple[str, str, str]]:
    return [(f"brian2 vs golden per token ({data['model']}, {data['tokens']} tokens, {data['precision']}, "
             f"{data['steps']} steps)", f"{data['ratio_vs_golden']:.0f}x ({data['per_token_ms']:.0f} ms/token, "
             f"rel err {data['rel_err']:.1e})", "")]


def plasticity_rows(data: dict) -> list[tuple[str, str, str]]:
    return [(f"LearningDense vs golden Hebbian weights ({r['model']} {r['lowering']} {r['node']}, "
             f"{r['tokens']} tokens)",
             f"floating_pt {r['floating_pt_rel_err']:.1e}, fixed_pt {r['fixed_pt_rel_err']:.2f}", "")
            for r in data["rows"]]


def generate_rows(data: dict) -> list[tuple[str, str, str]]:
    rows = []
    for label, r in data["rows"].items():
        if "tokens_per_s" in r:
            rows.append((f"{label}: {data['model']}, {data['prompt_tokens']}-token prompt + {len(r['ids'])} new",
                         f"{r['tokens_per_s']:.2f} tokens/s ({r['decode_ms_per_token']:.0f} ms/token)", ""))
    if data.get("transformers_over_golden") is not None:
        rows.append(("transformers generate / golden session tokens/s (float32, KV cache vs circuit state)",
                     f"{data['transformers_over_golden']:.2f}x", "<= 2x"))
    sweep = data["context_sweep"]
    for lowering in ("exact", "favor"):
        s = sweep[lowering]
        rows.append((f"session ms per new token, {lowering}, context 0 -> {sweep['max_context']} "
                     f"({sweep['model']})", f"{s['first_ms']:.2f} -> {s['last_ms']:.2f} ms",
                     "linear" if lowering == "exact" else "flat"))
    return rows


def integer_speed_rows(data: dict) -> list[tuple[str, str, str]]:
    rows = []
    for r in data["rows"]:
        shape = f"{data['model']} {r['batch']}x{r['tokens']}, {data['threads']} thread(s)"
        rows.append((f"golden loihi2 / golden float32 time ({shape})",
                     f"{r['loihi2_over_float32']:.2f}x ({r['golden_loihi2_s']:.3f} s)", "<= 2x"))
        if r.get("float32_over_torch") is not None:
            rows.append((f"golden float32 / transformers on torch time ({shape})",
                         f"{r['float32_over_torch']:.2f}x ({r['golden_float32_s']:.3f} s)", "<= 2x"))
    return rows


SUMMARISERS = {"golden.json": golden_rows, "lava.json": lava_rows, "favor.json": favor_rows,
               "fidelity.json": fidelity_rows, "export.json": export_rows, "bench_brian2.json": brian2_rows,
               "plasticity.json": plasticity_rows, "generate.json": generate_rows,
               "integer_speed.json": integer_speed_rows}


def summarise(seconds: dict[str, float]) -> dict:
    rows = []
    for name, fn in SUMMARISERS.items():
        data = load(name)
        if data is not None:
            try:
                rows += fn(data)
            except (KeyError, TypeError) as exc:
                rows.append((f"{name}: unreadable ({exc})", "", ""))
    machine = f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    return {"machine": machine, "date": time.strftime("%Y-%m-%d"), "script_seconds": seconds,
            "rows": [{"measure": m, "result": r, "target": t} for m, r, t in rows]}


def markdown(summary: dict) -> str:
    lines = [f"Measured {summary['date']} on {summary['machine']}.", "", "| measure | result | target |",
             "|---|---|---|"]
    lines += [f"| {r['measure']} | {r['result']} | {r['target']} |" for r in summary["rows"]]
    return "\n".join(lines) + "\n"


def main() -> int:
    only_summary = "--summary-only" in sys.argv
    seconds = {} if only_summary else run_scripts()
    summary = summarise(seconds)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2))
    (RESULTS / "summary.md").write_text(markdown(summary))
    print("\n" + markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
