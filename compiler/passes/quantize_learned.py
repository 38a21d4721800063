"""``loihi2`` exponents of ``learned`` circuits (distilled Hedgehog maps), for the quantize pass.

Per feature population (``side`` q or k):

    {side}_w_exp      one exponent per head and map column (the synapse row of one feature neuron),
                      8-bit mantissas (:func:`hardware_sim.fixed_point.quantize_weights`); the maps
                      left in the node are the values the mantissas hold
    {side}_logit_exp  the logits ``z = x W + b`` (calibrated max |z|, factor-2 headroom)

Context bounds (any input up to the schedule's ``max_tokens`` T is free of saturation, as the slot
count bounds an exact soma): every feature response is at most 1 and each half sums to 1, so
calcium ``c_j <= T``, the soma ``z = c.f(q) <= 2T``, the Hebbian weights ``|H| <= max|v| T`` and the
read-out ``|u| <= max|v| z``.  The ranges are raised to these bounds.  With a window of W ring slots
the soma adds at most W (the ring) and works in block floating point
(:mod:`hardware_sim.golden.fixed_window`): its ``soma_exp`` only reports ``z``.  The soma's
reciprocal has an exponent of its own per soma
(:func:`hardware_sim.golden.fixed_learned.floating_reciprocal`): it needs no range (``recip_exp``
is recorded but unused).
"""

from __future__ import annotations

import numpy as np

from hardware_sim.fixed_point import quantize_weights
from hardware_sim.golden.features import heads
from hardware_sim.golden.fixed_learned import map_columns

SIDES = {"q": ("query", "n_heads"), "k": ("key", "n_kv_heads")}


def learned_nodes(net):
    return [op for op in net.of_kind("features") if op.lowering == "learned"]


def _max_abs_masked(a, mask) -> float:
    a = np.asarray(a, dtype=np.float64)  # (B, N, T, n)
    a = np.where(mask[:, None, :, None], a, 0.0)
    return float(np.abs(a).max(initial=0.0))


def learned_ranges(net, values, mask, ranges) -> None:
    """Logit ranges of every learned population and the context bounds of its circuit (module docstring)."""
    for op in learned_nodes(net):
        inputs = net.inputs_of(op.name)
        r = ranges.setdefault(op.name, {})
        for side, (port, count) in SIDES.items():
            x = heads(np.asarray(values[inputs[port]], np.float64), getattr(op, count))
            z = x @ getattr(op, f"{side}_weight")[None] + getattr(op, f"{side}_bias")[None, :, None, :]
            r[f"{side}_logit"] = _max_abs_masked(z, mask)
        r["value"] = 1.0  # softmax responses (and a window's ring responses) lie in [0, 1]
        context_bounds(net, op, ranges)


def context_bounds(net, feats, ranges) -> None:
    T = float(net.node(feats.schedule).max_tokens)
    for name in net.g.successors(feats.name):
        op = net.node(name)
        r = ranges.setdefault(name, {})
        if op.kind == "hebbian_synapses":
            teacher = ranges.get(net.inputs_of(name)["teacher"], {}).get("value", 1.0)
            r["weights"] = max(r.get("weights", 0.0), teacher * T)
            r["value"] = max(r.get("value", 0.0), teacher * 2 * T)
        elif op.kind == "astrocyte":
            r["calcium"] = max(r.get("calcium", 0.0), T)
            r["soma_sum"] = max(r.get("soma_sum", 0.0), 2 * T + feats.window)


def record_learned(op, r, state_exp) -> None:
    """Column exponents and logit exponents of a learned population; its maps rounded in place."""
    for side in SIDES:
        weight = getattr(op, f"{side}_weight")
        N, d, n = weight.shape
        mant, e = quantize_weights(map_columns(weight), axis=0)
        held = np.ldexp(mant.astype(np.float64), e[:, None]).reshape(N, n, d)
        setattr(op, f"{side}_weight", np.ascontiguousarray(np.swapaxes(held, 1, 2)))
        op.quant[f"{side}_w_exp"] = [int(v) for v in e]
        op.quant[f"{side}_logit_exp"] = state_exp(r.get(f"{side}_logit", 1.0))
