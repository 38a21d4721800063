"""all-MiniLM-L6-v2 in Brian2: two sentences agree with golden (float64) and with transformers' embeddings."""

from pathlib import Path

import numpy as np
import pytest

import compiler
from compiler.frontends.source import minilm_dir
from hardware_sim.brian2.backend import simulate_brian2
from hardware_sim.golden import simulate
from runtime.reference import mean_pool

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "minilm_expected.npz"


@pytest.mark.slow
def test_minilm_two_sentences_in_brian2():
    """About 70 s: 10.8 M synapses per sequence, seven sweeps of the six bidirectional layers."""
    f = np.load(FIXTURE, allow_pickle=False)
    mask = f["mask"][:2].astype(bool)
    T = int(mask.sum(axis=1).max())
    mask = mask[:, :T]
    net = compiler.compile(str(minilm_dir()), lowering="exact", max_tokens=T)
    x = net.encoder.encode(f["input_ids"][:2, :T], f["token_type_ids"][:2, :T])
    got, _ = simulate_brian2(net, x, mask)
    want = simulate(net, x, mask).outputs["hidden"]
    assert np.linalg.norm(got["hidden"] - want) <= 1e-9 * np.linalg.norm(want)
    emb = mean_pool(got["hidden"], mask)
    ref = f["embeddings"][:2]
    assert np.max(np.linalg.norm(emb - ref, axis=1) / np.linalg.norm(ref, axis=1)) <= 1e-6
