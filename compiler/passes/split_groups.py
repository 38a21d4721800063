"""Extra synapse groups for precision: outlier channels in a group of their own, and 16-bit q/k maps.

Both edits add ordinary synapse groups summing onto the population a linear map already feeds
(``fan_in`` grows by one), so every backend runs them as it runs any other group.

Outlier channels.  A linear map ``y = W x + b`` whose input channels ``J`` have calibrated
activations far above the rest (``max_t |x_jt| > OUTLIER_RATIO * median_j max_t |x_jt|``, at most
``MAX_OUTLIERS`` of the loudest) becomes::

    <name>                    W with the columns J set to 0, b     (the bulk, its own row exponents)
    <name>.outliers.select    S (|J|, pre), S_kj = [j = J_k]       (exact: weight 1)
    <name>.outliers.relay     population of |J| identity neurons   (x_J at its own exponent)
    <name>.outliers           W[:, J] from the relay               (its own row exponents)

so ``y = W_bulk x + W[:, J] x_J`` exactly in float, and each part's 8-bit mantissas are scaled to
its own weights.  The cost is |J| neurons and |J| (pre + post) synapses.

Residual group (``split_qk``).  A query or key map, whose errors the exponential of the attention
scores amplifies, gets a second group ``<name>.residual`` carrying ``R = W - Q`` (``Q`` the first
group's 8-bit weights) at its own row exponents: ``y = Q x + R_q x``, about 16 bits of weight
precision for twice the synaptic memory of that map.

Every added group records ``quant["part"]`` (``bulk``, ``select``, ``outliers``, ``residual``) so
reports and the error breakdown can tell the parts of one map apart (the relay population: ``relay``).
"""

from __future__ import annotations

import re

import numpy as np

from compiler.process import nodes as pn

OUTLIER_RATIO = 0.0  # default: off (see the benchmark table in the README)
MAX_OUTLIERS = 8
QK = re.compile(r"attn\.[qk]\.synapses$")


def target_population(net, name: str) -> str:
    """The population the synapse group ``name`` feeds."""
    (pop,) = list(net.g.successors(name))
    return pop


def add_group(net, name: str, group: pn.Synapses, pre: str) -> str:
    """Add ``group`` from ``pre`` onto the population fed by synapse group ``name`` (one more port)."""
    pop = net.node(target_population(net, name))
    net.add(group, pre=pre)
    pop.fan_in += 1
    net.connect(group.name, pop.name, f"in{pop.fan_in - 1}")
    return group.name


def outlier_channels(channel_max: np.ndarray, ratio: float, limit: int = MAX_OUTLIERS) -> np.ndarray:
    """Indices (ascending) of the loudest channels above ``ratio`` times the median channel maximum."""
    channel_max = np.asarray(channel_max, dtype=np.float64)
    if ratio <= 0 or channel_max.size < 4:
        return np.zeros(0, dtype=np.int64)
    median = float(np.median(channel_max))
    loud = np.flatnonzero(channel_max > ratio * max(median, 1e-300))
    loud = loud[np.argsort(-channel_max[loud], kind="stable")][:limit]
    return np.sort(loud).astype(np.int64)


def split_outliers(net, name: str, channels: np.ndarray) -> tuple[str, str, str]:
    """Move the columns ``channels`` of synapse group ``name`` into their own group (module docstring);
    return the names of the selection group, the relay population and the outlier group."""
    op = net.node(name)
    pre = net.inputs_of(name)["pre"]
    k = len(channels)
    select = np.zeros((k, op.pre_size))
    select[np.arange(k), channels] = 1.0
    sel = net.add(pn.Synapses(f"{name}.outliers.select", pre_size=op.pre_size, post_size=k, weight=select,
                              circuit=op.circuit, quant={"part": "select"}), pre=pre)
    relay = net.add(pn.Population(f"{name}.outliers.relay", size=k, circuit=op.circuit, quant={"part": "relay"}),
                    in0=sel)
    group = pn.Synapses(f"{name}.outliers", pre_size=k, post_size=op.post_size, weight=op.weight[:, channels].copy(),
                        circuit=op.circuit, quant={"part": "outliers"})
    add_group(net, name, group, relay)
    bulk = op.weight.copy()
    bulk[:, channels] = 0.0
    op.weight = bulk
    op.quant["part"] = "bulk"
    op.quant["outlier_channels"] = [int(c) for c in channels]
    return sel, relay, group.name


def add_residual(net, name: str, residual: np.ndarray) -> str:
    """A second group ``<name>.residual`` with weights ``residual`` from the same pre population."""
    op = net.node(name)
    group = pn.Synapses(f"{name}.residual", pre_size=op.pre_size, post_size=op.post_size, weight=residual,
                        circuit=op.circuit, quant={"part": "residual"})
    return add_group(net, name, group, net.inputs_of(name)["pre"])
