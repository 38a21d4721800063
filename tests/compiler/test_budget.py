"""The budget pass: context lengths beyond the position table and compiles beyond free memory are refused."""

import tracemalloc
from functools import partial

import pytest

import compiler
from compiler.errors import PassError
from compiler.models import BertConfig, LlamaConfig, random_bert, random_llama
from compiler.passes import budget
from compiler.passes.base import CompileOptions
from compiler.passes.match_attention import MatchAttention
from runtime.cli import main


def bert():
    return random_bert(BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                                  max_position_embeddings=64, vocab_size=50))


def llama():
    return random_llama(LlamaConfig(max_position_embeddings=32))


@pytest.mark.parametrize("lowering,precision,max_tokens", [("exact", "float64", 64), ("favor", "float64", 16),
                                                           ("exact", "loihi2", 32), ("relu", "float32", 64)])
def test_estimate_bounds_the_peak_of_a_compile(lowering, precision, max_tokens):
    """Peak memory traced while compiling (the source held before) <= estimate <= 3 x that peak."""
    graph = bert()
    options = CompileOptions(lowering=lowering, precision=precision, max_tokens=max_tokens, features=32)
    estimate = budget.compile_bytes(MatchAttention().run(graph, options), options)
    compile_it = partial(compiler.compile, graph, lowering=lowering, precision=precision, max_tokens=max_tokens,
                         features=32)
    compile_it()  # first-call imports and caches are not the compile's memory
    tracemalloc.start()
    try:
        compile_it()
        peak = tracemalloc.get_traced_memory()[1] + budget.array_bytes(graph)
    finally:
        tracemalloc.stop()
    assert peak <= estimate <= 3 * peak


def test_estimate_grows_with_slots_per_head():
    graph = bert()
    small, large = (budget.compile_bytes(graph, CompileOptions(max_tokens=t)) for t in (8, 64))
    att = graph.of_kind("attention")
    per_slot = 8 * sum(a.n_kv_heads * (a.head_dim + a.v_head_dim) for a in att)
    assert large - small == (64 - 8) * per_slot


def test_max_tokens_beyond_the_position_table_is_refused_even_forced():
    for force in (False, True):
        with pytest.raises(PassError, match="--max-tokens 65 exceeds its position table of 64 positions; use "
                                            "--max-tokens 64 or less"):
            compiler.compile(bert(), max_tokens=65, force=force)
    assert compiler.compile(bert(), max_tokens=64).meta["max_tokens"] == 64


def test_rotary_context_is_refused_unless_forced():
    with pytest.raises(PassError, match="--max-tokens 33 exceeds the 32 tokens it was trained on.*--force"):
        compiler.compile(llama(), max_tokens=33)
    assert compiler.compile(llama(), max_tokens=33, force=True).meta["max_tokens"] == 33


def test_compile_beyond_free_memory_is_refused_unless_forced(monkeypatch):
    monkeypatch.setattr(budget, "available_memory", lambda: 2**16)
    with pytest.raises(PassError, match=r"budget.*needs about 0\.4 MiB, 0\.1 MiB are available;.*--force"):
        compiler.compile(bert(), max_tokens=64)
    assert compiler.compile(bert(), max_tokens=64, force=True) is not None


def test_cli_refuses_with_one_line(tmp_path, capsys):
    bert().save(tmp_path / "bert.tpg")
    code = main(["compile", str(tmp_path / "bert.tpg"), "-o", str(tmp_path / "n.tpn"), "--max-tokens", "100"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "position table of 64 positions" in lines[0]
    assert not (tmp_path / "n.tpn").exists()
