"""End to end through the command line: compile all-MiniLM-L6-v2, run it on the golden simulator
from a text file, and compare the sentence embeddings with transformers' (fixture, float32)."""

from pathlib import Path

import numpy as np
import pytest

from compiler.frontends.source import minilm_dir
from runtime.cli import main

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "minilm_expected.npz"


@pytest.fixture(scope="module")
def expected():
    with np.load(FIXTURE, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def test_compile_and_run_minilm_from_the_command_line(tmp_path, expected, capsys):
    net = tmp_path / "minilm.tpn"
    assert main(["compile", str(minilm_dir()), "-o", str(net), "--lowering", "exact", "--precision", "float64"]) == 0
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("\n".join(str(s) for s in expected["sentences"]) + "\n")
    out = tmp_path / "out.npz"
    assert main(["run", str(net), "--backend", "golden", "--text-file", str(sentences), "-o", str(out)]) == 0
    with np.load(out, allow_pickle=False) as result:
        np.testing.assert_array_equal(result["input_ids"], expected["input_ids"])
        np.testing.assert_array_equal(result["mask"], expected["mask"])
        got, want = result["embeddings"], expected["embeddings"].astype(np.float64)
        assert result["hidden"].shape == (*expected["mask"].shape, 384)
    rel = np.linalg.norm(got - want, axis=1) / np.linalg.norm(want, axis=1)
    assert rel.max() < 1e-5, f"embedding relative error {rel.max():.2e}"


def test_run_on_a_file_that_is_not_a_network(tmp_path, capsys):
    bogus = tmp_path / "model.tpn"
    bogus.write_bytes(b"not a network")
    code = main(["run", str(bogus), "--text", "hello", "-o", str(tmp_path / "o.npz")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "model.tpn" in err and "\n" not in err and "Traceback" not in err


def test_compile_a_directory_that_is_not_a_model(tmp_path, capsys):
    code = main(["compile", str(tmp_path), "-o", str(tmp_path / "x.tpn")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "config.json" in err and "\n" not in err
