"""all-MiniLM-L6-v2 compiled with exact circuits: golden embeddings agree with transformers'."""

from pathlib import Path

import numpy as np
import pytest

import compiler
from compiler.frontends.source import minilm_dir
from hardware_sim.golden import simulate
from runtime.reference import mean_pool

ROOT = Path(__file__).resolve().parents[2]
MINILM = minilm_dir()
FIXTURE = ROOT / "tests/fixtures/minilm_expected.npz"


@pytest.mark.parametrize("precision", ["float32"])
def test_minilm_embeddings_match_transformers(precision):
    net = compiler.compile(str(MINILM), lowering="exact", precision=precision)
    f = np.load(FIXTURE, allow_pickle=False)
    mask = f["mask"].astype(bool)
    x = net.encoder.encode(f["input_ids"], f["token_type_ids"])
    hidden = simulate(net, x, mask, precision=precision).outputs["hidden"]
    emb = mean_pool(hidden.astype(np.float64), mask)
    err = np.linalg.norm(emb - f["embeddings"], axis=1) / np.linalg.norm(f["embeddings"], axis=1)
    assert err.max() <= 1e-5
