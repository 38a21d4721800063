"""Sharded runs: throughput with 1 and 2 workers (sentences per second), golden and Lava fused.

all-MiniLM-L6-v2 compiled exact at float32, sentences from tests/fixtures/sentences200.txt (repeated
in order to make up the count), shards of 16 sentences; each configuration runs ``tripartite run`` as a
fresh process and is timed from start to merged output (start-up, tokenizing, the local Dask cluster of
the 2-worker runs and merging included), one BLAS thread per process.  The outputs of 1 and 2 workers
are compared byte for byte.  Writes benchmarks/results/shards.json.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ROOT / "tests" / "fixtures" / "sentences200.txt"
CASES = [("golden", 1024), ("lava", 128)]  # enough work that the 2-worker cluster's start-up (~5 s) is amortised


def timed_run(net: Path, texts: Path, backend: str, workers: int, out: Path) -> float:
    cmd = [sys.executable, "-m", "runtime.cli", "run", str(net), "--text-file", str(texts), "--backend", backend,
           "--workers", str(workers), "--shard-size", "16", "-o", str(out)]
    start = time.perf_counter()
    env = {**os.environ, "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from compiler.api import compile as compile_model
    from compiler.frontends.source import minilm_dir

    lines = [line for line in SENTENCES.read_text().splitlines() if line.strip()]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-shards-") as tmp:
        tmp = Path(tmp)
        net = compile_model(minilm_dir(), precision="float32").save(tmp / "minilm.tpn")
        for backend, n in CASES:
            texts = tmp / f"{backend}.txt"
            texts.write_text("\n".join(lines[i % len(lines)] for i in range(n)) + "\n")
            seconds = {w: timed_run(net, texts, backend, w, tmp / f"{backend}-{w}.npz") for w in (1, 2)}
            same = (tmp / f"{backend}-1.npz").read_bytes() == (tmp / f"{backend}-2.npz").read_bytes()
            rows.append({"backend": backend, "sentences": n, "seconds_1": seconds[1], "seconds_2": seconds[2],
                         "per_s_1": n / seconds[1], "per_s_2": n / seconds[2], "speedup": seconds[1] / seconds[2],
                         "identical": same})
    print(f"{'backend':8} {'sentences':>9} {'1 worker /s':>12} {'2 workers /s':>13} {'speed-up':>9} identical")
    for r in rows:
        print(f"{r['backend']:8} {r['sentences']:9d} {r['per_s_1']:12.2f} {r['per_s_2']:13.2f} {r['speedup']:8.2f}x "
              f"{r['identical']}")
    out = ROOT / "benchmarks" / "results" / "shards.json"
    out.write_text(json.dumps({"machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
                                          f"Python {platform.python_version()}", "model": "all-MiniLM-L6-v2 float32",
                               "shard_size": 16, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
