"""NIR export (``--format nir``) and the reader of tripartite's NIR dialect (docs/netlist.md).

The file is valid NIR 1.0.8: ``nir.read`` with type checking reads it.  Process nodes become NIR
nodes (:mod:`compiler.exporters.nir_nodes`); NIR nodes are keyed by the process node's name (``/``
and ``%`` percent-encoded).  Ports: NIR edges join nodes, not ports, and sum into their target, so

- a node whose ports are summed (populations, synapses, norm astrocytes, output decoders) takes
  one edge per port straight from its source (an adapter ``<node>:<port>``, ``Scale(1)``, when
  one source feeds two of its ports);
- a node whose ports are distinct signals (products, feature maps, Hebbian groups, astrocytes)
  takes each port through an adapter ``<node>:<port>``, a 0/1 ``Linear`` that places it in the
  node's input, the concatenation of its ports in the order of ``tripartite.ports``.

The root graph's metadata carries ``tripartite.format`` (``tripartite-nir``), ``tripartite.version``,
``tripartite.name``, ``tripartite.meta`` (JSON: compile options, placement, ...),
``tripartite.order`` (JSON: node names in graph order), ``tripartite.schedules`` (JSON: the phase
schedules, which are clocks, not data flow) and ``tripartite.encoder`` (the host-side input encoder:
``attributes`` JSON, ``arrays``, ``tokenizer_json``).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from compiler.encoder import InputEncoder
from compiler.errors import GraphError, SerializationError
from compiler.exporters import hdf5_io as io
from compiler.exporters import nir_nodes as nn
from compiler.exporters.netlist import check_encoder, key_of
from compiler.exporters.window_kind import check_window_kinds, window_kinds
from compiler.process import PROCESS_KINDS, ProcessGraph

FORMAT, VERSION = "tripartite-nir", 1
ROOT = {k: f"tripartite.{k}" for k in ("format", "version", "name", "meta", "order", "schedules", "encoder")}
WHAT = "NIR"


# ---- writing ------------------------------------------------------------------------------------
def build_nir(net: ProcessGraph):
    """The NIR graph of ``net`` (type-checked: ``nir.read`` accepts what ``nir.write`` makes of it)."""
    import nir

    nodes: dict[str, Any] = {}
    edges: list[tuple[str, str]] = []
    schedules = {}
    kinds = window_kinds(net)
    for name in net.g.nodes:
        op, inputs = net.node(name), net.inputs_of(name)
        if op.kind == "schedule":
            schedules[name] = op.to_record()[0]
            continue
        key = key_of(name)
        nodes[key] = nn.to_nir(op, inputs)
        if name in kinds:
            nodes[key].metadata[nn.WINDOW] = kinds[name]
        repeated = len(set(inputs.values())) < len(inputs)
        layout = {p: (o, s) for p, o, s in nn.port_layout(op)}
        for port, source in inputs.items():
            if nn.concatenates(op) or repeated:
                hop = f"{key}:{port}"
                if hop in nodes or hop in (key_of(n) for n in net.g.nodes):
                    raise SerializationError(f"NIR export: adapter name {hop!r} collides with a node; rename the node")
                nodes[hop] = nn.adapter(nir, op, port, *layout[port])
                edges += [(key_of(source), hop), (hop, key)]
            else:
                edges.append((key_of(source), key))
    meta = {ROOT["format"]: FORMAT, ROOT["version"]: VERSION, ROOT["name"]: net.name,
            ROOT["meta"]: json.dumps(net.meta, sort_keys=True), ROOT["order"]: json.dumps(list(net.g.nodes)),
            ROOT["schedules"]: json.dumps(schedules, sort_keys=True)}
    if net.encoder is not None:
        meta[ROOT["encoder"]] = encoder_metadata(net.encoder)
    count = len(nodes)
    try:
        graph = nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta, type_check=True)
    except (ValueError, KeyError, NotImplementedError) as exc:
        raise SerializationError(f"NIR export of {net.name!r}: NIR's type check failed ({exc})") from None
    if len(graph.nodes) != count:  # type inference added inputs/outputs: a node without producer or consumer
        added = sorted(set(graph.nodes) - set(nodes))
        raise SerializationError(f"NIR export of {net.name!r}: dangling nodes {added[:3]}; validate the network")
    return graph


def encoder_metadata(encoder: InputEncoder) -> dict[str, Any]:
    attrs, arrays = encoder.to_record()
    tokenizer = attrs.pop("tokenizer_json")
    out = {"attributes": json.dumps(attrs, sort_keys=True), "arrays": dict(arrays)}
    if tokenizer is not None:
        out["tokenizer_json"] = tokenizer
    return out


def export_nir(net: ProcessGraph, path: str | Path) -> Path:
    """Write ``net`` as a NIR file at ``path`` (atomically)."""
    import nir

    graph = build_nir(net)
    with io.atomic_path(path) as tmp:
        nir.write(tmp, graph, compression="gzip", compression_opts=1)  # level 1: MiniLM in 11 s, not 20
    return Path(path)


def counts(graph) -> dict[str, Counter]:
    """NIR node types of the tripartite nodes, split into standard and dialect, and the adapters."""
    out = {"standard": Counter(), "dialect": Counter(), "adapters": Counter()}
    for node in graph.nodes.values():
        meta = node.metadata or {}
        if nn.ADAPTER_PORT in meta:
            out["adapters"][type(node).__name__] += 1
        elif type(node).__name__ == "NIRGraph":
            out["dialect"][str(meta.get(nn.KIND))] += 1
        else:
            out["standard"][type(node).__name__] += 1
    return out


def describe(path: str | Path) -> str:
    """One line: how many nodes are standard NIR, how many dialect, and the port adapters."""
    import nir

    c = counts(nir.read(path))

    def listing(counter):
        return ", ".join(f"{n} {k}" for k, n in sorted(counter.items()))

    return (f"{sum(c['standard'].values())} standard NIR nodes ({listing(c['standard'])}); "
            f"{sum(c['dialect'].values())} dialect nodes ({listing(c['dialect'])}); "
            f"{sum(c['adapters'].values())} port adapters")


# ---- reading ------------------------------------------------------------------------------------
def read_nir(path: str | Path) -> ProcessGraph:
    """Rebuild the process graph from a NIR file of tripartite's dialect; refuse anything else."""
    path = Path(path)
    graph = load_checked(path)
    meta = graph.metadata or {}
    if meta.get(ROOT["format"]) != FORMAT:
        raise SerializationError(f"{path}: a NIR graph without tripartite's metadata ({ROOT['format']}); "
                                 "tripartite runs the NIR files it exported")
    version = io.to_python(meta.get(ROOT["version"]), f"{path}: {ROOT['version']}")
    if not isinstance(version, int) or not 1 <= version <= VERSION:
        raise SerializationError(f"{path}: tripartite NIR version {version!r} is not one this tripartite reads "
                                 f"(1..{VERSION}); upgrade tripartite")
    net = ProcessGraph(name=_text(meta, ROOT["name"], path), meta=_json(meta, ROOT["meta"], path, dict))
    ops, wiring, recorded = {}, {}, {}
    for key, node in graph.nodes.items():
        node_meta = node.metadata or {}
        if nn.ADAPTER_PORT in node_meta:
            continue
        op, inputs = rebuild(key, node, node_meta, path)
        ops[op.name], wiring[op.name] = op, inputs
        if nn.WINDOW in node_meta:
            recorded[op.name] = io.to_python(node_meta[nn.WINDOW], f"{path}: NIR node {key!r} {nn.WINDOW}")
    for name, attrs in _json(meta, ROOT["schedules"], path, dict).items():
        ops[name] = _node(PROCESS_KINDS.lookup("schedule", str(path)), attrs, {}, f"{path}: schedule {name!r}")
    order = _json(meta, ROOT["order"], path, list)
    if sorted(order) != sorted(ops):
        raise SerializationError(f"{path}: {ROOT['order']} does not list the graph's nodes; re-export the network")
    for name in order:
        net.g.add_node(name, op=ops[name])
    for target, inputs in wiring.items():
        for port, source in inputs.items():
            _guard(path, lambda s=source, t=target, p=port: net.connect(s, t, p))
    if ROOT["encoder"] in meta:
        net.encoder = rebuild_encoder(meta[ROOT["encoder"]], path)
    _guard(path, net.validate)
    check_window_kinds(net, recorded, str(path))
    check_encoder(net, f"{path}: metadata {ROOT['encoder']}")
    check_structure(net, graph, path)
    return net


def load_checked(path: Path):
    """``nir.read`` of a file that passed the HDF5 safety checks, with NIR's errors as one line."""
    import nir

    with io.open_checked(path, WHAT) as f:
        if "node" not in f or "version" not in f:
            raise SerializationError(f"{path}: not a NIR file (no /node group or /version)")
    try:
        return nir.read(path)
    except (ValueError, KeyError, TypeError, AssertionError, AttributeError, IndexError, OSError) as exc:
        raise SerializationError(f"{path}: NIR's reader refuses the file ({io.first_line(exc)})") from None


def _guard(path: Path, action):
    try:
        return action()
    except GraphError as exc:
        raise SerializationError(f"{path}: {exc}") from None


def _text(meta: dict, key: str, path: Path) -> str:
    value = io.to_python(meta.get(key), f"{path}: metadata {key}") if key in meta else None
    if not isinstance(value, str):
        raise SerializationError(f"{path}: metadata {key} is missing or not text; re-export the network")
    return value


def _json(meta: dict, key: str, path: Path, kind: type):
    try:
        value = json.loads(_text(meta, key, path))
    except ValueError as exc:
        raise SerializationError(f"{path}: metadata {key} is not valid JSON ({exc})") from None
    if not isinstance(value, kind):
        raise SerializationError(f"{path}: metadata {key} must be a JSON {kind.__name__}")
    return value


def _arrays(values: Any, where: str) -> dict[str, np.ndarray]:
    if not isinstance(values, dict):
        raise SerializationError(f"{where}: arrays must be a group of datasets")
    out = {}
    for name, value in values.items():
        value = np.asarray(value)
        if value.dtype.kind not in "biuf":
            raise SerializationError(f"{where}: array {name!r} has dtype {value.dtype}; numeric arrays only")
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise SerializationError(f"{where}: array {name!r} contains NaN or infinity; re-export the network")
        out[str(name)] = value
    return out


def _node(cls, attrs: dict, arrays: dict[str, np.ndarray], where: str):
    if not isinstance(attrs, dict) or attrs.get("kind") != cls.kind:
        raise SerializationError(f"{where}: attributes are not those of a {cls.kind} node")
    wanted = {k for k, v in attrs.items() if v == "@array"}
    missing = sorted(wanted - set(arrays))
    if missing:
        raise SerializationError(f"{where}: array {missing[0]!r} is missing; re-export the network")
    op = cls.from_record(attrs, {k: arrays[k] for k in wanted}, where)
    try:
        op.check()
    except GraphError as exc:
        raise SerializationError(f"{where}: {exc}") from None
    return op


def rebuild(key: str, node, meta: dict, path: Path):
    """(process node, its inputs) from one NIR node with tripartite metadata."""
    where = f"{path}: NIR node {key!r}"
    kind = io.to_python(meta.get(nn.KIND), f"{where} {nn.KIND}") if nn.KIND in meta else None
    if not isinstance(kind, str):
        raise SerializationError(f"{where} ({type(node).__name__}) has no {nn.KIND}; not tripartite's dialect")
    cls = PROCESS_KINDS.lookup(kind, where)
    attrs = _json(meta, nn.ATTRS, path, dict)
    dialect = type(node).__name__ == "NIRGraph"
    arrays = _arrays(meta.get(nn.ARRAYS, {}), where) if dialect else _arrays(nn.standard_arrays(kind, node), where)
    op = _node(cls, attrs, arrays, where)
    if key != key_of(op.name):
        raise SerializationError(f"{where}: holds node {op.name!r}, which belongs under key {key_of(op.name)!r}")
    inputs = _json(meta, nn.INPUTS, path, dict)
    return op, inputs


def rebuild_encoder(meta: Any, path: Path) -> InputEncoder:
    where = f"{path}: metadata {ROOT['encoder']}"
    if not isinstance(meta, dict):
        raise SerializationError(f"{where} must be a group")
    attrs = _json(meta, "attributes", path, dict)
    attrs["tokenizer_json"] = _text(meta, "tokenizer_json", path) if "tokenizer_json" in meta else None
    return InputEncoder.from_record(attrs, _arrays(meta.get("arrays", {}), where), where)


def check_structure(net: ProcessGraph, graph, path: Path) -> None:
    """Refuse a file whose NIR nodes or edges are not those the rebuilt network exports to."""
    want = build_nir(net)
    if set(want.nodes) != set(graph.nodes):
        extra = sorted(set(graph.nodes) ^ set(want.nodes))
        raise SerializationError(f"{path}: NIR nodes {extra[:3]} disagree with the tripartite metadata")
    for key, node in want.nodes.items():
        if type(node) is not type(graph.nodes[key]):
            raise SerializationError(f"{path}: NIR node {key!r} is a {type(graph.nodes[key]).__name__}, expected "
                                     f"{type(node).__name__}")
    if set(map(tuple, want.edges)) != set(map(tuple, graph.edges)):
        odd = sorted(set(map(tuple, want.edges)) ^ set(map(tuple, graph.edges)))
        raise SerializationError(f"{path}: NIR edges {odd[:2]} disagree with the tripartite wiring")
