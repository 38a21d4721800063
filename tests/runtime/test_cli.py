"""The command line: exit codes 0/1/2, one-line errors naming the culprit, verify JSON, demo."""

import json

import numpy as np
import pytest

from compiler.api import compile as compile_model
from compiler.models.digits_vit import digits_split, digits_vit
from runtime.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    graph = digits_vit()
    graph.save(root / "digits.tpg")
    compile_model(graph, max_tokens=16).save(root / "digits.tpn")
    compile_model(graph, lowering="favor", features=8, max_tokens=16).save(root / "favor.tpn")
    _, _, images, labels = digits_split()
    np.savez(root / "images.npz", images=images[:12], labels=labels[:12])
    np.savez(root / "x.npz", x=graph.encoder.encode_patches(images[:3]))
    np.savez(root / "bad_shape.npz", x=np.zeros((2, 16, 5)))
    np.savez(root / "nothing.npz", other=np.zeros(3))
    (root / "not_npz.npz").write_text("hello")
    (root / "garbage.tpn").write_bytes(b"\x00\x01 not a graph")
    (root / "empty_dir").mkdir()
    return root


def err_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


def test_verify_passes_and_writes_json(files, tmp_path, capsys):
    out = tmp_path / "report.json"
    code = main(["verify", str(files / "digits.tpn"), "--reference", str(files / "digits.tpg"),
                 "--inputs", str(files / "images.npz"), "--json", str(out)])
    assert code == 0
    d = json.loads(out.read_text())
    assert d["passed"] and d["tokens"] == 12 * 16 and d["agreement"]["agreement"] == 1.0
    assert "float_accuracy" in d["agreement"]


def test_verify_failing_tolerance_exits_1(files, tmp_path):
    args = ["verify", str(files / "favor.tpn"), "--reference", str(files / "digits.tpg"),
            "--inputs", str(files / "images.npz"), "--plots", str(tmp_path / "plots")]
    assert main(args) == 1
    assert (tmp_path / "plots" / "index.html").is_file()
    assert main(["verify", str(files / "digits.tpn"), "--reference", str(files / "digits.tpg"),
                 "--inputs", str(files / "x.npz"), "--rtol", "1e-30"]) == 1


@pytest.mark.parametrize("net, reference, inputs, needle", [
    ("missing.tpn", "digits.tpg", "x.npz", "missing.tpn"),
    ("digits.tpn", "missing.tpg", "x.npz", "missing.tpg"),
    ("digits.tpn", "empty_dir", "x.npz", "empty_dir"),
    ("garbage.tpn", "digits.tpg", "x.npz", "garbage.tpn"),
    ("digits.tpn", "digits.tpg", "bad_shape.npz", "(batch, tokens, 32)"),
    ("digits.tpn", "digits.tpg", "nothing.npz", "'images'"),
    ("digits.tpn", "digits.tpg", "not_npz.npz", "not an .npz"),
    ("digits.tpn", "digits.tpg", "absent.npz", "absent.npz"),
])
def test_bad_inputs_exit_2_with_one_line(files, capsys, net, reference, inputs, needle):
    code = main(["verify", str(files / net), "--reference", str(files / reference), "--inputs", str(files / inputs)])
    assert code == 2
    line = err_line(capsys)
    assert line.startswith("tripartite verify: error:") and needle in line


def test_run_with_images_and_plots(files, tmp_path):
    out = tmp_path / "out.npz"
    assert main(["run", str(files / "digits.tpn"), "--inputs", str(files / "images.npz"), "-o", str(out),
                 "--plots", str(tmp_path / "plots")]) == 0
    with np.load(out, allow_pickle=False) as data:
        assert data["logits"].shape == (12, 16, 10)
    assert (tmp_path / "plots" / "calcium.png").is_file()


def test_demo_on_golden_writes_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--backend", "golden", "--limit", "10", "--out", str(out)]) == 0
    d = json.loads((out / "report.json").read_text())
    assert d["verify"]["passed"] and d["demo"]["images"] == 10
    assert {"index.html", "calcium.png", "layer_errors.png"} <= {p.name for p in out.iterdir()}
    assert "neuromorphic accuracy" in capsys.readouterr().out
    assert main(["demo", "--limit", "0", "--out", str(out)]) == 2


@pytest.mark.lava
def test_demo_on_lava_agrees_with_float(tmp_path):
    out = tmp_path / "demo"
    assert main(["demo", "--limit", "6", "--out", str(out)]) == 0
    d = json.loads((out / "report.json").read_text())
    assert d["verify"]["backend"] == "lava" and d["verify"]["agreement"]["agreement"] == 1.0
    # loihi2: 8-bit weight mantissas cost ~1% (docs/fixed_point.md); float32 runs agree to rounding
    bound = 0.03 if d["verify"]["precision"] == "loihi2" else 1e-4
    assert d["verify"]["output"]["rel_l2_err"] < bound
    assert [layer["name"] for layer in d["golden"]["layers"]][0] == "layer0.attn"
