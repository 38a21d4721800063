"""Probes: Lava Monitors on the state Vars, sliced into the golden simulator's probe layout.

Kinds and records (token axis second, as :func:`hardware_sim.golden.simulate` returns them):

- ``calcium``: ``<astrocyte>/calcium`` (B, T, H, m), the calcium each read sees;
- ``soma``: ``<astrocyte>/soma_sum`` (B, T, H), ``<astrocyte>/soma_offset`` (exact slots) and
  ``<norm astrocyte>/gain`` (B, T);
- ``weights``: ``<hebbian>/weights`` (B, G, v_head_dim, m) after the last write of each sequence.

A Monitor records a Var after every step and is read with ``Var.get`` (element by element), so
probes suit short runs of small networks.
"""

from __future__ import annotations

import numpy as np

from compiler.errors import InputError

LAVA_PROBE_KINDS = ("calcium", "soma", "weights")
# kind -> node kind -> [(Var, record name, read phase?)]
RECORDS = {
    "calcium": {"astrocyte": [("calcium", "calcium", True)]},
    "soma": {"astrocyte": [("soma", "soma_sum", True), ("offset", "soma_offset", True)],
             "norm_astrocyte": [("gain", "gain", False)]},
    "weights": {"hebbian_synapses": [("weights", "weights", None)]},
}


def probe_kinds(probes) -> tuple[str, ...]:
    kinds = set(probes)
    if "all" in kinds:
        kinds = (kinds - {"all"}) | set(LAVA_PROBE_KINDS)
    unknown = kinds - set(LAVA_PROBE_KINDS)
    if unknown:
        raise InputError(f"the Lava backend cannot probe {sorted(unknown)}; choose from "
                         f"{', '.join(LAVA_PROBE_KINDS)} or all (activity: use the golden backend)")
    return tuple(sorted(kinds))


def wanted(plan, kinds) -> list[tuple[str, str, str, str, bool | None]]:
    """(node, group, var, record, read) for every record the kinds ask for."""
    rows = []
    for kind in kinds:
        for name, kernel in plan.kernels.items():
            for var, record, read in RECORDS[kind].get(kernel.op.kind, []):
                if var == "offset" and not getattr(kernel, "has_offset", getattr(kernel, "gated", False)):
                    continue
                rows.append((name, plan.group_of[name], var, record, read))
    return rows


def attach_monitors(lnet, rows) -> dict:
    """One Monitor per (process, Var) probed; returns them keyed by (group, var)."""
    from lava.proc.monitor.models import PyMonitorModel
    from lava.proc.monitor.process import Monitor

    monitors = {}
    for _, group, var, _, _ in rows:
        if (group, var) not in monitors:
            monitor = Monitor()
            monitor.probe(getattr(lnet.processes[group], var), lnet.plan.n_steps)
            lnet.model_map[monitor] = PyMonitorModel
            monitors[(group, var)] = monitor
    return monitors


def read_monitors(lnet, monitors) -> dict:
    """(group, var) -> (n_steps, size) trace; row ``s - 1`` is the Var after step ``s``."""
    traces = {}
    for (group, var), monitor in monitors.items():
        data = monitor.get_data()
        traces[(group, var)] = np.asarray(data[lnet.processes[group].name][var])
    return traces


def slice_records(plan, rows, traces, dtype) -> dict[str, np.ndarray]:
    """The probe records of ``rows`` from the Monitor traces."""
    out = {}
    B, T, P = plan.B, plan.T, plan.P
    for name, group, var, record, read in rows:
        kernel = plan.kernels[name]
        start, shape = plan_layout(plan, name, var)
        flat = traces[(group, var)][:, start : start + int(np.prod(shape))]
        clock = kernel.clock
        if read is None:  # after the last write of each sequence
            steps = [clock.W + b * P + T - 1 for b in range(B)]
            value = flat[np.array(steps) - 1].reshape((B,) + shape)
        else:
            offset = clock.R if read else 0
            steps = np.array([[clock.W + offset + b * P + t for t in range(T)] for b in range(B)])
            value = flat[steps - 1].reshape((B, T) + shape)
            if shape == (1,):
                value = value[..., 0]
        out[f"{name}/{record}"] = np.asarray(kernel.probe_value(var, value)).astype(dtype)
    return out


def plan_layout(plan, name, var):
    """(start, shape) of node ``name``'s state ``var`` inside its process's Var."""
    start = 0
    for member in plan.groups[plan.group_of[name]]:
        shapes = plan.kernels[member].state_shapes()
        if member == name:
            return start, tuple(shapes[var])
        if var in shapes:
            start += int(np.prod(shapes[var]))
    raise KeyError(f"{name}/{var}")
