"""The ONNX front end against onnxruntime on the committed exports (tests/fixtures/make_onnx_fixtures.py).

For every export: the imported graph's float32 reference and the compiled network on the golden
simulator (float32) agree with onnxruntime running the same file on the same token ids (two
sequences, the second right-padded) to a relative error <= 1e-5; the graph has the block structure
the export encodes (attention heads, grouped-query heads, causal masks, RoPE base).  Refusals are
checked by message: unsupported op types, unmatched attention, corrupt and truncated files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from compiler.api import compile as compile_model
from compiler.errors import FrontendError
from compiler.frontends.onnx_import import load_onnx
from compiler.frontends.source import load_source
from compiler.passes.base import CompileOptions
from compiler.passes.match_attention import MatchAttention
from runtime.inputs import from_ids
from runtime.onnx_reference import onnx_outputs
from runtime.reference import mean_pool, run_reference
from runtime.run import run

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "onnx"
RTOL = 1e-5
# export -> (output role compared, heads, kv heads, causal, batch size onnxruntime accepts)
EXPORTS = {
    "bert_dynamo": ("hidden", 4, 4, False),
    "bert_legacy": ("hidden", 4, 4, False),
    "bert_opset23": ("hidden", 4, 4, False),
    "bert_ort": ("hidden", 4, 4, False),
    "sentence": ("hidden", 4, 4, False),
    "llama_dynamo": ("logits", 4, 2, True),
    "llama_legacy": ("logits", 4, 2, True),
    "llama_opset23": ("logits", 4, 2, True),
    "llama_ort": ("logits", 4, 2, True),
    "gpt2_dynamo": ("logits", 4, 4, True),
    "gpt2_legacy": ("logits", 4, 4, True),
    "gpt2_ort": ("logits", 4, 4, True),
}


def model(name: str) -> Path:
    return FIXTURES / name / "model.onnx"


def batch_for(graph):
    rng = np.random.default_rng(7)
    ids = rng.integers(4, graph.encoder.vocab_size, size=(2, 9))
    mask = np.ones(ids.shape, bool)
    mask[1, 5:] = False
    ids[1, 5:] = 0
    return from_ids(graph.encoder, ids, mask)


def rel_err(got, want, mask) -> float:
    a, b = np.asarray(got, np.float64)[mask], np.asarray(want, np.float64)[mask]
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


@pytest.fixture(scope="module")
def imported():
    return {name: load_onnx(model(name)) for name in EXPORTS}


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_reference_and_golden_match_onnxruntime(imported, name):
    graph = imported[name]
    role = EXPORTS[name][0]
    batch = batch_for(graph)
    ort, kind = onnx_outputs(model(name), graph, batch)
    assert kind == "onnxruntime" and role in ort
    ours = run_reference(graph, batch.x, batch.mask, "float32").outputs[role]
    assert rel_err(ours, ort[role], batch.mask) <= RTOL
    net = compile_model(graph, precision="float32", max_tokens=16)
    golden = run(net, batch, backend="golden").outputs[role]
    assert rel_err(golden, ort[role], batch.mask) <= RTOL


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_attention_matches_as_in_the_export(imported, name):
    _, heads, kv_heads, causal = EXPORTS[name]
    graph = MatchAttention().run(imported[name], CompileOptions())
    attention = graph.of_kind("attention")
    assert [a.name for a in attention] == ["layer0.attn", "layer1.attn"]
    for a in attention:
        assert (a.n_heads, a.n_kv_heads, a.head_dim, a.causal, a.use_padding_mask) == (heads, kv_heads, 8, causal, True)
        assert a.scale == pytest.approx(8 ** -0.5, rel=1e-6)
    assert len(graph.meta["layer_outputs"]) == 2
    assert graph.meta["pooling"] == ("last" if causal else "mean")
    if name.startswith("llama"):
        ropes = graph.of_kind("rope")
        assert len(ropes) == 4 and all(r.base == pytest.approx(10000.0) and r.pairing == "half" for r in ropes)
        assert graph.inputs_of("layer0.attn")["q"] == "layer0.attn.q_rope"


def test_weights_are_the_exported_ones(imported):
    """The dynamo export (weights renamed val_N, pre-transposed) and the legacy one (onnx::MatMul_N)
    import to the same numbers."""
    dynamo, legacy = imported["bert_dynamo"], imported["bert_legacy"]
    assert set(dynamo.g.nodes) == set(legacy.g.nodes)
    for name in dynamo.g.nodes:
        a, b = dynamo.node(name), legacy.node(name)
        for field in ("weight", "bias"):
            if getattr(a, field, None) is not None:
                np.testing.assert_allclose(getattr(a, field), getattr(b, field), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(dynamo.encoder.token_embeddings, legacy.encoder.token_embeddings)
    np.testing.assert_array_equal(dynamo.encoder.position_embeddings, legacy.encoder.position_embeddings)


def test_sentence_export_roles_and_pooling(imported):
    graph = imported["sentence"]
    assert graph.meta["onnx_outputs"] == {"last_hidden_state": "hidden", "sentence_embedding": "embeddings"}
    assert graph.meta["pooling"] == "mean" and graph.meta["normalize"] is True
    batch = batch_for(graph)
    ort, _ = onnx_outputs(model("sentence"), graph, batch)
    hidden = run_reference(graph, batch.x, batch.mask, "float64").outputs["hidden"]
    np.testing.assert_allclose(mean_pool(hidden, batch.mask), ort["embeddings"], rtol=0, atol=1e-6)


def test_tokenizer_beside_the_file_is_embedded(imported):
    assert imported["bert_dynamo"].encoder.tokenizer_json is not None
    assert imported["bert_legacy"].encoder.tokenizer_json is None


def test_load_source_dispatches_onnx(imported):
    assert load_source(model("gpt2_ort")).same_as(imported["gpt2_ort"])


# ---- refusals ------------------------------------------------------------------------------------
def tiny_graph(tmp_path, body, outputs, extra_inits=()):
    """A hand-written ONNX graph: input_ids -> embedding (vocab 8, width 4) -> ``body``."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "table"),
             *extra_inits]
    nodes = [helper.make_node("Gather", ["table", "input_ids"], ["x"], name="embed")] + body
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "T"])],
                              [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs], inits)
    path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(path))
    return path


def test_unsupported_ops_are_listed_with_their_nodes(tmp_path):
    from onnx import helper

    body = [helper.make_node("Hardmax", ["x"], ["h"], name="odd_one"),
            helper.make_node("TopK", ["h", "k"], ["v", "i"], name="odd_two")]
    k = __import__("onnx").numpy_helper.from_array(np.array([2], np.int64), "k")
    path = tiny_graph(tmp_path, body, ["v"], [k])
    with pytest.raises(FrontendError) as err:
        load_onnx(path)
    message = str(err.value)
    assert "unsupported ONNX op types" in message and "Hardmax (odd_one)" in message and "TopK (odd_two)" in message
    assert "\n" not in message


def test_softmax_over_features_names_the_softmax(tmp_path):
    from onnx import helper, numpy_helper

    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    body = [helper.make_node("MatMul", ["x", "w"], ["y"], name="proj"),
            helper.make_node("Softmax", ["y"], ["p"], name="the_softmax", axis=-1)]
    with pytest.raises(FrontendError, match=r"'the_softmax' \(Softmax\) is not over attention scores: its input "
                                            r"comes from MatMul node 'proj'"):
        load_onnx(tiny_graph(tmp_path, body, ["p"], [w]))


def test_graph_without_attention_is_refused(tmp_path):
    from onnx import helper

    path = tiny_graph(tmp_path, [helper.make_node("Relu", ["x"], ["y"], name="act")], ["y"])
    with pytest.raises(FrontendError, match="no attention found"):
        load_onnx(path)


def test_attention_bias_is_refused(tmp_path):
    """An additive score bias that is neither a padding nor a causal mask names the node that adds it."""
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(model("bert_legacy")))
    add = next(n for n in proto.graph.node if n.op_type == "Add" and n.input[0].endswith("self/Mul_output_0"))
    bias = numpy_helper.from_array(np.full((1, 1, 1, 1), 0.5, np.float32), "score_bias")
    proto.graph.initializer.append(bias)
    add.input[1] = "score_bias"
    path = tmp_path / "biased.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(FrontendError, match=f"'{add.name}' \\(Add\\) adds a bias to attention scores"):
        load_onnx(path)


@pytest.mark.parametrize("content, needle", [
    (b"\x08\x07\x12\x00garbage \xff\xfe not protobuf" * 3, "not a readable ONNX model"),
    (b"", "not an ONNX model"),
    (b"hello, world\n", "ONNX model"),
])
def test_corrupt_files_give_one_line(tmp_path, content, needle):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(FrontendError, match=needle) as err:
        load_onnx(path)
    assert "\n" not in str(err.value) and "bad.onnx" in str(err.value)


def test_truncated_file_and_missing_weights(tmp_path):
    data = model("gpt2_legacy").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(FrontendError, match="cut.onnx: not a readable ONNX model"):
        load_onnx(tmp_path / "cut.onnx")
    shutil.copy(model("llama_dynamo"), tmp_path / "model.onnx")
    with pytest.raises(FrontendError, match="external weight file missing"):
        load_onnx(tmp_path / "model.onnx")


def test_nan_weights_name_the_onnx_node(tmp_path):
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(model("gpt2_legacy")))
    init = next(i for i in proto.graph.initializer if list(i.dims) == [32, 128])
    array = numpy_helper.to_array(init).copy()
    array[0, 0] = np.nan
    init.CopyFrom(numpy_helper.from_array(array, init.name))
    onnx.save(proto, str(tmp_path / "nan.onnx"))
    with pytest.raises(FrontendError, match=r"nan.onnx: node '.*mlp/c_fc.*' \(Gemm\) does not map onto a valid "
                                            r"node: .*NaN"):
        load_onnx(tmp_path / "nan.onnx")


def test_single_head_attention_on_token_vectors(tmp_path):
    """A float input of token vectors (no embeddings) and one attention head without head reshapes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), name) for name in "qkv"]
    inits.append(numpy_helper.from_array(np.array(0.5, np.float32), "half"))
    nodes = [helper.make_node("MatMul", ["x", n], [n + "_out"], name="proj_" + n) for n in "qkv"]
    nodes += [helper.make_node("Transpose", ["k_out"], ["kt"], perm=[0, 2, 1], name="kt"),
              helper.make_node("MatMul", ["q_out", "kt"], ["s"], name="scores"),
              helper.make_node("Mul", ["s", "half"], ["s2"], name="scale"),
              helper.make_node("Softmax", ["s2"], ["p"], axis=-1, name="softmax"),
              helper.make_node("MatMul", ["p", "v_out"], ["y"], name="mix"),
              helper.make_node("Add", ["y", "x"], ["out"], name="residual")]
    graph = helper.make_graph(nodes, "one_head", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "T", 4])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], inits)
    path = tmp_path / "one_head.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)]), str(path))
    imported = MatchAttention().run(load_onnx(path), CompileOptions())
    (att,) = imported.of_kind("attention")
    assert (att.n_heads, att.head_dim, att.scale, att.causal, att.use_padding_mask) == (1, 4, 0.5, False, False)
    assert imported.encoder is None
    import onnxruntime

    x = rng.standard_normal((1, 5, 4)).astype(np.float32)
    want = onnxruntime.InferenceSession(str(path)).run(None, {"x": x})[0]
    got = run_reference(imported, x, np.ones((1, 5), bool), "float32").outputs["hidden"]
    assert rel_err(got, want, np.ones((1, 5), bool)) <= RTOL


def wiring(graph) -> dict:
    return {name: (graph.node(name).kind, graph.inputs_of(name)) for name in graph.g.nodes}


@pytest.mark.parametrize("name", sorted(EXPORTS))
def test_matched_graph_is_wired_as_the_builders_wire_it(imported, name):
    """After match_attention an imported export has the in-code builder's nodes, names and wiring."""
    from compiler.models import BertConfig, Gpt2Config, LlamaConfig, random_bert, random_gpt2, random_llama

    builders = {
        "bert": lambda: random_bert(BertConfig(vocab_size=48, intermediate_size=48, max_position_embeddings=16)),
        "sentence": lambda: random_bert(BertConfig(vocab_size=48, intermediate_size=48, max_position_embeddings=16)),
        "llama": lambda: random_llama(LlamaConfig(vocab_size=48, intermediate_size=48)),
        "gpt2": lambda: random_gpt2(Gpt2Config(vocab_size=48, n_positions=16)),
    }
    built = builders[name.split("_")[0]]()
    graph = MatchAttention().run(imported[name], CompileOptions())
    assert wiring(graph) == wiring(built)
    assert graph.meta["layer_outputs"] == built.meta["layer_outputs"]


def test_cache_inputs_are_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    proto = onnx.load(str(model("gpt2_legacy")))
    proto.graph.input.append(helper.make_tensor_value_info("past_key_values.0.key", TensorProto.FLOAT, [1, 4, 0, 8]))
    onnx.save(proto, str(tmp_path / "cached.onnx"))
    with pytest.raises(FrontendError, match=r"graph input 'past_key_values.0.key' is not one of input_ids.*"
                                            r"key/value caches are not supported"):
        load_onnx(tmp_path / "cached.onnx")
