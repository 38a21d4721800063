"""Lava process: one or several fused stages of a compiled network."""

from hardware_sim.lava.process_base import CircuitProcess


class CircuitBlock(CircuitProcess):
    """Lava process running fused stages: granularity ``block`` gives each stage its own -- one
    attention circuit (feature neurons, Hebbian synapses, astrocyte) and the populations, synapses
    and norm astrocytes after it, up to the next circuit's feature neurons --, ``fused`` runs every
    stage of the network in one.  Vars ``calcium``, ``soma``, ``offset``, ``weights``, ``keys``, ``gain``,
    ``slots`` hold the state of its members side by side (``spec.layout`` says where).

    Ports and Vars come from its :class:`~hardware_sim.lava.process_base.ProcessSpec`; the
    equations are the kernels' (:mod:`hardware_sim.lava.kernels`).
    """
