"""Learned circuits with a window in the netlist and NIR files: an encoder's band (the W keys nearest each
query) and a decoder's ring round-trip and run identically (float and loihi2), the files say which
window each circuit has, and a file whose record disagrees with its schedule is refused in one line."""

import h5py
import numpy as np
import pytest

import compiler
from compiler.distill.maps import FeatureMaps, LayerMaps
from compiler.errors import SerializationError
from compiler.exporters import load_network
from compiler.exporters.netlist import write_netlist
from compiler.exporters.nir_format import export_nir
from compiler.models import random_bert, random_llama
from hardware_sim.golden import simulate

MODELS = {"bert": random_bert, "llama": random_llama}
KIND = {"bert": "band", "llama": "ring"}


def compiled(model, precision, window=3):
    graph = MODELS[model]()
    rng = np.random.default_rng(4)
    maps = FeatureMaps(window=window, layers={a.name: LayerMaps.initial(rng, a.n_heads, a.n_kv_heads, a.head_dim, 3,
                                                                        a.scale) for a in graph.of_kind("attention")})
    return compiler.compile(graph, lowering="learned", precision=precision, max_tokens=8, feature_maps=maps)


def runs_identically(net, back, precision):
    x = net.encoder.encode(np.random.default_rng(1).integers(1, 100, size=(2, 6)))
    mask = np.ones((2, 6), bool)
    mask[1, 4:] = False
    a, b = simulate(net, x, mask, precision=precision), simulate(back, x, mask, precision=precision)
    for role, value in a.outputs.items():
        assert np.array_equal(value, b.outputs[role]), role


@pytest.mark.parametrize("model,precision", [("bert", "loihi2"), ("bert", "float32"), ("llama", "loihi2")])
def test_netlist_records_the_window_kind_and_round_trips(model, precision, tmp_path):
    net = compiled(model, precision)
    path = write_netlist(net, tmp_path / "net.h5")
    with h5py.File(path) as f:
        kinds = {key: f["feature_maps"][key].attrs.get("window_kind") for key in f["feature_maps"]}
    assert set(kinds.values()) == {KIND[model]}
    back = load_network(path)
    assert back.same_as(net)
    runs_identically(net, back, precision)


@pytest.mark.parametrize("model", ["bert", "llama"])
def test_nir_records_the_window_kind_and_round_trips(model, tmp_path):
    net = compiled(model, "loihi2")
    path = export_nir(net, tmp_path / "net.nir")
    with h5py.File(path) as f:
        kind = f["node/nodes/layer0.attn.features/metadata/tripartite.window_kind"][()]
    assert kind.decode() == KIND[model]
    back = load_network(path)
    assert back.same_as(net)
    runs_identically(net, back, "loihi2")


def test_a_window_kind_that_disagrees_with_the_schedule_is_refused_in_one_line(tmp_path):
    net = compiled("bert", "float64")
    netlist = write_netlist(net, tmp_path / "net.h5")
    with h5py.File(netlist, "a") as f:
        f["feature_maps/layer0.attn.features"].attrs["window_kind"] = "ring"
    with pytest.raises(SerializationError, match=r"node 'layer0\.attn\.features': window_kind = 'ring' disagrees "
                       r"with its window and schedule \(expected 'band'\)") as err:
        load_network(netlist)
    assert "\n" not in str(err.value)
    nir_file = export_nir(net, tmp_path / "net.nir")
    with h5py.File(nir_file, "a") as f:
        name = "node/nodes/layer1.attn.features/metadata/tripartite.window_kind"
        del f[name]
        f.create_dataset(name, data="ring")
    with pytest.raises(SerializationError, match=r"layer1\.attn\.features': window_kind = 'ring' disagrees"):
        load_network(nir_file)
    plain = compiled("bert", "float64", window=0)
    path = write_netlist(plain, tmp_path / "plain.h5")
    with h5py.File(path, "a") as f:
        f["feature_maps/layer0.attn.features"].attrs["window_kind"] = "band"
    with pytest.raises(SerializationError, match=r"expected none: it has no learned window"):
        load_network(path)
