"""Process models of :class:`NormAstrocyte`: ``floating_pt`` (float kernels) and ``fixed_pt``
(the integer kernels of :mod:`hardware_sim.lava.kernels_fixed`, bit-exact with golden ``loihi2``)."""

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from hardware_sim.lava.engine import CircuitModel
from hardware_sim.lava.norm_astrocyte.process import NormAstrocyte


@implements(proc=NormAstrocyte, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyNormAstrocyteModelFloat(CircuitModel):
    """Float model: runs the member kernels in the precision of the compiled network."""


@implements(proc=NormAstrocyte, protocol=LoihiProtocol)
@requires(CPU)
@tag("fixed_pt")
class PyNormAstrocyteModelFixed(CircuitModel):
    """Fixed-point model: runs the member kernels in the integer arithmetic of the ``loihi2`` precision."""
