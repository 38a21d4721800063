"""BERT-family encoders: post-LayerNorm blocks with a GELU MLP (BERT, MiniLM, RoBERTa-like).

Block ``l`` with input x:  ``a = LN1(x + O(Attn(Q x, K x, V x)))``,  ``y = LN2(a + W2 gelu(W1 a))``.
The embedding LayerNorm follows the host-side input encoder inside the graph.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from compiler.attention import AttentionGraph
from compiler.attention import nodes as op
from compiler.encoder import InputEncoder
from compiler.models.common import Params, RandomParams


@dataclass
class BertConfig:
    vocab_size: int = 100
    hidden_size: int = 32
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 64
    max_position_embeddings: int = 64
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_act: str = "gelu_erf"
    pad_token_id: int = 0

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


def build_bert(cfg: BertConfig, tensors, source: str = "bert", tokenizer_json: str | None = None) -> AttentionGraph:
    """Attention graph of a BERT encoder from Hugging Face-named tensors (``embeddings.*``, ``encoder.*``)."""
    p = Params(tensors, source)
    H, I = cfg.hidden_size, cfg.intermediate_size
    encoder = InputEncoder(
        token_embeddings=p("embeddings.word_embeddings.weight", (cfg.vocab_size, H)),
        position_embeddings=p("embeddings.position_embeddings.weight"),
        token_type_embeddings=p.optional("embeddings.token_type_embeddings.weight"),
        pad_token_id=cfg.pad_token_id,
        tokenizer_json=tokenizer_json,
    )
    g = AttentionGraph(name=source, meta={"family": "bert", "pooling": "mean", "layer_outputs": []}, encoder=encoder)
    x = g.add(op.Input("input", width=H))
    x = g.add(op.LayerNorm("embeddings.norm", weight=p("embeddings.LayerNorm.weight", (H,)),
                           bias=p("embeddings.LayerNorm.bias", (H,)), eps=cfg.layer_norm_eps), x=x)
    for i in range(cfg.num_hidden_layers):
        L = f"encoder.layer.{i}."
        n = f"layer{i}."

        def lin(name, key, src, shape, L=L, n=n):
            weight, bias = p(L + key + ".weight", shape), p.optional(L + key + ".bias")
            return g.add(op.Linear(n + name, weight=weight, bias=bias), x=src)

        q = lin("attn.q", "attention.self.query", x, (H, H))
        k = lin("attn.k", "attention.self.key", x, (H, H))
        v = lin("attn.v", "attention.self.value", x, (H, H))
        a = g.add(op.Attention(n + "attn", n_heads=cfg.num_attention_heads, n_kv_heads=cfg.num_attention_heads,
                               head_dim=cfg.head_dim, scale=1.0 / math.sqrt(cfg.head_dim)), q=q, k=k, v=v)
        o = lin("attn.o", "attention.output.dense", a, (H, H))
        r = g.add(op.Add(n + "attn.residual"), a=x, b=o)
        x = g.add(op.LayerNorm(n + "attn.norm", weight=p(L + "attention.output.LayerNorm.weight", (H,)),
                               bias=p(L + "attention.output.LayerNorm.bias", (H,)), eps=cfg.layer_norm_eps), x=r)
        h = lin("mlp.up", "intermediate.dense", x, (I, H))
        h = g.add(op.Activation(n + "mlp.act", function=cfg.hidden_act), x=h)
        d = lin("mlp.down", "output.dense", h, (H, I))
        r = g.add(op.Add(n + "mlp.residual"), a=x, b=d)
        x = g.add(op.LayerNorm(n + "mlp.norm", weight=p(L + "output.LayerNorm.weight", (H,)),
                               bias=p(L + "output.LayerNorm.bias", (H,)), eps=cfg.layer_norm_eps), x=r)
        g.meta["layer_outputs"].append(x)
    g.add(op.Output("output.hidden", role="hidden"), x=x)
    g.validate()
    return g


def random_bert(cfg: BertConfig | None = None, seed: int = 0) -> AttentionGraph:
    """A BERT encoder with deterministic random weights."""
    cfg = cfg or BertConfig()
    r = RandomParams(seed)
    H, I = cfg.hidden_size, cfg.intermediate_size
    r.normal("embeddings.word_embeddings.weight", cfg.vocab_size, H, scale=1.0)
    r.normal("embeddings.position_embeddings.weight", cfg.max_position_embeddings, H, scale=0.5)
    r.normal("embeddings.token_type_embeddings.weight", cfg.type_vocab_size, H, scale=0.5)
    r.gain("embeddings.LayerNorm.weight", H)
    r.normal("embeddings.LayerNorm.bias", H)
    w = 1.0 / math.sqrt(H)
    for i in range(cfg.num_hidden_layers):
        L = f"encoder.layer.{i}."
        for key in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            r.normal(L + key + ".weight", H, H, scale=w)
            r.normal(L + key + ".bias", H)
        r.normal(L + "intermediate.dense.weight", I, H, scale=w)
        r.normal(L + "intermediate.dense.bias", I)
        r.normal(L + "output.dense.weight", H, I, scale=1.0 / math.sqrt(I))
        r.normal(L + "output.dense.bias", H)
        for key in ("attention.output.LayerNorm", "output.LayerNorm"):
            r.gain(L + key + ".weight", H)
            r.normal(L + key + ".bias", H)
    return build_bert(cfg, r, source=f"random-bert-seed{seed}")
