"""A Lava runtime that stays up for a whole session: tokens go in through an injector, outputs come
back through the extractors, all in one Lava run.

The worker (forked, leading its own process group, watched like the runner's: see
:mod:`hardware_sim.lava.runner` and :mod:`hardware_sim.lava.orphan`) builds the network with a
Lava ``Injector`` as its source instead of a ring buffer, and starts one non-blocking run of as
many steps as the session's token budget needs.  The injector blocks until the host sends the
next token vector, so the network advances exactly as tokens arrive.  The host sends a feed's
tokens, then reads the extractors up to the row of the feed's last token and sends the rows back.

Only the ``fused`` granularity streams: its output for token ``t`` leaves the network in the step
after the token came in, before the injector needs token ``t + 1``; with more Lava processes the
output lags several steps behind and would need tokens that do not exist yet.  One sequence per
session (the clocks of a batch run sequences one after another).  Probes and saturation counts
are not read from a session (they need the run to end); the golden simulator records both.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from compiler.errors import InputError, SimulationError
from hardware_sim.fixed_point import SaturationCounter
from hardware_sim.lava.host_fixed import decode_outputs, encode_inputs
from hardware_sim.lava.orphan import start_reaper
from hardware_sim.lava.runner import (
    LAVA_MP,
    PRECISIONS,
    LavaTimeoutError,
    log_segments,
    preload_lava,
    read_error,
    shut_down,
    single_threaded_blas,
)
from hardware_sim.lava.schedule import make_plan


def lava_precision(precision: str) -> str:
    """The Lava models a network compiled at ``precision`` runs on: floating_pt float32, or loihi2."""
    return "loihi2" if precision == "loihi2" else "float32"


class LavaStream:
    """Host side of a Lava session (see module docstring); started at the first feed."""

    def __init__(self, net, precision: str, probes=(), timeout: float | None = 600.0, budget: int = 1):
        if probes:
            raise InputError("a Lava session records no probes; probe a session on the golden backend")
        self.net = getattr(net, "net", net)
        self.precision = lava_precision(precision)
        self.dtype, self.tag = PRECISIONS[self.precision]
        self.timeout, self.budget = timeout, budget
        self.worker = self.conn = self.tmp = None
        self.fed = 0

    # ---- life cycle ----------------------------------------------------------------------------
    def start(self) -> None:
        plan = make_plan(self.net, self.budget, 1, None, "fused", self.dtype, self.tag)
        late = [role for role, (_, arrival) in plan.decoders.items() if arrival > 2]
        if late:
            raise SimulationError(f"lava: output {late[0]!r} leaves the fused network more than one step after its "
                                  "token; a session cannot stream it")
        preload_lava()
        self.tmp = tempfile.mkdtemp(prefix="tripartite-lava-session-")
        self.error_file, self.shm_log = str(Path(self.tmp) / "error"), str(Path(self.tmp) / "shm")
        ctx = mp.get_context("fork")
        self.conn, child = ctx.Pipe(duplex=True)
        self.worker = ctx.Process(target=stream_worker, name="tripartite-lava-session",
                                  args=(child, self.net, plan, self.tag, self.error_file, self.shm_log))
        self.deadline = None if self.timeout is None else time.perf_counter() + self.timeout
        self.worker.start()
        child.close()
        self.plan = plan
        try:
            self.wait("ready")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Kill the worker's process group and unlink its shared-memory segments."""
        if self.worker is not None:
            try:
                shut_down(self.worker, self.conn, self.shm_log)
            finally:
                shutil.rmtree(self.tmp, ignore_errors=True)
                self.worker = self.conn = self.tmp = None
        self.fed = 0

    def reset(self) -> None:
        """A new sequence: the runtime ends; the next feed starts a fresh one."""
        self.close()

    # ---- feeding -------------------------------------------------------------------------------
    def feed(self, x, mask, positions):
        from runtime.session import Step

        if x.shape[0] != 1 or not mask.all():
            raise InputError("a Lava session streams one sequence without padding; feed one sequence at a time "
                             "or use the golden backend for a batch")
        if self.worker is None:
            self.start()
        counter = SaturationCounter()
        stream = encode_inputs(self.net, x, mask, counter) if self.tag == "fixed_pt" else x.astype(np.float64)
        try:
            self.conn.send(("feed", stream[0]))
            rows = self.wait("out")
        except BaseException:
            self.close()
            raise
        self.fed += x.shape[1]
        outputs = {role: value[None] for role, value in rows.items()}
        if self.tag == "fixed_pt":
            outputs = decode_outputs(self.net, outputs, counter)
        return Step({role: v.astype(self.dtype) for role, v in outputs.items()}, {}, counter.to_dict())

    def wait(self, kind: str):
        """The worker's next message of ``kind``; its error, its death or the deadline raise."""
        while True:
            if os.path.exists(self.error_file):
                raise SimulationError(read_error(self.error_file))
            if self.conn.poll(0.01):
                try:
                    message = self.conn.recv()
                except EOFError:
                    message = ("died",)
                if message[0] == kind:
                    return message[1] if len(message) > 1 else None
                if message[0] == "error":
                    time.sleep(0.05)
                    raise SimulationError(read_error(self.error_file) if os.path.exists(self.error_file)
                                          else message[1])
                raise SimulationError(f"lava: the session's worker exited (code {self.worker.exitcode})")
            if not self.worker.is_alive() and not self.conn.poll(0):
                raise SimulationError(f"lava: the session's worker exited (code {self.worker.exitcode})")
            if self.deadline is not None and time.perf_counter() > self.deadline:
                raise LavaTimeoutError(f"lava: the session exceeded its {self.timeout:g} s timeout after "
                                       f"{self.fed} tokens; the runtime was stopped (raise --timeout)")


def stream_worker(conn, net, plan, tag, error_file, shm_log) -> None:
    """Forked worker: build with an injector source, start one run, answer feeds until killed."""
    parent = os.getppid()
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    start_reaper(parent, shm_log)  # a killed caller leaves nothing running
    try:
        if LAVA_MP in sys.modules:
            mp.set_start_method("fork", force=True)
        else:
            mp.set_start_method(None, force=True)
        log_segments(shm_log)
        single_threaded_blas()
        lnet, injector, config = build_streaming(net, plan, tag, error_file)
        from lava.magma.core.run_conditions import RunSteps

        injector.run(condition=RunSteps(num_steps=plan.n_steps, blocking=False), run_cfg=config)
        conn.send(("ready",))
        serve(conn, lnet, injector, plan)
    except BaseException as exc:  # noqa: BLE001  (everything goes back to the caller as one line)
        try:
            first = str(exc).splitlines()[0] if str(exc) else ""
            conn.send(("error", f"lava: session failed: {type(exc).__name__}: {first}"))
        except Exception:
            pass
    finally:
        conn.close()
        os._exit(1)


def build_streaming(net, plan, tag, error_file):
    """The fused network with a blocking injector as its source, and the run configuration."""
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.io.injector import Injector, PyLoihiInjectorModel
    from lava.proc.io.utils import ChannelConfig, ReceiveEmpty, ReceiveNotEmpty, SendFull

    from hardware_sim.lava.builder import build_network

    width = net.node(plan.source).out_size()
    channel = ChannelConfig(send_full=SendFull.BLOCKING, receive_empty=ReceiveEmpty.BLOCKING,
                            receive_not_empty=ReceiveNotEmpty.FIFO)
    injector = Injector(shape=(width,), buffer_size=plan.T + 1, channel_config=channel)
    lnet = build_network(net, plan, None, tag=tag, error_file=error_file, fused=True,
                         source=(injector, PyLoihiInjectorModel, injector.out_port))
    return lnet, injector, Loihi2SimCfg(select_tag=tag, exception_proc_model_map=lnet.model_map)


def serve(conn, lnet, injector, plan) -> None:
    """Answer ``("feed", tokens (T, width))`` with ``("out", {role: (T, size)})`` until the host stops.

    Token ``t`` of the session enters at step ``1 + t``; an output decoder fed at ``arrival`` gives
    its value in extractor row ``arrival - 1 + t`` (one row per step).
    """
    fed = 0
    read = {role: 0 for role in lnet.sinks}
    while True:
        message = conn.recv()
        if message[0] != "feed":
            return
        tokens = message[1]
        for row in tokens:
            injector.send(np.asarray(row, dtype=np.float64))
        first, fed = fed, fed + len(tokens)
        out = {}
        for role, (_, arrival) in plan.decoders.items():
            kept = []
            while read[role] < arrival - 1 + fed:
                row = lnet.sinks[role].receive()
                if read[role] >= arrival - 1 + first:
                    kept.append(row)
                read[role] += 1
            out[role] = np.stack(kept)
        conn.send(("out", out))
