"""Exporters: a compiled network leaves tripartite as files other tools read, and comes back.

Each format is one module beside this one, named in :data:`EXPORTERS` (format -> module, function);
the function takes ``(net, path)`` and returns the path it wrote.  A module may also define
``describe(path) -> str``, a one-line summary the command line prints after exporting.

:func:`load_network` reads any network file tripartite writes: a ``.tpn`` archive, a netlist
(HDF5) or a NIR file of tripartite's dialect, told apart by their contents, not their names.
"""

from __future__ import annotations

import importlib
import zipfile
from pathlib import Path

from compiler.errors import InputError, SerializationError

EXPORTERS: dict[str, tuple[str, str]] = {
    "netlist": ("compiler.exporters.netlist", "export_netlist"),
    "nir": ("compiler.exporters.nir_format", "export_nir"),
    "brian2": ("compiler.exporters.brian2_script", "export_brian2"),
}


def _module(format: str):
    if format not in EXPORTERS:
        raise InputError(f"unknown export format {format!r}; choose one of {', '.join(EXPORTERS)}")
    module_name, function = EXPORTERS[format]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise InputError(f"export format {format!r} is not part of this build ({module_name} is missing)") from None
    return module, function


def export(net, format: str, path: str | Path) -> Path:
    """Write ``net`` in ``format`` to ``path`` (a file, or a directory for script formats)."""
    module, function = _module(format)
    return Path(getattr(module, function)(net, path))


def describe(format: str, path: str | Path) -> str:
    """The format module's one-line summary of an exported ``path`` ('' when it has none)."""
    module, _ = _module(format)
    return module.describe(path) if hasattr(module, "describe") else ""


def load_network(path: str | Path):
    """A :class:`~compiler.process.ProcessGraph` from a ``.tpn``, netlist or NIR file."""
    from compiler.exporters.hdf5_io import is_hdf5

    path = Path(path)
    if not path.is_file():
        raise SerializationError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
    if is_hdf5(path):
        from compiler.exporters.netlist import is_netlist, read_netlist

        if is_netlist(path):
            return read_netlist(path)
        from compiler.exporters.nir_format import read_nir

        return read_nir(path)
    if zipfile.is_zipfile(path):
        from compiler.process import ProcessGraph

        return ProcessGraph.load(path)
    raise SerializationError(f"{path}: not a compiled network (.tpn archive, HDF5 netlist or NIR file)")
