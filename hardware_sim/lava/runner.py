"""Run a compiled network on Lava's CPU simulator, under a watchdog.

Lava runs in a forked worker process that leads its own process group: the worker builds the
network, runs every step in a few ``run()`` calls, reads the sinks and sends the outputs back through
a pipe.  The caller waits with a deadline; once the outputs are in, or on a model error (reported as
one line in an error file), a timeout, an early exit or a KeyboardInterrupt, it kills the whole group
and unlinks every shared-memory segment the worker created (the worker logs their names), so no
process and no ``/dev/shm/psm_*`` segment outlives the call.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import multiprocessing as mp
import os
import secrets
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compiler.errors import InputError, SimulationError
from hardware_sim.fixed_point import SaturationCounter
from hardware_sim.inputs import check_token_inputs
from hardware_sim.lava.host_fixed import decode_outputs, encode_inputs
from hardware_sim.lava.orphan import start_reaper
from hardware_sim.lava.probes import attach_monitors, probe_kinds, read_monitors, slice_records, wanted
from hardware_sim.lava.schedule import make_plan

# precision -> (kernel dtype, Lava tag); loihi2 kernels compute on int64 payloads carried in float64.
PRECISIONS = {"float32": (np.float32, "floating_pt"), "float64": (np.float64, "floating_pt"),
              "loihi2": (np.float64, "fixed_pt")}
LAVA_MP = "lava.magma.runtime.message_infrastructure.multiprocessing"
HELD_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class LavaTimeoutError(SimulationError):
    """A Lava run exceeded its time limit (the runtime was killed and cleaned up)."""


@dataclass
class LavaResult:
    """Outputs by role (B, T, size), probes ``"node/record"`` (see :mod:`hardware_sim.lava.probes`),
    saturation counts by node (loihi2; the keys of the golden simulator's), Lava steps, process
    count and wall times (``run_seconds``: the steps alone)."""

    outputs: dict[str, np.ndarray]
    probes: dict[str, np.ndarray] = field(default_factory=dict)
    saturations: dict[str, int] = field(default_factory=dict)
    steps: int = 0
    processes: int = 0
    run_seconds: float = 0.0
    total_seconds: float = 0.0


def check_inputs(net, x, mask, precision, probes):
    if precision not in PRECISIONS:
        raise InputError(f"the Lava backend runs {', '.join(PRECISIONS)}, not {precision!r}")
    _, x, mask = check_token_inputs(net, x, mask, "lava")
    return x, mask


def run_lava(net, x, mask=None, precision: str = "float32", granularity: str = "fused", probes=(),
             timeout: float | None = 600.0, progress=None) -> LavaResult:
    """Run ``net`` on token vectors ``x`` (B, T, width) with padding ``mask`` (B, T) on Lava.

    Parameters
    ----------
    precision : float32 | float64 (``floating_pt`` models) | loihi2 (``fixed_pt`` models, bit-exact
        with the golden simulator's loihi2 precision; the network must be compiled for it).
    granularity : ``fused`` (default: all stages in one Lava process), ``block`` (one Lava process per
        stage, i.e. per transformer block) or ``fine`` (one per population, synapse group, feature
        population, Hebbian group, astrocyte and norm astrocyte).
    probes : calcium, soma, weights or all: Lava Monitors on the state Vars (short runs).
    timeout : seconds for the whole run (start-up included); None waits forever.
    progress : called as ``progress(tokens_done, tokens_total)`` while the run advances.

    Raises
    ------
    InputError on bad inputs, SimulationError naming the node when a model fails, LavaTimeoutError.
    """
    start = time.perf_counter()
    x, mask = check_inputs(net, x, mask, precision, tuple(probes))
    kinds = probe_kinds(probes)
    dtype, tag = PRECISIONS[precision]
    plan = make_plan(net, x.shape[1], x.shape[0], mask, granularity, dtype, tag)
    records = wanted(plan, kinds)
    counter = SaturationCounter()
    stream = encode_inputs(net, x, mask, counter) if tag == "fixed_pt" else x
    preload_lava()
    with tempfile.TemporaryDirectory(prefix="tripartite-lava-") as tmp:
        error_file, shm_log = str(Path(tmp) / "error"), str(Path(tmp) / "shm")
        ctx = mp.get_context("fork")
        receiver, sender = ctx.Pipe(duplex=False)
        worker = ctx.Process(target=worker_main, name="tripartite-lava",
                             args=(sender, net, plan, stream, tag, error_file, shm_log, granularity != "fine",
                                   progress is not None, records))
        try:  # started inside: a signal arriving while the fork returns still reaches shut_down
            worker.start()
            sender.close()
            outputs, run_seconds, traces, counts = supervise(worker, receiver, error_file, start, timeout, progress,
                                                             plan)
        finally:
            shut_down(worker, receiver, shm_log)
    if tag == "fixed_pt":
        counter.merge(counts)
        outputs = decode_outputs(net, outputs, counter)
    return LavaResult(outputs={r: v.astype(dtype) for r, v in outputs.items()}, steps=plan.n_steps,
                      saturations=counter.to_dict(),
                      probes=slice_records(plan, records, traces, dtype),
                      processes=plan.n_processes, run_seconds=run_seconds,
                      total_seconds=time.perf_counter() - start)


def preload_lava() -> None:
    """Import Lava, its compiler and the process models in the calling process, once: every run's
    forked worker then finds them loaded instead of importing them again (about 0.07 s a run).
    Lava sets the multiprocessing start method to 'fork' when first imported; the caller's
    setting is restored."""
    blas_controller()
    if "hardware_sim.lava.builder" in sys.modules and "lava.magma.compiler.compiler" in sys.modules:
        return
    previous = mp.get_start_method(allow_none=True)
    mp.set_start_method(None, force=True)
    try:
        import lava.magma.compiler.compiler  # noqa: F401
        import lava.magma.core.run_configs  # noqa: F401
        import lava.proc.monitor.models  # noqa: F401

        import hardware_sim.lava.builder  # noqa: F401
    finally:
        mp.set_start_method(previous, force=True)


def supervise(worker, receiver, error_file, start, timeout, progress, plan):
    """Wait for the worker's outputs; raise on a reported error, an early exit or the deadline."""
    deadline = None if timeout is None else start + timeout
    tokens = plan.B * plan.T
    while True:
        if os.path.exists(error_file):
            raise SimulationError(read_error(error_file))
        if receiver.poll(0.02):
            try:
                message = receiver.recv()
            except EOFError:
                message = ("died",)
            if message[0] == "progress":
                progress(min(tokens, int(tokens * message[1] / plan.n_steps)), tokens)
            elif message[0] == "ok":
                return message[1], message[2], message[3], message[4]
            elif message[0] == "error":
                time.sleep(0.05)
                raise SimulationError(read_error(error_file) if os.path.exists(error_file) else message[1])
            else:
                raise SimulationError(f"lava: the Lava worker exited (code {worker.exitcode}) without results")
        elif not worker.is_alive() and not receiver.poll(0):
            raise SimulationError(f"lava: the Lava worker exited (code {worker.exitcode}) without results")
        if deadline is not None and time.perf_counter() > deadline:
            raise LavaTimeoutError(f"lava: run of {plan.n_steps} steps exceeded the {timeout:g} s timeout; "
                              f"the runtime was stopped (raise --timeout or use granularity 'fused')")


def read_error(path: str) -> str:
    with open(path) as fh:
        return fh.read().strip() or "lava: a process model failed"


def group_members(pgid: int) -> list[int]:
    """Live processes in process group ``pgid`` (from /proc)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry))
    return pids


@contextlib.contextmanager
def signals_held():
    """Hold SIGINT, SIGTERM and SIGHUP until the block ends, then deliver the first one that came.

    Cleanup runs inside it, so Ctrl-C or a ``timeout`` arriving while the worker's group is being
    killed cannot cut the cleanup short and leave segments behind.  Main thread only (elsewhere
    Python delivers no signals).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in HELD_SIGNALS}
    for sig in HELD_SIGNALS:
        signal.signal(sig, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        if held:
            signal.raise_signal(held[0])


def shut_down(worker, receiver, shm_log: str) -> None:
    """Kill the worker's process group and unlink the shared-memory segments it created.

    Called once the results are in (or on any failure): killing the group ends the worker and
    every Lava process at once, which takes about a millisecond where Lava's own ``stop`` takes
    20 ms or more; the worker still stops the runtime itself if it gets there first.  Signals
    arriving meanwhile are held until the cleanup is done (:func:`signals_held`).
    """
    with signals_held():
        kill_group(worker, receiver, shm_log)


def kill_group(worker, receiver, shm_log: str) -> None:
    """SIGKILL the worker's group until it is empty, then unlink every segment logged or still mapped."""
    pgid = worker.pid
    mapped: set[str] = set()
    for _ in range(100 if pgid is not None else 0):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGSTOP)  # stopped, the group makes no segment the scan below misses
        members = group_members(pgid)
        mapped |= mapped_segments(members)  # also those the log missed
        if not members and not worker.is_alive():
            break
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        worker.join(timeout=0.05)
    if pgid is not None:
        worker.join(timeout=1.0)
    receiver.close()
    unlink_segments(shm_log, mapped)


def mapped_segments(pids) -> set[str]:
    """Names of the ``/dev/shm/psm_*`` segments the processes ``pids`` have mapped (from /proc)."""
    names = set()
    for pid in pids:
        try:
            with open(f"/proc/{pid}/maps") as fh:
                names |= {line.split("/dev/shm/", 1)[1].split()[0] for line in fh if "/dev/shm/psm_" in line}
        except OSError:
            continue
    return names


def segment_prefix(shm_log: str) -> str:
    """The name prefix of every ``/dev/shm`` segment of the run whose log is ``shm_log``:
    ``psm_`` (Python's own) and ten hex digits of the log's path, unique among live runs."""
    return "psm_" + hashlib.sha1(shm_log.encode()).hexdigest()[:10] + "_"


def unlink_segments(shm_log: str, extra=()) -> None:
    """Unlink the segments named in ``extra``, in ``shm_log``, and every one carrying the run's prefix
    (those made by a process stopped before it could log or map them)."""
    names = set(extra) | {os.path.basename(p) for p in glob.glob(f"/dev/shm/{segment_prefix(shm_log)}*")}
    if os.path.exists(shm_log):
        with open(shm_log) as fh:
            names |= {line.strip() for line in fh if line.strip()}
    for name in names:
        try:
            os.unlink(f"/dev/shm/{name.lstrip('/')}")
        except FileNotFoundError:
            pass


def log_segments(shm_log: str) -> None:
    """Name every shared-memory segment this process (and the processes it forks) creates with the
    run's prefix (:func:`segment_prefix`), and record the name of each one Lava creates in this process."""
    from multiprocessing import shared_memory

    from lava.magma.runtime.message_infrastructure import shared_memory_manager as smm

    prefix = "/" + segment_prefix(shm_log)
    shared_memory._make_filename = lambda: prefix + secrets.token_hex(4)
    original = smm.SharedMemoryManager.create_shared_memory

    def create(self, size):
        handle = original(self, size)
        with open(shm_log, "a") as fh:
            fh.write(handle.name + "\n")
        return handle

    smm.SharedMemoryManager.create_shared_memory = create


def worker_main(sender, net, plan, x, tag, error_file, shm_log, fused, report_progress, records) -> None:
    """Forked worker: build, run, read, stop; results or a one-line error go through ``sender``."""
    parent = os.getppid()
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    start_reaper(parent, shm_log)  # a killed caller leaves nothing running (hardware_sim/lava/orphan.py)
    code = 0
    lnet = None
    try:
        if LAVA_MP in sys.modules:
            mp.set_start_method("fork", force=True)  # Lava's processes are forked from the worker
        else:
            mp.set_start_method(None, force=True)  # Lava sets 'fork' when it is first imported
        log_segments(shm_log)
        single_threaded_blas()
        from lava.magma.core.run_conditions import RunSteps
        from lava.magma.core.run_configs import Loihi2SimCfg

        from hardware_sim.lava.builder import build_network, read_outputs

        lnet = build_network(net, plan, x, tag=tag, error_file=error_file, fused=fused)
        monitors = attach_monitors(lnet, records)
        config = Loihi2SimCfg(select_tag=tag, exception_proc_model_map=lnet.model_map)
        chunks = chunk_sizes(plan.n_steps, 10 if report_progress else 1)
        begin = time.perf_counter()
        done = 0
        for n in chunks:
            lnet.source.run(condition=RunSteps(num_steps=n), run_cfg=config)
            done += n
            if report_progress:
                sender.send(("progress", done))
        rows = {role: np.stack([sink.receive() for _ in range(plan.n_steps)]) for role, sink in lnet.sinks.items()}
        seconds = time.perf_counter() - begin
        sender.send(("ok", read_outputs(lnet, rows, np.float64), seconds, read_monitors(lnet, monitors),
                     read_saturations(lnet)))
    except BaseException as exc:  # noqa: BLE001  (everything goes back to the caller as one line)
        code = 1
        try:
            first = str(exc).splitlines()[0] if str(exc) else ""
            sender.send(("error", f"lava: run failed: {type(exc).__name__}: {first}"))
        except Exception:
            pass
    finally:
        if lnet is not None:
            try:
                lnet.source.stop()
            except Exception:
                code = 1
        sender.close()
        os._exit(code)


def read_saturations(lnet) -> dict[str, int]:
    """Saturation counts by node name from the ``saturations`` Vars of the fixed_pt processes."""
    counts = SaturationCounter()
    for group, names in lnet.count_names.items():
        if names:
            values = lnet.processes[group].saturations.get()
            counts.merge({name: int(round(v)) for name, v in zip(names, np.atleast_1d(values))})
    return counts.to_dict()


def single_threaded_blas() -> None:
    """One BLAS thread per Lava process: many small matrix-vector products in many processes on few
    cores slow to a crawl when every process also spins a BLAS thread pool."""
    controller = blas_controller()
    if controller is not None:
        controller.limit(limits=1)


_BLAS: list = []


def blas_controller():
    """threadpoolctl's view of the loaded BLAS libraries, found once per caller process (finding
    them takes milliseconds; limiting them through it takes microseconds)."""
    if not _BLAS:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _BLAS.append(None)
        else:
            _BLAS.append(ThreadpoolController())
    return _BLAS[0]


def chunk_sizes(total: int, parts: int) -> list[int]:
    """Split ``total`` steps into at most ``parts`` run() calls."""
    parts = max(1, min(parts, total))
    base, extra = divmod(total, parts)
    return [base + (i < extra) for i in range(parts)]
