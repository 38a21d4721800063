"""Check a compiled network against the float transformer it came from.

The float reference (:func:`runtime.reference.run_reference`, float64) runs the attention graph;
the backend (golden or lava) runs the process graph on the same token vectors.  Over the unmasked
tokens (N of them) with backend values ``a`` and reference values ``b`` (each (N, width)):

    max_abs_err = max |a - b|,  rel_l2_err = ||a - b||_F / ||b||_F,
    cosine_n = a_n . b_n / (|a_n| |b_n|)  (1 when both are zero), reported as mean and min.

Per-layer errors compare ``net.meta['layer_outputs']`` (attention-graph node -> process node).
Task-level agreement depends on the model: classifiers (token-averaged logits) accuracy and
agreement of predictions, encoders the cosine of mean-pooled embeddings, decoders next-token top-1
agreement and mean KL(float || backend).  Tolerances: :data:`TOLERANCES`, docs/verify_schema.md.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np

from compiler.errors import InputError
from runtime.inputs import Batch
from runtime.reference import mean_pool, run_reference

SCHEMA_VERSION = 1
EXACT = "exact"
PROBES = ("calcium", "soma", "weights", "activity")

# precision -> limits for exact lowerings; approximate lowerings (favor, relu, elu1, taylor2) use APPROXIMATE.
TOLERANCES = {
    "float64": {"rel_l2_err": 1e-9},
    "float32": {"rel_l2_err": 1e-4},
    "loihi2": {"rel_l2_err": 0.2, "cosine_mean": 0.98, "agreement": 0.95, "embedding_cosine_min": 0.98},
}
APPROXIMATE = {"rel_l2_err": 0.5, "cosine_mean": 0.9, "agreement": 0.9}


@dataclass
class ErrorStats:
    """Errors of backend values against reference values over the unmasked tokens."""

    name: str
    max_abs_err: float
    rel_l2_err: float
    cosine_mean: float
    cosine_min: float
    node: str = ""

    def layer_dict(self) -> dict:
        return {"name": self.name, "node": self.node, "max_abs_err": self.max_abs_err, "rel_l2_err": self.rel_l2_err,
                "cosine": self.cosine_mean, "cosine_min": self.cosine_min}

    def output_dict(self) -> dict:
        return {"role": self.name, "max_abs_err": self.max_abs_err, "rel_l2_err": self.rel_l2_err,
                "cosine_mean": self.cosine_mean, "cosine_min": self.cosine_min}


@dataclass
class Check:
    """One tolerance: ``value`` must be <= ``limit`` (``kind='max'``) or >= it (``'min'``)."""

    name: str
    value: float
    limit: float
    kind: str

    @property
    def passed(self) -> bool:
        if not np.isfinite(self.value):
            return False
        return self.value <= self.limit if self.kind == "max" else self.value >= self.limit


@dataclass
class VerifyReport:
    """What ``tripartite verify`` prints and writes; :meth:`to_dict` is the JSON document."""

    backend: str
    precision: str
    lowering: str
    source: str
    task: str
    tokens: int
    sequences: int
    layers: list[ErrorStats]
    output: ErrorStats
    saturations: dict[str, int]
    agreement: dict[str, float]
    checks: list[Check]
    seconds: dict[str, float]
    arrays: dict = field(default_factory=dict, repr=False)
    breakdown: dict | None = None  # runtime.error_breakdown, when asked for
    reference: str = "float reference"

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict:
        return {
            "schema_version": SCHEMA_VERSION,
            "backend": self.backend, "precision": self.precision, "lowering": self.lowering,
            "source": self.source, "reference": self.reference, "task": self.task, "tokens": self.tokens,
            "sequences": self.sequences,
            "layers": [s.layer_dict() for s in self.layers],
            "output": self.output.output_dict(),
            "saturations": int(sum(self.saturations.values())),
            "saturations_by_node": {k: int(v) for k, v in self.saturations.items()},
            "agreement": dict(self.agreement),
            "checks": [dict(asdict(c), passed=c.passed) for c in self.checks],
            "seconds": dict(self.seconds),
            "passed": self.passed,
            **({"error_breakdown": self.breakdown} if self.breakdown is not None else {}),
        }

    def print_table(self, console=None) -> None:
        from rich.console import Console
        from rich.table import Table

        console = console or Console()
        table = Table(title=f"verify: {self.backend} ({self.precision}, {self.lowering}) vs {self.reference}, "
                            f"{self.sequences} sequence(s), {self.tokens} tokens")
        for col in ("compared", "max abs err", "rel L2 err", "cosine mean", "cosine min"):
            table.add_column(col, justify="left" if col == "compared" else "right")
        for s in [*self.layers, self.output]:
            label = s.name if s is not self.output else f"output ({s.name})"
            table.add_row(label, f"{s.max_abs_err:.3g}", f"{s.rel_l2_err:.3g}", f"{s.cosine_mean:.6f}",
                          f"{s.cosine_min:.6f}")
        console.print(table)
        if self.agreement:
            console.print(f"{self.task}: " + ", ".join(f"{k} {v:.4g}" for k, v in self.agreement.items()))
        console.print(f"saturations: {sum(self.saturations.values())}")
        for c in self.checks:
            sign = "<=" if c.kind == "max" else ">="
            mark = "[green]pass[/green]" if c.passed else "[red]FAIL[/red]"
            console.print(f"{mark} {c.name} = {c.value:.4g} {sign} {c.limit:.4g}")
        if self.breakdown is not None:
            from runtime.error_breakdown import print_breakdown

            print_breakdown(self.breakdown, console)


def error_stats(name: str, got: np.ndarray, want: np.ndarray, mask: np.ndarray, node: str = "") -> ErrorStats:
    """Error statistics of ``got`` against ``want`` (each (B, T, ...)) over tokens where ``mask``."""
    a = np.asarray(got, dtype=np.float64)[mask].reshape(int(mask.sum()), -1)
    b = np.asarray(want, dtype=np.float64)[mask].reshape(a.shape)
    if a.size == 0:
        return ErrorStats(name, 0.0, 0.0, 1.0, 1.0, node)
    diff = a - b
    ref_norm = np.linalg.norm(b)
    rel = float(np.linalg.norm(diff) / ref_norm) if ref_norm > 0 else float(np.linalg.norm(diff) > 0) * np.inf
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    both_zero = (na == 0) & (nb == 0)
    cos = np.where(both_zero, 1.0, (a * b).sum(axis=1) / np.maximum(na * nb, 1e-300))
    if not np.all(np.isfinite(a)):
        return ErrorStats(name, np.inf, np.inf, -1.0, -1.0, node)
    return ErrorStats(name, float(np.abs(diff).max()), rel, float(cos.mean()), float(cos.min()), node)


def task_of(graph, net) -> str:
    """classifier, encoder or decoder, from the reference graph's metadata."""
    task = graph.meta.get("task")
    if task:
        return task
    family = graph.meta.get("family") or net.meta.get("family", "")
    if family in ("llama", "gpt2") or graph.meta.get("pooling") == "last":
        return "decoder"
    return "encoder"


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def task_agreement(task: str, got: dict, want: dict, batch: Batch) -> dict[str, float]:
    """Task-level agreement of backend outputs ``got`` with reference outputs ``want``."""
    mask = batch.mask
    if task == "classifier" and "logits" in got:
        from compiler.models.digits_vit import class_scores

        pb = class_scores(np.asarray(got["logits"], np.float64), mask).argmax(axis=1)
        pf = class_scores(np.asarray(want["logits"], np.float64), mask).argmax(axis=1)
        out = {"agreement": float((pb == pf).mean())}
        if batch.labels is not None:
            out["float_accuracy"] = float((pf == batch.labels).mean())
            out["backend_accuracy"] = float((pb == batch.labels).mean())
        return out
    if task == "decoder" and "logits" in got:
        lb, lf = np.asarray(got["logits"], np.float64)[mask], np.asarray(want["logits"], np.float64)[mask]
        pf, pb = softmax(lf), softmax(lb)
        kl = (pf * (np.log(np.maximum(pf, 1e-300)) - np.log(np.maximum(pb, 1e-300)))).sum(axis=-1)
        return {"top1_agreement": float((lb.argmax(-1) == lf.argmax(-1)).mean()), "mean_kl": float(kl.mean())}
    if "hidden" in got:
        eb = mean_pool(np.asarray(got["hidden"], np.float64), mask)
        ef = mean_pool(np.asarray(want["hidden"], np.float64), mask)
        cos = (eb * ef).sum(axis=-1)
        return {"embedding_cosine_mean": float(cos.mean()), "embedding_cosine_min": float(cos.min())}
    return {}


def tolerance_checks(precision: str, lowering: str, output: ErrorStats, agreement: dict, rtol) -> list[Check]:
    """The checks that decide ``passed`` (see docs/verify_schema.md)."""
    limits = dict(TOLERANCES.get(precision, TOLERANCES["loihi2"]) if lowering == EXACT else APPROXIMATE)
    if rtol is not None:
        limits["rel_l2_err"] = float(rtol)
    checks = [Check("output.rel_l2_err", output.rel_l2_err, limits["rel_l2_err"], "max")]
    if "cosine_mean" in limits:
        checks.append(Check("output.cosine_mean", output.cosine_mean, limits["cosine_mean"], "min"))
    if "agreement" in limits:
        for key in ("agreement", "top1_agreement"):
            if key in agreement:
                checks.append(Check(key, agreement[key], limits["agreement"], "min"))
    if "embedding_cosine_min" in limits and "embedding_cosine_min" in agreement:
        checks.append(Check("embedding_cosine_min", agreement["embedding_cosine_min"],
                            limits["embedding_cosine_min"], "min"))
    return checks


def layer_value(result, node: str):
    """A process node's value from a run: kept values, else its activity probe."""
    if node in result.values:
        return result.values[node]
    return result.probes.get(f"{node}/activity")


def attention_inputs(graph) -> list[str]:
    """Reference nodes feeding attention q and k (for the float attention maps of plots)."""
    names = []
    for att in graph.of_kind("attention"):
        ins = graph.inputs_of(att.name)
        names += [ins["q"], ins["k"]]
    return names


def set_reference(report: VerifyReport, reference: str, rtol) -> None:
    """Name what the network was compared with; onnxruntime is float32, so (unless ``rtol`` is given)
    the output limit is at least :data:`runtime.onnx_reference.FLOAT32_RTOL`."""
    from runtime.onnx_reference import FLOAT32_RTOL, NAME

    report.reference = reference
    if reference == NAME and rtol is None:
        for check in report.checks:
            if check.name == "output.rel_l2_err":
                check.limit = max(check.limit, FLOAT32_RTOL)


def load_reference(reference):
    from compiler.api import load_attention_graph

    return load_attention_graph(reference)


def verify(net, reference, batch: Batch, backend: str = "golden", rtol: float | None = None, timeout: float = 600.0,
           probes=None, progress=None, granularity: str = "fused") -> VerifyReport:
    """Run ``net`` on ``batch`` with ``backend`` and compare with the float model ``reference``.

    Parameters
    ----------
    net : the compiled ProcessGraph.
    reference : the source it was compiled from: an AttentionGraph, a checkpoint directory or a saved graph.
    batch : token vectors and mask (``batch.labels`` adds classifier accuracies).
    rtol : overrides the output rel_l2_err limit.
    probes : probe kinds recorded by the backend (kept in ``report.arrays`` for plots); default: every
        kind on golden, none on lava (its runner records no probes yet).
    progress : ``progress(tokens_done, tokens_total)`` callback passed to the backend.
    """
    from runtime.run import run

    graph = load_reference(reference)
    width = graph.validate()[graph.input_node()][0]
    if batch.x.shape[2] != width:
        raise InputError(f"reference {graph.name!r} takes {width}-wide tokens but the inputs are {batch.x.shape[2]} "
                         "wide; is --reference the source NET was compiled from?")
    layer_map = dict(net.meta.get("layer_outputs") or {})
    missing = [n for n in layer_map if n not in graph.g]
    if missing:
        raise InputError(f"reference {graph.name!r} has no node {missing[0]!r} named by the network; "
                         "is --reference the source NET was compiled from?")
    net_roles = {op.role for op in net.of_kind("output_decoder")}
    if not net_roles & set(graph.output_nodes()):
        raise InputError(f"network outputs {sorted(net_roles)} share no role with reference {graph.name!r}'s "
                         f"{sorted(graph.output_nodes())}; is --reference the source NET was compiled from?")
    start = time.perf_counter()
    ref = run_reference(graph, batch.x, batch.mask, "float64", keep=list(layer_map) + attention_inputs(graph))
    from runtime.onnx_reference import onnx_outputs

    external, reference_name = onnx_outputs(reference, graph, batch)
    ref.outputs.update({r: v for r, v in (external or {}).items() if r in ref.outputs})
    ref_seconds = time.perf_counter() - start
    if probes is None:
        probes = PROBES if backend == "golden" else ()
    result = run(net, batch, backend=backend, probes=probes, timeout=timeout, progress=progress,
                 keep=tuple(layer_map.values()), granularity=granularity)
    roles = [r for r in ref.outputs if r in result.outputs]
    role = "logits" if "logits" in roles else roles[0]
    mask = batch.mask
    output = error_stats(role, result.outputs[role], ref.outputs[role], mask)
    layers = []
    for name in graph.order():
        node = layer_map.get(name)
        value = layer_value(result, node) if node else None
        if value is not None:
            layers.append(error_stats(name, value, ref.values[name], mask, node))
    task = task_of(graph, net)
    agreement = task_agreement(task, result.outputs, ref.outputs, batch)
    lowering = net.meta.get("lowering", EXACT)
    per_layer = set((net.meta.get("per_layer") or {}).values())
    if per_layer and per_layer != {lowering}:
        lowering = "mixed:" + "+".join(sorted(per_layer))
    report = VerifyReport(
        backend=result.backend, precision=result.precision, lowering=lowering, source=graph.name, task=task,
        tokens=int(mask.sum()), sequences=int(mask.shape[0]), layers=layers, output=output,
        saturations={k: int(v) for k, v in result.saturations.items()}, agreement=agreement,
        checks=tolerance_checks(result.precision, lowering, output, agreement, rtol),
        seconds={"reference": ref_seconds, "backend": result.seconds},
    )
    set_reference(report, reference_name, rtol)
    report.arrays = {"reference": ref, "result": result, "graph": graph, "mask": mask}
    return report
