"""Golden behaviour of populations, static synapses, normalising astrocytes and the host ends.

All activity is (B, T, size): one graded value per neuron and token.
"""

from __future__ import annotations

import numpy as np

from hardware_sim.golden.registry import behaviour


@behaviour("schedule")
def schedule(op, args, run):
    """A schedule has no activity: circuits read it by name."""
    return None


@behaviour("input_encoder")
def input_encoder(op, args, run):
    raise AssertionError("input encoders are fed by the simulator")


@behaviour("output_decoder")
def output_decoder(op, args, run):
    """``y = x``: the host reads the population's activity."""
    return args["x"]


@behaviour("synapses")
def synapses(op, args, run):
    """``out = W pre + b`` (one-to-one synapses when ``W`` is None)."""
    pre = args["pre"]
    out = pre if op.weight is None else pre @ run.cast(op, "weight").T
    return out if op.bias is None else out + run.cast(op, "bias")


@behaviour("population")
def population(op, args, run):
    """``u = sum_p in_p`` (product neurons: ``u = in0 * in1``), then the response."""
    y = op.respond([args[p] for p in op.input_ports()], run.positions, run.dtype)
    run.probe("activity", op.name, "activity", y)
    return y


@behaviour("norm_astrocyte")
def norm_astrocyte(op, args, run):
    """Divisive gain ``g = 1/sqrt(var + eps)`` (layer) or ``1/sqrt(mean x^2 + eps)`` (rms) on the domain."""
    x = args["x"]
    eps = run.dtype(op.eps)
    if op.mode == "layer":
        x = x - x.mean(axis=-1, keepdims=True)
    gain = 1.0 / np.sqrt((x * x).mean(axis=-1, keepdims=True) + eps)
    y = x * gain * run.cast(op, "weight")
    if op.bias is not None:
        y = y + run.cast(op, "bias")
    run.probe("activity", op.name, "activity", y)
    run.probe("soma", op.name, "gain", gain[..., 0])
    return y
