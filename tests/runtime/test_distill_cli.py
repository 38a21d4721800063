"""``tripartite distill`` and ``compile --lowering learned`` from the command line, on a tiny model."""

import numpy as np
import pytest

from compiler.distill.maps import load_maps
from compiler.errors import InputError
from compiler.models.bert import random_bert
from runtime.cli import main


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "bert.tpg"
    random_bert(seed=2).save(path)
    return path


def test_distill_then_compile_learned(model, tmp_path, capsys):
    x = np.random.default_rng(0).standard_normal((3, 12, 32))
    np.savez(tmp_path / "x.npz", x=x)
    maps = tmp_path / "maps.npz"
    assert main(["distill", str(model), "--features", "8", "--epochs", "3", "--joint-steps", "0",
                 "--inputs", str(tmp_path / "x.npz"), "-o", str(maps)]) == 0
    loaded = load_maps(maps)
    assert loaded.features == 8 and loaded.window == 0
    assert set(loaded.layers) == {"layer0.attn", "layer1.attn"}
    for report in loaded.report.values():
        assert report["kl_after"] < report["kl_before"]
    net = tmp_path / "net.tpn"
    assert main(["compile", str(model), "--lowering", "learned", "--feature-maps", str(maps), "-o", str(net)]) == 0
    assert main(["compile", str(model), "--lowering", "learned", "--feature-maps", str(maps), "--window", "2",
                 "-o", str(net)]) == 2
    assert "fitted for a window of 0" in capsys.readouterr().err


def test_bad_maps_files_are_one_line_errors(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="not an .npz feature-maps file"):
        load_maps(tmp_path / "junk.npz")
    np.savez(tmp_path / "nometa.npz", a=np.zeros(2))
    with pytest.raises(InputError, match="no 'meta' record"):
        load_maps(tmp_path / "nometa.npz")
    np.savez(tmp_path / "badmeta.npz", meta=np.array('{"format": "tripartite-feature-maps", "version": 1, '
                                                     '"window": 0, "layers": ["a"]}'))
    with pytest.raises(InputError, match="layer 'a' lacks arrays"):
        load_maps(tmp_path / "badmeta.npz")


@pytest.mark.crosscheck
def test_distill_joint_steps_tune_the_maps_deterministically(model, tmp_path):
    pytest.importorskip("torch")
    x = np.random.default_rng(1).standard_normal((4, 10, 32))
    np.savez(tmp_path / "x.npz", x=x)
    paths = [tmp_path / f"maps{i}.npz" for i in range(3)]
    for path, steps in zip(paths, (0, 6, 6)):
        assert main(["distill", str(model), "--features", "8", "--epochs", "3", "--joint-steps", str(steps),
                     "--inputs", str(tmp_path / "x.npz"), "-o", str(path)]) == 0
    untuned, tuned, again = (load_maps(p) for p in paths)
    history = tuned.report["joint"]["history"]
    assert len(history) == 6 and tuned.report["joint"]["dtype"] == "float32"
    for name, layer in tuned.layers.items():
        assert not np.array_equal(layer.q_weight, untuned.layers[name].q_weight)
        np.testing.assert_array_equal(layer.q_weight, again.layers[name].q_weight)
