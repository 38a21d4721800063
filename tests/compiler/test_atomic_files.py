"""Files appear whole or not at all, and the same content always gives the same bytes."""

import os

import numpy as np
import pytest

from compiler.api import compile as compile_model
from compiler.atomic import atomic_write, atomic_write_text
from compiler.models import random_bert
from compiler.npzfile import write_npz
from compiler.process import ProcessGraph
from runtime.run import save_outputs


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "out.npz"
    atomic_write_text(path, "old")
    with pytest.raises(RuntimeError), atomic_write(path) as fh:
        fh.write(b"half a file")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.npz"]


def test_new_file_gets_the_umask_permissions(tmp_path):
    mask = os.umask(0o022)
    os.umask(mask)
    path = atomic_write_text(tmp_path / "r.json", "{}")
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask


def test_write_npz_is_deterministic_and_readable(tmp_path):
    arrays = {"a": np.arange(6.0).reshape(2, 3), "b": np.array([True, False]), "s": np.array("text")}
    for name, compress in (("x.npz", False), ("y.npz", True)):
        with open(tmp_path / name, "wb") as fh:
            write_npz(fh, arrays, compress)
        with np.load(tmp_path / name, allow_pickle=False) as data:
            assert data.files == ["a", "b", "s"]
            for key, value in arrays.items():
                np.testing.assert_array_equal(data[key], value)
    first = (tmp_path / "y.npz").read_bytes()
    save_outputs(tmp_path / "z.npz", arrays)
    assert (tmp_path / "z.npz").read_bytes() == first


def test_write_npz_refuses_object_arrays(tmp_path):
    with open(tmp_path / "o.npz", "wb") as fh, pytest.raises(ValueError, match="'o'"):
        write_npz(fh, {"o": np.array([{}], dtype=object)})


@pytest.mark.parametrize("precision", ["float64", "loihi2"])
def test_compiling_twice_gives_byte_identical_files(tmp_path, precision):
    for name in ("one.tpn", "two.tpn"):
        compile_model(random_bert(seed=4), max_tokens=8, precision=precision).save(tmp_path / name)
    assert (tmp_path / "one.tpn").read_bytes() == (tmp_path / "two.tpn").read_bytes()
    net = ProcessGraph.load(tmp_path / "one.tpn")
    net.save(tmp_path / "three.tpn")
    assert (tmp_path / "three.tpn").read_bytes() == (tmp_path / "one.tpn").read_bytes()
