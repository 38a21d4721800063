"""GPT-2-family decoders: pre-LayerNorm blocks, learned positions, tanh-GELU MLP, tied output head.

Block with input x:  ``h = x + P(Attn(split(C ln1(x))))``,  ``y = h + W2 gelu_tanh(W1 ln2(h))``; then
``ln_f`` and ``logits = E_tok ln_f(y)``.  GPT-2 stores its projections as Conv1D (in, out) matrices;
the fused ``c_attn`` splits into the query, key and value synapse groups.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from compiler.attention import AttentionGraph
from compiler.attention import nodes as op
from compiler.encoder import InputEncoder
from compiler.models.common import Params, RandomParams


@dataclass
class Gpt2Config:
    vocab_size: int = 100
    n_embd: int = 32
    n_layer: int = 2
    n_head: int = 4
    n_positions: int = 64
    n_inner: int = 0
    layer_norm_epsilon: float = 1e-5
    activation_function: str = "gelu_tanh"

    def __post_init__(self):
        if not self.n_inner:
            self.n_inner = 4 * self.n_embd


def build_gpt2(cfg: Gpt2Config, tensors, source: str = "gpt2", tokenizer_json: str | None = None) -> AttentionGraph:
    """Attention graph of GPT-2 from tensors named as ``GPT2Model`` saves them (``wte.weight``, ``h.N.*``)."""
    p = Params(tensors, source)
    H, I, nh = cfg.n_embd, cfg.n_inner, cfg.n_head
    D = H // nh
    wte = p("wte.weight", (cfg.vocab_size, H))
    encoder = InputEncoder(token_embeddings=wte, position_embeddings=p("wpe.weight"), tokenizer_json=tokenizer_json)
    g = AttentionGraph(name=source, meta={"family": "gpt2", "pooling": "last", "layer_outputs": []}, encoder=encoder)
    x = g.add(op.Input("input", width=H))
    for i in range(cfg.n_layer):
        L, n = f"h.{i}.", f"layer{i}."

        def norm(name, key, src, L=L, n=n):
            return g.add(op.LayerNorm(n + name, weight=p(L + key + ".weight", (H,)), bias=p(L + key + ".bias", (H,)),
                                      eps=cfg.layer_norm_epsilon), x=src)

        h = norm("attn.norm", "ln_1", x)
        w_qkv, b_qkv = p(L + "attn.c_attn.weight", (H, 3 * H)), p(L + "attn.c_attn.bias", (3 * H,))
        q, k, v = (
            g.add(op.Linear(n + f"attn.{part}", weight=w_qkv[:, j * H:(j + 1) * H].T.copy(),
                            bias=b_qkv[j * H:(j + 1) * H].copy()), x=h)
            for j, part in enumerate("qkv")
        )
        a = g.add(op.Attention(n + "attn", n_heads=nh, n_kv_heads=nh, head_dim=D, scale=1.0 / math.sqrt(D),
                               causal=True), q=q, k=k, v=v)
        o = g.add(op.Linear(n + "attn.o", weight=p(L + "attn.c_proj.weight", (H, H)).T.copy(),
                            bias=p(L + "attn.c_proj.bias", (H,))), x=a)
        x = g.add(op.Add(n + "attn.residual"), a=x, b=o)
        h = norm("mlp.norm", "ln_2", x)
        h = g.add(op.Linear(n + "mlp.up", weight=p(L + "mlp.c_fc.weight", (H, I)).T.copy(),
                            bias=p(L + "mlp.c_fc.bias", (I,))), x=h)
        h = g.add(op.Activation(n + "mlp.act", function=cfg.activation_function), x=h)
        d = g.add(op.Linear(n + "mlp.down", weight=p(L + "mlp.c_proj.weight", (I, H)).T.copy(),
                            bias=p(L + "mlp.c_proj.bias", (H,))), x=h)
        x = g.add(op.Add(n + "mlp.residual"), a=x, b=d)
        g.meta["layer_outputs"].append(x)
    x = g.add(op.LayerNorm("final.norm", weight=p("ln_f.weight", (H,)), bias=p("ln_f.bias", (H,)),
                           eps=cfg.layer_norm_epsilon), x=x)
    g.add(op.Output("output.hidden", role="hidden"), x=x)
    logits = g.add(op.Linear("lm_head", weight=wte), x=x)
    g.add(op.Output("output.logits", role="logits"), x=logits)
    g.validate()
    return g


def random_gpt2(cfg: Gpt2Config | None = None, seed: int = 0) -> AttentionGraph:
    """A GPT-2 decoder with deterministic random weights."""
    cfg = cfg or Gpt2Config()
    r = RandomParams(seed)
    H, I = cfg.n_embd, cfg.n_inner
    r.normal("wte.weight", cfg.vocab_size, H, scale=1.0)
    r.normal("wpe.weight", cfg.n_positions, H, scale=0.3)
    for i in range(cfg.n_layer):
        L = f"h.{i}."
        for key in ("ln_1", "ln_2"):
            r.gain(L + key + ".weight", H)
            r.normal(L + key + ".bias", H)
        r.normal(L + "attn.c_attn.weight", H, 3 * H, scale=1.0 / math.sqrt(H))
        r.normal(L + "attn.c_attn.bias", 3 * H)
        r.normal(L + "attn.c_proj.weight", H, H, scale=1.0 / math.sqrt(H))
        r.normal(L + "attn.c_proj.bias", H)
        r.normal(L + "mlp.c_fc.weight", H, I, scale=1.0 / math.sqrt(H))
        r.normal(L + "mlp.c_fc.bias", I)
        r.normal(L + "mlp.c_proj.weight", I, H, scale=1.0 / math.sqrt(I))
        r.normal(L + "mlp.c_proj.bias", H)
    r.gain("ln_f.weight", H)
    r.normal("ln_f.bias", H)
    return build_gpt2(cfg, r, source=f"random-gpt2-seed{seed}")
