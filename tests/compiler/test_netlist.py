"""The HDF5 netlist: complete round trips (every kind, lowering, precision) and hostile files refused."""

import h5py
import numpy as np
import pytest

import compiler
from compiler.distill.maps import FeatureMaps, LayerMaps
from compiler.errors import SerializationError
from compiler.exporters import load_network
from compiler.exporters.netlist import read_netlist, write_netlist
from compiler.models import random_bert, random_gpt2, random_llama
from compiler.process import PROCESS_KINDS, ProcessGraph
from compiler.process import nodes as pn
from hardware_sim.fixed_point import quantize_weights
from hardware_sim.golden import simulate

RNG = np.random.default_rng(5)
W = RNG.normal(size=(4, 3)).astype(np.float32)
MODELS = {"bert": random_bert, "llama": random_llama, "gpt2": random_gpt2}
CASES = [(lowering, precision, model)
         for i, (lowering, precision) in enumerate((lo, pr) for lo in ("exact", "favor", "relu", "elu1", "taylor2")
                                                   for pr in ("float64", "float32", "loihi2"))
         for model in [("bert", "llama", "gpt2")[i % 3]]]
CASES += [("learned", "float64", "bert"), ("learned", "float32", "llama"), ("learned", "loihi2", "gpt2")]


def odd_nodes():
    """One instance of each kind with non-default attributes."""
    return [
        pn.Schedule("s", mode="causal", max_tokens=7, use_padding_mask=False, circuit="c"),
        pn.InputEncoderNode("i", size=4, quant={"exp": -3, "range": 1.5}),
        pn.OutputDecoder("o/with slash", role="logits", size=4),
        pn.Population("p", size=4, response="rotary", rope={"n_heads": 2, "head_dim": 2, "base": 100.0,
                                                             "pairing": "interleaved", "rotary_dim": 2}),
        pn.Synapses("w", pre_size=3, post_size=4, weight=W, bias=RNG.normal(size=4),
                    quant={"exp": -3, "w_row_exp": [int(e) for e in quantize_weights(W, axis=0)[1]]}),
        pn.NormAstrocyte("n", weight=RNG.normal(size=4), size=4, mode="rms", eps=1e-6),
        pn.FeaturePopulation("f", lowering="favor", n_heads=4, n_kv_heads=2, head_dim=3, m=5, scale=0.5,
                             schedule="s", projection=RNG.normal(size=(2, 5, 3)), seed=9, orthogonal=True),
        pn.HebbianSynapses("h", n_heads=4, n_kv_heads=2, m=5, v_head_dim=3, gated=True, rate=0.5),
        pn.Astrocyte("a", n_heads=4, m=5, v_head_dim=3, offset="none", eps=1e-9),
    ]


def test_every_kind_round_trips_alone(tmp_path):
    g = ProcessGraph("kinds", meta={"note": [1, 2.5, None, {"x": True}]})
    for node in odd_nodes():
        g.g.add_node(node.name, op=node)
    assert {op.kind for op in g.nodes()} == set(PROCESS_KINDS)
    back = read_netlist(write_netlist(g, tmp_path / "kinds.h5"), validate=False)
    assert back.same_as(g) and back.encoder is None
    assert back.node("w").weight.dtype == np.float32
    with h5py.File(tmp_path / "kinds.h5") as f:  # the Lava rule and the 8-bit mantissas are in the file
        assert f["hebbian_groups/h"].attrs["lava_dw"] == "1.0 * x0 * x1 * y1"
        m = f["synapse_groups/w/weight_mantissa"][()]
        e = f["synapse_groups/w/weight_exponent"][()]
        assert m.dtype == np.int8 and np.all(np.abs(m * 2.0 ** e[:, None] - W) <= 2.0 ** (e[:, None] - 1))
        assert "o%2Fwith slash" in f["outputs"]


def compiled(lowering, precision, model, max_tokens=8):
    graph = MODELS[model]()
    return compiler.compile(graph, lowering=lowering, precision=precision, features=8, max_tokens=max_tokens,
                            feature_maps=random_maps(graph) if lowering == "learned" else None)


def random_maps(graph, window=2):
    """Learned (distilled-form) feature maps with random parameters, 3 columns per head."""
    rng = np.random.default_rng(4)
    return FeatureMaps(window=window, layers={a.name: LayerMaps.initial(rng, a.n_heads, a.n_kv_heads, a.head_dim, 3,
                                                                        a.scale) for a in graph.of_kind("attention")})


@pytest.mark.parametrize("lowering, precision, model", CASES)
def test_compiled_networks_round_trip_and_run_identically(lowering, precision, model, tmp_path):
    net = compiled(lowering, precision, model)
    back = load_network(write_netlist(net, tmp_path / "net.h5"))
    assert back.same_as(net) and back.encoder.same_as(net.encoder)
    assert back.meta == net.meta and ("placement" in back.meta) == (precision == "loihi2")
    ids = np.random.default_rng(1).integers(1, 100, size=(2, 6))
    mask = np.ones(ids.shape, bool)
    mask[1, 4:] = False
    x = net.encoder.encode(ids)
    runs = precision if precision != "loihi2" or lowering in ("exact", "learned") else "float64"  # loihi2 circuits
    a = simulate(net, x, mask, precision=runs)
    b = simulate(back, x, mask, precision=runs)
    for role, value in a.outputs.items():
        assert np.array_equal(value, b.outputs[role]), role  # bit for bit, float and loihi2 alike


def test_compiled_networks_cover_every_kind():
    assert {case[0] for case in CASES} == set(pn.LOWERINGS)
    kinds = {op.kind for lowering, precision, model in CASES[:3] for op in compiled(lowering, precision, model).nodes()}
    assert kinds == set(PROCESS_KINDS)


def test_minilm_tokenizer_travels(tmp_path):
    from compiler.frontends.source import minilm_dir

    net = compiler.compile(minilm_dir(), max_tokens=8)
    back = read_netlist(write_netlist(net, tmp_path / "minilm.h5"))
    assert back.encoder.tokenizer_json == net.encoder.tokenizer_json and len(net.encoder.tokenizer_json) > 100_000
    assert back.same_as(net)


# ---- hostile and hand-edited files ------------------------------------------------------------------
@pytest.fixture(scope="module")
def good(tmp_path_factory):
    path = tmp_path_factory.mktemp("netlist") / "good.h5"
    write_netlist(compiled("exact", "loihi2", "llama"), path)
    return path


def edited(good, tmp_path, edit):
    path = tmp_path / "edited.h5"
    path.write_bytes(good.read_bytes())
    with h5py.File(path, "a") as f:
        edit(f)
    return path


def replace(f, name, data, **kw):
    del f[name]
    f.create_dataset(name, data=data, **kw)


Q = "synapse_groups/layer0.attn.q.synapses"


def duplicate(f, source, name):
    """Copy node group ``source`` as a node called ``name`` (a name another kind already uses)."""
    target = f"{source.rsplit('/', 1)[0]}/{name}"
    f.copy(f[source], target)
    f[target].attrs["name"] = name
    f[target].attrs["index"] = sum(len(f[g]) for g in f if g not in ("meta", "placement", "wiring", "encoder")) - 1


@pytest.mark.parametrize("edit, needle", [
    (lambda f: f.attrs.__setitem__("format", "something-else"), "format attribute is 'something-else'"),
    (lambda f: f.attrs.__setitem__("version", 99), "netlist version 99 is not one this tripartite reads"),
    (lambda f: f.__delitem__(f"{Q}/weight"), f"dataset /{Q}/weight is missing"),
    (lambda f: replace(f, f"{Q}/weight", np.zeros((3, 32))), "array weight has shape (3, 32), expected (32, 32)"),
    (lambda f: replace(f, f"{Q}/weight", np.full((32, 32), np.nan)), f"dataset /{Q}/weight contains NaN"),
    (lambda f: replace(f, f"{Q}/weight_mantissa", np.full((32, 32), 300, np.int16)),
     f"/{Q}/weight_mantissa: weight mantissa out of the 8-bit range [-128, 127]"),
    (lambda f: replace(f, f"{Q}/weight_mantissa", np.zeros((32, 32), np.int8)),
     f"/{Q}/weight_mantissa: values disagree"),
    (lambda f: replace(f, f"{Q}/weight", np.array(["a"] * 4, dtype=object), dtype=h5py.string_dtype()),
     f"dataset /{Q}/weight has dtype object; numeric arrays only"),
    (lambda f: f[Q].attrs.__setitem__("post_size", "32"), "attribute 'post_size' must be int, got str"),
    (lambda f: f[Q].attrs.__setitem__("colour", 3), "unknown attributes ['colour']"),
    (lambda f: f[Q].attrs.__delitem__("pre_size"), "attribute 'pre_size' is missing"),
    (lambda f: f["hebbian_groups/layer0.attn.hebbian"].attrs.__setitem__("lava_dw", "x0 * y1"),
     "attribute 'lava_dw' = 'x0 * y1' disagrees"),
    (lambda f: f["populations/layer0.attn.v"].attrs.__setitem__("kind", "astrocyte"),
     "a astrocyte node named 'layer0.attn.v' belongs at /astrocytes/layer0.attn.v"),
    (lambda f: f.__delitem__("wiring"), "group /wiring is missing"),
    (lambda f: duplicate(f, "astrocytes/layer0.attn.astrocyte", "layer0.attn.v"), "'layer0.attn.v' appears twice"),
    (lambda f: replace(f, "encoder/token_embeddings", np.zeros((100, 31))),
     "/encoder: tables are 31 wide but the input node takes 32"),
    (lambda f: replace(f, "encoder/token_embeddings", np.zeros(100)), "/encoder/token_embeddings: a table must be 2-D"),
    (lambda f: replace(f, "wiring/source", np.array(["nowhere"] * 3, dtype=object), dtype=h5py.string_dtype()),
     "the columns of /wiring differ in length"),
    (lambda f: f[Q].__setitem__("weight_link", h5py.SoftLink(f"/{Q}/weight")), f"/{Q}/weight_link is a SoftLink"),
    (lambda f: f.__setitem__("elsewhere", h5py.ExternalLink("/etc/passwd", "/x")), "/elsewhere is a ExternalLink"),
    (lambda f: f.create_dataset("populations/huge", shape=(1 << 30,), dtype="f8", chunks=(1024,)),
     "/populations/huge declares 8589934592 bytes; refused"),
    (lambda f: f.create_dataset("populations/big", shape=(1 << 27,), dtype="f8", chunks=(1024,)),
     "bytes of arrays in a"),
])
def test_hand_edited_files_are_refused_naming_the_dataset(good, tmp_path, edit, needle):
    path = edited(good, tmp_path, edit)
    with pytest.raises(SerializationError) as info:
        load_network(path)
    message = str(info.value)
    assert needle in message and str(path) in message and "\n" not in message


def test_long_strings_are_refused(good, tmp_path, monkeypatch):
    from compiler.exporters import hdf5_io

    monkeypatch.setattr(hdf5_io, "MAX_STRING_CHARS", 1000)
    path = edited(good, tmp_path, lambda f: f[Q].attrs.__setitem__("circuit", "x" * 1001))
    with pytest.raises(SerializationError, match=f"/{Q} attribute 'circuit' is a string of 1001 characters; refused"):
        read_netlist(path)


def test_external_storage_is_refused(good, tmp_path):
    (tmp_path / "outside.bin").write_bytes(np.zeros(32 * 32).tobytes())
    path = edited(good, tmp_path, lambda f: replace(f, f"{Q}/weight", None, shape=(32, 32), dtype="f8",
                                                    external=[(str(tmp_path / "outside.bin"), 0, 8 * 32 * 32)]))
    with pytest.raises(SerializationError, match=f"dataset /{Q}/weight stores its data outside the file"):
        read_netlist(path)


@pytest.mark.parametrize("content, needle", [
    (b"plain text, not HDF5", "not a compiled network"),
    (b"\x89HDF\r\n\x1a\n" + b"\x00" * 40, "corrupt or truncated tripartite netlist file"),
])
def test_garbage_is_refused(tmp_path, content, needle):
    path = tmp_path / "bad.h5"
    path.write_bytes(content)
    with pytest.raises(SerializationError, match=needle):
        load_network(path)


def test_truncated_file_is_refused(good, tmp_path):
    path = tmp_path / "cut.h5"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(SerializationError, match="cut.h5: corrupt or truncated tripartite netlist file"):
        read_netlist(path)


def test_failed_write_leaves_no_file(tmp_path):
    net = compiled("exact", "float64", "bert")
    net.meta["bad"] = {"not json": object()}
    with pytest.raises(TypeError):
        write_netlist(net, tmp_path / "net.h5")
    assert list(tmp_path.iterdir()) == []
