"""Exceptions raised by tripartite.

Every error carries a one-line message that names the culprit (a node, a file, a pass) and says
what to do about it; the command-line interface prints that line and exits with code 2.
"""

from __future__ import annotations


class TripartiteError(Exception):
    """Base class of all errors the toolkit raises on bad input or failed checks."""

    exit_code = 2


class GraphError(TripartiteError):
    """A graph is malformed: a cycle, an unconnected input, an unknown node."""


class ShapeError(GraphError):
    """Two connected nodes disagree on a shape."""


class NodeAttributeError(GraphError):
    """A node's own attributes are invalid (wrong type, wrong array shape, NaN weights)."""


class SerializationError(TripartiteError):
    """A graph file is missing, corrupt, of another kind or of an unsupported format version."""


class FrontendError(TripartiteError):
    """A model source cannot be imported: unknown architecture, unsupported option, missing tensor."""


class PassError(TripartiteError):
    """A compiler pass failed; the message names the pass and the passes that ran before it."""


class SimulationError(TripartiteError):
    """A simulator failed on a node or an input."""


class InputError(TripartiteError):
    """User inputs (token ids, arrays, text) are malformed."""
