"""Lava fixed_pt runs the extra synapse groups of the loihi2 precision options (outlier channels with a
relay population, q/k residual groups, compensated mantissas) bit for bit like the golden simulator."""

import numpy as np
import pytest

from compiler.api import compile as compile_net
from compiler.models import random_llama
from hardware_sim.golden import simulate
from hardware_sim.lava import run_lava

pytestmark = pytest.mark.lava


def test_split_groups_are_bit_exact_on_lava():
    g = random_llama()
    rng = np.random.default_rng(0)
    calib = rng.normal(size=(4, 8, 32))
    calib[..., 5] *= 300.0  # a loud residual-stream channel: every map reading it gets an outlier group
    net = compile_net(g, precision="loihi2", max_tokens=8, calibrate=calib, rounding="compensated",
                      outlier_ratio=6.0, split_qk=True)
    parts = {net.node(n).quant.get("part") for n in net.order() if net.node(n).kind == "synapses"}
    assert {"bulk", "select", "outliers", "residual"} <= parts
    x = rng.normal(size=(2, 6, 32))
    x[..., 5] *= 300.0
    mask = np.ones((2, 6), bool)
    mask[1, 4:] = False
    gold = simulate(net, x, mask, precision="loihi2")
    lava = run_lava(net, x, mask, precision="loihi2", timeout=180)
    assert set(lava.outputs) == set(gold.outputs)
    for role, y in gold.outputs.items():
        assert np.array_equal(lava.outputs[role], y), role
    assert lava.saturations == gold.saturations
