"""An encoder's learned window from the command line: ``distill --window`` fits the band around each
query, ``compile``/``run`` give the surrogate's outputs on the golden backend (float64, and loihi2 within
its rounding) and on Lava (float32 to 1e-5 of golden, loihi2 bit for bit)."""

import numpy as np
import pytest

from compiler.distill.maps import load_maps
from compiler.distill.surrogate import run_surrogate
from compiler.models.bert import random_bert
from runtime.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("window")
    graph = random_bert(seed=2)
    graph.save(root / "bert.tpg")
    x = np.random.default_rng(0).standard_normal((3, 12, 32))
    np.savez(root / "x.npz", x=x)
    assert main(["distill", str(root / "bert.tpg"), "--features", "8", "--epochs", "3", "--joint-steps", "0",
                 "--window", "3", "--inputs", str(root / "x.npz"), "-o", str(root / "maps.npz")]) == 0
    return root, graph, x


def test_distilled_window_holds_the_nearest_keys_and_runs_on_golden(files, tmp_path):
    root, graph, x = files
    maps = load_maps(root / "maps.npz")
    assert (maps.window, maps.window_keys) == (3, "nearest")
    net = tmp_path / "net.tpn"
    assert main(["compile", str(root / "bert.tpg"), "--lowering", "learned", "--feature-maps",
                 str(root / "maps.npz"), "--max-tokens", "16", "-o", str(net)]) == 0
    assert main(["run", str(net), "--inputs", str(root / "x.npz"), "-o", str(tmp_path / "out.npz")]) == 0
    with np.load(tmp_path / "out.npz") as out:
        got = out["hidden"]
    want = run_surrogate(graph, x, np.ones(x.shape[:2], bool), maps)["hidden"]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())


def test_an_encoders_window_compiles_and_runs_at_loihi2(files, tmp_path):
    root, graph, x = files
    compile_args = ["compile", str(root / "bert.tpg"), "--lowering", "learned", "--feature-maps",
                    str(root / "maps.npz"), "--max-tokens", "16"]
    assert main(compile_args + ["--precision", "loihi2", "-o", str(tmp_path / "q.tpn")]) == 0
    assert main(["run", str(tmp_path / "q.tpn"), "--inputs", str(root / "x.npz"), "-o", str(tmp_path / "q.npz")]) == 0
    with np.load(tmp_path / "q.npz") as out:
        got = out["hidden"]
    want = run_surrogate(graph, x, np.ones(x.shape[:2], bool), load_maps(root / "maps.npz"))["hidden"]
    error = np.abs(got - want).max() / np.abs(want).max()
    assert 1e-4 < error < 0.03  # 8-bit weights and 24-bit states, as every loihi2 network


@pytest.mark.lava
def test_an_encoders_window_runs_on_lava(files, tmp_path, clean):
    root, _, _ = files
    compile_args = ["compile", str(root / "bert.tpg"), "--lowering", "learned", "--feature-maps",
                    str(root / "maps.npz"), "--max-tokens", "16"]
    assert main(compile_args + ["--precision", "float32", "-o", str(tmp_path / "f.tpn")]) == 0
    run = ["run", str(tmp_path / "f.tpn"), "--inputs", str(root / "x.npz")]
    assert main(run + ["-o", str(tmp_path / "golden.npz")]) == 0
    assert main(run + ["--backend", "lava", "--timeout", "60", "-o", str(tmp_path / "lava.npz")]) == 0
    with np.load(tmp_path / "golden.npz") as g, np.load(tmp_path / "lava.npz") as v:
        want, got = g["hidden"], v["hidden"]
    assert np.abs(got - want).max() < 1e-5 * np.abs(want).max()
    assert main(compile_args + ["--precision", "loihi2", "-o", str(tmp_path / "q.tpn")]) == 0
    run = ["run", str(tmp_path / "q.tpn"), "--inputs", str(root / "x.npz")]
    assert main(run + ["-o", str(tmp_path / "golden_q.npz")]) == 0
    assert main(run + ["--backend", "lava", "--timeout", "60", "-o", str(tmp_path / "lava_q.npz")]) == 0
    with np.load(tmp_path / "golden_q.npz") as g, np.load(tmp_path / "lava_q.npz") as v:
        assert np.array_equal(g["hidden"], v["hidden"])
