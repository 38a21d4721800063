"""Read a tripartite netlist (HDF5, schema in tripartite's docs/netlist.md) with h5py alone.

Gives the node records the network builder takes, in topological order, and the host-side input
encoder: ``x_t = E_tok[id_t] + E_pos[t + position_offset] + E_type[type_t]``.  ``loihi2`` synapse
groups are read as their chip weights, ``weight_mantissa * 2**weight_exponent`` (float arithmetic).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from .network import NodeRecord

RESERVED = ("meta", "placement", "wiring", "encoder")


class NetlistError(ValueError):
    """The file is not a netlist this script can run."""


def attributes(obj) -> dict:
    """HDF5 attributes as Python values (``<key>.json`` attributes decoded)."""
    out = {}
    for key, value in obj.attrs.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        if isinstance(value, np.generic):
            value = value.item()
        if key.endswith(".json"):
            key, value = key[:-5], json.loads(value)
        out[key] = value
    return out


def strings(dataset) -> list[str]:
    return [s.decode("utf-8") if isinstance(s, bytes) else str(s) for s in dataset[()]]


def topological(records: dict[str, NodeRecord], index: dict[str, int]) -> list[NodeRecord]:
    """Records ordered so that every node follows its inputs (ties by the netlist's node index)."""
    waiting = {name: set(r.inputs.values()) for name, r in records.items()}
    done, order = set(), []
    while waiting:
        ready = sorted((n for n, deps in waiting.items() if deps <= done), key=index.__getitem__)
        if not ready:
            raise NetlistError(f"the wiring has a cycle through {sorted(waiting)[0]!r}")
        for name in ready:
            order.append(records[name])
            done.add(name)
            del waiting[name]
    return order


def node_record(group, chip_weights: bool) -> tuple[int, NodeRecord]:
    attrs = attributes(group)
    arrays = {key: np.asarray(group[key][()]) for key in attrs.get("arrays", [])}
    if chip_weights and "weight_mantissa" in group:
        mantissa = np.asarray(group["weight_mantissa"][()], dtype=np.float64)
        exponent = np.asarray(group["weight_exponent"][()], dtype=np.int64)
        arrays["weight"] = np.ldexp(mantissa, exponent[:, None])
    return int(attrs["index"]), NodeRecord(attrs["name"], attrs["kind"], attrs, arrays, {})


@dataclass
class Netlist:
    name: str
    meta: dict
    records: list[NodeRecord]
    encoder: dict


def read(path) -> Netlist:
    """The netlist at ``path``: metadata, node records in topological order, encoder tables."""
    try:
        return read_file(path)
    except (OSError, KeyError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise NetlistError(f"{path}: not a readable tripartite netlist ({reason})") from None


def read_file(path) -> Netlist:
    import h5py

    with h5py.File(path, "r") as f:
        root = attributes(f)
        if root.get("format") != "tripartite-netlist":
            raise NetlistError(f"{path}: not a tripartite netlist (format {root.get('format')!r})")
        meta = attributes(f["meta"])
        chip = meta.get("precision") == "loihi2"
        nodes = dict(node_record(f[g][key], chip) for g in f if g not in RESERVED for key in f[g])
        records = {r.name: r for r in nodes.values()}
        index = {r.name: i for i, r in nodes.items()}
        wiring = f["wiring"]
        for source, target, port in zip(*(strings(wiring[c]) for c in ("source", "target", "port"))):
            records[target].inputs[port] = source
        encoder = {}
        if "encoder" in f:
            encoder = attributes(f["encoder"])
            encoder.update({k: np.asarray(f["encoder"][k][()]) for k in encoder.get("arrays", [])})
    return Netlist(root["name"], meta, topological(records, index), encoder)


def encode(encoder: dict, input_ids: np.ndarray, token_type_ids=None) -> np.ndarray:
    """Token ids (B, T) -> token vectors (B, T, width) with the netlist's embedding tables."""
    if "token_embeddings" not in encoder:
        raise NetlistError("this network has no token table; pass token vectors as array 'x'")
    ids = np.asarray(input_ids)
    table = encoder["token_embeddings"]
    if ids.ndim != 2 or ids.dtype.kind not in "iu" or (ids.size and (ids.min() < 0 or ids.max() >= len(table))):
        raise NetlistError(f"input_ids must be integers in [0, {len(table)}) of shape (batch, tokens)")
    x = table[ids].astype(np.float64)
    T, offset = ids.shape[1], int(encoder.get("position_offset", 0))
    if "position_embeddings" in encoder:
        x = x + encoder["position_embeddings"].astype(np.float64)[offset:offset + T][None]
    if "token_type_embeddings" in encoder:
        types = np.zeros_like(ids) if token_type_ids is None else np.asarray(token_type_ids)
        x = x + encoder["token_type_embeddings"].astype(np.float64)[types]
    return x
