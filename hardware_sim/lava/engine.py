"""The ProcessModel side shared by every custom process: the per-step engine running the kernels.

Each time step a model (1) sends what it computed in the previous step on its OutPorts, (2)
receives one message per InPort, (3) runs its member kernels in topological order, feeding each
input port through its delay line, and keeps the outputs for the next step's send.  A failure in a
kernel is written as one line naming the node to ``spec.error_file`` (the runner's watchdog reads
it and stops the run) and re-raised.
"""

from __future__ import annotations

import contextlib
import os
import typing as ty
from collections import deque

import numpy as np
from lava.magma.core.model.py.model import PyLoihiProcessModel
from lava.magma.core.model.py.ports import PyInPort, PyOutPort
from lava.magma.core.model.py.type import LavaPyType

from hardware_sim.lava.process_base import ProcessSpec


class DelayLine:
    """``y(s) = x(s - d)``: a FIFO of ``d`` messages (``d = 0`` passes through)."""

    def __init__(self, delay: int, width: int):
        self.buf = deque([np.zeros(width)] * delay, maxlen=delay + 1) if delay else None

    def push(self, x):
        if self.buf is None:
            return x
        self.buf.append(x)
        return self.buf.popleft()


def report_error(path: str, message: str) -> None:
    """Write ``message`` to ``path`` unless another process already reported (first error wins).

    The message is written to a private file first and then hard-linked into place, so the
    watchdog, which polls for ``path``, never reads it half-written.
    """
    if not path:
        return
    draft = f"{path}.{os.getpid()}"
    try:
        with open(draft, "w") as fh:
            fh.write(message.replace("\n", " ")[:500])
        os.link(draft, path)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            os.unlink(draft)


class Engine:
    """Runs the members of ``spec`` on the model's ports and Vars.

    Everything that does not change from step to step is worked out once: each member's input
    wires (an InPort message or a member's output, through a delay line when the delay is not 0),
    the steps each member is due (:meth:`Kernel.due`), and the dtype each received message is cast
    to (once per step and dtype, however many members read it).
    """

    def __init__(self, spec: ProcessSpec, model):
        self.spec = spec
        self.model = model
        self.in_ports = [(p.name, getattr(model, p.name)) for p in spec.in_ports]
        self.out_ports = [(getattr(model, p.name), p.node) for p in spec.out_ports]
        self.pending = {p.node: np.zeros(p.width) for p in spec.out_ports}
        self.plan = []
        for kernel in spec.members:
            state = {}
            for var, (start, shape) in spec.layout.get(kernel.name, {}).items():
                flat = getattr(model, var)
                size = int(np.prod(shape))
                state[var] = flat[start : start + size].reshape(shape)
            kernel.bind(kernel.clock, state)
            wires = []
            for port, (where, src, delay, width) in spec.wiring[kernel.name].items():
                line = DelayLine(delay, width) if delay else None
                wires.append((port, where, src, line))
            idle = np.zeros(kernel.out_width())
            self.plan.append((kernel, wires, due_steps(kernel), idle, any(w[3] for w in wires)))
        self.kernels = spec.members
        self.counts = model.saturations if spec.count_names else None

    def step(self, s: int) -> None:
        for port, node in self.out_ports:
            port.send(self.pending[node])
        received = {name: port.recv() for name, port in self.in_ports}
        cast = {}
        values = {}
        for kernel, wires, due, idle, delayed in self.plan:
            if s not in due:
                if delayed:
                    self.feed(kernel, wires, received, cast, values)
                values[kernel.name] = idle
                continue
            inputs = self.feed(kernel, wires, received, cast, values)
            try:
                values[kernel.name] = kernel.step(s, inputs)
            except Exception as exc:
                message = f"lava: node {kernel.name!r} ({kernel.op.kind}) failed at step {s}: " \
                          f"{type(exc).__name__}: {exc}"
                report_error(self.spec.error_file, message)
                raise
        for _, node in self.out_ports:
            self.pending[node] = values[node]
        if self.counts is not None:
            self.record_saturations()

    @staticmethod
    def feed(kernel, wires, received, cast, values) -> dict:
        """The inputs of ``kernel`` this step (pushing every delay line it owns)."""
        inputs = {}
        for port, where, src, line in wires:
            if where:
                key = (where, kernel.dtype)
                x = cast.get(key)
                if x is None:
                    x = cast[key] = np.asarray(received[where], dtype=kernel.dtype)
            else:
                x = values[src]
            inputs[port] = line.push(x) if line is not None else x
        return inputs

    def record_saturations(self) -> None:
        """``saturations[i]``: values clamped so far under ``spec.count_names[i]`` by the members."""
        for i, name in enumerate(self.spec.count_names):
            self.counts[i] = sum(k.counter.counts.get(name, 0) for k in self.kernels)


def due_steps(kernel) -> frozenset:
    """The steps at which ``kernel`` is due (:meth:`Kernel.due`): every step from its write clock
    to the read of the last token of the last sequence that carries a token."""
    clock = kernel.clock
    last = clock.W + clock.R + (clock.B - 1) * clock.P + clock.T
    return frozenset(s for s in range(clock.W, last + 1) if kernel.due(s))


class CircuitModel(PyLoihiProcessModel):
    """Base of every custom model: the engine does the work; subclasses fix the tag."""

    def __init__(self, proc_params):
        super().__init__(proc_params)
        self.spec: ProcessSpec = proc_params["spec"]
        self.engine: Engine | None = None
        try:
            for kernel in self.spec.members:
                kernel.prepare()
        except Exception as exc:
            report_error(self.spec.error_file, f"lava: process {self.spec.name!r} failed to start: {exc}")
            raise

    def run_spk(self) -> None:
        if self.engine is None:
            try:
                self.engine = Engine(self.spec, self)
            except Exception as exc:
                report_error(self.spec.error_file, f"lava: process {self.spec.name!r} failed to start: {exc}")
                raise
        self.engine.step(self.time_step)


_MODELS: dict[tuple, type] = {}


def model_class(base: type, spec: ProcessSpec) -> type:
    """``base`` with the LavaPyTypes of ``spec``'s ports and Vars (Lava needs them on the class).

    Ports are float64 in both tags (``fixed_pt`` messages are 24-bit integers, exact in float64);
    state Vars hold the precision the kernels compute in: ``floating_pt`` the run's float dtype
    (float32 state for a float32 run, as the golden simulator keeps it), ``fixed_pt`` int64.
    """
    var_type = np.int64 if spec.tag == "fixed_pt" else state_dtype(spec)
    key = (base, tuple(p.name for p in spec.in_ports), tuple(p.name for p in spec.out_ports),
           tuple(spec.var_names()), spec.tag, var_type)
    if key not in _MODELS:
        attrs: dict[str, ty.Any] = {}
        for p in spec.in_ports:
            attrs[p.name] = LavaPyType(PyInPort.VEC_DENSE, float)
        for p in spec.out_ports:
            attrs[p.name] = LavaPyType(PyOutPort.VEC_DENSE, float)
        for var in spec.var_names():
            attrs[var] = LavaPyType(np.ndarray, var_type)
        _MODELS[key] = type(f"{base.__name__}_{len(_MODELS)}", (base,), attrs)
    return _MODELS[key]


def state_dtype(spec: ProcessSpec) -> type:
    """The float dtype of the members' kernels (float64 when they disagree or there are none)."""
    dtypes = {k.dtype for k in spec.members}
    return dtypes.pop() if len(dtypes) == 1 else np.float64
