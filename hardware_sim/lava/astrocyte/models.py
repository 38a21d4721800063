"""Process models of :class:`AstrocyteProcess`: ``floating_pt`` (float kernels)."""

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from hardware_sim.lava.astrocyte.process import AstrocyteProcess
from hardware_sim.lava.engine import CircuitModel


@implements(proc=AstrocyteProcess, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyAstrocyteProcessModelFloat(CircuitModel):
    """Float model: runs the member kernels in the precision of the compiled network."""
