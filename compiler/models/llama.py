"""LLaMA-family decoders: pre-RMSNorm blocks, rotary positions, grouped-query attention, SwiGLU.

Block with input x:  ``h = x + O(Attn(rope(Q n1(x)), rope(K n1(x)), V n1(x)))``,
``y = h + W_down(silu(W_gate n2(h)) * W_up n2(h))``; after the last block a final RMSNorm and the
output head ``logits = W_lm norm(y)`` (tied to the token embeddings or not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from compiler.attention import AttentionGraph
from compiler.attention import nodes as op
from compiler.encoder import InputEncoder
from compiler.models.common import Params, RandomParams


@dataclass
class LlamaConfig:
    vocab_size: int = 100
    hidden_size: int = 32
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 0
    intermediate_size: int = 64
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    hidden_act: str = "silu"
    max_position_embeddings: int = 128
    pad_token_id: int = 0

    def __post_init__(self):
        if not self.head_dim:
            self.head_dim = self.hidden_size // self.num_attention_heads


def build_llama(cfg: LlamaConfig, tensors, source: str = "llama", tokenizer_json: str | None = None) -> AttentionGraph:
    """Attention graph of a LLaMA decoder from tensors named as ``LlamaModel`` saves them
    (``embed_tokens.weight``, ``layers.N.*``, ``norm.weight``) plus ``lm_head.weight`` unless tied."""
    p = Params(tensors, source)
    H, I, D = cfg.hidden_size, cfg.intermediate_size, cfg.head_dim
    nq, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
    embed = p("embed_tokens.weight", (cfg.vocab_size, H))
    encoder = InputEncoder(token_embeddings=embed, pad_token_id=cfg.pad_token_id, tokenizer_json=tokenizer_json)
    g = AttentionGraph(name=source, meta={"family": "llama", "pooling": "last", "layer_outputs": [],
                                             "context_length": cfg.max_position_embeddings}, encoder=encoder)
    x = g.add(op.Input("input", width=H))
    for i in range(cfg.num_hidden_layers):
        L, n = f"layers.{i}.", f"layer{i}."

        def lin(name, key, src, shape, bias, L=L, n=n):
            b = p.optional(L + key + ".bias") if bias else None
            return g.add(op.Linear(n + name, weight=p(L + key + ".weight", shape), bias=b), x=src)

        h = g.add(op.RMSNorm(n + "attn.norm", weight=p(L + "input_layernorm.weight", (H,)), eps=cfg.rms_norm_eps), x=x)
        q = lin("attn.q", "self_attn.q_proj", h, (nq * D, H), cfg.attention_bias)
        k = lin("attn.k", "self_attn.k_proj", h, (nkv * D, H), cfg.attention_bias)
        v = lin("attn.v", "self_attn.v_proj", h, (nkv * D, H), cfg.attention_bias)
        q = g.add(op.Rope(n + "attn.q_rope", n_heads=nq, head_dim=D, base=cfg.rope_theta, pairing="half"), x=q)
        k = g.add(op.Rope(n + "attn.k_rope", n_heads=nkv, head_dim=D, base=cfg.rope_theta, pairing="half"), x=k)
        a = g.add(op.Attention(n + "attn", n_heads=nq, n_kv_heads=nkv, head_dim=D, scale=1.0 / math.sqrt(D),
                               causal=True), q=q, k=k, v=v)
        o = lin("attn.o", "self_attn.o_proj", a, (H, nq * D), cfg.attention_bias)
        x = g.add(op.Add(n + "attn.residual"), a=x, b=o)
        h = g.add(op.RMSNorm(n + "mlp.norm", weight=p(L + "post_attention_layernorm.weight", (H,)),
                             eps=cfg.rms_norm_eps), x=x)
        gate = lin("mlp.gate", "mlp.gate_proj", h, (I, H), cfg.mlp_bias)
        gate = g.add(op.Activation(n + "mlp.act", function=cfg.hidden_act), x=gate)
        up = lin("mlp.up", "mlp.up_proj", h, (I, H), cfg.mlp_bias)
        m = g.add(op.Mul(n + "mlp.gated"), a=gate, b=up)
        d = lin("mlp.down", "mlp.down_proj", m, (H, I), cfg.mlp_bias)
        x = g.add(op.Add(n + "mlp.residual"), a=x, b=d)
        g.meta["layer_outputs"].append(x)
    x = g.add(op.RMSNorm("final.norm", weight=p("norm.weight", (H,)), eps=cfg.rms_norm_eps), x=x)
    g.add(op.Output("output.hidden", role="hidden"), x=x)
    head = embed if cfg.tie_word_embeddings or not p.has("lm_head.weight") else p("lm_head.weight", (cfg.vocab_size, H))
    logits = g.add(op.Linear("lm_head", weight=head), x=x)
    g.add(op.Output("output.logits", role="logits"), x=logits)
    g.validate()
    return g


def random_llama(cfg: LlamaConfig | None = None, seed: int = 0) -> AttentionGraph:
    """A LLaMA decoder with deterministic random weights."""
    cfg = cfg or LlamaConfig()
    r = RandomParams(seed)
    H, I, D = cfg.hidden_size, cfg.intermediate_size, cfg.head_dim
    nq, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
    w = 1.0 / math.sqrt(H)
    r.normal("embed_tokens.weight", cfg.vocab_size, H, scale=1.0)
    for i in range(cfg.num_hidden_layers):
        L = f"layers.{i}."
        r.gain(L + "input_layernorm.weight", H)
        r.gain(L + "post_attention_layernorm.weight", H)
        for key, rows in (("q_proj", nq * D), ("k_proj", nkv * D), ("v_proj", nkv * D)):
            r.normal(L + "self_attn." + key + ".weight", rows, H, scale=w)
        r.normal(L + "self_attn.o_proj.weight", H, nq * D, scale=1.0 / math.sqrt(nq * D))
        r.normal(L + "mlp.gate_proj.weight", I, H, scale=w)
        r.normal(L + "mlp.up_proj.weight", I, H, scale=w)
        r.normal(L + "mlp.down_proj.weight", H, I, scale=1.0 / math.sqrt(I))
    r.gain("norm.weight", H)
    if not cfg.tie_word_embeddings:
        r.normal("lm_head.weight", cfg.vocab_size, H, scale=w)
    return build_llama(cfg, r, source=f"random-llama-seed{seed}")
