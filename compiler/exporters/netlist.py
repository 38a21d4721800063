"""The netlist: a whole process graph in one HDF5 file (schema: docs/netlist.md).

Layout (``<kind group>`` per node kind, see :data:`KIND_GROUPS`)::

    /                         attrs format="tripartite-netlist", version, name, writer
    /meta                     attrs: compile options and metadata (``net.meta`` less placement)
    /placement                attrs chip, cores, chips, traffic; nodes/{node,core,start,stop};
                              cores/{core,chip,neurons,bytes,axons}
    /<kind group>/<node>      attrs kind, name, index, arrays, every scalar field (dicts as <f>.json),
                              views (netlist_views), window_kind (window_kind); datasets: the node's
                              arrays (+ views)
    /wiring                   source, target, port: one row per edge (string datasets)
    /encoder                  attrs position_offset, pad_token_id, patch_size, special.json, arrays;
                              datasets: embedding tables, tokenizer_json (scalar string)

:func:`read_netlist` rebuilds a graph that is ``same_as`` the one written, or raises
:class:`~compiler.errors.SerializationError` with one line naming the file and the dataset.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from compiler.encoder import InputEncoder
from compiler.errors import GraphError, SerializationError
from compiler.exporters import hdf5_io as io
from compiler.exporters.netlist_tables import read_placement, read_wiring, write_placement, write_wiring
from compiler.exporters.netlist_views import VIEW_ATTRS, VIEW_DATASETS, check_views, node_views
from compiler.exporters.window_kind import ATTR as WINDOW_KIND
from compiler.exporters.window_kind import check_window_kinds, window_kinds
from compiler.process import PROCESS_KINDS, ProcessGraph

FORMAT = "tripartite-netlist"
VERSION = 1
WHAT = "tripartite netlist"
KIND_GROUPS = {
    "schedule": "schedules",
    "input_encoder": "inputs",
    "output_decoder": "outputs",
    "population": "populations",
    "synapses": "synapse_groups",
    "norm_astrocyte": "norm_astrocytes",
    "features": "feature_maps",
    "hebbian_synapses": "hebbian_groups",
    "astrocyte": "astrocytes",
}
RESERVED_GROUPS = ("meta", "placement", "wiring", "encoder")
NODE_ATTRS = ("kind", "name", "index", "arrays")
ROOT_ATTRS = ("format", "version", "name", "writer")


def group_of(kind: str) -> str:
    return KIND_GROUPS.get(kind, kind)


def key_of(name: str) -> str:
    """The HDF5 group name of node ``name`` (``/`` and ``%`` percent-encoded)."""
    key = name.replace("%", "%25").replace("/", "%2F")
    return key.replace(".", "%2E") if key in ("", ".", "..") else key


# ---- writing ------------------------------------------------------------------------------------
def write_netlist(net: ProcessGraph, path: str | Path) -> Path:
    """Write ``net`` to ``path`` (HDF5), atomically: a partial file never replaces a good one."""
    import h5py

    meta = dict(net.meta)
    placement = meta.pop("placement", None)
    with io.atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        io.write_attrs(f, {"format": FORMAT, "version": VERSION, "name": net.name, "writer": "tripartite"})
        io.write_attrs(f.create_group("meta"), meta)
        if placement is not None:
            write_placement(f.create_group("placement"), placement)
        kinds = window_kinds(net)
        for index, name in enumerate(net.g.nodes):
            write_node(f, net.node(name), index, net.meta, {WINDOW_KIND: kinds[name]} if name in kinds else {})
        write_wiring(f.create_group("wiring"), [(s, t, d["port"]) for s, t, d in net.g.edges(data=True)])
        if net.encoder is not None:
            write_encoder(f.create_group("encoder"), net.encoder)
    return Path(path)


def write_node(f, op, index: int, meta: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
    """One node group; ``extra``: attributes describing the node in its network (the window kind)."""
    record, arrays = op.to_record()
    scalars = {k: v for k, v in record.items() if k not in ("kind", "name") and not _is_array_field(op, k)}
    views, view_arrays = node_views(op, meta)
    group = f.require_group(group_of(op.kind)).create_group(key_of(op.name))
    io.write_attrs(group, {"kind": op.kind, "name": op.name, "index": index, "arrays": sorted(arrays),
                           **scalars, **views, **(extra or {})})
    for key, value in {**arrays, **view_arrays}.items():
        group.create_dataset(key, data=value)


def write_encoder(group, encoder: InputEncoder) -> None:
    attrs, arrays = encoder.to_record()
    tokenizer = attrs.pop("tokenizer_json")
    io.write_attrs(group, attrs)
    for key, value in arrays.items():
        group.create_dataset(key, data=value)
    if tokenizer is not None:
        io.write_text(group, "tokenizer_json", tokenizer)


def _array_fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls) if f.metadata.get("array")}


def _is_array_field(op, name: str) -> bool:
    return name in _array_fields(type(op))


# ---- reading ------------------------------------------------------------------------------------
def read_netlist(path: str | Path, validate: bool = True) -> ProcessGraph:
    """Read a netlist written by :func:`write_netlist`; refuse anything else with one line.

    ``validate``: also check the whole graph (ports connected, sizes agree, an output decoder);
    off only for files holding a fragment of a network."""
    import h5py

    path = Path(path)
    with io.open_checked(path, WHAT) as f:
        root = io.read_attrs(f, f"{path}: /")
        check_header(root, path)
        for key in f:
            if not isinstance(f[key], h5py.Group):
                raise SerializationError(f"{path}: unexpected dataset /{key}; a netlist holds groups only")
        if "meta" not in f:
            raise SerializationError(f"{path}: group /meta is missing")
        meta = io.read_attrs(f["meta"], f"{path}: /meta")
        if "placement" in f:
            meta["placement"] = read_placement(f["placement"], path)
        graph = ProcessGraph(name=root["name"], meta=meta)
        recorded: dict[str, Any] = {}
        nodes = [read_node(f[g][key], path, meta, recorded) for g in f if g not in RESERVED_GROUPS for key in f[g]]
        indices = [index for index, _ in nodes]
        names = Counter(op.name for _, op in nodes)
        if len(names) != len(nodes):
            raise SerializationError(f"{path}: node {names.most_common(1)[0][0]!r} appears twice; re-export")
        if sorted(indices) != list(range(len(nodes))):
            raise SerializationError(f"{path}: node 'index' attributes are not 0..{len(nodes) - 1}; re-export")
        for _, op in sorted(nodes, key=lambda item: item[0]):
            graph.g.add_node(op.name, op=op)
        if "wiring" not in f:
            raise SerializationError(f"{path}: group /wiring is missing")
        for source, target, port in read_wiring(f["wiring"], path):
            _guard(path, "/wiring", lambda s=source, t=target, p=port: graph.connect(s, t, p))
        graph.encoder = read_encoder(f["encoder"], path) if "encoder" in f else None
    check_window_kinds(graph, recorded, str(path))
    if validate:
        _guard(path, "the network", graph.validate)
        check_encoder(graph, f"{path}: /encoder")
    return graph


def check_encoder(graph: ProcessGraph, where: str) -> None:
    """Refuse an encoder whose tables are not 2-D or whose width is not the input node's size."""
    enc = graph.encoder
    if enc is None:
        return
    for name in ("token_embeddings", "position_embeddings", "token_type_embeddings", "patch_projection"):
        table = getattr(enc, name)
        if table is not None and table.ndim != 2:
            raise SerializationError(f"{where}/{name}: a table must be 2-D, got shape {table.shape}")
    if enc.token_embeddings is None and enc.patch_projection is None:
        raise SerializationError(f"{where}: neither token_embeddings nor patch_projection; re-export the network")
    widths = {op.size for op in graph.of_kind("input_encoder")}
    if widths and enc.width not in widths:
        raise SerializationError(f"{where}: tables are {enc.width} wide but the input node takes {widths.pop()}")


def check_header(root: dict[str, Any], path: Path) -> None:
    found = root.get("format")
    if found != FORMAT:
        raise SerializationError(f"{path}: format attribute is {found!r}, expected {FORMAT!r}; not a netlist")
    version = root.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= VERSION:
        raise SerializationError(f"{path}: netlist version {version!r} is not one this tripartite reads "
                                 f"(1..{VERSION}); upgrade tripartite")
    if not isinstance(root.get("name"), str):
        raise SerializationError(f"{path}: root attribute 'name' is missing")
    extra = set(root) - set(ROOT_ATTRS)
    if extra:
        raise SerializationError(f"{path}: unknown root attributes {sorted(extra)}")


def _guard(path: Path, where: str, action):
    try:
        return action()
    except GraphError as exc:
        raise SerializationError(f"{path}: {where}: {exc}") from None


def read_node(group, path: Path, meta: dict[str, Any], recorded: dict[str, Any] | None = None):
    """(index, node) from one node group, with every attribute and dataset checked; a recorded window
    kind goes to ``recorded`` (node name -> kind), checked once the network is whole."""
    where = f"{path}: {group.name}"
    attrs = io.read_attrs(group, where)
    for key in NODE_ATTRS:
        if key not in attrs:
            raise SerializationError(f"{where}: attribute {key!r} is missing")
    kind, name, index, listed = (attrs.pop(k) for k in NODE_ATTRS)
    cls = PROCESS_KINDS.lookup(kind, where)
    if not isinstance(name, str) or group.name != f"/{group_of(kind)}/{key_of(name)}":
        raise SerializationError(f"{where}: a {kind} node named {name!r} belongs at /{group_of(kind)}/{key_of(name)}")
    if not isinstance(index, int) or not isinstance(listed, list) or not set(listed) <= _array_fields(cls):
        raise SerializationError(f"{where}: attributes 'index' (an integer) or 'arrays' (array field names) corrupt")
    views = {k: attrs.pop(k) for k in VIEW_ATTRS if k in attrs}
    if WINDOW_KIND in attrs and recorded is not None:
        recorded[name] = attrs.pop(WINDOW_KIND)
    record = {"kind": kind, "name": name, **check_fields(cls, attrs, where)}
    arrays, view_arrays = read_arrays(group, set(listed), path)
    record.update({f: ("@array" if f in listed else None) for f in _array_fields(cls)})
    op = cls.from_record(record, arrays, where)
    _guard(path, group.name, op.check)
    check_views(op, meta, views, view_arrays, where)
    return index, op


def check_fields(cls, attrs: dict[str, Any], where: str) -> dict[str, Any]:
    """The scalar fields of a ``cls`` node from ``attrs``: all present, none unknown, types right."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "name" and not f.metadata.get("array")}
    unknown = set(attrs) - set(fields)
    if unknown:
        raise SerializationError(f"{where}: unknown attributes {sorted(unknown)} for a {cls.kind} node")
    out = {}
    for fname, f in fields.items():
        if fname not in attrs:
            raise SerializationError(f"{where}: attribute {fname!r} is missing")
        out[fname] = attrs[fname]
        want = _field_type(f)
        if want is not None and not _type_ok(out[fname], want):
            raise SerializationError(f"{where}: attribute {fname!r} must be {want.__name__}, "
                                     f"got {type(out[fname]).__name__}")
    return out


def _field_type(f) -> type | None:
    if f.default_factory is not dataclasses.MISSING:
        return type(f.default_factory())
    return None if f.default is dataclasses.MISSING or f.default is None else type(f.default)


def _type_ok(value: Any, want: type) -> bool:
    if want is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if want is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if want is tuple:
        return isinstance(value, list)
    return isinstance(value, want)


def read_arrays(group, listed: set[str], path: Path) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(field arrays, view arrays) of a node group; every listed field array must be present."""
    import h5py

    arrays, views = {}, {}
    for key in group:
        obj = group[key]
        if not isinstance(obj, h5py.Dataset) or (key not in listed and key not in VIEW_DATASETS):
            raise SerializationError(f"{path}: {obj.name} does not belong to a {group.attrs.get('kind')} node")
        value = io.numeric(obj, path)
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise SerializationError(f"{path}: dataset {obj.name} contains NaN or infinity; re-export the network")
        (arrays if key in listed else views)[key] = value
    missing = sorted(listed - set(arrays))
    if missing:
        raise SerializationError(f"{path}: dataset {group.name}/{missing[0]} is missing; re-export the network")
    return arrays, views


def read_encoder(group, path: Path) -> InputEncoder:
    where = f"{path}: /encoder"
    attrs = io.read_attrs(group, where)
    listed = attrs.get("arrays")
    if not isinstance(listed, list) or not all(isinstance(n, str) for n in listed):
        raise SerializationError(f"{where}: attribute 'arrays' is missing or corrupt")
    arrays = {}
    for key in group:
        if key == "tokenizer_json":
            continue
        if key not in listed:
            raise SerializationError(f"{path}: /encoder/{key} is not an encoder table")
        arrays[key] = io.numeric(group[key], path)
        if arrays[key].dtype.kind == "f" and not np.all(np.isfinite(arrays[key])):
            raise SerializationError(f"{path}: dataset /encoder/{key} contains NaN or infinity")
    missing = sorted(set(listed) - set(arrays))
    if missing:
        raise SerializationError(f"{path}: dataset /encoder/{missing[0]} is missing; re-export the network")
    attrs["tokenizer_json"] = io.text(group["tokenizer_json"], path) if "tokenizer_json" in group else None
    return InputEncoder.from_record(attrs, arrays, where)


# ---- registry entry points ----------------------------------------------------------------------
export_netlist = write_netlist


def is_netlist(path: str | Path) -> bool:
    """True unless ``path`` opens as HDF5 and is plainly something else (a NIR file: no netlist
    ``format`` attribute and a ``node`` group); an unreadable file counts as a netlist unless it is
    named ``.nir``, so that the reader of what it claims to be reports what is wrong with it."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") is not None or "node" not in f
    except (OSError, ValueError):
        return Path(path).suffix.lower() != ".nir"


def describe(path: str | Path) -> str:
    """One line: node counts by kind group."""
    import h5py

    with h5py.File(path, "r") as f:
        counts = {g: len(f[g]) for g in f if g not in RESERVED_GROUPS}
    return "netlist: " + ", ".join(f"{n} {g}" for g, n in sorted(counts.items()))
