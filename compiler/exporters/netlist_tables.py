"""The netlist's tables: wiring (one row per edge) and chip placement (one row per node part, per core).

``/wiring``: string datasets ``source``, ``target``, ``port`` of equal length; row i feeds input
``port[i]`` of node ``target[i]`` from node ``source[i]``.

``/placement`` (the Place pass's ``meta["placement"]``, see :mod:`compiler.passes.place`): scalar
attributes (``chip``, ``cores``, ``chips``, traffic per token); ``nodes/{node, core, start, stop}``,
one row per part of a node on a core (units ``start..stop-1`` of the node sit on ``core``);
``cores/{core, chip, neurons, bytes, axons}``, one row per used core (``bytes``: synaptic memory).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from compiler.errors import SerializationError
from compiler.exporters import hdf5_io as io

WIRING_COLUMNS = ("source", "target", "port")
PART_COLUMNS = ("core", "start", "stop")


def write_wiring(group, edges: list[tuple[str, str, str]]) -> None:
    for i, column in enumerate(WIRING_COLUMNS):
        io.write_strings(group, column, [edge[i] for edge in edges])


def read_wiring(group, path: Path) -> list[tuple[str, str, str]]:
    columns = [_column(group, c, path, io.strings) for c in WIRING_COLUMNS]
    _same_length(columns, "/wiring", path)
    return list(zip(*columns))


def _column(group, name: str, path: Path, reader):
    if name not in group:
        raise SerializationError(f"{path}: dataset {group.name}/{name} is missing")
    return reader(group[name], path)


def _same_length(columns, where: str, path: Path) -> None:
    if len({len(c) for c in columns}) > 1:
        raise SerializationError(f"{path}: the columns of {where} differ in length; re-export the network")


def write_placement(group, placement: dict[str, Any]) -> None:
    try:
        nodes, cores = placement["nodes"], placement["cores_used"]
        rows = [(name, *map(int, part)) for name, parts in nodes.items() for part in parts]
        columns = list(cores[0]) if cores else ["core", "chip", "neurons", "bytes", "axons"]
        table = {c: np.array([core[c] for core in cores]) for c in columns}
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise SerializationError(f"placement metadata is malformed ({exc}); re-run the place pass") from None
    io.write_attrs(group, {k: v for k, v in placement.items() if k not in ("nodes", "cores_used")})
    parts = group.create_group("nodes")
    io.write_strings(parts, "node", [r[0] for r in rows])
    for i, column in enumerate(PART_COLUMNS, start=1):
        parts.create_dataset(column, data=np.array([r[i] for r in rows], dtype=np.int64))
    used = group.create_group("cores")
    used.attrs["columns"] = ",".join(columns)
    for column, values in table.items():
        used.create_dataset(column, data=values if values.size else np.zeros(0, np.int64))


def read_placement(group, path: Path) -> dict[str, Any]:
    placement = io.read_attrs(group, f"{path}: /placement")
    for sub in ("nodes", "cores"):
        if sub not in group:
            raise SerializationError(f"{path}: group /placement/{sub} is missing")
    names = _column(group["nodes"], "node", path, io.strings)
    parts = [_integers(_column(group["nodes"], c, path, io.numeric), f"/placement/nodes/{c}", path)
             for c in PART_COLUMNS]
    _same_length([names, *parts], "/placement/nodes", path)
    nodes: dict[str, list[list[int]]] = {}
    for name, *part in zip(names, *parts):
        nodes.setdefault(name, []).append([int(v) for v in part])
    header = io.to_python(group["cores"].attrs.get("columns", ""), f"{path}: /placement/cores attribute 'columns'")
    columns = [c for c in str(header).split(",") if c]
    values = [_column(group["cores"], c, path, io.numeric) for c in columns]
    _same_length(values, "/placement/cores", path)
    placement["nodes"] = nodes
    placement["cores_used"] = [{c: v[i].item() for c, v in zip(columns, values)} for i in range(len(values[0]))] \
        if values else []
    return placement


def _integers(values: np.ndarray, where: str, path: Path) -> np.ndarray:
    if values.dtype.kind not in "iu" or values.ndim != 1:
        raise SerializationError(f"{path}: dataset {where} must be a 1-D integer array, got {values.dtype}")
    return values
