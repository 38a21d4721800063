"""Outlier channels in their own synapse group and residual groups for q/k maps: structure, the
reconstruction of the float map, lower loihi2 error, chip cost, compile options and round trips."""

import numpy as np
import pytest

from compiler.api import compile as compile_net
from compiler.errors import TripartiteError
from compiler.models import random_llama
from compiler.passes.base import CompileOptions
from compiler.passes.quantize import Quantize
from compiler.passes.split_groups import outlier_channels
from compiler.process import ProcessGraph
from compiler.process.nodes import InputEncoderNode, OutputDecoder, Population, Synapses
from hardware_sim.chip import resources
from hardware_sim.golden import simulate

RNG = np.random.default_rng(0)
LOUD = (3, 11)
W = RNG.normal(0, 0.2, (24, 16))
W[:, list(LOUD)] *= 0.02  # channels with massive activations carry small weights (as in LLaMA-family models)


def loud_inputs(seed, B=4, T=8):
    x = np.random.default_rng(seed).normal(size=(B, T, 16))
    x[..., list(LOUD)] *= 2000.0
    return x


def linear_net():
    net = ProcessGraph("lin")
    net.add(InputEncoderNode("in", size=16))
    net.add(Synapses("s", pre_size=16, post_size=24, weight=W.copy(), bias=np.linspace(-1, 1, 24)), pre="in")
    net.add(Population("p", size=24), in0="s")
    net.add(OutputDecoder("out", size=24), x="p")
    return net


def quantized(**options):
    return Quantize().run(linear_net(), CompileOptions(precision="loihi2", calibration=loud_inputs(1), **options))


def rel_err(net, x):
    want = x @ W.T + np.linspace(-1, 1, 24)
    got = simulate(net, x, precision="loihi2").outputs["hidden"]
    return np.linalg.norm(got - want) / np.linalg.norm(want)


def test_outlier_channels_are_the_loud_ones():
    m = np.ones(20)
    m[[4, 7, 9]] = [500.0, 30.0, 5.0]
    assert outlier_channels(m, 20.0).tolist() == [4, 7]
    assert outlier_channels(m, 20.0, limit=1).tolist() == [4]
    assert outlier_channels(m, 0.0).size == 0 and outlier_channels(np.ones(20), 20.0).size == 0


def test_split_structure_reconstructs_the_map():
    net = quantized(outlier_ratio=20.0)
    assert net.node("p").fan_in == 2
    assert net.inputs_of("p") == {"in0": "s", "in1": "s.outliers"}
    assert net.inputs_of("s.outliers") == {"pre": "s.outliers.relay"}
    assert net.inputs_of("s.outliers.relay") == {"in0": "s.outliers.select"}
    assert net.node("s").quant["outlier_channels"] == list(LOUD)
    assert [net.node(n).quant["part"] for n in ("s", "s.outliers.select", "s.outliers")] == ["bulk", "select",
                                                                                                 "outliers"]
    assert np.all(net.node("s").weight[:, list(LOUD)] == 0)
    whole = net.node("s").weight.copy()
    whole[:, list(LOUD)] = net.node("s.outliers").weight
    step = np.ldexp(1.0, np.asarray(net.node("s").quant["w_row_exp"]))[:, None]  # bulk: half a step per weight
    assert np.all(np.abs(whole - W)[:, [j for j in range(16) if j not in LOUD]] <= step / 2)
    fine = np.ldexp(1.0, np.asarray(net.node("s.outliers").quant["w_row_exp"]))[:, None]  # their own exponents
    assert np.all(np.abs(whole - W)[:, list(LOUD)] <= fine / 2) and np.all(fine < step / 16)
    # the selection is exact in 8 bits, and every stored weight is exactly its mantissa times 2**e
    assert np.array_equal(net.node("s.outliers.select").weight, np.eye(16)[list(LOUD)])
    for name in ("s", "s.outliers", "s.outliers.select"):
        op = net.node(name)
        scaled = np.ldexp(op.weight, -np.asarray(op.quant["w_row_exp"])[:, None])
        assert np.array_equal(scaled, np.round(scaled)) and np.abs(scaled).max() <= 128


def test_outlier_group_cuts_the_error_on_held_out_inputs():
    x = loud_inputs(2)
    plain, split = rel_err(quantized(), x), rel_err(quantized(outlier_ratio=20.0), x)
    assert split < plain / 5, (plain, split)


def test_split_qk_adds_residual_groups_and_cuts_the_query_error():
    g = random_llama()
    x = np.random.default_rng(3).normal(size=(2, 6, 32))
    ref = simulate(compile_net(g, max_tokens=8), x, keep=["layer0.attn.q_rope"]).values["layer0.attn.q_rope"]
    errs = {}
    for split in (False, True):
        net = compile_net(g, precision="loihi2", max_tokens=8, split_qk=split)
        got = simulate(net, x, precision="loihi2", keep=["layer0.attn.q_rope"]).values["layer0.attn.q_rope"]
        errs[split] = np.linalg.norm(got - ref) / np.linalg.norm(ref)
    assert errs[True] < errs[False] / 20, errs
    residuals = [n for n in net.order() if n.endswith(".synapses.residual")]
    assert sorted(residuals) == [f"layer{i}.attn.{p}.synapses.residual" for i in (0, 1) for p in "kq"]
    assert net.node("layer0.attn.q_rope").fan_in == 2 and net.meta["quantization"]["split_qk"] is True


def test_chip_model_counts_the_extra_groups():
    base, split = resources(quantized()), resources(quantized(outlier_ratio=20.0))
    k = len(LOUD)
    assert split["synapses"] - base["synapses"] == k * 16 + 24 * k
    assert split["bytes"] - base["bytes"] == k * 16 + 24 * k  # 8-bit weights
    assert split["neurons"] - base["neurons"] == k
    assert split["synops_per_token"] > base["synops_per_token"]
    assert split["precision_group_bytes"] == split["bytes"] - base["bytes"] and base["precision_group_bytes"] == 0
    assert split["precision_group_neurons"] == k


def test_split_network_round_trips(tmp_path):
    g = random_llama()
    net = compile_net(g, precision="loihi2", max_tokens=8, split_qk=True, rounding="compensated")
    path = net.save(tmp_path / "net.tpn")
    back = ProcessGraph.load(path)
    assert back.same_as(net)
    x = np.random.default_rng(4).normal(size=(2, 5, 32))
    assert np.array_equal(simulate(back, x, precision="loihi2").outputs["logits"],
                          simulate(net, x, precision="loihi2").outputs["logits"])


def test_bad_options_are_one_line_errors():
    with pytest.raises(TripartiteError, match="unknown rounding 'floor'"):
        CompileOptions(rounding="floor")
    with pytest.raises(TripartiteError, match="--outlier-ratio must be >= 0"):
        CompileOptions(outlier_ratio=-1.0)


def test_calibration_values_are_left_as_they_were():
    from compiler.passes.quantize import quantize_synapses

    x = loud_inputs(1)
    values = {"in": x}
    quantize_synapses(linear_net(), values, np.ones(x.shape[:2], bool), {},
                      CompileOptions(precision="loihi2", outlier_ratio=20.0))
    assert list(values) == ["in"] and values["in"] is x  # a shared calibration run can serve the next compile
