"""Lava process: the astrocyte of an attention circuit; Vars calcium, soma, offset (and slots)."""

from hardware_sim.lava.process_base import CircuitProcess


class AstrocyteProcess(CircuitProcess):
    """Lava process running the astrocyte of an attention circuit; Vars calcium, soma, offset (and slots).

    Ports and Vars come from its :class:`~hardware_sim.lava.process_base.ProcessSpec`; the
    equations are the kernels' (:mod:`hardware_sim.lava.kernels`).
    """
