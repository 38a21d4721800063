"""Process models of :class:`Population`: ``floating_pt`` (float kernels)."""

from lava.magma.core.decorator import implements, requires, tag
from lava.magma.core.resources import CPU
from lava.magma.core.sync.protocols.loihi_protocol import LoihiProtocol

from hardware_sim.lava.engine import CircuitModel
from hardware_sim.lava.population.process import Population


@implements(proc=Population, protocol=LoihiProtocol)
@requires(CPU)
@tag("floating_pt")
class PyPopulationModelFloat(CircuitModel):
    """Float model: runs the member kernels in the precision of the compiled network."""
