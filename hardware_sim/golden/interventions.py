"""Interventions: modify a circuit's state before its reads, to show the output comes from that state.

``interventions`` maps a process node name to actions on it::

    {"layer0.attn.astrocyte": {"calcium_scale": c},    # c broadcastable to (B, n_heads, m) or (n_heads, m)
     "layer0.attn.hebbian":   {"weight_scale": s}}     # s broadcastable to (B, n_kv_heads, v_head_dim, m)
                                                       #   or (n_kv_heads, v_head_dim, m)

``calcium_scale`` multiplies the calcium of each astrocyte process as every read sees it (0 silences
a process: for exact slots that removes the token from the soma sum and, through the calcium gate,
from the transmitted value).  ``weight_scale`` multiplies the Hebbian weights ``H^g_{:, j}`` as
every read sees them.  Arrays without a batch axis apply to every sequence.
"""

from __future__ import annotations

import numpy as np

from compiler.errors import SimulationError

ACTIONS = {
    "astrocyte": {"calcium_scale": lambda op: (op.n_heads, op.m)},
    "hebbian_synapses": {"weight_scale": lambda op: (op.n_kv_heads, op.v_head_dim, op.m)},
}


def normalise(net, interventions, batch: int, dtype) -> dict:
    """Check every intervention against its node and return arrays shaped for the behaviours:
    calcium (B|1, H, 1, m), weights (B|1, G, dv, m)."""
    result: dict = {}
    for node, actions in (interventions or {}).items():
        if node not in net:
            raise SimulationError(f"golden: intervention names unknown node {node!r}")
        op = net.node(node)
        known = ACTIONS.get(op.kind, {})
        for action, value in actions.items():
            if action not in known:
                raise SimulationError(f"golden: node {node!r} ({op.kind}) has no intervention {action!r}; "
                                      f"available: {', '.join(known) or 'none'}")
            shape = known[action](op)
            value = np.asarray(value, dtype=dtype)
            full = value if value.ndim == len(shape) + 1 else value[None]
            try:
                full = np.broadcast_to(full, (full.shape[0],) + shape)
            except ValueError:
                raise SimulationError(f"golden: intervention {action!r} on {node!r} has shape {value.shape}; "
                                      f"expected (batch,) + {shape} or {shape}") from None
            if full.shape[0] not in (1, batch):
                raise SimulationError(f"golden: intervention {action!r} on {node!r} has batch {full.shape[0]}, "
                                      f"input batch is {batch}")
            if action == "calcium_scale":
                full = full[:, :, None, :]
            result.setdefault(node, {})[action] = full
    return result
