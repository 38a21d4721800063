"""The Lava Process side shared by every custom process: ports and Vars from a :class:`ProcessSpec`.

A process runs one process-graph node (``fine``) or several (``block``, ``fused``).  Its ports and Vars
depend on the nodes it runs, so they are declared per instance from the spec: one InPort per
external producer (``in0``, ``in1``, ...), one OutPort per node read outside the process (``out0``,
...), one Var per kind of state (``calcium``, ``soma``, ``offset``, ``weights``, ``keys``,
``gain``, ``slots``), the state of several nodes side by side (``spec.layout`` says where);
``fixed_pt`` processes also hold ``saturations``, the saturation count under each of
``spec.count_names``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from lava.magma.core.process.ports.ports import InPort, OutPort
from lava.magma.core.process.process import AbstractProcess
from lava.magma.core.process.variable import Var


@dataclass
class PortSpec:
    """``name`` of the Lava port, ``node`` the producer (in) or the member (out), ``width``."""

    name: str
    node: str
    width: int


@dataclass
class ProcessSpec:
    """What one Lava process runs: member kernels in topological order; ``wiring[node][port] =
    (in_port or "", producer, delay, width)`` (an empty in_port: the producer is a member);
    ``layout[node][var] = (start, shape)`` of the node's state inside the Var ``var``."""

    name: str
    members: list
    in_ports: list[PortSpec]
    out_ports: list[PortSpec]
    wiring: dict[str, dict[str, tuple[str, str, int, int]]]
    layout: dict[str, dict[str, tuple[int, tuple[int, ...]]]] = field(default_factory=dict)
    var_sizes: dict[str, int] = field(default_factory=dict)
    error_file: str = ""
    tag: str = "floating_pt"
    count_names: list[str] = field(default_factory=list)

    def var_names(self) -> list[str]:
        return sorted(self.var_sizes)


class CircuitProcess(AbstractProcess):
    """Base of the custom processes: declares the ports and Vars its spec asks for."""

    def __init__(self, *, spec: ProcessSpec, **kwargs):
        super().__init__(spec=spec, name=spec.name, **kwargs)
        for port in spec.in_ports:
            setattr(self, port.name, InPort(shape=(port.width,)))
        for port in spec.out_ports:
            setattr(self, port.name, OutPort(shape=(port.width,)))
        for var, size in spec.var_sizes.items():
            setattr(self, var, Var(shape=(max(size, 1),), init=np.zeros(max(size, 1))))
