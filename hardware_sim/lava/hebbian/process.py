"""Lava process: the plastic synapses of an attention circuit (H += v f(k)^T); Var weights."""

from hardware_sim.lava.process_base import CircuitProcess


class HebbianGroup(CircuitProcess):
    """Lava process running the plastic synapses of an attention circuit (H += v f(k)^T); Var weights.

    Ports and Vars come from its :class:`~hardware_sim.lava.process_base.ProcessSpec`; the
    equations are the kernels' (:mod:`hardware_sim.lava.kernels`).
    """
