"""Lava process: the feature neurons of an attention circuit; Var keys (exact slots)."""

from hardware_sim.lava.process_base import CircuitProcess


class FeatureNeurons(CircuitProcess):
    """Lava process running the feature neurons of an attention circuit; Var keys (exact slots).

    Ports and Vars come from its :class:`~hardware_sim.lava.process_base.ProcessSpec`; the
    equations are the kernels' (:mod:`hardware_sim.lava.kernels`).
    """
