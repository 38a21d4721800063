"""``tripartite compile model.onnx``, ``run`` with and without a tokenizer, ``verify --reference model.onnx``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from compiler.process import ProcessGraph
from runtime.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "onnx"
BERT, LLAMA = FIXTURES / "bert_dynamo" / "model.onnx", FIXTURES / "llama_dynamo" / "model.onnx"
TOKENIZER = FIXTURES / "bert_dynamo" / "tokenizer.json"


def err_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx_cli")
    assert main(["compile", str(BERT), "-o", str(root / "bert.tpn"), "--max-tokens", "16"]) == 0
    assert main(["compile", str(LLAMA), "-o", str(root / "llama.tpn"), "--max-tokens", "16"]) == 0
    assert main(["compile", str(LLAMA), "-o", str(root / "llama_tok.tpn"), "--max-tokens", "16",
                 "--tokenizer", str(TOKENIZER.parent)]) == 0
    (root / "texts.txt").write_text("the cat sat on the mat .\nastrocytes wrap synapses\n")
    np.savez(root / "ids.npz", input_ids=np.array([[2, 5, 9, 11, 3], [2, 7, 8, 3, 0]]),
             mask=np.array([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]], bool))
    return root


def test_text_runs_with_the_tokenizer_beside_the_file(nets, tmp_path):
    from tokenizers import Tokenizer

    out = tmp_path / "out.npz"
    assert main(["run", str(nets / "bert.tpn"), "--text-file", str(nets / "texts.txt"), "-o", str(out)]) == 0
    with np.load(out) as data:
        ids, mask, emb = data["input_ids"], data["mask"], data["embeddings"]
    want = Tokenizer.from_file(str(TOKENIZER)).encode("the cat sat on the mat .").ids
    assert ids[0, : len(want)].tolist() == want and mask.sum(axis=1).tolist() == [9, 5]
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-12)


def test_without_a_tokenizer_text_is_refused_and_ids_work(nets, tmp_path, capsys):
    assert ProcessGraph.load(nets / "llama.tpn").encoder.tokenizer_json is None
    assert main(["run", str(nets / "llama.tpn"), "--text", "the cat", "-o", str(tmp_path / "x.npz")]) == 2
    assert "carries no tokenizer" in err_line(capsys)
    assert main(["run", str(nets / "llama.tpn"), "--inputs", str(nets / "ids.npz"), "-o", str(tmp_path / "y.npz")]) == 0
    with np.load(tmp_path / "y.npz") as data:
        assert data["logits"].shape == (2, 5, 48)


def test_tokenizer_option_embeds_one(nets, tmp_path):
    assert ProcessGraph.load(nets / "llama_tok.tpn").encoder.tokenizer_json == TOKENIZER.read_text()
    assert main(["run", str(nets / "llama_tok.tpn"), "--text", "the cat sat", "-o", str(tmp_path / "z.npz")]) == 0


@pytest.mark.parametrize("net, model", [("bert.tpn", BERT), ("llama.tpn", LLAMA)])
def test_verify_against_onnxruntime(nets, tmp_path, net, model):
    report = tmp_path / "verify.json"
    assert main(["verify", str(nets / net), "--reference", str(model), "--inputs", str(nets / "ids.npz"),
                 "--json", str(report)]) == 0
    d = json.loads(report.read_text())
    assert d["reference"] == "onnxruntime" and d["passed"]
    assert 1e-9 < d["output"]["rel_l2_err"] <= 1e-5  # float32 onnxruntime vs float64 circuits
    names = [layer["name"] for layer in d["layers"]]
    assert names == ["layer0.attn", names[1], "layer1.attn", names[3]] and names[3].startswith("layer1.")


def test_verify_without_onnxruntime_uses_the_imported_graph(nets, monkeypatch):
    import runtime.onnx_reference as ref
    from runtime.inputs import load_npz_inputs
    from runtime.verify import verify

    monkeypatch.setattr(ref, "session", lambda path: None)
    net = ProcessGraph.load(nets / "llama.tpn")
    batch = load_npz_inputs(nets / "ids.npz", net.encoder, 32)
    report = verify(net, LLAMA, batch)
    assert report.reference == ref.FALLBACK and report.passed
    assert report.output.rel_l2_err < 1e-12


def test_bad_tokenizer_and_unsupported_model_exit_2(nets, tmp_path, capsys):
    assert main(["compile", str(LLAMA), "-o", str(tmp_path / "a.tpn"), "--tokenizer", str(tmp_path)]) == 2
    assert "no tokenizer.json there" in err_line(capsys)
    (tmp_path / "broken.onnx").write_bytes(b"\x00\x01\x02 definitely not onnx")
    assert main(["compile", str(tmp_path / "broken.onnx"), "-o", str(tmp_path / "b.tpn")]) == 2
    assert "broken.onnx" in err_line(capsys)
