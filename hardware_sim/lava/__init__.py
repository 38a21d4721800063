"""The Lava backend: compiled process graphs as networks of custom Lava processes on Loihi2SimCfg.

``floating_pt`` models run the float kernels (:mod:`.kernels`); ``fixed_pt`` models
(``precision="loihi2"``) run the integer kernels of :mod:`.kernels_fixed`, which call the golden
simulator's loihi2 step functions token by token and equal it bit for bit.

``run_lava`` runs a network under a watchdog; ``lava_steps`` counts the time steps a run takes
(docs/lava_schedule.md).  Importing this package does not import Lava.
"""

from hardware_sim.lava.runner import LavaResult, LavaTimeoutError, run_lava
from hardware_sim.lava.schedule import GRANULARITIES, lava_steps, make_plan

__all__ = ["GRANULARITIES", "LavaResult", "LavaTimeoutError", "lava_steps", "make_plan", "run_lava"]
