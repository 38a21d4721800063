"""Loihi 2 plasticity check: one Hebbian group of a compiled network learned by Lava's own ``LearningDense``.

The Hebbian write ``H^g += v_t^g f^g(k_t)^T`` (per key/value head g, each written token t) is what a
Loihi 2 learning engine would run.  Here it runs as Lava's stock ``LearningDense`` with the
three-factor rule ``Loihi3FLearningRule(dw="2 * x0 * x1 * y1")``:

- pre-synaptic neurons: the feature neurons; in the write phase of token t neuron j sends a graded
  spike of payload ``f_j(k_t)`` (``GradedSpikeCfg.OVERWRITE`` sets the trace ``x1 = payload / 2``;
  ``x0`` marks the spike); masked tokens send nothing;
- post-synaptic trace ``y1 = v_t`` (the value neurons' activity, delivered on ``s_in_y1``);
- so ``dw = 2 x0 x1 y1 = v_t f(k_t)`` per written token: after the write phases ``W = H``.

The heads share one ``LearningDense`` (all G m feature neurons onto all G dv output neurons): its
diagonal blocks are the per-head weights ``H^g`` compared with the golden simulator's; the
off-diagonal blocks (cross-head products a chip would not allocate) are ignored.  Traces decay with
the largest time constant Lava takes (``tau = 65535`` steps), the only difference on ``floating_pt``.

On ``fixed_pt`` traces are 7-bit unsigned integers and weights 8-bit: payloads are scaled so the
largest ``x1`` is 127, ``v`` is split into its positive and negative parts (two ``LearningDense``,
``W = W+ - W-``) scaled so the largest ``y1`` is 127 (both shrunk when a weight would pass 8 bits),
and the integer weights times their unit (:func:`fixed_point_inputs`) are compared with ``H``.

Lava runs in a forked worker that leads its own process group, under a deadline; afterwards the
group is killed and every shared-memory segment it created is unlinked (the machinery of
:mod:`hardware_sim.lava.runner`).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compiler.errors import InputError, SimulationError
from hardware_sim.lava.orphan import start_reaper
from hardware_sim.lava.runner import log_segments, preload_lava, shut_down, single_threaded_blas

RULE = "2 * x0 * x1 * y1"
TAU = int(np.iinfo(np.uint16).max)
TRACE_MAX = 127
WEIGHT_MAX = 255


@dataclass
class HebbianWrites:
    """What one Hebbian group sees in its write phases, for one sequence: ``pre`` (T, G, m) the
    written feature responses ``w_t f^g(k_t)``, ``post`` (T, G, dv) the values ``v_t^g``, and the
    golden simulator's weights ``H`` (G, dv, m) after the writes."""

    node: str
    pre: np.ndarray
    post: np.ndarray
    golden: np.ndarray


@dataclass
class PlasticityResult:
    """Weights learned by LearningDense (``floating_pt``; ``fixed_pt``: integers times their unit
    ``fixed_scale``) beside golden's, and their relative L2 errors."""

    node: str
    tokens: int
    heads: int
    golden: np.ndarray
    learned: dict[str, np.ndarray] = field(default_factory=dict)
    errors: dict[str, float] = field(default_factory=dict)
    fixed_scale: float = float("nan")
    seconds: dict[str, float] = field(default_factory=dict)
    segments: list[str] = field(default_factory=list)  # shared-memory segments Lava made (all unlinked)


def hebbian_writes(net, x, mask, node: str | None = None, sequence: int = 0) -> HebbianWrites:
    """The write-phase activity of Hebbian group ``node`` (default: the first) from the golden simulator."""
    from hardware_sim.golden import simulate

    groups = [op.name for op in net.of_kind("hebbian_synapses")]
    if not groups:
        raise InputError(f"network {net.name!r} has no Hebbian synapses to check")
    node = node or groups[0]
    if node not in groups:
        raise InputError(f"{node!r} is not a Hebbian synapse group; choose one of {', '.join(groups)}")
    inputs = net.inputs_of(node)
    result = simulate(net, x, mask, probes={"weights"}, keep=(inputs["pre"], inputs["teacher"]))
    feats = result.values[inputs["pre"]]
    op = net.node(node)
    pre = np.asarray(feats.write)[sequence].transpose(1, 0, 2)
    post = result.values[inputs["teacher"]][sequence].reshape(pre.shape[0], op.n_kv_heads, op.v_head_dim)
    golden = result.probes[f"{node}/weights"][sequence]
    unused = golden.shape[-1] - pre.shape[-1]  # exact slots beyond the tokens are never written
    return HebbianWrites(node, np.pad(pre, ((0, 0), (0, 0), (0, unused))), post, golden)


def block_diagonal(W: np.ndarray, heads: int) -> np.ndarray:
    """(G dv, G m) learned matrix -> (G, dv, m) diagonal blocks."""
    dv, m = W.shape[0] // heads, W.shape[1] // heads
    return np.stack([W[g * dv:(g + 1) * dv, g * m:(g + 1) * m] for g in range(heads)])


def relative(a, b) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def check_plasticity(net, x, mask, node: str | None = None, timeout: float = 300.0) -> PlasticityResult:
    """Learn the weights of one Hebbian group with LearningDense on floating_pt and fixed_pt."""
    writes = hebbian_writes(net, x, mask, node)
    T, G, m = writes.pre.shape
    result = PlasticityResult(writes.node, T, G, writes.golden)
    pre = writes.pre.reshape(T, G * m).T
    post = writes.post.reshape(T, G * writes.post.shape[2]).T
    start = time.perf_counter()
    (W,), made = run_worker(learn, (pre, [post], "floating_pt"), timeout)
    result.segments += made
    result.seconds["floating_pt"] = time.perf_counter() - start
    result.learned["floating_pt"] = block_diagonal(W, G)
    result.errors["floating_pt"] = relative(result.learned["floating_pt"], writes.golden)

    payload, traces, unit = fixed_point_inputs(pre, post, writes)
    start = time.perf_counter()
    (plus, minus), made = run_worker(learn, (payload, traces, "fixed_pt"), timeout)
    result.segments += made
    result.seconds["fixed_pt"] = time.perf_counter() - start
    result.fixed_scale = unit
    result.learned["fixed_pt"] = unit * block_diagonal(plus - minus, G)
    result.errors["fixed_pt"] = relative(result.learned["fixed_pt"], writes.golden)
    return result


def fixed_point_inputs(pre, post, writes: HebbianWrites):
    """Integer payloads, the positive and negative ``y1`` traces, and the weight unit of fixed_pt.

    Lava's fixed_pt engine adds ``2 x1 y1 / 8`` weight units per pre-synaptic spike (measured:
    ``x1 = 8, y1 = 16`` learn 32 units) and saturates weights at 8 bits.  With payload ``round(sx f)``
    (``x1 = sx f / 2``) and trace ``round(sv v)``, ``W = sx sv H / 8``: ``sx`` and ``sv`` use the
    full 7-bit traces, shrunk together when the largest weight would pass 255.
    """
    sx = 2 * TRACE_MAX / max(float(pre.max()), 1e-300)
    sv = TRACE_MAX / max(float(np.abs(post).max()), 1e-300)
    positive = np.einsum("gtv,gtm->gvm", np.maximum(writes.post, 0).transpose(1, 0, 2), writes.pre.transpose(1, 0, 2))
    negative = np.einsum("gtv,gtm->gvm", np.maximum(-writes.post, 0).transpose(1, 0, 2), writes.pre.transpose(1, 0, 2))
    largest = max(float(positive.max()), float(negative.max()), 1e-300)
    shrink = min(1.0, np.sqrt(8 * WEIGHT_MAX / (sx * sv * largest)))
    sx, sv = sx * shrink, sv * shrink
    payload = np.floor(pre * sx + 0.5)
    traces = [np.floor(np.maximum(post, 0) * sv + 0.5), np.floor(np.maximum(-post, 0) * sv + 0.5)]
    return payload, traces, 8.0 / (sx * sv)


def learn(pre: np.ndarray, posts: list[np.ndarray], tag: str) -> list[np.ndarray]:
    """In the Lava worker: one LearningDense per post trace, fed ``pre`` (n_pre, T) graded spikes and
    ``post`` (n_post, T) as ``y1``; run T steps (+1 so the last epoch is learned); return the weights."""
    from lava.magma.core.learning.learning_rule import Loihi3FLearningRule
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import LearningDense
    from lava.proc.io.source import RingBuffer

    T = pre.shape[1]
    pad = np.zeros((pre.shape[0], 1))
    source = RingBuffer(data=np.concatenate([pre, pad], axis=1))
    denses = []
    for post in posts:
        rule = Loihi3FLearningRule(dw=RULE, x1_tau=TAU, t_epoch=1)
        dense = LearningDense(weights=np.zeros((post.shape[0], pre.shape[0])), num_message_bits=24,
                              learning_rule=rule, graded_spike_cfg=graded_overwrite())
        trace = RingBuffer(data=np.concatenate([post, np.zeros((post.shape[0], 1))], axis=1))
        bap = RingBuffer(data=np.zeros((post.shape[0], T + 1)))
        source.s_out.connect(dense.s_in)
        trace.s_out.connect(dense.s_in_y1)
        bap.s_out.connect(dense.s_in_bap)
        for port in (dense.s_in_y2, dense.s_in_y3):
            RingBuffer(data=np.zeros((post.shape[0], T + 1))).s_out.connect(port)
        denses.append(dense)
    try:
        source.run(condition=RunSteps(num_steps=T + 1), run_cfg=Loihi2SimCfg(select_tag=tag))
        return [np.asarray(d.weights.get(), dtype=np.float64) for d in denses]
    finally:
        source.stop()


def graded_overwrite():
    from lava.magma.core.learning.constants import GradedSpikeCfg

    return GradedSpikeCfg.OVERWRITE


def run_worker(fn, args, timeout: float):
    """``fn(*args)`` in a forked worker leading its own process group; results through a pipe.

    Returns ``(result, segments)``: the names of the shared-memory segments the worker created,
    every one unlinked by the time this returns."""
    preload_lava()
    with tempfile.TemporaryDirectory(prefix="tripartite-plasticity-") as tmp:
        shm_log = str(Path(tmp) / "shm")
        ctx = mp.get_context("fork")
        receiver, sender = ctx.Pipe(duplex=False)
        worker = ctx.Process(target=worker_main, args=(sender, fn, args, shm_log), name="tripartite-plasticity")
        worker.start()
        sender.close()
        try:
            deadline = time.perf_counter() + timeout
            while not receiver.poll(0.05):
                if not worker.is_alive() and not receiver.poll(0):
                    raise SimulationError(f"lava: the plasticity worker exited (code {worker.exitcode}) "
                                          "without results")
                if time.perf_counter() > deadline:
                    raise SimulationError(f"lava: the plasticity check exceeded its {timeout:g} s timeout; stopped")
            try:
                status, value = receiver.recv()
            except EOFError:
                status, value = "error", "lava: the plasticity worker closed its pipe without results"
            if status != "ok":
                raise SimulationError(value)
        finally:
            shut_down(worker, receiver, shm_log)
        made = Path(shm_log).read_text().split() if Path(shm_log).exists() else []
    return value, made


def worker_main(sender, fn, args, shm_log) -> None:
    parent = os.getppid()
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    start_reaper(parent, shm_log)
    code = 0
    try:
        mp.set_start_method("fork", force=True)
        log_segments(shm_log)
        single_threaded_blas()
        sender.send(("ok", fn(*args)))
    except BaseException as exc:  # noqa: BLE001  (returned to the caller as one line)
        code = 1
        first = str(exc).splitlines()[0] if str(exc) else ""
        try:
            sender.send(("error", f"lava: plasticity check failed: {type(exc).__name__}: {first}"))
        except Exception:
            pass
    finally:
        sender.close()
        os._exit(code)
