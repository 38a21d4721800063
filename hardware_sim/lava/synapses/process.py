"""Lava process: a static synapse group (out = W pre + b)."""

from hardware_sim.lava.process_base import CircuitProcess


class SynapseGroup(CircuitProcess):
    """Lava process running a static synapse group (out = W pre + b).

    Ports and Vars come from its :class:`~hardware_sim.lava.process_base.ProcessSpec`; the
    equations are the kernels' (:mod:`hardware_sim.lava.kernels`).
    """
