"""NIR export: valid NIR (nir.read with type checking), tripartite's dialect read back identical,
the standard subset run by an independent NIR reader, hostile files refused."""

import h5py
import nir
import numpy as np
import pytest

import compiler
from compiler.distill.maps import FeatureMaps, LayerMaps
from compiler.errors import SerializationError
from compiler.exporters import load_network
from compiler.exporters.nir_format import counts, export_nir, read_nir
from compiler.models import random_bert, random_gpt2, random_llama
from compiler.process import PROCESS_KINDS, ProcessGraph
from compiler.process import nodes as pn
from hardware_sim.golden import simulate

MODELS = {"bert": random_bert, "llama": random_llama, "gpt2": random_gpt2}
CASES = [(lowering, precision, ("bert", "llama", "gpt2")[i % 3])
         for i, (lowering, precision) in enumerate((lo, pr) for lo in ("exact", "favor", "relu", "elu1", "taylor2")
                                                   for pr in ("float64", "float32", "loihi2"))]
CASES += [("learned", "float64", "bert"), ("learned", "float32", "llama"), ("learned", "loihi2", "llama")]


def compiled(lowering, precision, model):
    graph = MODELS[model]()
    return compiler.compile(graph, lowering=lowering, precision=precision, features=8, max_tokens=8,
                            feature_maps=random_maps(graph) if lowering == "learned" else None)


def random_maps(graph, window=2):
    """Learned (distilled-form) feature maps with random parameters, 3 columns per head."""
    rng = np.random.default_rng(4)
    return FeatureMaps(window=window, layers={a.name: LayerMaps.initial(rng, a.n_heads, a.n_kv_heads, a.head_dim, 3,
                                                                        a.scale) for a in graph.of_kind("attention")})


@pytest.mark.parametrize("lowering, precision, model", CASES)
def test_dialect_round_trips_and_runs_identically(lowering, precision, model, tmp_path):
    net = compiled(lowering, precision, model)
    path = export_nir(net, tmp_path / "net.nir")
    graph = nir.read(path, type_check=True)  # valid NIR for NIR's own reader
    assert sum(counts(graph)["dialect"].values()) > 0
    back = load_network(path)
    assert back.same_as(net) and back.encoder.same_as(net.encoder)
    ids = np.random.default_rng(2).integers(1, 100, size=(2, 6))
    mask = np.ones(ids.shape, bool)
    mask[0, 5:] = False
    x = net.encoder.encode(ids)
    runs = precision if precision != "loihi2" or lowering in ("exact", "learned") else "float64"  # loihi2 circuits
    a, b = simulate(net, x, mask, precision=runs), simulate(back, x, mask, precision=runs)
    for role, value in a.outputs.items():
        assert np.array_equal(value, b.outputs[role]), role


def test_every_kind_is_exported(tmp_path):
    kinds = {op.kind for case in CASES[:3] for op in compiled(*case).nodes()}
    assert kinds == set(PROCESS_KINDS)
    net = compiled("exact", "float64", "llama")  # products (SwiGLU), rotary, rms norms, grouped-query circuits
    graph = nir.read(export_nir(net, tmp_path / "llama.nir"))
    c = counts(graph)
    assert c["dialect"]["population"] == sum(op.response != "identity" for op in net.of_kind("population"))
    assert c["standard"]["Input"] == 1 and c["standard"]["Output"] == len(net.of_kind("output_decoder"))
    adapters = [n for n in graph.nodes.values() if "tripartite.port" in n.metadata]
    assert len(adapters) == sum(c["adapters"].values()) > 0
    for node in adapters:  # each adapter places its port at its offset of the target's input
        w = node.weight
        assert w.sum() == w.shape[1] and np.all(np.argmax(w, axis=0) == node.metadata["tripartite.offset"]
                                                + np.arange(w.shape[1]))


def mlp() -> ProcessGraph:
    """A residual MLP of standard parts only: Affine, Linear, identity populations (Scale), sums."""
    rng = np.random.default_rng(7)
    g = ProcessGraph("mlp", meta={"precision": "float64"})
    g.add(pn.InputEncoderNode("x", size=6))
    g.add(pn.Synapses("w1", pre_size=6, post_size=8, weight=rng.normal(size=(8, 6)), bias=rng.normal(size=8)), pre="x")
    g.add(pn.Population("h", size=8), in0="w1")
    g.add(pn.Synapses("w2", pre_size=8, post_size=4, weight=rng.normal(size=(4, 8))), pre="h")
    g.add(pn.Synapses("skip", pre_size=6, post_size=4, weight=rng.normal(size=(4, 6)), bias=rng.normal(size=4)),
          pre="x")
    g.add(pn.Population("y", size=4, fan_in=2), in0="w2", in1="skip")
    g.add(pn.OutputDecoder("out", size=4), x="y")
    g.validate()
    return g


def test_standard_network_has_no_dialect_nodes(tmp_path):
    graph = nir.read(export_nir(mlp(), tmp_path / "mlp.nir"))
    c = counts(graph)
    assert not c["dialect"] and not c["adapters"]
    assert c["standard"] == {"Input": 1, "Affine": 2, "Linear": 1, "Scale": 2, "Output": 1}


def test_one_source_on_two_summed_ports_goes_through_adapters(tmp_path):
    g = ProcessGraph("twice", meta={})
    g.add(pn.InputEncoderNode("x", size=3))
    g.add(pn.Synapses("w", pre_size=3, post_size=3, weight=np.arange(9.0).reshape(3, 3)), pre="x")
    g.add(pn.Population("y", size=3, fan_in=2), in0="w", in1="w")
    g.add(pn.OutputDecoder("out", size=3), x="y")
    graph = nir.read(export_nir(g, tmp_path / "twice.nir"))
    assert {("w", "y:in0"), ("y:in0", "y"), ("w", "y:in1"), ("y:in1", "y")} <= set(map(tuple, graph.edges))
    back = read_nir(tmp_path / "twice.nir")
    assert back.same_as(g)
    x = np.ones((1, 2, 3))
    assert np.array_equal(simulate(back, x).outputs["hidden"], 2 * x @ g.node("w").weight.T)


@pytest.mark.crosscheck
def test_independent_reader_runs_the_standard_network(tmp_path):
    """nirtorch 2.6's nir_to_torch with our mappings (its default Affine leaves the bias unset)."""
    torch = pytest.importorskip("torch")
    nirtorch = pytest.importorskip("nirtorch")

    class Scale(torch.nn.Module):
        def __init__(self, scale):
            super().__init__()
            self.register_buffer("scale", torch.from_numpy(np.asarray(scale, dtype=np.float64)))

        def forward(self, x):
            return x * self.scale

    def linear(node, bias):
        m = torch.nn.Linear(node.weight.shape[1], node.weight.shape[0], bias=bias, dtype=torch.float64)
        m.weight.data = torch.from_numpy(np.asarray(node.weight, dtype=np.float64))
        if bias:
            m.bias.data = torch.from_numpy(np.asarray(node.bias, dtype=np.float64))
        return m

    mapping = {nir.Affine: lambda n: linear(n, True), nir.Linear: lambda n: linear(n, False),
               nir.Scale: lambda n: Scale(n.scale)}
    net = mlp()
    module = nirtorch.nir_to_torch(str(export_nir(net, tmp_path / "mlp.nir")), mapping, dtype=torch.float64)
    x = np.random.default_rng(3).normal(size=(2, 5, 6))
    out, _ = module(torch.from_numpy(x))
    golden = simulate(net, x, np.ones((2, 5), bool), precision="float64").outputs["hidden"]
    np.testing.assert_allclose(out.detach().numpy(), golden, rtol=1e-12, atol=1e-12)
    assert np.abs(golden).max() > 1.0


# ---- hostile files -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def good(tmp_path_factory):
    return export_nir(compiled("exact", "float64", "bert"), tmp_path_factory.mktemp("nir") / "good.nir")


def edited(good, tmp_path, edit):
    path = tmp_path / "edited.nir"
    path.write_bytes(good.read_bytes())
    with h5py.File(path, "a") as f:
        edit(f)
    return path


def replace(f, name, data, **kw):
    del f[name]
    f.create_dataset(name, data=data, **kw)


Q = "node/nodes/layer0.attn.q.synapses"
F = "node/nodes/layer0.attn.features"


@pytest.mark.parametrize("edit, needle", [
    (lambda f: f.__delitem__("node/metadata/tripartite.format"), "a NIR graph without tripartite's metadata"),
    (lambda f: replace(f, "node/metadata/tripartite.version", 7), "tripartite NIR version 7 is not one"),
    (lambda f: f.__delitem__(f"{Q}/metadata/tripartite.kind"), "has no tripartite.kind; not tripartite's dialect"),
    (lambda f: replace(f, f"{Q}/weight", np.full((32, 32), np.nan)), "array 'weight' contains NaN"),
    (lambda f: replace(f, f"{Q}/weight", np.zeros((3, 32))),
     "NIR's reader refuses the file (Type inference error: type mismatch"),
    (lambda f: replace(f, f"{F}/metadata/tripartite.attributes", "{not json", dtype=h5py.string_dtype()),
     "metadata tripartite.attributes is not valid JSON"),
    (lambda f: replace(f, "node/edges", np.concatenate([f["node/edges"][()], [[b"input", b"layer0.attn.residual"]]]),
                       dtype=h5py.string_dtype()), "NIR edges [('input', 'layer0.attn.residual')] disagree"),
    (lambda f: f.__delitem__("node/nodes/layer0.attn.hebbian:teacher"),
     "references destination node 'layer0.attn.hebbian:teacher' which does not exist"),
    (lambda f: f.__setitem__("node/nodes/elsewhere", h5py.ExternalLink("/etc/passwd", "/x")),
     "/node/nodes/elsewhere is a ExternalLink"),
    (lambda f: f.create_group("node/nodes/deep/" + "/".join("g" * 40)), "groups nested deeper than 32 levels"),
])
def test_hand_edited_nir_is_refused(good, tmp_path, edit, needle):
    path = edited(good, tmp_path, edit)
    with pytest.raises(SerializationError) as info:
        load_network(path)
    assert needle in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


def test_foreign_nir_graph_is_refused(tmp_path):
    graph = nir.NIRGraph.from_list(nir.Linear(weight=np.ones((3, 2))))
    nir.write(tmp_path / "foreign.nir", graph)
    with pytest.raises(SerializationError, match="without tripartite's metadata"):
        read_nir(tmp_path / "foreign.nir")


def test_truncated_nir_is_refused(good, tmp_path):
    path = tmp_path / "cut.nir"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(SerializationError, match="cut.nir: corrupt or truncated NIR file"):
        load_network(path)
