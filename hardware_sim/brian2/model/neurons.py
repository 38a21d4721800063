"""Populations, normalising astrocytes and the input encoder as Brian2 neuron groups.

Every group carries its activity in ``y``, set once per step by its response statement (a
``run_regularly`` at the group's place in the network's order).  Neuron ``b * size + i`` is
neuron i of sequence b.
"""

from __future__ import annotations

import math

import numpy as np
from brian2 import NeuronGroup, Synapses

from .wiring import Source, port_equations

RESPONSES = {
    "identity": "y = u",
    "relu": "y = clip(u, 0, inf)",
    "silu": "y = u / (1 + exp(-u))",
    "gelu_erf": "y = 0.5 * u * (1 + erf(u / sqrt(2)))",
    "gelu_tanh": "y = 0.5 * u * (1 + tanh(sqrt(2 / pi) * (u + 0.044715 * u**3)))",
    "product": "y = (in_in0 + b_in0) * (in_in1 + b_in1)",
    "rotary": "y = u * cos(token_of(t) * theta) + u_pair * sin(token_of(t) * theta)",
}


def input_encoder(build, node):
    """Host input: neuron i of the encoder carries the presented token's vector, ``y = x_in(t, i)``."""
    size = node.attrs["size"]
    group = NeuronGroup(build.batch * size, "y : 1", name=build.name(node.name))
    build.add(group)
    build.respond(group, "y = x_in(t, i)")
    return Source(group, size, name=node.name)


def population(build, node):
    """Graded neurons: ``u = sum_p (in_p + b_p)`` (product: ``y = (in0 + b0)(in1 + b1)``), ``y = f(u)``.

    Rotary neurons rotate each pair (a, b) of a head by ``token * theta_i``: ``y = u cos + u_pair sin``
    with ``u_pair = -b`` for a and ``+a`` for b, delivered by synapses within the population.
    """
    a = node.attrs
    ports = [f"in{p}" for p in range(a["fan_in"])]
    u = " + ".join(f"in_{p} + b_{p}" for p in ports)
    eqs = [port_equations(*ports), f"u = {u} : 1", "y : 1"]
    if a["response"] == "rotary":
        eqs += ["u_pair : 1", "theta : 1 (constant)"]
    group = NeuronGroup(build.batch * a["size"], "\n".join(eqs), name=build.name(node.name))
    build.add(group)
    order = build.order()
    for p in ports:
        build.feed(node, p, group, a["size"], order=order)
    if a["response"] == "rotary":
        rotary_pairs(build, node, group)
    build.respond(group, RESPONSES[a["response"]])
    return Source(group, a["size"], name=node.name)


def rope_pairs(size: int, n_heads: int, head_dim: int, base: float, pairing: str, rotary_dim: int):
    """Partner, sign and angle of every neuron: ``y_i = u_i cos(p theta_i) + sign_i u_partner sin(p theta_i)``."""
    partner, sign, theta = np.arange(size), np.zeros(size), np.zeros(size)
    inv_freq = 1.0 / (base ** (np.arange(0, rotary_dim, 2, dtype=np.float64) / rotary_dim))
    half = rotary_dim // 2
    for h in range(n_heads):
        o = h * head_dim
        for k in range(half):
            a, b = (o + k, o + k + half) if pairing == "half" else (o + 2 * k, o + 2 * k + 1)
            partner[a], sign[a], partner[b], sign[b] = b, -1.0, a, 1.0
            theta[a] = theta[b] = inv_freq[k]
    return partner, sign, theta


def rotary_pairs(build, node, group):
    """Synapses from each rotary neuron's partner: ``u_pair_post = sign * u_pre``."""
    a = node.attrs
    partner, sign, theta = rope_pairs(a["size"], **{k: a["rope"][k] for k in
                                                    ("n_heads", "head_dim", "base", "pairing", "rotary_dim")})
    group.theta[:] = np.tile(theta, build.batch)
    rotated = np.flatnonzero(sign)
    syn = Synapses(group, group, "turn : 1 (constant)\nu_pair_post = turn * u_pre : 1 (summed)",
                   name=build.name(node.name + "_pairs"))
    blocks = np.arange(build.batch)[:, None] * a["size"]
    syn.connect(i=(blocks + partner[rotated]).ravel(), j=(blocks + rotated).ravel())
    syn.turn[:] = np.tile(sign[rotated], build.batch)
    syn.summed_updaters["u_pair_post"].order = build.order()
    build.add(syn)


def norm_astrocyte(build, node):
    """A normalising astrocyte over a domain of N neurons, one astrocyte per sequence.

    Domain neurons: ``x`` (their input), ``xc = x - mean`` (rms: ``xc = x``), output
    ``y = xc * gain * weight + bias``.  The astrocyte integrates ``mean = sum x / N`` and
    ``var = sum xc^2 / N`` over its domain (summed variables) and returns the divisive gain
    ``gain = 1 / sqrt(var + eps)`` to every domain neuron (a summed variable of one synapse each).
    """
    a = node.attrs
    N, layer = a["size"], a["mode"] == "layer"
    centre = "xc = x - mean : 1\nmean : 1" if layer else "xc = x : 1"
    domain = NeuronGroup(build.batch * N, "\n".join([
        port_equations("x"), "x = in_x + b_x : 1", centre, "gain : 1", "weight : 1 (constant)",
        "bias : 1 (constant)", "y : 1"]), name=build.name(node.name))
    gain = ("mean_x : 1\n" if layer else "") + f"var : 1\ng = 1 / sqrt(var + {float(a['eps'])!r}) : 1"
    astro = NeuronGroup(build.batch, gain, name=build.name(node.name + "_astrocyte"))
    domain.weight[:] = np.tile(node.arrays["weight"], build.batch)
    if node.arrays.get("bias") is not None:
        domain.bias[:] = np.tile(node.arrays["bias"], build.batch)
    build.add(domain, astro)
    build.feed(node, "x", domain, N, order=build.order())
    astro_of, neuron = np.repeat(np.arange(build.batch), N).astype(np.int32), np.arange(build.batch * N, dtype=np.int32)
    integrate = [f"var_post = xc_pre**2 / {N} : 1 (summed)"]
    feedback = ["gain_post = g_pre : 1 (summed)"]
    if layer:
        integrate.insert(0, f"mean_x_post = x_pre / {N} : 1 (summed)")
        feedback.insert(0, "mean_post = mean_x_pre : 1 (summed)")
    up = Synapses(domain, astro, "\n".join(integrate), name=build.name(node.name + "_integrate"))
    up.connect(i=neuron, j=astro_of)
    down = Synapses(astro, domain, "\n".join(feedback), name=build.name(node.name + "_gain"))
    down.connect(i=astro_of, j=neuron)
    if layer:
        up.summed_updaters["mean_x_post"].order = build.order()
        down.summed_updaters["mean_post"].order = build.order()
    up.summed_updaters["var_post"].order = build.order()
    down.summed_updaters["gain_post"].order = build.order()
    build.add(up, down)
    build.respond(domain, "y = xc * gain * weight + bias")
    return Source(domain, N, name=node.name)


def output_decoder(build, node):
    """The host reads the activity of the group feeding ``x`` (recorded at the end of every step)."""
    source = build.source(node.inputs["x"])
    if source.weight is not None:
        raise ValueError(f"output {node.name!r} reads a synapse group; decoders read populations")
    build.record(node.attrs["role"], source)
    return None


def schedule(build, node):
    """Schedules have no neurons: the clock (see :mod:`.clock`) is built from them."""
    return None


def erf_function():
    """``erf`` for the numpy target (Brian2 has none built in): math.erf element by element."""
    from brian2 import Function

    vector = np.frompyfunc(math.erf, 1, 1)
    return Function(lambda x: np.asarray(vector(x), dtype=np.float64), arg_units=[1], return_unit=1)
