"""Lava process: a normalising astrocyte (divisive gain 1/sqrt(var + eps) over its domain); Var gain."""

from hardware_sim.lava.process_base import CircuitProcess


class NormAstrocyte(CircuitProcess):
    """Lava process running a normalising astrocyte (divisive gain 1/sqrt(var + eps) over its domain); Var gain.

    Ports and Vars come from its :class:`~hardware_sim.lava.process_base.ProcessSpec`; the
    equations are the kernels' (:mod:`hardware_sim.lava.kernels`).
    """
