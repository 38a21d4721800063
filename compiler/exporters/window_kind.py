"""Which keys a learned circuit's window holds, recorded by the exporters beside its feature population so
that a file says what it is (the ``window`` attribute alone gives only the slot count W):

- ``ring`` -- a causal circuit: the last W tokens written; the write that reuses a slot consolidates
  its old token into the feature memory;
- ``band`` -- an encoder's (bidirectional) circuit: the W keys nearest each query
  (``-floor(W/2) <= j - i <= floor((W-1)/2)``); the feature memory holds every token and each slot
  inhibits its own token's share.

The kind follows from the feature population's window and its schedule's mode
(:meth:`compiler.process.ProcessGraph.window_kind`); readers recompute it
from the rebuilt network and refuse a file whose record disagrees (files written before the record
existed carry none and are read as their schedules say).
"""

from __future__ import annotations

from typing import Any

from compiler.errors import SerializationError

ATTR = "window_kind"


def window_kinds(net) -> dict[str, str]:
    """Feature population name -> ``ring`` or ``band``, for every learned population with a window."""
    kinds = {op.name: net.window_kind(op.name) for op in net.of_kind("features")}
    return {name: kind for name, kind in kinds.items() if kind is not None}


def check_window_kinds(net, stored: dict[str, Any], where: str) -> None:
    """Refuse recorded kinds that disagree with the rebuilt network (``stored``: node name -> record)."""
    want = window_kinds(net)
    for name, got in sorted(stored.items()):
        if got != want.get(name):
            expected = f"{want[name]!r}" if name in want else "none: it has no learned window"
            raise SerializationError(f"{where}: node {name!r}: {ATTR} = {str(got)[:20]!r} disagrees with its "
                                     f"window and schedule (expected {expected}); re-export the network")
