"""Lava process: a population of graded neurons (u = sum or product of inputs, then the response)."""

from hardware_sim.lava.process_base import CircuitProcess


class Population(CircuitProcess):
    """Lava process running a population of graded neurons (u = sum or product of inputs, then the response).

    Ports and Vars come from its :class:`~hardware_sim.lava.process_base.ProcessSpec`; the
    equations are the kernels' (:mod:`hardware_sim.lava.kernels`).
    """
