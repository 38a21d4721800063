"""``tripartite demo``: compile the bundled digits transformer, run its test set, check it, report.

Steps: load the trained model (compiler/models/data/digits_vit.npz) and the fixed test split of
``load_digits``; compile with the exact lowering at loihi2 precision; run the 359 test images on the
chosen backend (Lava's bit-accurate ``fixed_pt`` models by default); compare with the float model
(:func:`runtime.verify.verify`); print float and neuromorphic accuracy, prediction agreement,
per-layer error and chip resources; write the report directory (``report.json``, PNG figures, ``index.html``).
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def chip_resources(net, chip: str = "loihi2") -> dict:
    """``hardware_sim.chip.resources`` of ``net`` on ``chip``."""
    from hardware_sim.chip import load_chip, resources

    return resources(net, load_chip(chip))


class Steps:
    """A rich progress display: one line per step with its elapsed time."""

    def __init__(self, console):
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                                 console=console, transient=False)
        self.times: dict[str, float] = {}

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    @contextmanager
    def step(self, description: str):
        task = self.progress.add_task(description, total=1)
        start = time.perf_counter()
        try:
            yield task
        except Exception:
            self.progress.update(task, description=f"{description} [red](stopped)[/red]")
            raise
        self.times[description] = time.perf_counter() - start
        self.progress.update(task, completed=self.progress.tasks[task].total)

    def advance(self, task):
        """A ``progress(done, total)`` callback moving ``task``'s bar."""

        def update(done, total):
            self.progress.update(task, completed=done, total=total)

        return update


def summary_table(report, resources: dict, precision_note: str, layers_from=None):
    from rich.table import Table

    table = Table(title="tripartite demo: a neuron-astrocyte network computing a vision transformer")
    table.add_column("quantity")
    table.add_column("value", justify="right")
    agree = report.agreement
    table.add_row("test images", str(report.sequences))
    table.add_row("float accuracy", f"{agree.get('float_accuracy', float('nan')):.4f}")
    table.add_row(f"neuromorphic accuracy ({report.backend}, {report.precision})",
                  f"{agree.get('backend_accuracy', float('nan')):.4f}")
    table.add_row("prediction agreement", f"{agree.get('agreement', float('nan')):.4f}")
    layers_from = layers_from or report
    where = "" if layers_from is report else f" ({layers_from.backend})"
    for layer in layers_from.layers:
        table.add_row(f"rel L2 error {layer.name}{where}", f"{layer.rel_l2_err:.3g}")
    table.add_row("rel L2 error output logits", f"{report.output.rel_l2_err:.3g}")
    table.add_row("saturations", str(sum(report.saturations.values())))
    for key in ("neurons", "synapses", "bytes", "cores", "chips", "synops_per_token", "energy_per_token_j",
                "latency_per_token_s"):
        if isinstance(resources.get(key), (int, float)):
            value = resources[key]
            table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    table.caption = precision_note
    return table


def demo(out_dir: Path, backend: str = "lava", limit: int | None = None, plots: bool = True, console=None) -> int:
    """Run the demo; return the exit code (0 when the network matches the float model within tolerance)."""
    from rich.console import Console

    from compiler.api import compile as compile_model
    from compiler.models.digits_vit import digits_split, digits_vit
    from runtime.inputs import Batch
    from runtime.verify import verify

    console = console or Console()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    precision = "loihi2"
    note = f"compiled with the exact lowering at {precision} precision"
    console.print(f"[bold]tripartite demo[/bold]: {note}; backend {backend}")
    with Steps(console) as steps:
        with steps.step("loading the bundled digits transformer and test set"):
            graph = digits_vit()
            _, _, images, labels = digits_split()
            if limit:
                images, labels = images[:limit], labels[:limit]
            x = graph.encoder.encode_patches(images)
            batch = Batch(x=x, mask=np.ones(x.shape[:2], dtype=bool), labels=labels)
        with steps.step(f"compiling (exact lowering, {precision})"):
            net = compile_model(graph, lowering="exact", precision=precision, max_tokens=x.shape[1])
        with steps.step(f"running {len(images)} test images on {backend} and the float reference") as task:
            report = verify(net, graph, batch, backend=backend, progress=steps.advance(task))
        layers_from = report
        if not report.layers and backend != "golden":
            with steps.step("per-layer values and circuit probes from the golden simulator"):
                layers_from = verify(net, graph, batch, backend="golden")
        with steps.step("chip resources"):
            resources = chip_resources(net)
        document = {"demo": {"model": "digits-vit", "images": len(images), "precision_note": note,
                             "step_seconds": steps.times}, "verify": report.to_dict(), "resources": resources}
        if layers_from is not report:
            document["golden"] = layers_from.to_dict()
        (out_dir / "report.json").write_text(json.dumps(document, indent=2, default=float))
        if plots:
            with steps.step("writing figures and the HTML report"):
                from runtime.plots import verify_plots

                verify_plots(net, batch, report, out_dir, resources=resources, title="tripartite demo",
                             probes_from=layers_from)
    console.print(summary_table(report, resources, note, layers_from))
    verdict = "[green]passed[/green]" if report.passed else "[red]FAILED[/red]"
    console.print(f"verification {verdict}; report in {out_dir}/" + ("index.html" if plots else "report.json"))
    return 0 if report.passed else 1
