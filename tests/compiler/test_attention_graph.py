"""The attention graph IR: every node kind round-trips, validation names culprits, files are safe."""

import json
import zipfile

import numpy as np
import pytest

from compiler.attention import NODE_KINDS, AttentionGraph
from compiler.attention import nodes as op
from compiler.attention import raw_nodes as raw
from compiler.encoder import InputEncoder
from compiler.errors import GraphError, NodeAttributeError, SerializationError, ShapeError

RNG = np.random.default_rng(7)
SCORES = ("scores",)


def example(kind: str) -> tuple[op.AttentionNode, dict[str, tuple]]:
    """One instance of each registered kind plus the per-token input shapes it accepts."""
    w = 8
    make = {
        "input": lambda: (op.Input("n", width=w), {}),
        "linear": lambda: (op.Linear("n", weight=RNG.normal(size=(4, w)), bias=RNG.normal(size=4)), {"x": (w,)}),
        "attention": lambda: (
            op.Attention("n", n_heads=4, n_kv_heads=2, head_dim=2, scale=0.7, causal=True),
            {"q": (8,), "k": (4,), "v": (4,)},
        ),
        "add": lambda: (op.Add("n"), {"a": (w,), "b": (w,)}),
        "mul": lambda: (op.Mul("n"), {"a": (w,), "b": (w,)}),
        "layernorm": lambda: (op.LayerNorm("n", weight=RNG.normal(size=w), bias=RNG.normal(size=w), eps=1e-7),
                              {"x": (w,)}),
        "rmsnorm": lambda: (op.RMSNorm("n", weight=RNG.normal(size=w), eps=1e-6), {"x": (w,)}),
        "activation": lambda: (op.Activation("n", function="gelu_tanh"), {"x": (w,)}),
        "rope": lambda: (op.Rope("n", n_heads=2, head_dim=4, base=500.0, pairing="interleaved"), {"x": (w,)}),
        "output": lambda: (op.Output("n", role="logits"), {"x": (w,)}),
        "matmul": lambda: (raw.MatMul("n", mode="qk", n_heads=2, n_kv_heads=1, head_dim=4), {"a": (w,), "b": (4,)}),
        "scale": lambda: (raw.Scale("n", factor=0.25), {"x": (w,)}),
        "mask_add": lambda: (raw.MaskAdd("n", value=-1e9), {"x": SCORES}),
        "causal_mask": lambda: (raw.CausalMask("n"), {"x": SCORES}),
        "softmax": lambda: (raw.Softmax("n"), {"x": SCORES}),
    }
    return make[kind]()


def single_node_graph(kind: str) -> AttentionGraph:
    """A graph with one node of ``kind``: an input per port, the node, and an output."""
    node, in_shapes = example(kind)
    g = AttentionGraph(name=f"one-{kind}")
    if kind == "input":
        g.add(node)
        g.add(op.Output("out", role="hidden"), x=node.name)
        return g
    x = g.add(op.Input("in", width=8))
    sources = {}
    for i, (port, shape) in enumerate(in_shapes.items()):
        if shape is SCORES:
            src = g.add(raw.MatMul(f"scores{i}", mode="qk", n_heads=2, n_kv_heads=2, head_dim=4), a=x, b=x)
        else:
            src = g.add(op.Linear(f"proj{i}", weight=RNG.normal(size=(shape[0], 8))), x=x)
        sources[port] = src
    g.add(node, **sources)
    if kind != "output":
        g.add(op.Output("out", role="hidden"), x=node.name)
    return g


BASE_KINDS = ["input", "linear", "attention", "add", "mul", "layernorm", "rmsnorm", "activation", "rope", "output"]


def test_registry_holds_every_base_kind():
    assert set(BASE_KINDS) <= set(NODE_KINDS)


@pytest.mark.parametrize("kind", sorted(NODE_KINDS))
def test_every_kind_round_trips_losslessly(kind, tmp_path):
    node, _ = example(kind)
    attrs, arrays = node.to_record()
    rebuilt = type(node).from_record(json.loads(json.dumps(attrs)), arrays, "test")
    assert rebuilt.arrays_equal(node)
    graph = single_node_graph(kind)
    graph.validate()
    path = graph.save(tmp_path / "g.tpg")
    loaded = AttentionGraph.load(path)
    assert loaded.same_as(graph)
    assert loaded.order() == graph.order()


def test_encoder_round_trips(tmp_path):
    enc = InputEncoder(token_embeddings=RNG.normal(size=(10, 4)), position_embeddings=RNG.normal(size=(6, 4)),
                       position_offset=2, pad_token_id=1, tokenizer_json='{"a": 1}')
    g = AttentionGraph(encoder=enc)
    g.add(op.Input("x", width=4))
    g.add(op.Output("o"), x="x")
    loaded = AttentionGraph.load(g.save(tmp_path / "g.tpg"))
    assert loaded.same_as(g) and loaded.encoder.same_as(enc)


def test_cycle_is_named():
    g = AttentionGraph()
    g.add(op.Input("x", width=4))
    g.add(op.Add("a"), a="x")
    g.add(op.Add("b"), a="a", b="x")
    g.connect("b", "a", "b")
    with pytest.raises(GraphError, match=r"cycle: .*a.*b"):
        g.validate()


def test_unconnected_port_is_named():
    g = AttentionGraph()
    g.add(op.Input("x", width=4))
    g.add(op.Add("sum"), a="x")
    g.add(op.Output("o"), x="sum")
    with pytest.raises(GraphError, match=r"node 'sum' \(add\): input port\(s\) b not connected"):
        g.validate()


def test_shape_mismatch_names_node_both_shapes_and_fix():
    g = AttentionGraph()
    g.add(op.Input("x", width=4))
    g.add(op.Linear("proj", weight=np.ones((3, 5))), x="x")
    g.add(op.Output("o"), x="proj")
    with pytest.raises(ShapeError) as info:
        g.validate()
    message = str(info.value)
    assert "'proj'" in message and "(4,)" in message and "(5,)" in message and "(out, in)" in message


def test_attention_head_mismatch():
    g = AttentionGraph()
    g.add(op.Input("x", width=8))
    g.add(op.Attention("attn", n_heads=2, n_kv_heads=2, head_dim=3), q="x", k="x", v="x")
    with pytest.raises(ShapeError, match=r"'attn'.*\(8,\).*\(6,\).*head_dim"):
        g.validate()


@pytest.mark.parametrize(
    "make, pattern",
    [
        (lambda: op.Linear("w", weight=np.array([[np.nan, 1.0]])), "NaN"),
        (lambda: op.Activation("a", function="tanh"), "unknown activation 'tanh'"),
        (lambda: op.Attention("h", n_heads=3, n_kv_heads=2, head_dim=4), "not a multiple"),
        (lambda: op.Rope("r", n_heads=1, head_dim=4, pairing="odd"), "unknown pairing"),
        (lambda: op.Linear("w", weight=np.ones((2, 3)), bias=np.ones(3)), r"bias has shape \(3,\)"),
    ],
)
def test_bad_attributes_are_rejected_on_add(make, pattern):
    with pytest.raises(NodeAttributeError, match=pattern):
        AttentionGraph().add(make())


def test_duplicate_and_unknown_names():
    g = AttentionGraph()
    g.add(op.Input("x", width=2))
    with pytest.raises(GraphError, match="already exists"):
        g.add(op.Input("x", width=2))
    with pytest.raises(GraphError, match="unknown node 'nope'"):
        g.add(op.Output("o"), x="nope")


def write_npz(path, **arrays):
    with open(path, "wb") as handle:
        np.savez(handle, **arrays)


def test_files_that_are_not_graphs(tmp_path):
    junk = tmp_path / "junk.tpg"
    junk.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(SerializationError, match="junk.tpg: not a tripartite-attention-graph file"):
        AttentionGraph.load(junk)
    with pytest.raises(SerializationError, match="no such file"):
        AttentionGraph.load(tmp_path / "missing.tpg")
    with pytest.raises(SerializationError, match="is a directory"):
        AttentionGraph.load(tmp_path)
    plain = tmp_path / "plain.npz"
    write_npz(plain, a=np.zeros(3))
    with pytest.raises(SerializationError, match="no structure entry"):
        AttentionGraph.load(plain)


def structure_blob(structure) -> np.ndarray:
    return np.frombuffer(json.dumps(structure).encode(), dtype=np.uint8)


def test_wrong_kind_newer_version_and_unknown_node(tmp_path):
    path = tmp_path / "g.tpg"
    write_npz(path, __structure__=structure_blob({"format": "tripartite-process-graph", "version": 1}))
    with pytest.raises(SerializationError, match="is a 'tripartite-process-graph' file"):
        AttentionGraph.load(path)
    write_npz(path, __structure__=structure_blob({"format": "tripartite-attention-graph", "version": 99}))
    with pytest.raises(SerializationError, match="version 99 is newer"):
        AttentionGraph.load(path)
    bad = {"format": "tripartite-attention-graph", "version": 1, "name": "m", "meta": {},
           "nodes": [{"kind": "teleport", "name": "t", "inputs": {}}], "extra": {}}
    write_npz(path, __structure__=structure_blob(bad))
    with pytest.raises(SerializationError, match="unknown attention graph node kind 'teleport'"):
        AttentionGraph.load(path)


def object_array_npy() -> bytes:
    """A .npy entry declaring an object array (whose payload numpy would unpickle), built by hand."""
    header = "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"
    header = header + " " * (63 - len(header) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header.encode() + b"\x80\x04N."


def test_pickled_object_arrays_are_refused(tmp_path):
    g = AttentionGraph()
    g.add(op.Input("x", width=2))
    g.add(op.Output("o"), x="x")
    path = g.save(tmp_path / "g.tpg")
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("extra/evil.npy", object_array_npy())
    with pytest.raises(SerializationError, match="corrupt"):
        AttentionGraph.load(path)


def test_truncated_file(tmp_path):
    g = AttentionGraph()
    g.add(op.Input("x", width=2))
    g.add(op.Output("o"), x="x")
    path = g.save(tmp_path / "g.tpg")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(SerializationError):
        AttentionGraph.load(path)
