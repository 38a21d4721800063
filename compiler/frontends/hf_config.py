"""Hugging Face ``config.json`` documents mapped onto the family configurations of :mod:`compiler.models`.

Each family reads the keys its published checkpoints write, fills Hugging Face's defaults for absent
keys, and rejects every option whose arithmetic the builders do not implement, saying what is
supported.
"""

from __future__ import annotations

from typing import Any

from compiler.errors import FrontendError
from compiler.models import BertConfig, Gpt2Config, LlamaConfig

# Hugging Face activation names -> attention-graph activation functions.  ``gelu_fast`` is the tanh
# approximation written as x c (1 + 0.044715 x^2), the same function as ``gelu_new``.
ACTIVATIONS = {
    "gelu": "gelu_erf",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "silu": "silu",
    "swish": "silu",
    "relu": "relu",
}


class ConfigReader:
    """Typed access to a parsed ``config.json`` whose errors name the file and the key."""

    def __init__(self, document: Any, where: str):
        if not isinstance(document, dict):
            raise FrontendError(f"{where}: expected a JSON object, got {type(document).__name__}")
        self.doc = document
        self.where = where

    def get(self, key: str, default: Any = None) -> Any:
        value = self.doc.get(key)
        return default if value is None else value

    def integer(self, key: str, default: int | None = None) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise FrontendError(f"{self.where}: {key!r} must be a non-negative integer, got {value!r}")
        return value

    def number(self, key: str, default: float | None = None) -> float:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise FrontendError(f"{self.where}: {key!r} must be a number, got {value!r}")
        return float(value)

    def activation(self, key: str, default: str) -> str:
        name = self.get(key, default)
        if not isinstance(name, str) or name not in ACTIVATIONS:
            raise FrontendError(
                f"{self.where}: {key}={name!r} is not supported; supported: {', '.join(ACTIVATIONS)}"
            )
        return ACTIVATIONS[name]

    def require(self, key: str, allowed: tuple, default: Any) -> None:
        """Reject a value of ``key`` other than those in ``allowed``."""
        value = self.get(key, default)
        if value not in allowed:
            shown = " or ".join(repr(a) for a in allowed)
            raise FrontendError(f"{self.where}: {key}={value!r} is not supported; only {shown}")

    def divides(self, whole: str, part: str) -> None:
        if self.integer(part) == 0 or self.integer(whole) % self.integer(part):
            raise FrontendError(f"{self.where}: {whole}={self.get(whole)} is not a multiple of {part}={self.get(part)}")


def bert_config(c: ConfigReader) -> BertConfig:
    """BERT encoders: absolute positions, bidirectional self-attention only."""
    c.require("position_embedding_type", ("absolute",), "absolute")
    c.require("is_decoder", (False,), False)
    c.require("add_cross_attention", (False,), False)
    c.divides("hidden_size", "num_attention_heads")
    return BertConfig(
        vocab_size=c.integer("vocab_size"),
        hidden_size=c.integer("hidden_size"),
        num_hidden_layers=c.integer("num_hidden_layers"),
        num_attention_heads=c.integer("num_attention_heads"),
        intermediate_size=c.integer("intermediate_size"),
        max_position_embeddings=c.integer("max_position_embeddings", 512),
        type_vocab_size=c.integer("type_vocab_size", 2),
        layer_norm_eps=c.number("layer_norm_eps", 1e-12),
        hidden_act=c.activation("hidden_act", "gelu"),
        pad_token_id=c.integer("pad_token_id", 0),
    )


def rope_theta(c: ConfigReader) -> float:
    """The RoPE base from ``rope_parameters`` (transformers 5) or ``rope_theta``/``rope_scaling`` (4.x).

    Only the default rotary embedding, ``theta_i = base^(-2i/d)`` over the whole head, is supported.
    """
    params = c.get("rope_parameters") or c.get("rope_scaling") or {}
    if not isinstance(params, dict):
        raise FrontendError(f"{c.where}: rope_parameters must be an object, got {params!r}")
    if any(isinstance(value, dict) for value in params.values()):
        raise FrontendError(f"{c.where}: per-layer-type rope_parameters are not supported; only one default rope")
    kind = params.get("rope_type", params.get("type", "default"))
    if kind != "default":
        raise FrontendError(
            f"{c.where}: rope type {kind!r} is not supported; only 'default' rotary embeddings "
            "(no scaling: remove rope_scaling or set rope_type to 'default')"
        )
    factor = params.get("partial_rotary_factor", c.get("partial_rotary_factor", 1.0))
    if factor != 1.0:
        raise FrontendError(f"{c.where}: partial_rotary_factor={factor} is not supported; only 1.0")
    theta = params.get("rope_theta", c.get("rope_theta", 10000.0))
    if isinstance(theta, bool) or not isinstance(theta, (int, float)) or theta <= 1:
        raise FrontendError(f"{c.where}: rope_theta must be a number > 1, got {theta!r}")
    return float(theta)


def llama_config(c: ConfigReader) -> LlamaConfig:
    """LLaMA decoders: grouped-query attention, explicit or implied head_dim, default RoPE."""
    heads = c.integer("num_attention_heads")
    kv_heads = c.integer("num_key_value_heads", heads)
    if kv_heads == 0 or heads % kv_heads:
        raise FrontendError(
            f"{c.where}: num_attention_heads={heads} is not a multiple of num_key_value_heads={kv_heads}"
        )
    head_dim = c.integer("head_dim", 0)
    if not head_dim:
        c.divides("hidden_size", "num_attention_heads")
    return LlamaConfig(
        vocab_size=c.integer("vocab_size"),
        hidden_size=c.integer("hidden_size"),
        num_hidden_layers=c.integer("num_hidden_layers"),
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=c.integer("intermediate_size"),
        rms_norm_eps=c.number("rms_norm_eps", 1e-6),
        rope_theta=rope_theta(c),
        tie_word_embeddings=bool(c.get("tie_word_embeddings", False)),
        attention_bias=bool(c.get("attention_bias", False)),
        mlp_bias=bool(c.get("mlp_bias", False)),
        hidden_act=c.activation("hidden_act", "silu"),
        max_position_embeddings=c.integer("max_position_embeddings", 2048),
        pad_token_id=c.integer("pad_token_id", 0),
    )


def gpt2_config(c: ConfigReader) -> Gpt2Config:
    """GPT-2 decoders: attention scaled by 1/sqrt(head_dim), no cross-attention."""
    c.require("scale_attn_weights", (True,), True)
    c.require("scale_attn_by_inverse_layer_idx", (False,), False)
    c.require("add_cross_attention", (False,), False)
    c.divides("n_embd", "n_head")
    return Gpt2Config(
        vocab_size=c.integer("vocab_size"),
        n_embd=c.integer("n_embd"),
        n_layer=c.integer("n_layer"),
        n_head=c.integer("n_head"),
        n_positions=c.integer("n_positions", 1024),
        n_inner=c.integer("n_inner", 0),
        layer_norm_epsilon=c.number("layer_norm_epsilon", 1e-5),
        activation_function=c.activation("activation_function", "gelu_new"),
    )
