"""``tripartite export`` and exported files on the command line: run, verify, report read them like a .tpn."""

import json

import h5py
import numpy as np
import pytest

from compiler.api import compile as compile_model
from compiler.models.digits_vit import digits_split, digits_vit
from runtime.cli import main


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    graph = digits_vit()
    graph.save(root / "digits.tpg")
    compile_model(graph, max_tokens=16, precision="loihi2").save(root / "digits.tpn")
    _, _, images, labels = digits_split()
    np.savez(root / "images.npz", images=images[:6], labels=labels[:6])
    return root


def one_error_line(capsys) -> str:
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("fmt, suffix", [("netlist", "h5"), ("nir", "nir")])
def test_exported_file_runs_reports_and_verifies_like_the_original(files, tmp_path, capsys, fmt, suffix):
    exported = tmp_path / f"digits.{suffix}"
    assert main(["export", str(files / "digits.tpn"), "--format", fmt, "-o", str(exported)]) == 0
    assert f"-> {exported}" in capsys.readouterr().out
    outs = {}
    for name, net in (("original", files / "digits.tpn"), ("exported", exported)):
        out = tmp_path / f"{name}.npz"
        assert main(["run", str(net), "--inputs", str(files / "images.npz"), "-o", str(out)]) == 0
        with np.load(out) as f:
            outs[name] = {k: f[k] for k in f.files}
    assert outs["original"].keys() == outs["exported"].keys() and "logits" in outs["original"]
    for key, value in outs["original"].items():
        assert np.array_equal(value, outs["exported"][key]), key  # loihi2: bit for bit
    capsys.readouterr()
    reports = []
    for net in (files / "digits.tpn", exported):
        assert main(["report", str(net), "--json"]) == 0
        reports.append(json.loads(capsys.readouterr().out))
    assert reports[0] == reports[1] and reports[0]["cores"] >= 1
    assert main(["verify", str(exported), "--reference", str(files / "digits.tpg"),
                 "--inputs", str(files / "images.npz")]) == 0


def test_hand_edited_netlist_exits_2_naming_the_dataset(files, tmp_path, capsys):
    path = tmp_path / "digits.h5"
    assert main(["export", str(files / "digits.tpn"), "--format", "netlist", "-o", str(path)]) == 0
    with h5py.File(path, "a") as f:
        name = next(k for k in f["synapse_groups"] if "weight_mantissa" in f["synapse_groups"][k])
        dataset = f"synapse_groups/{name}/weight_mantissa"
        shape = f[dataset].shape
        del f[dataset]
        f.create_dataset(dataset, data=np.full(shape, -200, np.int16))
    capsys.readouterr()
    assert main(["run", str(path), "--inputs", str(files / "images.npz"), "-o", str(tmp_path / "o.npz")]) == 2
    line = one_error_line(capsys)
    assert f"/{dataset}: weight mantissa out of the 8-bit range" in line and str(path) in line


def test_format_without_its_module_is_one_line(files, tmp_path, capsys, monkeypatch):
    from compiler import exporters

    monkeypatch.setitem(exporters.EXPORTERS, "nir", ("compiler.exporters.no_such_module", "export"))
    assert main(["export", str(files / "digits.tpn"), "--format", "nir", "-o", str(tmp_path / "x.nir")]) == 2
    assert "export format 'nir' is not part of this build" in one_error_line(capsys)
    assert not (tmp_path / "x.nir").exists()


def test_foreign_or_edited_nir_exits_2(files, tmp_path, capsys):
    path = tmp_path / "digits.nir"
    assert main(["export", str(files / "digits.tpn"), "--format", "nir", "-o", str(path)]) == 0
    out = capsys.readouterr().out
    assert "standard NIR nodes" in out and "dialect nodes" in out
    with h5py.File(path, "a") as f:
        del f["node/metadata/tripartite.format"]
    assert main(["report", str(path)]) == 2
    line = one_error_line(capsys)
    assert "a NIR graph without tripartite's metadata" in line and str(path) in line
