"""Quantize pass: exponents from calibration ranges, recorded per node, usable by the integer arithmetic."""

import json

import numpy as np
import pytest

from compiler.api import compile
from compiler.errors import InputError
from compiler.models import random_bert
from compiler.passes.base import CompileOptions
from compiler.passes.quantize import HEADROOM, Quantize
from compiler.process import ProcessGraph
from compiler.process.nodes import InputEncoderNode, OutputDecoder, Population, Synapses
from hardware_sim.fixed_point import (
    SaturationCounter,
    quantize,
    quantize_weights,
    synaptic_accumulate,
    to_float,
)

RNG = np.random.default_rng(0)
W1, W2 = RNG.normal(0, 0.2, (24, 16)), RNG.normal(0, 0.2, (8, 24))


def linear_net():
    net = ProcessGraph("lin")
    net.add(InputEncoderNode("in", size=16))
    net.add(Synapses("s1", pre_size=16, post_size=24, weight=W1), pre="in")
    net.add(Population("p1", size=24), in0="s1")
    net.add(Synapses("s2", pre_size=24, post_size=8, weight=W2), pre="p1")
    net.add(Population("p2", size=8, response="gelu_erf"), in0="s2")
    net.add(OutputDecoder("out", size=8), x="p2")
    net.validate()
    return net


def run(net, calibration):
    return Quantize().run(net, CompileOptions(precision="loihi2", calibration=calibration))


def test_exponents_hold_calibrated_range_with_headroom():
    x = RNG.normal(size=(3, 5, 16))
    net = run(linear_net(), x)
    h1 = x @ W1.T
    assert net.node("s1").quant["range"] == pytest.approx(np.abs(h1).max())
    for name in ("in", "s1", "p1", "s2", "p2", "out"):
        q = net.node(name).quant
        top = (2**23 - 1) * 2.0 ** q["exp"]
        assert HEADROOM * q["range"] <= top < 2 * HEADROOM * q["range"]  # the smallest exponent that fits
    m, e = quantize_weights(W1)
    assert net.node("s1").quant["w_exp"] == e and net.node("s1").quant["w_bits"] == 8
    assert net.node("s1").quant["w_rel_error"] < 0.02
    json.dumps({n: net.node(n).quant for n in net.order()})
    assert net.meta["quantization"]["tokens"] == 15


def test_scaling_calibration_shifts_exponents():
    x = RNG.normal(size=(2, 4, 16))
    a, b = run(linear_net(), x), run(linear_net(), 16 * x)
    for name in ("in", "s1", "p1", "s2"):  # linear part: 16x range -> exponent + 4
        assert b.node(name).quant["exp"] == a.node(name).quant["exp"] + 4


def test_mask_excludes_padding_from_ranges():
    x = RNG.normal(size=(2, 4, 16))
    mask = np.ones((2, 4), bool)
    mask[1, 3] = False
    x[1, 3] *= 1000
    net = run(linear_net(), {"x": x, "mask": mask})
    assert net.node("in").quant["range"] == pytest.approx(np.abs(x[mask]).max())


def test_recorded_exponents_run_the_integer_layer_without_saturation():
    x = RNG.normal(size=(2, 6, 16))
    net = run(linear_net(), x)
    qi, qs = net.node("in").quant, net.node("s1").quant
    m, e = quantize_weights(W1)
    c = SaturationCounter()
    xq = quantize(x, qi["exp"], counter=c)
    y = synaptic_accumulate(xq, m, qs["w_exp"], qi["exp"], qs["exp"], counter=c, name="s1")
    assert c.total == 0
    ref = x @ W1.T
    assert np.abs(to_float(y, qs["exp"]) - ref).max() < 0.03 * np.abs(ref).max()


def test_bad_calibration_is_a_clear_error(tmp_path):
    with pytest.raises(InputError, match=r"shape \(batch, tokens, 16\)"):
        run(linear_net(), np.zeros((2, 3, 5)))
    with pytest.raises(InputError, match="cannot read"):
        run(linear_net(), tmp_path / "missing.npz")
    f = tmp_path / "cal.npz"
    np.savez(f, x=RNG.normal(size=(1, 3, 16)))
    assert run(linear_net(), f).meta["quantization"]["source"] == str(f)


@pytest.mark.parametrize("lowering", ["exact", "favor"])
def test_compile_loihi2_quantizes_and_places_every_node(lowering):
    net = compile(random_bert(), lowering=lowering, precision="loihi2")
    assert "random token ids" in net.meta["quantization"]["source"]
    for op in net.nodes():
        if op.kind != "schedule":
            assert isinstance(op.quant["exp"], int) and op.quant["range"] >= 0, op.name
        if op.kind == "synapses" and op.weight is not None:
            assert -128 <= quantize_weights(op.weight)[0].min() and "w_exp" in op.quant
        if op.kind == "astrocyte":
            assert {"calcium_exp", "soma_exp", "recip_exp"} <= set(op.quant)
    assert net.meta["placement"]["cores"] >= 1
