"""The ONNX front end on the committed exports (tests/fixtures/onnx) and, with ``--minilm`` and torch
installed, all-MiniLM-L6-v2 exported live with its pooling head.

For each file: import time, ONNX nodes before and after folding, the fused op types it contains, and
the relative L2 error against onnxruntime on the same token ids (two sequences, one right-padded) of
the imported graph's float32 reference and of the compiled network on the golden simulator in
float32 and float64.

Prints a table and writes benchmarks/results/onnx.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compiler.api import compile as compile_model  # noqa: E402
from compiler.frontends.onnx_fold import fold, read_model  # noqa: E402
from compiler.frontends.onnx_import import load_onnx  # noqa: E402
from runtime.inputs import from_ids  # noqa: E402
from runtime.onnx_reference import onnx_outputs  # noqa: E402
from runtime.reference import run_reference  # noqa: E402
from runtime.run import run  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "onnx"
RESULTS = ROOT / "benchmarks" / "results"


def rel_err(got, want, mask) -> float:
    a, b = np.asarray(got, np.float64)[mask], np.asarray(want, np.float64)[mask]
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def token_batch(graph, tokens: int):
    rng = np.random.default_rng(11)
    ids = rng.integers(4, min(graph.encoder.vocab_size, 1000), size=(2, tokens))
    mask = np.ones(ids.shape, bool)
    mask[1, tokens * 2 // 3:] = False
    ids[1, tokens * 2 // 3:] = 0
    return from_ids(graph.encoder, ids, mask)


def measure(name: str, path: Path, tokens: int = 12) -> dict:
    start = time.perf_counter()
    graph = load_onnx(path)
    seconds = time.perf_counter() - start
    raw = read_model(path)
    folded = fold(path).model
    fused = sorted({f"{n.domain}.{n.op_type}" for n in raw.graph if n.domain} |
                   {n.op_type for n in raw.graph if n.op_type in ("Attention", "RMSNormalization", "RotaryEmbedding")})
    batch = token_batch(graph, tokens)
    role = "logits" if "logits" in graph.output_nodes() else "hidden"
    ort, _ = onnx_outputs(path, graph, batch)
    row = {"model": name, "import_s": seconds, "onnx_nodes": len(raw.graph), "folded_nodes": len(folded.graph),
           "fused_ops": fused, "role": role, "tokens": int(batch.mask.sum()),
           "reference_f32": rel_err(run_reference(graph, batch.x, batch.mask, "float32").outputs[role], ort[role],
                                    batch.mask)}
    for precision in ("float32", "float64"):
        net = compile_model(graph, precision=precision, max_tokens=tokens)
        row[f"golden_{precision[-2:]}"] = rel_err(run(net, batch, backend="golden").outputs[role], ort[role],
                                                  batch.mask)
    return row


def minilm_export(directory: Path) -> Path:
    import importlib.util

    from transformers import BertModel

    from compiler.frontends.source import minilm_dir

    spec = importlib.util.spec_from_file_location("make_onnx_fixtures", ROOT / "tests/fixtures/make_onnx_fixtures.py")
    fx = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fx)
    fx.ROOT = directory
    model = BertModel.from_pretrained(str(minilm_dir()), add_pooling_layer=False).eval()
    return fx.export("minilm", fx.Outputs(model, pooled=True), True, 20, types=True,
                     outputs=("last_hidden_state", "sentence_embedding"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minilm", action="store_true", help="also export all-MiniLM-L6-v2 with torch")
    args = parser.parse_args()
    rows = [measure(d.name, d / "model.onnx") for d in sorted(FIXTURES.iterdir()) if (d / "model.onnx").is_file()]
    if args.minilm:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(measure("all-MiniLM-L6-v2 (dynamo, pooling head)", minilm_export(Path(tmp)), tokens=24))
    header = f"{'export':<42} {'import s':>8} {'nodes':>11} {'ref f32':>9} {'golden f32':>10} {'golden f64':>10}"
    print(header)
    for r in rows:
        print(f"{r['model']:<42} {r['import_s']:>8.2f} {r['onnx_nodes']:>5}->{r['folded_nodes']:<5} "
              f"{r['reference_f32']:>9.1e} {r['golden_32']:>10.1e} {r['golden_64']:>10.1e}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "onnx.json").write_text(json.dumps({"rows": rows, "rtol_target": 1e-5}, indent=1))


if __name__ == "__main__":
    main()
