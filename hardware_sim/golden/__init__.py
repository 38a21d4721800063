"""The golden simulator: the executable specification of a compiled network's dynamics."""

from hardware_sim.golden.simulator import GoldenResult, simulate

__all__ = ["GoldenResult", "simulate"]
