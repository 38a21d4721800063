"""run and verify --backend brian2 from the command line."""

import json

import numpy as np

from compiler.api import compile as compile_model
from compiler.models import random_gpt2
from runtime.cli import main


def test_verify_and_run_on_brian2(tmp_path, capsys):
    graph = random_gpt2(seed=3)
    graph.save(tmp_path / "gpt2.tpg")
    compile_model(graph, max_tokens=8).save(tmp_path / "gpt2.tpn")
    ids = np.array([[5, 17, 3, 9, 0], [7, 2, 11, 0, 0]])
    np.savez(tmp_path / "ids.npz", input_ids=ids, mask=ids > 0)
    report = tmp_path / "verify.json"
    assert main(["verify", str(tmp_path / "gpt2.tpn"), "--reference", str(tmp_path / "gpt2.tpg"), "--inputs",
                 str(tmp_path / "ids.npz"), "--backend", "brian2", "--json", str(report)]) == 0
    data = json.loads(report.read_text())
    assert data["backend"] == "brian2" and data["passed"] and data["output"]["rel_l2_err"] <= 1e-9
    assert data["layers"] and all(layer["rel_l2_err"] <= 1e-9 for layer in data["layers"])
    assert main(["run", str(tmp_path / "gpt2.tpn"), "--inputs", str(tmp_path / "ids.npz"), "--backend", "brian2",
                 "-o", str(tmp_path / "out.npz")]) == 0
    assert main(["run", str(tmp_path / "gpt2.tpn"), "--inputs", str(tmp_path / "ids.npz"),
                 "-o", str(tmp_path / "golden.npz")]) == 0
    got, want = np.load(tmp_path / "out.npz"), np.load(tmp_path / "golden.npz")
    assert set(got.files) == set(want.files)
    assert np.linalg.norm(got["logits"] - want["logits"]) <= 1e-9 * np.linalg.norm(want["logits"])


def test_probes_on_brian2_are_refused_in_one_line(tmp_path, capsys):
    graph = random_gpt2(seed=3)
    compile_model(graph, max_tokens=8).save(tmp_path / "gpt2.tpn")
    np.savez(tmp_path / "ids.npz", input_ids=np.array([[5, 17, 3]]))
    capsys.readouterr()
    assert main(["run", str(tmp_path / "gpt2.tpn"), "--inputs", str(tmp_path / "ids.npz"), "--backend", "brian2",
                 "--probe", "calcium", "-o", str(tmp_path / "out.npz")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "brian2 backend records outputs only" in lines[0]
