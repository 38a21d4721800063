"""compiler.from_torch: exported PyTorch modules against their own forward (crosscheck), refusals."""

from __future__ import annotations

import sys

import numpy as np
import pytest

import compiler
from compiler.attention import nodes as op
from compiler.attention.nodes import EvalContext
from compiler.errors import FrontendError
from compiler.frontends.torch_values import rope_tables
from runtime.inputs import from_ids
from runtime.run import run

B, T, VOCAB = 2, 7, 99


def test_without_torch_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(FrontendError, match=r"from_torch needs PyTorch; install the torch extra"):
        compiler.from_torch(object(), ())


@pytest.mark.parametrize("pairing", ["half", "interleaved"])
def test_rope_tables_are_the_rope_node_coefficients(pairing):
    """The (cos, signed sin) tables matched against exported programs are the Rope node's own rotation."""
    n_heads, head_dim, steps = 2, 8, 5
    rope = op.Rope("r", n_heads=n_heads, head_dim=head_dim, base=500.0, pairing=pairing)
    width = n_heads * head_dim
    eye = np.broadcast_to(np.eye(width)[:, None, :], (width, steps, width))
    ctx = EvalContext(dtype=np.float64, mask=np.ones((width, steps), bool),
                      positions=np.broadcast_to(np.arange(steps), (width, steps)))
    y = rope.evaluate({"x": eye}, ctx)  # y[j, t, i]: output i at position t for input e_j
    cos, sin = rope_tables(500.0, np.arange(steps), n_heads, head_dim, pairing)
    i = np.arange(width)
    assert np.allclose(y[i, :, i].T, cos, atol=1e-12)
    within = (i % head_dim + head_dim // 2) % head_dim if pairing == "half" else (i % head_dim) ^ 1
    partner = i // head_dim * head_dim + within
    assert np.allclose(y[partner, :, i].T, sin, atol=1e-12)


# ---- crosscheck against the modules' own forward ------------------------------------------------
def tiny(name: str, attention: str):
    torch = pytest.importorskip("torch")
    tf = pytest.importorskip("transformers")
    torch.manual_seed(0)
    if name == "mha":
        return MhaModel(), 1
    configs = {
        "llama": (tf.LlamaForCausalLM, tf.LlamaConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                                                      num_attention_heads=4, num_key_value_heads=2,
                                                      intermediate_size=48, max_position_embeddings=16,
                                                      rope_theta=500.0)),
        "gpt2": (tf.GPT2LMHeadModel, tf.GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=16,
                                                   bos_token_id=0, eos_token_id=0)),
        "bert": (tf.BertModel, tf.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2,
                                             num_attention_heads=4, intermediate_size=37, max_position_embeddings=16)),
    }
    cls, config = configs[name]
    config._attn_implementation = attention
    return cls(config).eval(), 2


def MhaModel():  # noqa: N802  (a module class built where torch is known to be importable)
    import torch

    class Mha(torch.nn.Module):
        """Embedding, nn.MultiheadAttention, residual, LayerNorm, GELU and a linear head."""

        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(VOCAB, 32)
            self.pos = torch.nn.Embedding(16, 32)
            self.att = torch.nn.MultiheadAttention(32, 4, batch_first=True)
            self.norm = torch.nn.LayerNorm(32)
            self.out = torch.nn.Linear(32, 24)

        def forward(self, ids):
            x = self.emb(ids) + self.pos(torch.arange(ids.shape[1]))
            a, _ = self.att(x, x, x, need_weights=False)
            return self.out(torch.nn.functional.gelu(self.norm(x + a)))

    return Mha().eval()


CASES = [("llama", "sdpa"), ("llama", "eager"), ("gpt2", "sdpa"), ("gpt2", "eager"), ("bert", "sdpa"),
         ("bert", "eager"), ("mha", "sdpa")]


@pytest.mark.crosscheck
@pytest.mark.parametrize("name,attention", CASES)
def test_float32_matches_the_module_forward(name, attention):
    torch = pytest.importorskip("torch")
    module, layers = tiny(name, attention)
    ids = torch.randint(0, VOCAB, (B, T), generator=torch.Generator().manual_seed(1))
    mask = torch.ones(B, T, dtype=torch.long)
    if name == "mha":
        graph = compiler.from_torch(module, (ids,))
        mask[:] = 1
        with torch.no_grad():
            expected = module(ids).numpy()
    else:
        mask[1, 4:] = 0
        graph = compiler.from_torch(module, (), {"input_ids": ids, "attention_mask": mask}, outputs=[0])
        with torch.no_grad():
            out = module(input_ids=ids, attention_mask=mask)
        expected = (out.last_hidden_state if name == "bert" else out.logits).numpy()
    net = compiler.compile(graph, precision="float32", max_tokens=8)
    assert len(net.of_kind("astrocyte")) == layers  # every attention reached match_attention
    real = mask.numpy().astype(bool)
    got = run(net, from_ids(net.encoder, ids.numpy(), real), backend="golden").outputs
    got = got["logits"] if "logits" in got else got["hidden"]
    err = np.abs(got - expected)[real].max() / np.abs(expected[real]).max()
    assert err <= 1e-5, err


@pytest.mark.crosscheck
def test_graph_has_the_checkpoint_structure():
    """LLaMA through torch.export: RoPE, grouped-query heads, RMSNorm gains and parameter names recovered."""
    torch = pytest.importorskip("torch")
    module, _ = tiny("llama", "sdpa")
    ids = torch.zeros(1, 4, dtype=torch.long)
    graph = compiler.from_torch(module, (), {"input_ids": ids, "use_cache": False})
    kinds = sorted(n.kind for n in graph.nodes())
    assert kinds.count("rope") == 4 and kinds.count("rmsnorm") == 5 and kinds.count("linear") == 15
    ropes = [n for n in graph.nodes() if n.kind == "rope"]
    assert {(r.n_heads, r.base, r.pairing) for r in ropes} == {(4, 500.0, "half"), (2, 500.0, "half")}
    q = graph.node("model.layers.1.self_attn.q_proj")
    assert np.array_equal(q.weight, module.model.layers[1].self_attn.q_proj.weight.detach().double().numpy())
    norm = graph.node(graph.inputs_of("model.layers.0.mlp.gate_proj")["x"])
    assert np.array_equal(norm.weight, module.model.layers[0].post_attention_layernorm.weight.detach().double())
    assert {n.kind for n in graph.nodes()} >= {"matmul", "softmax", "causal_mask"}
    assert graph.meta["pooling"] == "last" and set(graph.output_nodes()) == {"logits"}


@pytest.mark.crosscheck
def test_tokenizer_travels_with_the_graph():
    torch = pytest.importorskip("torch")
    from compiler.frontends import minilm_dir
    from runtime.text import tokenize

    module, _ = tiny("bert", "sdpa")
    graph = compiler.from_torch(module, (), {"input_ids": torch.zeros(1, 3, dtype=torch.long)}, outputs=[0],
                                tokenizer=minilm_dir() / "tokenizer.json")
    assert graph.encoder.tokenizer_json == (minilm_dir() / "tokenizer.json").read_text()
    ids, _, _ = tokenize(graph, ["hello world"])
    assert ids.tolist() == [[101, 7592, 2088, 102]]


@pytest.mark.crosscheck
def test_unsupported_ops_are_listed_with_their_nodes():
    torch = pytest.importorskip("torch")

    class Odd(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(VOCAB, 8)
            self.lin = torch.nn.Linear(8, 8)

        def forward(self, ids):
            x = self.emb(ids)
            return self.lin(torch.cumsum(x, dim=-1) + torch.flip(x, dims=[-1]).abs())

    with pytest.raises(FrontendError) as info:
        compiler.from_torch(Odd().eval(), (torch.zeros(1, 3, dtype=torch.long),))
    message = str(info.value)
    assert "\n" not in message
    assert "aten.cumsum.default (node 'cumsum')" in message and "aten.flip.default (node 'flip')" in message


@pytest.mark.crosscheck
def test_a_token_subset_output_is_refused():
    """BERT's pooler reads token 0 only: asking for it is refused, naming the node."""
    torch = pytest.importorskip("torch")
    module, _ = tiny("bert", "sdpa")
    with pytest.raises(FrontendError, match=r"does not hold every token exactly once"):
        compiler.from_torch(module, (), {"input_ids": torch.zeros(1, 3, dtype=torch.long)}, outputs=[1])


@pytest.mark.crosscheck
def test_readme_example_runs(capsys):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```python\n")[1:]]
    example = next(b for b in blocks if "compiler.from_torch" in b)
    exec(compile(example, "README.md", "exec"), {})  # noqa: S102  (the README's own example)
    assert float(capsys.readouterr().out.strip()) < 1e-5


@pytest.mark.crosscheck
def test_a_one_token_example_is_refused():
    """At one position a rotary table is the identity: the example must show at least two tokens."""
    torch = pytest.importorskip("torch")
    module, _ = tiny("llama", "sdpa")
    with pytest.raises(FrontendError, match=r"holds 1 token\(s\) per sequence; give at least 2"):
        compiler.from_torch(module, (), {"input_ids": torch.zeros(1, 1, dtype=torch.long)})
