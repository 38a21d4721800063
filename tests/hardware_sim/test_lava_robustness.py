"""Every Lava run path stops the runtime: no child process and no new /dev/shm/psm_* segment is left
behind after success, a model error, bad inputs, a KeyboardInterrupt or a timeout."""

import time

import numpy as np
import pytest

from compiler.errors import InputError, SimulationError, TripartiteError
from compiler.process import ProcessGraph
from compiler.process import nodes as pn
from hardware_sim.lava import LavaTimeoutError, kernels, run_lava

pytestmark = pytest.mark.lava


def circuit(slots=8, width=4, d=4):
    rng = np.random.default_rng(0)
    net = ProcessGraph("circuit")
    net.add(pn.InputEncoderNode("in", size=width))
    for role in "qkv":
        net.add(pn.Synapses(role, pre_size=width, post_size=d, weight=rng.normal(size=(d, width))), pre="in")
    net.add(pn.Schedule("sched", mode="bidirectional", max_tokens=slots))
    net.add(pn.FeaturePopulation("feat", n_heads=1, head_dim=d, m=slots, scale=0.5, schedule="sched"),
            key="k", query="q")
    net.add(pn.HebbianSynapses("hebb", m=slots, v_head_dim=d, gated=True), pre="feat", teacher="v")
    net.add(pn.Astrocyte("astro", m=slots, v_head_dim=d), synapses="hebb", features="feat")
    net.add(pn.OutputDecoder("out", size=d), x="astro")
    return net


def test_success_leaves_nothing_behind(clean):
    x = np.random.default_rng(1).normal(size=(2, 3, 4))
    result = run_lava(circuit(), x, timeout=120)
    assert result.outputs["hidden"].shape == (2, 3, 4)


@pytest.mark.parametrize("granularity", ["fused", "fine"])
def test_model_exception_names_the_node_and_stops(clean, monkeypatch, granularity):
    """A kernel raising inside a Lava process model (the worker is forked, so the patch reaches it)."""

    def broken(self, s, inputs):
        raise FloatingPointError("overflow\nsecond line")

    monkeypatch.setattr(kernels.HebbianKernel, "step", broken)
    x = np.random.default_rng(1).normal(size=(1, 6, 4))
    start = time.perf_counter()
    with pytest.raises(SimulationError, match=r"node 'hebb' \(hebbian_synapses\).*FloatingPointError") as info:
        run_lava(circuit(), x, granularity=granularity, timeout=120)
    assert "\n" not in str(info.value)
    assert time.perf_counter() - start < 60


def test_too_few_slots_fail_before_lava_starts(clean):
    with pytest.raises(SimulationError, match=r"'feat' has 4 slots but the input has 6 tokens"):
        run_lava(circuit(slots=4), np.zeros((1, 6, 4)), timeout=120)


@pytest.mark.parametrize("shape", [(2, 3, 5), (3, 4), (1, 0, 4)])
def test_bad_input_shape_is_an_input_error(clean, shape):
    with pytest.raises(InputError, match="shape"):
        run_lava(circuit(), np.zeros(shape), timeout=30)


def test_bad_mask_and_precision_are_input_errors(clean):
    x = np.zeros((1, 3, 4))
    with pytest.raises(InputError, match="mask"):
        run_lava(circuit(), x, mask=np.ones((1, 2)), timeout=30)
    with pytest.raises(TripartiteError, match="precision|loihi2|runs"):
        run_lava(circuit(), x, precision="loihi2", timeout=30)


def test_keyboard_interrupt_stops_the_runtime(clean):
    def interrupt(done, total):
        raise KeyboardInterrupt

    x = np.random.default_rng(1).normal(size=(1, 8, 4))
    with pytest.raises(KeyboardInterrupt):
        run_lava(circuit(), x, timeout=120, progress=interrupt)


def test_timeout_kills_the_run(clean):
    x = np.random.default_rng(1).normal(size=(64, 8, 4))
    start = time.perf_counter()
    with pytest.raises(LavaTimeoutError, match="timeout"):
        run_lava(circuit(), x, granularity="fine", timeout=0.5)
    assert time.perf_counter() - start < 15


def test_progress_reports_tokens(clean):
    seen = []
    x = np.random.default_rng(1).normal(size=(2, 4, 4))
    run_lava(circuit(), x, timeout=120, progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (8, 8)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
