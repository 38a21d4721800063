"""Process models of :class:`CircuitBlock`: ``floating_pt`` (float kernels)."""

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from hardware_sim.lava.block.process import CircuitBlock
from hardware_sim.lava.engine import CircuitModel


@implements(proc=CircuitBlock, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyCircuitBlockModelFloat(CircuitModel):
    """Float model: runs the member kernels in the precision of the compiled network."""
