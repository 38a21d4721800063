"""Lava sessions: one Lava run stays up while tokens come in; it generates the golden simulator's
tokens (float32: same arg-max, loihi2: identical ids); a model error, Ctrl-C and the timeout stop it
with no process and no shared-memory segment left behind."""

import os
import signal
import threading
import time

import numpy as np
import pytest

import compiler
from compiler.errors import InputError, SimulationError
from compiler.models import random_llama
from hardware_sim.lava import LavaTimeoutError, kernels
from runtime.generate import Sampling, generate
from runtime.inputs import from_ids
from runtime.session import Session

pytestmark = pytest.mark.lava

PROMPT = np.array([[3, 14, 15, 92, 65]])


@pytest.fixture(scope="module")
def graph():
    return random_llama(seed=5)


def generated(net, backend, n=6):
    with Session(net, backend=backend, budget=PROMPT.shape[1] + n, timeout=120) as session:
        return generate(session, from_ids(net.encoder, PROMPT), Sampling(max_new_tokens=n))


@pytest.mark.parametrize("precision", ["float32", "loihi2"])
def test_lava_generates_the_golden_tokens(clean, graph, precision):
    net = compiler.compile(graph, precision=precision, max_tokens=16)
    lava, golden = generated(net, "lava"), generated(net, "golden")
    assert np.array_equal(lava.generated_ids, golden.generated_ids)
    a, b = lava.prompt_outputs["logits"], golden.prompt_outputs["logits"]
    if precision == "loihi2":
        assert np.array_equal(a, b)
    else:
        assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(b))


def slow_kernel(monkeypatch, seconds):
    original = kernels.HebbianKernel.step

    def slow(self, s, inputs):
        if s > 2:
            time.sleep(seconds)
        return original(self, s, inputs)

    monkeypatch.setattr(kernels.HebbianKernel, "step", slow)


def test_model_error_mid_session_names_the_node(clean, graph, monkeypatch):
    original = kernels.HebbianKernel.step

    def broken(self, s, inputs):
        if s > 3:
            raise FloatingPointError("overflow")
        return original(self, s, inputs)

    monkeypatch.setattr(kernels.HebbianKernel, "step", broken)
    net = compiler.compile(graph, precision="float32", max_tokens=16)
    with Session(net, backend="lava", budget=8, timeout=120) as session:
        session.feed(PROMPT[:, :2])
        with pytest.raises(SimulationError, match=r"node 'layer0\.attn\.hebbian'.*FloatingPointError") as info:
            for t in range(2, 5):
                session.feed(PROMPT[:, t:t + 1])
    assert "\n" not in str(info.value)


def test_timeout_stops_the_session(clean, graph, monkeypatch):
    slow_kernel(monkeypatch, 30)
    net = compiler.compile(graph, precision="float32", max_tokens=16)
    start = time.perf_counter()
    with Session(net, backend="lava", budget=8, timeout=3) as session:
        with pytest.raises(LavaTimeoutError, match="3 s timeout"):
            session.feed(PROMPT)
    assert time.perf_counter() - start < 20


def test_ctrl_c_stops_the_session(clean, graph, monkeypatch):
    slow_kernel(monkeypatch, 30)
    net = compiler.compile(graph, precision="float32", max_tokens=16)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own, whatever else installed one
    timer = threading.Timer(2.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    try:
        with Session(net, backend="lava", budget=8, timeout=120) as session:
            timer.start()
            with pytest.raises(KeyboardInterrupt):
                session.feed(PROMPT)
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)


def test_a_batch_is_refused(clean, graph):
    net = compiler.compile(graph, precision="float32", max_tokens=16)
    with Session(net, backend="lava", budget=8) as session:
        with pytest.raises(InputError, match="one sequence"):
            session.feed(np.array([[1, 2], [3, 4]]))
