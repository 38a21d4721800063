"""The Brian2 exporter: a directory with a script that simulates the network in Brian2.

``export_brian2(net, DIR)`` writes::

    DIR/network.py            python network.py --inputs X.npz -o OUT.npz  (brian2, numpy, h5py only)
    DIR/network.h5            the netlist it simulates (docs/netlist.md)
    DIR/tripartite_brian2/    the equations: a copy of hardware_sim/brian2/model, the same code the
                              in-process ``--backend brian2`` runs
    DIR/README.md             how to run it and what it computes

The script writes the arrays ``tripartite run -o`` writes (``mask``, ``input_ids``, ``hidden``,
``logits``, ``embeddings`` where they apply).  ``loihi2`` networks run with their chip weights
(8-bit mantissas times per-row exponents) in float64 arithmetic.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from compiler.errors import InputError

MODEL = Path(__file__).resolve().parents[2] / "hardware_sim" / "brian2" / "model"
PACKAGE = "tripartite_brian2"

LAUNCHER = '''#!/usr/bin/env python3
"""{name}: a tripartite neuron-astrocyte network simulated in Brian2.

Needs only brian2 (2.9), numpy and h5py.  The network (weights, wiring, schedule) is read from
network.h5, a tripartite netlist; its equations are in {package}/ (neurons.py: populations and
normalising astrocytes; attention.py: feature neurons, astrocyte processes and somas, Hebbian
synapses; clock.py: the phase schedule as the simulation clock).

    python network.py --inputs X.npz -o OUT.npz
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from {package}.script import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(default_netlist=HERE / "network.h5"))
'''

README = """# {name} in Brian2

A neuron-astrocyte network compiled by tripartite ({lowering} circuits, {precision}), exported as a
Brian2 simulation.  Requirements: `brian2==2.9.*` (numpy code generation, no compiler needed),
`numpy<2.4`, `h5py`.

    python network.py --inputs X.npz -o OUT.npz

`X.npz` holds `input_ids` (batch, tokens) with optional `mask` and `token_type_ids`, or token
vectors `x` (batch, tokens, {width}) with an optional `mask`.  `OUT.npz` receives `mask`,
`input_ids` (when given), one array per output ({roles}){pooled}: the arrays `tripartite run -o`
writes.  `--netlist FILE` simulates another netlist with the same equations.
{chip}
## What runs

- One time step is one token presented to the whole network; every summed variable, response and
  write event runs in topological order within the step (`order` inside the `groups` slot), so no
  step is spent waiting on a chain of summed variables.
- Bidirectional circuits write every token before they recall: the clock sweeps the sequence once
  per level of bidirectional circuits, then once more to read the outputs ({sweeps} sweep(s) for this network).
  Causal circuits write token t and recall query t in the same step.  Padding tokens are never written.
- Equations: `{package}/neurons.py` (populations, normalising astrocytes), `{package}/attention.py`
  (astrocyte processes and somas, Hebbian synapses `H += fk v` on write events, the divisive gain
  `y = u / z`), `{package}/features.py` (feature maps), `{package}/wiring.py` (static synapse
  groups as summed variables), `{package}/clock.py` (the schedule).

## The network

Every group and every operation of one time step, as Brian2 holds them (sizes per sequence; `in_*`
are summed inputs, `b_*` the biases of the synapse groups feeding them).

{listing}"""


def export_brian2(net, directory) -> Path:
    """Write the Brian2 script, its netlist, its equations and a README into ``directory``."""
    from compiler.exporters.netlist import write_netlist

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise InputError(f"{directory}: exists and is not a directory; the brian2 format writes a directory")
    try:
        text = readme(net)
    except ValueError as exc:
        raise InputError(f"network {net.name!r} cannot run in Brian2: {str(exc).splitlines()[0]}") from None
    directory.mkdir(parents=True, exist_ok=True)
    write_netlist(net, directory / "network.h5")
    package = directory / PACKAGE
    if package.exists():
        shutil.rmtree(package)
    package.mkdir()
    for source in sorted(MODEL.glob("*.py")):
        shutil.copyfile(source, package / source.name)
    script = directory / "network.py"
    script.write_text(LAUNCHER.format(name=net.name, package=PACKAGE), encoding="utf-8")
    (directory / "README.md").write_text(text, encoding="utf-8")
    return script


def readme(net) -> str:
    from hardware_sim.brian2.model.clock import circuit_levels

    roles = sorted(op.role for op in net.of_kind("output_decoder"))
    modes = {op.name: net.node(net.node(net.inputs_of(op.name)["features"]).schedule).mode
             for op in net.of_kind("astrocyte")}
    sweeps = circuit_levels(modes, upstream(net))[1]
    precision = net.meta.get("precision", "float64")
    chip = ("\n`loihi2` network: Brian2 runs it with its chip weights (`weight_mantissa * 2**weight_exponent`\n"
            "from the netlist) in float64 arithmetic, not with the chip's integer arithmetic.\n"
            if precision == "loihi2" else "")
    pooled = ", `embeddings`" if "hidden" in roles and net.meta.get("pooling", "mean") == "mean" else ""
    width = net.of_kind("input_encoder")[0].size
    return README.format(name=net.name, lowering=net.meta.get("lowering", "exact"), precision=precision,
                         width=width, roles=", ".join(f"`{r}`" for r in roles), pooled=pooled, chip=chip,
                         package=PACKAGE, sweeps=sweeps, listing=network_listing(net, width))


def network_listing(net, width: int) -> str:
    """The Brian2 groups and the ordered operations of one step (from a one-token build)."""
    import numpy as np

    from hardware_sim.brian2.backend import records
    from hardware_sim.brian2.model.network import build_network, listing

    precision = net.meta.get("precision", "float64")
    _, build = build_network(records(net, precision), np.zeros((1, 1, width)), np.ones((1, 1), bool))
    return listing(build)


def upstream(net) -> dict[str, set[str]]:
    """Astrocyte node -> the astrocyte nodes upstream of it."""
    import networkx as nx

    circuits = {op.name for op in net.of_kind("astrocyte")}
    return {c: nx.ancestors(net.g, c) & circuits for c in circuits}


def describe(path) -> str:
    script = Path(path) if Path(path).name == "network.py" else Path(path) / "network.py"
    return f"brian2: run with python {script} --inputs X.npz -o OUT.npz"
