"""``tripartite run``: backends and granularities agree; greedy generation; the output file contract."""

import numpy as np
import pytest

from compiler.api import compile as compile_model
from compiler.models import LlamaConfig, random_bert, random_llama
from runtime.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    compile_model(random_bert(seed=2), max_tokens=8, precision="float32").save(root / "bert.tpn")
    compile_model(random_llama(LlamaConfig(num_hidden_layers=1), seed=2), max_tokens=16).save(root / "llama.tpn")
    with open(root / "ids.npz", "wb") as handle:
        np.savez(handle, input_ids=np.array([[1, 2, 3, 4, 5], [6, 7, 8, 0, 0]]),
                 mask=np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]], bool))
    return root


def load(path):
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@pytest.mark.lava
@pytest.mark.parametrize("granularity", ["fused", "fine"])
def test_lava_granularities_agree_with_golden(files, granularity):
    golden, lava = files / f"golden-{granularity}.npz", files / f"lava-{granularity}.npz"
    common = [str(files / "bert.tpn"), "--inputs", str(files / "ids.npz")]
    assert main(["run", *common, "-o", str(golden)]) == 0
    assert main(["run", *common, "--backend", "lava", "--granularity", granularity, "-o", str(lava)]) == 0
    a, b = load(golden), load(lava)
    mask = a["mask"]
    assert set(a) == set(b) >= {"input_ids", "mask", "hidden", "embeddings"}
    rel = np.linalg.norm(a["hidden"][mask] - b["hidden"][mask]) / np.linalg.norm(a["hidden"][mask])
    assert rel < 1e-5


def test_generate_appends_greedy_tokens(files):
    out = files / "gen.npz"
    assert main(["run", str(files / "llama.tpn"), "--inputs", str(files / "ids.npz"), "--generate", "3",
                 "-o", str(out)]) == 0
    data = load(out)
    assert data["input_ids"].shape == (2, 5) and data["generated_ids"].shape == (2, 3)
    assert data["logits"].shape == (2, 5, 100)
    # every generated token is the arg-max of a full run's logits at the position before it
    from compiler.process import ProcessGraph
    from hardware_sim.golden import simulate

    net = ProcessGraph.load(files / "llama.tpn")
    for i, length in enumerate((5, 3)):
        ids = np.concatenate([data["input_ids"][i, :length], data["generated_ids"][i]])[None]
        logits = simulate(net, net.encoder.encode(ids)).outputs["logits"][0]
        assert np.argmax(logits[length - 1:-1], axis=1).tolist() == data["generated_ids"][i].tolist()


def test_unknown_granularity_is_rejected(files, capsys):
    with pytest.raises(SystemExit) as info:
        main(["run", str(files / "bert.tpn"), "--inputs", str(files / "ids.npz"), "--granularity", "coarse",
              "-o", str(files / "x.npz")])
    assert info.value.code == 2
    assert "coarse" in capsys.readouterr().err
