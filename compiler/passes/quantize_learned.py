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
the feature part of the soma is weighted by ``g exp(-s) <= g`` (``g`` the largest gain, ``s >= 0``
assumed), the ring adds at most W and the astrocyte records ``mix_exp`` for its mixed read-out (at
most ``max|v| z``).  The soma's reciprocal has an exponent of its own per soma
(:func:`hardware_sim.golden.fixed_learned.floating_reciprocal`): it needs no range (``recip_exp`` is
recorded but unused).
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
        gain = float(np.exp(op.log_gain).max()) if op.window else 1.0
        context_bounds(net, op, ranges, gain)


def context_bounds(net, feats, ranges, gain: float = 1.0) -> None:
    T = float(net.node(feats.schedule).max_tokens)
    teacher = 1.0
    for name in net.g.successors(feats.name):
        op = net.node(name)
        if op.kind == "hebbian_synapses":
            r = ranges.setdefault(name, {})
            teacher = ranges.get(net.inputs_of(name)["teacher"], {}).get("value", 1.0)
            r["weights"] = max(r.get("weights", 0.0), teacher * T)
            r["value"] = max(r.get("value", 0.0), teacher * 2 * T)
    for name in net.g.successors(feats.name):
        if net.node(name).kind == "astrocyte":
            r = ranges.setdefault(name, {})
            r["calcium"] = max(r.get("calcium", 0.0), T)
            r["soma_sum"] = max(r.get("soma_sum", 0.0), 2 * T * gain + feats.window)
            r["mix"] = teacher * r["soma_sum"]


def record_windows(net, ranges, state_exp) -> None:
    """``mix_exp`` of the astrocyte of every learned circuit with a window: its mixed read-out
    ``exp(-s) u + sum_j e_j v_j`` is at most ``max|v| z``."""
    for feats in learned_nodes(net):
        for name in net.g.successors(feats.name):
            op = net.node(name)
            if op.kind == "astrocyte" and feats.window:
                op.quant["mix_exp"] = state_exp(ranges.get(name, {}).get("mix", 1.0))


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
