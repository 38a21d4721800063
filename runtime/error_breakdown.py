"""Where the ``loihi2`` output error comes from: the golden simulator re-run with one part in float.

A *part* is either a kind of synapse group or an integer operation:

=============  ===========================================================================
q, k, v, o     attention projections (``attn.q`` ...), every group of that map (bulk,
               outlier, residual parts together)
gate, up, down MLP maps (``mlp.gate``, ``mlp.up``, ``mlp.down``)
head           the output head (``lm_head``, ``head``)
other          any other weighted synapse group
exp            the exp table of the attention slots (``exp_fixed``)
reciprocal     1/z of the astrocyte soma (``reciprocal_fixed``)
normalisation  the normalising astrocytes (mean, 1/sqrt, gain) as a whole
activation     the gate tables of GELU/SiLU populations
=============  ===========================================================================

"In float" means: that part computes its exact function of the integer inputs it receives (a
synapse group with the float weights of the reference model, an operation with numpy's exp, 1/z,
normalisation or activation) and rounds only its result to the part's 24-bit output format; the
rest of the network stays integer.  For each part present, with ``E`` the output error of the
integer run against the float reference and ``E_p`` that error with part ``p`` in float::

    share_p = (E**2 - E_p**2) / E**2        kl_share_p = (KL - KL_p) / KL

the fraction of the output error that part causes.  ``E`` is the relative L2 error of the output
(logits or hidden): independent errors add in their squares, hence the squares; the mean KL
divergence of the next-token distribution (decoders) is already quadratic in small logit errors.
Parts interact, so the shares sum to about, not exactly, 1.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from hardware_sim.fixed_point import STATE_BITS, int_range, quantize, to_float
from hardware_sim.golden import fixed_circuit, fixed_features, fixed_simulator  # noqa: F401 (registers behaviours)
from hardware_sim.golden.fixed_registry import FIXED_BEHAVIOURS, Fx, qexp
from hardware_sim.golden.registry import BEHAVIOURS

SYNAPSE_KINDS = (("q", r"attn\.q"), ("k", r"attn\.k"), ("v", r"attn\.v"), ("o", r"attn\.o"),
                 ("gate", r"mlp\.gate"), ("up", r"mlp\.up"), ("down", r"mlp\.down"), ("head", r"(^|\.)(lm_)?head"))
GATED = ("gelu_erf", "gelu_tanh", "silu")
OPERATIONS = ("exp", "reciprocal", "normalisation", "activation")
SPLIT_PART = re.compile(r"\.synapses(\.outliers(\.select)?|\.residual)?$")


def linear_name(group: str) -> str:
    """The attention-graph linear map a synapse group (or one of its parts) comes from."""
    return SPLIT_PART.sub("", group)


def synapse_kind(group: str) -> str:
    base = linear_name(group)
    for kind, pattern in SYNAPSE_KINDS:
        if re.search(pattern + r"$", base):
            return kind
    return "other"


def parts_of(net) -> dict[str, list[str]]:
    """Part name -> the process nodes it covers (only parts present in ``net``)."""
    parts: dict[str, list[str]] = {}
    for op in net.of_kind("synapses"):
        if op.weight is not None:
            parts.setdefault(synapse_kind(op.name), []).append(op.name)
    feats = [op.name for op in net.of_kind("features") if op.lowering == "exact"]
    if feats:
        parts["exp"] = feats
        parts["reciprocal"] = [op.name for op in net.of_kind("astrocyte")]
    norms = [op.name for op in net.of_kind("norm_astrocyte")]
    if norms:
        parts["normalisation"] = norms
    acts = [op.name for op in net.of_kind("population") if op.response in GATED]
    if acts:
        parts["activation"] = acts
    return parts


# ---- float stand-ins ----------------------------------------------------------------------------------
def _requantize(op, y, run) -> Fx:
    e = qexp(op)
    return Fx(quantize(y, e, STATE_BITS, run.counter, op.name), e)


def float_synapses(nodes: set[str], reference) -> Callable:
    """A ``synapses`` behaviour computing the groups in ``nodes`` with the reference's float weights:
    the bulk group of a map carries the whole map, its outlier and residual parts carry nothing."""
    integer = FIXED_BEHAVIOURS["synapses"]

    def behaviour(op, args, run):
        if op.name not in nodes:
            return integer(op, args, run)
        x = args["pre"].value()
        if op.quant.get("part") in ("select", "outliers", "residual"):
            return Fx(np.zeros(x.shape[:-1] + (op.post_size,), dtype=np.int64), qexp(op))
        base = linear_name(op.name)
        src = reference.node(base) if reference is not None and base in reference else None
        w = getattr(src, "weight", None)
        w = op.weight if w is None or np.shape(w) != np.shape(op.weight) else w
        y = x @ np.asarray(w, dtype=np.float64).T
        return _requantize(op, y if op.bias is None else y + op.bias, run)

    return behaviour


def float_node(kind: str, nodes: set[str]) -> Callable:
    """The integer behaviour of ``kind``, except for ``nodes``: the float behaviour, output requantized."""
    integer, exact = FIXED_BEHAVIOURS[kind], BEHAVIOURS[kind]

    def behaviour(op, args, run):
        if op.name not in nodes:
            return integer(op, args, run)
        return _requantize(op, exact(op, {p: a.value() for p, a in args.items()}, run), run)

    return behaviour


def exp_float(x, x_exp, y_exp, counter=None, name="", bits=STATE_BITS):
    """``exp(x 2**x_exp)`` in float, rounded at ``y_exp``."""
    return quantize(np.exp(np.minimum(to_float(x, x_exp), 700.0)), y_exp, bits, counter, name)


def reciprocal_float(z, z_exp, y_exp, counter=None, name="", bits=STATE_BITS):
    """``1 / (z 2**z_exp)`` in float, rounded at ``y_exp``; non-positive ``z`` saturate as in the integer one."""
    z = np.asarray(z, dtype=np.int64)
    valid = z > 0
    y = quantize(1.0 / to_float(np.where(valid, z, 1), z_exp), y_exp, bits, counter, name)
    if counter is not None and not valid.all():
        counter.add(name or "?", int(np.count_nonzero(~valid)))
    return np.where(valid, y, int_range(bits)[1])


@contextmanager
def part_in_float(part: str, nodes: list[str], reference):
    """Within the block, the golden ``loihi2`` simulator runs ``part`` (covering ``nodes``) in float."""
    saved_beh = dict(FIXED_BEHAVIOURS)
    saved_fn = (fixed_features.exp_fixed, fixed_circuit.reciprocal_fixed)
    try:
        if part == "exp":
            fixed_features.exp_fixed = exp_float
        elif part == "reciprocal":
            fixed_circuit.reciprocal_fixed = reciprocal_float
        elif part == "normalisation":
            FIXED_BEHAVIOURS["norm_astrocyte"] = float_node("norm_astrocyte", set(nodes))
        elif part == "activation":
            FIXED_BEHAVIOURS["population"] = float_node("population", set(nodes))
        else:
            FIXED_BEHAVIOURS["synapses"] = float_synapses(set(nodes), reference)
        yield
    finally:
        FIXED_BEHAVIOURS.clear()
        FIXED_BEHAVIOURS.update(saved_beh)
        fixed_features.exp_fixed, fixed_circuit.reciprocal_fixed = saved_fn


# ---- measurement ----------------------------------------------------------------------------------------
@dataclass
class PartError:
    part: str
    groups: int
    rel_l2_err: float
    share: float
    mean_kl: float | None = None
    kl_share: float | None = None

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def _errors(out: dict, ref: dict, mask, role: str) -> tuple[float, float | None]:
    a, b = np.asarray(out[role], np.float64)[mask], np.asarray(ref[role], np.float64)[mask]
    rel = float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300))
    if role != "logits":
        return rel, None
    la, lb = a - a.max(-1, keepdims=True), b - b.max(-1, keepdims=True)
    la, lb = la - np.log(np.exp(la).sum(-1, keepdims=True)), lb - np.log(np.exp(lb).sum(-1, keepdims=True))
    return rel, float((np.exp(lb) * (lb - la)).sum(-1).mean())


def _share(total: float, part: float) -> float:
    return (total - part) / total if total > 0 else 0.0


def error_breakdown(net, reference, x, mask, ref_outputs: dict, parts=None, progress=None) -> dict:
    """The output error of ``net`` (loihi2) on ``x`` and, per part, what it becomes with that part in
    float (module docstring).  ``ref_outputs``: the float reference's outputs by role.
    Returns ``{"output": role, "rel_l2_err": E, "mean_kl": ..., "parts": [PartError dicts]}``."""
    from hardware_sim.golden import simulate

    present = parts_of(net)
    chosen = [p for p in (parts or present) if p in present]
    out = simulate(net, x, mask, precision="loihi2").outputs
    role = "logits" if "logits" in out and "logits" in ref_outputs else next(r for r in out if r in ref_outputs)
    total, total_kl = _errors(out, ref_outputs, mask, role)
    rows = []
    for i, part in enumerate(chosen):
        with part_in_float(part, present[part], reference):
            got = simulate(net, x, mask, precision="loihi2").outputs
        rel, kl = _errors(got, ref_outputs, mask, role)
        rows.append(PartError(part, len(present[part]), rel, _share(total**2, rel**2), kl,
                              None if kl is None else _share(total_kl, kl)))
        if progress is not None:
            progress(i + 1, len(chosen))
    result = {"output": role, "rel_l2_err": total, "parts": [r.to_dict() for r in rows]}
    if total_kl is not None:
        result["mean_kl"] = total_kl
    return result


def print_breakdown(result: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    kl = "mean_kl" in result
    table = Table(title=f"where the loihi2 error comes from ({result['output']}: rel L2 err "
                        f"{result['rel_l2_err']:.3g}" + (f", mean KL {result['mean_kl']:.3g}" if kl else "") + ")")
    for col in ("part in float", "groups", "rel L2 err", "share") + (("mean KL", "KL share") if kl else ()):
        table.add_column(col, justify="left" if col == "part in float" else "right")
    for r in result["parts"]:
        row = [r["part"], str(r["groups"]), f"{r['rel_l2_err']:.3g}", f"{r['share']:.1%}"]
        if kl:
            row += [f"{r['mean_kl']:.3g}", f"{r['kl_share']:.1%}"]
        table.add_row(*row)
    console.print(table)


def breakdown_for(net, reference, batch, report=None) -> dict:
    """``verify --breakdown``: the breakdown of ``net`` on ``batch`` against ``reference`` (a source or
    attention graph); reuses the reference outputs of a verify ``report`` when it has them."""
    from compiler.errors import InputError
    from runtime.reference import run_reference
    from runtime.verify import load_reference

    if net.meta.get("precision") != "loihi2":
        raise InputError(f"--breakdown needs a network compiled with --precision loihi2 (this one is "
                         f"{net.meta.get('precision')!r})")
    arrays = report.arrays if report is not None else {}
    graph = arrays.get("graph")
    graph = load_reference(reference) if graph is None else graph
    ref = arrays.get("reference")
    outputs = ref.outputs if ref is not None else run_reference(graph, batch.x, batch.mask, "float64").outputs
    return error_breakdown(net, graph, batch.x, batch.mask, outputs)
