"""Import of llama.cpp GGUF files (LLaMA family) as attention graphs, without torch.

A GGUF file holds metadata (``general.architecture``, ``llama.*`` hyper-parameters, ``tokenizer.*``)
and tensors named ``token_embd.weight``, ``blk.N.attn_q.weight`` ..., each stored as float or as a
block-quantized type.  ``load_gguf(path)`` reads it with the ``gguf`` package (llama.cpp's own reader),
dequantizes every tensor to float32 with ``gguf.quants.dequantize`` and maps the names onto those
:func:`compiler.models.build_llama` reads.

llama.cpp stores the Q and K projections with their rows permuted for its interleaved rotary
embedding: within each head of ``d`` rows, row ``2i + s`` of the file is row ``i + s d/2`` of the
Hugging Face layout (``s`` in {0, 1}).  :func:`unpermute_rows` undoes it (biases included), so the
graph applies rotary embedding in the ``half`` pairing like the checkpoint the file was made from.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

import numpy as np

from compiler.attention import AttentionGraph
from compiler.errors import FrontendError, GraphError
from compiler.frontends.gguf_bounds import check_metadata_bounds
from compiler.frontends.gguf_tokenizer import encoder_special, tokenizer_json
from compiler.frontends.hf_config import ConfigReader
from compiler.models import LlamaConfig, build_llama

ARCHITECTURES = ("llama",)
GLOBAL_TENSORS = {
    "token_embd.weight": "embed_tokens.weight",
    "output_norm.weight": "norm.weight",
    "output.weight": "lm_head.weight",
}
BLOCK_TENSORS = {
    "attn_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}
BLOCK_NAME = re.compile(r"blk\.(\d+)\.(.+)")
READ_ERRORS = (ValueError, IndexError, KeyError, TypeError, OverflowError, OSError, struct.error, UnicodeDecodeError)


def open_gguf(path: Path):
    """A ``gguf.GGUFReader`` over ``path``, or a one-line error for a missing, foreign or truncated file."""
    if not path.exists():
        raise FrontendError(f"{path}: no such file or directory")
    if not path.is_file():
        raise FrontendError(f"{path}: not a regular file; give a .gguf model file")
    with open(path, "rb") as handle:
        if handle.read(4) != b"GGUF":
            raise FrontendError(f"{path}: not a GGUF file (no 'GGUF' magic at the start)")
    import gguf

    check_metadata_bounds(path)
    try:
        return gguf.GGUFReader(str(path))
    except READ_ERRORS as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise FrontendError(f"{path}: truncated or corrupt GGUF file ({detail}); download it again") from exc


def read_metadata(reader, path: Path) -> dict[str, Any]:
    """Every metadata field as a Python value (strings, numbers, booleans, lists).

    A float32 field holds the float32 rounding of the decimal its converter was given (1e-6 is stored as
    9.99999997e-07); it is read back as the shortest decimal with the same float32 value (1e-6).
    """
    import gguf

    values = {}
    for name, field in reader.fields.items():
        if name.startswith("GGUF."):
            continue
        try:
            value = field.contents()
        except READ_ERRORS as exc:
            raise FrontendError(f"{path}: metadata field {name!r} is corrupt ({exc})") from exc
        if field.types == [gguf.GGUFValueType.FLOAT32]:
            value = float(str(np.float32(value)))
        values[name] = value
    return values


def unpermute_rows(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """Undo llama.cpp's rotary row permutation of a Q or K weight (rows, in) or bias (rows,).

    Per head the file's row ``2i + s`` holds the checkpoint's row ``i + s d/2``.
    """
    d = weight.shape[0] // n_heads
    split = weight.reshape(n_heads, d // 2, 2, *weight.shape[1:])
    return np.ascontiguousarray(split.swapaxes(1, 2).reshape(weight.shape))


def checkpoint_name(name: str, path: Path) -> str:
    """The ``LlamaModel`` name of the GGUF tensor ``name``.

    ``blk.3.attn_q.weight`` -> ``layers.3.self_attn.q_proj.weight``, ``token_embd.weight`` ->
    ``embed_tokens.weight`` ...; any other name is refused.
    """
    if name in GLOBAL_TENSORS:
        return GLOBAL_TENSORS[name]
    match = BLOCK_NAME.fullmatch(name)
    if match:
        layer, rest = match.groups()
        for key, target in BLOCK_TENSORS.items():
            if rest == key:
                return f"layers.{layer}.{target}"
            if rest in (key + ".weight", key + ".bias"):
                return f"layers.{layer}.{target}{rest[len(key):]}"
    raise FrontendError(
        f"{path}: tensor {name!r} is not part of a plain LLaMA decoder (rope scaling tables, experts and "
        "extra norms are not supported)"
    )


def dequantized(tensor, path: Path) -> np.ndarray:
    """The float32 values of one GGUF tensor, shaped (rows, columns) as the checkpoint stores it."""
    from gguf import quants

    kind = tensor.tensor_type
    try:
        values = quants.dequantize(np.asarray(tensor.data), kind)
    except NotImplementedError as exc:
        raise FrontendError(
            f"{path}: tensor {tensor.name!r} is stored as {kind.name}, which the gguf package cannot dequantize; "
            "use a file quantized as F32, F16, BF16, Q8_0, Q4_0/1, Q5_0/1 or the K-quants"
        ) from exc
    except READ_ERRORS as exc:
        raise FrontendError(f"{path}: tensor {tensor.name!r} ({kind.name}) is corrupt ({exc})") from exc
    shape = tuple(int(n) for n in reversed(tensor.shape.tolist()))
    values = np.asarray(values, dtype=np.float32).reshape(shape)
    if not np.all(np.isfinite(values)):
        raise FrontendError(f"{path}: tensor {tensor.name!r} holds NaN or infinite values; the file is corrupt")
    return values


def llama_config(meta: ConfigReader, tensors: dict[str, np.ndarray]) -> LlamaConfig:
    """The LLaMA configuration written in the ``llama.*`` metadata (heads, widths, RoPE, norm epsilon)."""
    heads = meta.integer("llama.attention.head_count")
    kv_heads = meta.integer("llama.attention.head_count_kv", heads)
    if not heads or not kv_heads or heads % kv_heads:
        raise FrontendError(f"{meta.where}: llama.attention.head_count={heads} is not a multiple of "
                            f"llama.attention.head_count_kv={kv_heads}")
    hidden = meta.integer("llama.embedding_length")
    head_dim = meta.integer("llama.attention.key_length", hidden // heads)
    for key in ("llama.attention.value_length", "llama.rope.dimension_count"):
        if meta.integer(key, head_dim) != head_dim:
            raise FrontendError(f"{meta.where}: {key}={meta.get(key)} differs from the head size {head_dim}; "
                                "only full rotary embeddings with equal key and value sizes are supported")
    scaling = meta.get("llama.rope.scaling.type", "none")
    if scaling != "none" or meta.number("llama.rope.scaling.factor", 1.0) != 1.0:
        raise FrontendError(f"{meta.where}: llama.rope.scaling.type={scaling!r} is not supported; only unscaled RoPE")
    if meta.integer("llama.expert_count", 0):
        raise FrontendError(f"{meta.where}: llama.expert_count={meta.get('llama.expert_count')}: "
                            "mixture-of-experts models are not supported")
    vocab = int(tensors["embed_tokens.weight"].shape[0]) if "embed_tokens.weight" in tensors else 0
    return LlamaConfig(
        vocab_size=meta.integer("llama.vocab_size", vocab),
        hidden_size=hidden,
        num_hidden_layers=meta.integer("llama.block_count"),
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=meta.integer("llama.feed_forward_length"),
        rms_norm_eps=meta.number("llama.attention.layer_norm_rms_epsilon", 1e-5),
        rope_theta=meta.number("llama.rope.freq_base", 10000.0),
        tie_word_embeddings="lm_head.weight" not in tensors,
        attention_bias="layers.0.self_attn.q_proj.bias" in tensors,
        mlp_bias="layers.0.mlp.gate_proj.bias" in tensors,
        max_position_embeddings=meta.integer("llama.context_length", 2048),
        pad_token_id=meta.integer("tokenizer.ggml.padding_token_id", 0),
    )


def read_tensors(reader, path: Path, heads: int, kv_heads: int) -> dict[str, np.ndarray]:
    """Every tensor under its ``LlamaModel`` name, dequantized, Q and K rows back in checkpoint order."""
    tensors = {}
    for tensor in reader.tensors:
        name = checkpoint_name(tensor.name, path)
        values = dequantized(tensor, path)
        if ".q_proj." in name or ".k_proj." in name:
            n = heads if ".q_proj." in name else kv_heads
            if values.shape[0] % (2 * n):
                raise FrontendError(f"{path}: tensor {tensor.name!r} has {values.shape[0]} rows, "
                                    f"not a multiple of 2 x {n} heads")
            values = unpermute_rows(values, n)
        tensors[name] = values
    return tensors


def load_gguf(path: str | Path) -> AttentionGraph:
    """Import the LLaMA-family GGUF file ``path``.

    Returns an attention graph with the dequantized weights, an input encoder carrying the tokenizer
    built from ``tokenizer.ggml.*`` and, in ``encoder.special``, the bos/eos/pad ids and the chat
    template; ``meta`` names the ``source``, ``model_type`` (``llama``), ``output_head`` and the
    storage types of the file's tensors (``gguf_types``).
    """
    path = Path(path)
    reader = open_gguf(path)
    values = read_metadata(reader, path)
    meta = ConfigReader(values, str(path))
    arch = values.get("general.architecture")
    if arch not in ARCHITECTURES:
        raise FrontendError(f"{path}: general.architecture={arch!r} is not supported; supported: "
                            f"{', '.join(ARCHITECTURES)}")
    heads = meta.integer("llama.attention.head_count")
    tensors = read_tensors(reader, path, heads, meta.integer("llama.attention.head_count_kv", heads) or heads)
    config = llama_config(meta, tensors)
    try:
        graph = build_llama(config, tensors, source=str(path), tokenizer_json=tokenizer_json(values, str(path)))
        graph.validate()
    except GraphError as exc:
        raise FrontendError(f"{path}: tensors do not form a valid LLaMA graph: {exc}") from exc
    graph.encoder.special.update(encoder_special(values))
    graph.name = str(values.get("general.name") or path.stem)
    types = sorted({t.tensor_type.name for t in reader.tensors})
    graph.meta.update({"source": str(path.resolve()), "model_type": "llama", "gguf_types": types,
                       "output_head": "tied" if config.tie_word_embeddings else "untied"})
    return graph
