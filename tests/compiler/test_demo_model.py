"""The bundled digits transformer: trainer gradients, determinism, shipped weights, image encoder."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from compiler.api import compile as compile_model
from compiler.attention import AttentionGraph
from compiler.errors import InputError
from compiler.models.digits_vit import (
    WEIGHTS,
    DigitsVitConfig,
    class_scores,
    digits_split,
    digits_vit,
    init_params,
    load_params,
)
from compiler.process import ProcessGraph
from runtime.reference import run_reference

ROOT = Path(__file__).resolve().parents[2]


def trainer():
    spec = importlib.util.spec_from_file_location("train_digits_vit", ROOT / "examples" / "train_digits_vit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def t():
    return trainer()


@pytest.fixture(scope="module")
def split():
    return digits_split()


def test_gradients_match_finite_differences(t):
    cfg = DigitsVitConfig(width=8, heads=2, mlp=12, layers=2)
    rng = np.random.default_rng(3)
    p = {k: v + rng.normal(0, 0.1, v.shape) for k, v in init_params(cfg, 1).items()}
    x, y = rng.random((3, 8, 8)), np.array([1, 4, 7])
    _, grads = t.loss_and_grads(p, cfg, x, y)
    eps = 1e-6
    for name in p:
        flat = p[name].reshape(-1)
        for j in rng.choice(flat.size, min(4, flat.size), replace=False):
            old = flat[j]
            flat[j] = old + eps
            up = t.loss_and_grads(p, cfg, x, y)[0]
            flat[j] = old - eps
            down = t.loss_and_grads(p, cfg, x, y)[0]
            flat[j] = old
            numeric = (up - down) / (2 * eps)
            assert grads[name].reshape(-1)[j] == pytest.approx(numeric, rel=1e-5, abs=1e-8), name


def test_training_is_deterministic(t):
    cfg = DigitsVitConfig(width=8, heads=2, mlp=16)
    _, a, ma = t.train(cfg, epochs=1)
    _, b, mb = t.train(cfg, epochs=1)
    assert ma == mb
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["head.weight"], init_params(cfg, 0)["head.weight"])


def test_split_is_fixed_and_stratified(split):
    xtr, ytr, xte, yte = split
    assert xtr.shape[1:] == (8, 8) and len(xtr) + len(xte) == 1797 and len(xte) == 359
    assert 0.0 <= xtr.min() and xtr.max() <= 1.0
    assert np.array_equal(digits_split()[3], yte)
    counts = np.bincount(yte, minlength=10)
    assert counts.min() >= 34 and counts.max() <= 38


def test_shipped_weights_small_and_accurate(split):
    assert WEIGHTS.stat().st_size < 1_000_000
    with np.load(WEIGHTS, allow_pickle=False) as data:
        stored = float(data["metrics/test_accuracy"])
    graph = digits_vit()
    _, _, xte, yte = split
    logits = run_reference(graph, graph.encoder.encode_patches(xte)).outputs["logits"]
    accuracy = float((class_scores(logits).argmax(axis=1) == yte).mean())
    assert accuracy >= 0.90
    assert accuracy == pytest.approx(stored, abs=1e-12)


def test_trainer_forward_is_the_attention_graph(t, split):
    cfg, params = load_params()
    images = split[2][:20]
    want, _ = t.forward(params, cfg, images)
    graph = digits_vit()
    got = run_reference(graph, graph.encoder.encode_patches(images)).outputs["logits"]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-11)


def test_encode_patches_row_major_order():
    graph = digits_vit()
    enc = graph.encoder
    images = np.random.default_rng(0).random((2, 8, 8))
    x = enc.encode_patches(images)
    for t in (0, 5, 15):
        i, j = divmod(t, 4)
        patch = images[:, 2 * i:2 * i + 2, 2 * j:2 * j + 2].reshape(2, 4)
        want = patch @ enc.patch_projection.T + enc.patch_bias + enc.position_embeddings[t]
        np.testing.assert_allclose(x[:, t], want, atol=1e-14)


def test_image_encoder_refuses_wrong_inputs():
    enc = digits_vit().encoder
    with pytest.raises(InputError, match="images"):
        enc.encode(np.zeros((1, 4), dtype=np.int64))
    with pytest.raises(InputError, match="multiples of 2"):
        enc.encode_patches(np.zeros((1, 7, 8)))
    with pytest.raises(InputError, match="positions"):
        enc.encode_patches(np.zeros((1, 10, 10)))


def test_graph_and_compiled_network_round_trip(tmp_path):
    graph = digits_vit()
    graph.save(tmp_path / "digits.tpg")
    back = AttentionGraph.load(tmp_path / "digits.tpg")
    assert back.same_as(graph) and back.encoder.patch_size == 2
    net = compile_model(back, max_tokens=16)
    net.save(tmp_path / "digits.tpn")
    loaded = ProcessGraph.load(tmp_path / "digits.tpn")
    images = np.random.default_rng(1).random((3, 8, 8))
    np.testing.assert_array_equal(loaded.encoder.encode_patches(images), graph.encoder.encode_patches(images))
