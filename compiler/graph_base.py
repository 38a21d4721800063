"""A typed-node container around ``networkx.MultiDiGraph``, shared by both intermediate representations.

Nodes are stored by name with their payload under the ``op`` key; an edge ``u -> v`` carries the
input ``port`` of ``v`` it feeds.  Subclasses fix the node registry, the file format name and the
extra fields (encoder, metadata) they keep.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, ClassVar

import networkx as nx
import numpy as np

from compiler.errors import GraphError, SerializationError, TripartiteError
from compiler.node_base import Node, Registry
from compiler.serialization import load_archive, save_archive

MALFORMED = (TypeError, AttributeError, ValueError, KeyError, IndexError)  # what malformed records raise


def exception_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:100] if text else ''}"


def reports_malformed(method):
    """Validation of a graph that a file or a caller built wrongly (a field of the wrong type, an
    array missing) ends in one GraphError naming the graph, not in a traceback from inside."""

    @functools.wraps(method)
    def checked(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except TripartiteError:
            raise
        except MALFORMED as exc:
            raise GraphError(f"{self.format_name} {self.name!r}: malformed ({exception_line(exc)}); build it "
                             "again from its source") from exc

    return checked


class TypedGraph:
    """Base container: typed nodes, named input ports, validation and one-file storage."""

    registry: ClassVar[Registry]
    format_name: ClassVar[str]
    format_version: ClassVar[int] = 1

    def __init__(self, name: str = "model", meta: dict[str, Any] | None = None):
        self.name = name
        self.meta: dict[str, Any] = dict(meta or {})
        self.g = nx.MultiDiGraph()

    # ---- construction -------------------------------------------------------------------------
    def add(self, node: Node, **inputs: str) -> str:
        """Add ``node`` fed by ``inputs`` (port name -> producer node name); return its name."""
        if not isinstance(node, Node) or node.kind not in self.registry:
            raise GraphError(f"{node!r} is not a {self.registry.family} node")
        if node.name in self.g:
            raise GraphError(f"node {node.name!r} already exists; node names must be unique")
        node.check()
        self.g.add_node(node.name, op=node)
        for port, source in inputs.items():
            self.connect(source, node.name, port)
        return node.name

    def connect(self, source: str, target: str, port: str) -> None:
        """Feed ``port`` of node ``target`` from node ``source``."""
        op = self.node(target)
        if port not in op.input_ports() + op.optional_ports:
            raise GraphError(
                f"node {target!r} ({op.kind}) has no input port {port!r}; ports: {', '.join(op.input_ports())}"
            )
        if source not in self.g:
            raise GraphError(f"node {target!r}: input {port!r} refers to unknown node {source!r}")
        if port in self.inputs_of(target):
            raise GraphError(f"node {target!r}: input {port!r} is already connected")
        self.g.add_edge(source, target, port=port)

    # ---- queries ------------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        try:
            return self.g.nodes[name]["op"]
        except KeyError:
            raise GraphError(f"no node named {name!r} in graph {self.name!r}") from None

    def nodes(self) -> list[Node]:
        return [self.g.nodes[n]["op"] for n in self.order()]

    def inputs_of(self, name: str) -> dict[str, str]:
        """Port name -> producer node name for node ``name``."""
        return {data["port"]: src for src, _, data in self.g.in_edges(name, data=True)}

    def of_kind(self, kind: str) -> list[Node]:
        return [op for op in self.nodes() if op.kind == kind]

    def order(self) -> list[str]:
        """Node names in a deterministic topological order (raises on a cycle)."""
        rank = {n: f"{i:09d}" for i, n in enumerate(self.g.nodes)}
        try:
            return list(nx.lexicographical_topological_sort(self.g, key=rank.__getitem__))
        except nx.NetworkXUnfeasible:
            cycle = " -> ".join(edge[0] for edge in nx.find_cycle(self.g))
            raise GraphError(f"graph {self.name!r} has a cycle: {cycle}; remove one of its edges") from None

    def __len__(self) -> int:
        return self.g.number_of_nodes()

    def __contains__(self, name: str) -> bool:
        return name in self.g

    # ---- validation ---------------------------------------------------------------------------
    @reports_malformed
    def validate(self) -> dict[str, tuple]:
        """Check the whole graph and return every node's per-token output shape.

        Checks: every node's own attributes, acyclicity, every required port connected exactly
        once, and shape agreement along each edge.  Errors name the node and the fix.
        """
        shapes: dict[str, tuple] = {}
        for name in self.order():
            op = self.node(name)
            op.check()
            inputs = self.inputs_of(name)
            missing = [p for p in op.input_ports() if p not in inputs]
            if missing:
                raise GraphError(
                    f"node {name!r} ({op.kind}): input port(s) {', '.join(missing)} not connected; "
                    f"connect them with graph.connect(source, {name!r}, port)"
                )
            shapes[name] = op.output_shape({port: shapes[src] for port, src in inputs.items()})
        return shapes

    # ---- storage ------------------------------------------------------------------------------
    def extra_structure(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Subclass hook: more JSON and arrays to store beside the nodes."""
        return {}, {}

    def load_extra(self, structure: dict[str, Any], arrays: dict[str, np.ndarray], where: str) -> None:
        """Subclass hook: restore what :meth:`extra_structure` stored."""

    def save(self, path: str | Path) -> Path:
        """Write the graph to one file (JSON structure + arrays, no pickle)."""
        nodes, arrays = [], {}
        for name in self.g.nodes:
            attrs, node_arrays = self.node(name).to_record()
            attrs["inputs"] = self.inputs_of(name)
            nodes.append(attrs)
            arrays.update({f"node/{name}/{k}": v for k, v in node_arrays.items()})
        extra, extra_arrays = self.extra_structure()
        arrays.update({f"extra/{k}": v for k, v in extra_arrays.items()})
        structure = {
            "format": self.format_name,
            "version": self.format_version,
            "name": self.name,
            "meta": self.meta,
            "nodes": nodes,
            "extra": extra,
        }
        return save_archive(path, structure, arrays)

    @classmethod
    def load(cls, path: str | Path) -> TypedGraph:
        """Read a graph written by :meth:`save`, rejecting unknown kinds and malformed structure."""
        try:
            return cls.decode(path)
        except TripartiteError:
            raise
        except MALFORMED as exc:
            raise SerializationError(f"{path}: corrupt {cls.format_name} file ({exception_line(exc)}); write it "
                                     "again with this version of tripartite") from exc

    @classmethod
    def decode(cls, path: str | Path) -> TypedGraph:
        structure, arrays = load_archive(path, cls.format_name, cls.format_version)
        where = str(path)
        try:
            graph = cls(name=structure["name"], meta=structure.get("meta") or {})
            records = list(structure["nodes"])
        except (KeyError, TypeError) as exc:
            raise SerializationError(f"{where}: corrupt {cls.format_name} file (missing {exc})") from exc
        wiring = []
        for attrs in records:
            if not isinstance(attrs, dict) or not isinstance(attrs.get("name"), str):
                raise SerializationError(f"{where}: corrupt node record {str(attrs)[:80]}")
            attrs = dict(attrs)
            inputs = attrs.pop("inputs", {}) or {}
            node_cls = cls.registry.lookup(attrs.get("kind"), where)
            prefix = f"node/{attrs['name']}/"
            node_arrays = {k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)}
            node = node_cls.from_record(attrs, node_arrays, f"{where}: node {attrs['name']!r}")
            try:
                node.check()
            except GraphError as exc:
                raise SerializationError(f"{where}: {exc}") from exc
            graph.g.add_node(node.name, op=node)
            wiring.append((node.name, inputs))
        for target, inputs in wiring:
            for port, source in inputs.items():
                try:
                    graph.connect(source, target, port)
                except GraphError as exc:
                    raise SerializationError(f"{where}: {exc}") from exc
        extra_arrays = {k[6:]: v for k, v in arrays.items() if k.startswith("extra/")}
        graph.load_extra(structure.get("extra") or {}, extra_arrays, where)
        return graph

    def same_as(self, other: TypedGraph) -> bool:
        """True when both graphs hold the same nodes, wiring, arrays and metadata."""
        if type(other) is not type(self) or set(self.g.nodes) != set(other.g.nodes):
            return False
        if self.meta != other.meta or self.name != other.name:
            return False
        return all(
            self.node(n).arrays_equal(other.node(n)) and self.inputs_of(n) == other.inputs_of(n)
            for n in self.g.nodes
        )
