"""The Brian2 export: network.py, run as its own process with brian2, numpy and h5py alone, writes
the arrays tripartite run writes, equal to the golden simulator's; bad files are refused in one line."""

import subprocess
import sys

import numpy as np
import pytest

import compiler
from compiler.errors import InputError
from compiler.exporters import export
from compiler.models import random_bert, random_llama
from compiler.models.llama import LlamaConfig
from runtime.cli import main

# Runs an exported script and fails if anything of tripartite (or Lava) was imported on the way.
ISOLATED = """
import runpy, sys
sys.argv = sys.argv[1:]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as exc:
    code = exc.code
leaked = sorted({m.split('.')[0] for m in sys.modules} & {"compiler", "hardware_sim", "runtime", "lava"})
if leaked:
    print("imported", leaked, file=sys.stderr)
    sys.exit(3)
sys.exit(code)
"""


def run_script(directory, *args):
    return subprocess.run([sys.executable, "-c", ISOLATED, str(directory / "network.py"), *map(str, args)],
                          capture_output=True, text=True, timeout=600, cwd=directory.parent)


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    root = tmp_path_factory.mktemp("brian2")
    net = compiler.compile(random_bert(seed=5), max_tokens=8)
    net.save(root / "bert.tpn")
    ids = np.array([[3, 17, 42, 8, 2, 0], [5, 9, 2, 0, 0, 0]])
    mask = ids > 0
    np.savez(root / "ids.npz", input_ids=ids, mask=mask)
    return root, net, ids, mask


def test_exported_script_equals_golden_run(bert, tmp_path):
    root, net, ids, mask = bert
    assert main(["export", str(root / "bert.tpn"), "--format", "brian2", "-o", str(tmp_path / "out")]) == 0
    directory = tmp_path / "out"
    assert {p.name for p in directory.iterdir()} >= {"network.py", "network.h5", "README.md", "tripartite_brian2"}
    readme = (directory / "README.md").read_text()
    assert "H += fk_pre * v_post" in readme and "y = u / (z + int(z == 0))" in readme
    done = run_script(directory, "--inputs", root / "ids.npz", "-o", tmp_path / "brian2.npz")
    assert done.returncode == 0, done.stderr
    assert main(["run", str(root / "bert.tpn"), "--inputs", str(root / "ids.npz"), "-o",
                 str(tmp_path / "golden.npz")]) == 0
    got, want = np.load(tmp_path / "brian2.npz"), np.load(tmp_path / "golden.npz")
    assert set(got.files) == set(want.files) == {"input_ids", "mask", "hidden", "embeddings"}
    assert np.array_equal(got["input_ids"], want["input_ids"]) and np.array_equal(got["mask"], want["mask"])
    for key in ("hidden", "embeddings"):
        assert np.linalg.norm(got[key] - want[key]) <= 1e-9 * np.linalg.norm(want[key]), key


def test_exported_causal_loihi2_script_uses_chip_weights(tmp_path):
    """A causal GQA network with logits, loihi2: the script reads the netlist's mantissas and exponents
    and equals the in-process Brian2 backend (which dequantizes the same way)."""
    from hardware_sim.brian2.backend import simulate_brian2

    g = random_llama(LlamaConfig(num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2), seed=6)
    net = compiler.compile(g, precision="loihi2", max_tokens=8)
    x = np.random.default_rng(2).normal(size=(2, 5, g.encoder.width))
    mask = np.ones((2, 5), bool)
    mask[0, 3:] = False
    np.savez(tmp_path / "x.npz", x=x, mask=mask)
    directory = export(net, "brian2", tmp_path / "llama").parent
    assert "chip weights" in (directory / "README.md").read_text()
    done = run_script(directory, "--inputs", tmp_path / "x.npz", "-o", tmp_path / "out.npz")
    assert done.returncode == 0, done.stderr
    got = np.load(tmp_path / "out.npz")
    want, _ = simulate_brian2(net, x, mask, precision="loihi2")
    assert set(got.files) == {"mask", "hidden", "logits"}
    for role in want:
        assert np.linalg.norm(got[role] - want[role]) <= 1e-12 * np.linalg.norm(want[role]), role


def test_script_refuses_bad_files_in_one_line(bert, tmp_path):
    root, net, _, _ = bert
    directory = export(net, "brian2", tmp_path / "out").parent
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    np.savez(tmp_path / "nothing.npz", other=np.zeros(3))
    np.savez(tmp_path / "wide.npz", x=np.zeros((1, 3, 5)))
    cases = [
        (["--inputs", root / "ids.npz", "--netlist", tmp_path / "junk.h5"], "junk.h5"),
        (["--inputs", tmp_path / "nothing.npz"], "expected an array 'input_ids' or 'x'"),
        (["--inputs", tmp_path / "wide.npz"], "shape (batch, tokens, 32)"),
        (["--inputs", tmp_path / "missing.npz"], "missing.npz"),
    ]
    for args, message in cases:
        done = run_script(directory, *args, "-o", tmp_path / "o.npz")
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2 and len(lines) == 1 and message in lines[0], (args, done.stderr)


def test_export_into_a_file_or_of_an_unsupported_network_is_refused(bert, tmp_path):
    from compiler.distill.maps import FeatureMaps, LayerMaps

    _, net, _, _ = bert
    (tmp_path / "taken").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        export(net, "brian2", tmp_path / "taken")
    graph = random_bert(seed=5)
    rng = np.random.default_rng(0)
    layers = {att.name: LayerMaps.initial(rng, att.n_heads, att.n_kv_heads, att.head_dim, 4, att.scale)
              for att in graph.of_kind("attention")}
    windowed = compiler.compile(graph, lowering="learned", feature_maps=FeatureMaps(layers=layers, window=2),
                                max_tokens=8)
    with pytest.raises(InputError, match="cannot run in Brian2: node 'layer0.attn.features': learned features with"):
        export(windowed, "brian2", tmp_path / "windowed")
    assert not (tmp_path / "windowed").exists()
