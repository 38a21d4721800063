"""verify: error statistics, tolerances, per-layer localisation, task-level agreement."""

import json

import numpy as np
import pytest

from compiler.api import compile as compile_model
from compiler.errors import InputError
from compiler.models import random_bert, random_gpt2
from compiler.models.digits_vit import digits_split, digits_vit
from runtime import verify
from runtime.inputs import Batch
from runtime.verify import error_stats

KEYS = {"backend", "precision", "lowering", "tokens", "layers", "output", "saturations", "passed"}


@pytest.fixture(scope="module")
def digits():
    graph = digits_vit()
    _, _, images, labels = digits_split()
    x = graph.encoder.encode_patches(images[:48])
    return graph, Batch(x=x, mask=np.ones(x.shape[:2], bool), labels=labels[:48])


def test_error_stats_by_hand():
    want = np.array([[[1.0, 0.0], [0.0, 2.0], [5.0, 5.0]]])
    got = np.array([[[1.0, 1.0], [0.0, 2.0], [-9.0, 9.0]]])
    mask = np.array([[True, True, False]])
    s = error_stats("x", got, want, mask)
    assert s.max_abs_err == 1.0
    assert s.rel_l2_err == pytest.approx(1 / np.sqrt(5))
    assert s.cosine_min == pytest.approx(1 / np.sqrt(2))
    assert s.cosine_mean == pytest.approx((1 / np.sqrt(2) + 1) / 2)


def test_exact_float64_passes_with_schema(digits):
    graph, batch = digits
    net = compile_model(graph, max_tokens=16)
    report = verify(net, graph, batch)
    d = json.loads(json.dumps(report.to_dict()))
    assert KEYS <= set(d) and d["passed"] is True
    assert d["tokens"] == 48 * 16 and d["precision"] == "float64" and d["lowering"] == "exact"
    assert [layer["name"] for layer in d["layers"]] == ["layer0.attn", "layer0.mlp.residual", "layer1.attn",
                                                        "layer1.mlp.residual"]
    assert all(set(layer) >= {"name", "max_abs_err", "rel_l2_err", "cosine"} for layer in d["layers"])
    assert set(d["output"]) >= {"max_abs_err", "rel_l2_err", "cosine_mean", "cosine_min"}
    assert d["output"]["rel_l2_err"] < 1e-12
    assert d["agreement"]["agreement"] == 1.0
    assert d["agreement"]["float_accuracy"] == d["agreement"]["backend_accuracy"] >= 0.9


def test_float32_error_is_float32_sized(digits):
    graph, batch = digits
    report = verify(compile_model(graph, precision="float32", max_tokens=16), graph, batch)
    assert report.precision == "float32" and report.passed
    assert 1e-9 < report.output.rel_l2_err < 1e-4


def test_rtol_override_and_failing_favor(digits):
    graph, batch = digits
    exact = verify(compile_model(graph, max_tokens=16), graph, batch, rtol=1e-30)
    assert not exact.passed and exact.checks[0].name == "output.rel_l2_err"
    favor = verify(compile_model(graph, lowering="favor", features=8, max_tokens=16), graph, batch)
    assert favor.lowering == "favor" and not favor.passed
    assert favor.output.rel_l2_err > 0.1


def test_perturbation_is_localised_to_its_layer(digits):
    graph, batch = digits
    net = compile_model(graph, max_tokens=16)
    syn = net.node("layer1.mlp.up.synapses")
    syn.weight = syn.weight * 1.05
    report = verify(net, graph, batch)
    errors = {s.name: s.rel_l2_err for s in report.layers}
    assert errors["layer0.mlp.residual"] < 1e-12 and errors["layer1.attn"] < 1e-12
    assert errors["layer1.mlp.residual"] > 1e-4
    assert not report.passed


def test_decoder_and_encoder_agreement():
    gpt = random_gpt2(seed=2)
    ids = np.random.default_rng(0).integers(0, gpt.encoder.vocab_size, size=(2, 7))
    mask = np.ones(ids.shape, bool)
    mask[1, 5:] = False
    batch = Batch(x=gpt.encoder.encode(ids), mask=mask, input_ids=ids)
    report = verify(compile_model(gpt, max_tokens=8), gpt, batch)
    assert report.task == "decoder" and report.passed
    assert report.agreement["top1_agreement"] == 1.0 and abs(report.agreement["mean_kl"]) < 1e-12
    assert report.tokens == 12
    bert = random_bert(seed=1)
    batch = Batch(x=bert.encoder.encode(ids % bert.encoder.vocab_size), mask=mask)
    report = verify(compile_model(bert, max_tokens=8), bert, batch)
    assert report.task == "encoder" and report.agreement["embedding_cosine_min"] == pytest.approx(1.0, abs=1e-12)


def test_reference_of_another_model_is_refused(digits):
    graph, batch = digits
    net = compile_model(graph, max_tokens=16)
    with pytest.raises(InputError, match="--reference"):
        verify(net, random_bert(), batch)
