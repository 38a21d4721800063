"""Sessions: a circuit fed token by token (or a prompt, then tokens) equals one run over the whole
sequence, for every lowering, on causal LLaMA (GQA, RoPE) and GPT-2 graphs; encoders and context
overflow are refused with one-line errors; probes and reset work on a session."""

import numpy as np
import pytest

import compiler
from compiler.models import random_bert, random_gpt2, random_llama
from hardware_sim.golden import simulate
from runtime.session import Session, StreamingError

LOWERINGS = ("exact", "favor", "relu", "elu1", "taylor2")
DECODERS = {"llama": random_llama, "gpt2": random_gpt2}  # random_llama: 4 query heads on 2 kv heads, RoPE
T = 7


@pytest.fixture(scope="module")
def graphs():
    return {name: build(seed=3) for name, build in DECODERS.items()}


def data(width, seed=0):
    """Two sequences, the second padded on the right after 5 tokens."""
    rng = np.random.default_rng(seed)
    mask = np.ones((2, T), dtype=bool)
    mask[1, 5:] = False
    return rng.normal(size=(2, T, width)), mask


def rel(a, b, mask):
    return np.linalg.norm((a - b)[mask]) / np.linalg.norm(b[mask])


def fed(session, x, mask, cuts):
    """Outputs by role of feeding ``x`` in pieces ending at ``cuts``, joined along the token axis."""
    steps, start = [], 0
    for end in cuts:
        steps.append(session.feed_vectors(x[:, start:end], mask[:, start:end]))
        start = end
    return {role: np.concatenate([s.outputs[role] for s in steps], axis=1) for role in steps[0].outputs}


@pytest.mark.parametrize("family", sorted(DECODERS))
@pytest.mark.parametrize("lowering", LOWERINGS)
def test_token_by_token_equals_one_run(graphs, family, lowering):
    g = graphs[family]
    net = compiler.compile(g, lowering=lowering, features=16, max_tokens=8)
    x, mask = data(g.encoder.width)
    whole = simulate(net, x, mask).outputs
    session = Session(net)
    for cuts in (range(1, T + 1), (3, 4, 5, 6, 7)):  # token by token; a prompt of 3, then tokens
        session.reset()
        parts = fed(session, x, mask, cuts)
        assert parts.keys() == whole.keys() == {"hidden", "logits"}
        for role in whole:
            assert rel(parts[role], whole[role], mask) <= 1e-12, (role, list(cuts))


@pytest.mark.parametrize("family", sorted(DECODERS))
def test_loihi2_exact_is_bit_for_bit(graphs, family):
    g = graphs[family]
    net = compiler.compile(g, precision="loihi2", max_tokens=8)
    x, mask = data(g.encoder.width, seed=1)
    whole = simulate(net, x, mask, precision="loihi2")
    session = Session(net)
    parts = fed(session, x, mask, (2, 3, 4, 5, 6, 7))
    for role in whole.outputs:
        assert np.array_equal(parts[role][mask], whole.outputs[role][mask]), role
    assert session.saturations == whole.saturations


def test_ids_continue_at_each_sequence_length(graphs):
    """GPT-2 position embeddings and the padded prompt: the second sequence's new token takes
    position 3, as in a run over its own 4 tokens."""
    g = graphs["gpt2"]
    net = compiler.compile(g, max_tokens=8)
    prompt = np.array([[5, 6, 7], [8, 9, 0]])
    session = Session(net)
    session.feed(prompt, np.array([[1, 1, 1], [1, 1, 0]], bool))
    step = session.feed(np.array([[10], [11]]))
    for row, ids in enumerate(([5, 6, 7, 10], [8, 9, 11])):
        alone = simulate(net, g.encoder.encode(np.array([ids]))).outputs["logits"][0, -1]
        assert rel(step.outputs["logits"][row, 0], alone, np.ones(alone.shape, bool)) <= 1e-12


def test_probes_on_a_session_match_the_run(graphs):
    g = graphs["llama"]
    net = compiler.compile(g, max_tokens=8)
    x, mask = data(g.encoder.width)
    whole = simulate(net, x, mask, probes={"calcium", "soma"})
    session = Session(net, probes=("calcium", "soma"))
    steps = [session.feed_vectors(x[:, :4], mask[:, :4])] + [session.feed_vectors(x[:, t:t + 1], mask[:, t:t + 1])
                                                            for t in range(4, T)]
    for name in ("layer1.attn.astrocyte/calcium", "layer1.attn.astrocyte/soma_sum"):
        joined = np.concatenate([s.probes[name] for s in steps], axis=1)
        assert joined.shape == whole.probes[name].shape
        assert np.allclose(joined[mask], whole.probes[name][mask], rtol=1e-12, atol=0)


def test_context_overflow_names_the_limit(graphs):
    net = compiler.compile(graphs["llama"], lowering="favor", features=8, max_tokens=4)
    session = Session(net)
    session.feed(np.array([[1, 2, 3]]))
    session.feed(np.array([[4]]))
    with pytest.raises(StreamingError, match=r"holds 4 tokens.*--max-tokens 4"):
        session.feed(np.array([[5]]))
    session.reset()
    assert session.feed(np.array([[1, 2, 3, 4]])).outputs["logits"].shape == (1, 4, 100)


def test_encoder_is_refused():
    net = compiler.compile(random_bert(), max_tokens=8)
    with pytest.raises(StreamingError, match="bidirectional.*cannot take one token at a time"):
        Session(net)


def test_batch_size_is_fixed_until_reset(graphs):
    session = Session(compiler.compile(graphs["llama"], max_tokens=8))
    session.feed(np.array([[1, 2], [3, 4]]))
    with pytest.raises(Exception, match="holds 2 sequence"):
        session.feed(np.array([[1]]))


@pytest.mark.parametrize("family", sorted(DECODERS))
def test_kv_cache_reference_and_exact_session_match_the_reference(graphs, family):
    """The key/value-cache reference fed in pieces equals the reference over the whole sequence, and
    an exact session equals both (independent paths: graph nodes vs circuit behaviours)."""
    from runtime.kv_reference import KVCacheReference
    from runtime.reference import run_reference

    g = graphs[family]
    x, mask = data(g.encoder.width, seed=2)
    whole = run_reference(g, x, mask).outputs
    kv = KVCacheReference(g, "float64")
    session = Session(compiler.compile(g, max_tokens=8))
    cached = [kv.feed(x[:, :3], mask[:, :3])] + [kv.feed(x[:, t:t + 1], mask[:, t:t + 1]) for t in range(3, T)]
    streamed = fed(session, x, mask, range(3, T + 1))
    for role in whole:
        joined = np.concatenate([c[role] for c in cached], axis=1)
        assert rel(joined, whole[role], mask) <= 1e-12, role
        assert rel(streamed[role], whole[role], mask) <= 1e-9, role
