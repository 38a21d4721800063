"""``tripartite distill``: fit learned feature maps of a model on calibration text."""

from __future__ import annotations

import numpy as np

from compiler.distill.corpus import calibration_texts
from compiler.distill.fit import DistillOptions, distill_graph
from compiler.distill.maps import FeatureMaps


def distill(source, features: int = 64, texts: list[str] | None = None, epochs: int = 100, seed: int = 0,
            window: int = 0, count: int = 48, progress=None, batch=None, joint_steps: int = 0,
            joint_lr: float = 3e-3) -> FeatureMaps:
    """Feature maps of every attention node of ``source`` (a graph or a model path).

    ``texts``: calibration texts (default: ``count`` texts cut from the shipped corpus, 60-300 tokens,
    truncated at the model's context), or ``batch`` (a :class:`runtime.inputs.Batch`).  ``features``:
    neurons per head (2m).  ``epochs``: L-BFGS iterations per layer.  ``progress(layer, step, total)``
    is called after each iteration.  ``joint_steps`` > 0 then tunes all maps together on the model's
    outputs (:mod:`compiler.distill.joint`, needs torch): Adam in float32, one chunk of texts per step.
    """
    from compiler.api import load_attention_graph
    from runtime.inputs import from_texts

    graph = load_attention_graph(source)
    if batch is None:
        texts = calibration_texts(count, seed) if texts is None else texts
        batch = from_texts(graph.encoder, texts, graph.meta)
    options = DistillOptions(features=features, epochs=epochs, seed=seed, window=window)
    maps = distill_graph(graph, batch.x, batch.mask, options, progress=progress)
    if joint_steps:
        from compiler.distill.joint import joint_tune

        maps = joint_tune(graph, batch.x, batch.mask, maps, joint_steps, lr=joint_lr, seed=seed, progress=progress,
                          dtype=np.float32, stochastic=True)
    return maps


def torch_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None


def cmd_distill(args) -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from compiler.api import load_attention_graph
    from runtime.commands import console
    from runtime.inputs import load_npz_inputs
    from runtime.text import read_text_file

    graph = load_attention_graph(args.source)
    texts = read_text_file(args.text_file) if args.text_file else None
    batch = None
    if args.inputs:
        batch = load_npz_inputs(args.inputs, graph.encoder, graph.validate()[graph.input_node()][0])
    bar = Progress(TextColumn("distilling {task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("iterations"), TimeElapsedColumn(), console=console(), transient=True)
    tasks = {}

    def progress(layer, step, total):
        if layer not in tasks:
            tasks[layer] = bar.add_task(layer, total=total)
        bar.update(tasks[layer], completed=step)

    joint = args.joint_steps
    if joint and not torch_available():
        console().print(f"distill: torch is not installed: the joint tuning ({joint} steps) is left out, "
                        "the maps are fitted layer by layer only")
        joint = 0
    with bar:
        maps = distill(graph, features=args.features, texts=texts, epochs=args.epochs, seed=args.seed,
                       window=args.window, progress=progress, batch=batch, joint_steps=joint)
    maps.save(args.output)
    kl = ", ".join(f"{name} {r['kl_after']:.3f}" for name, r in maps.report.items() if "kl_after" in r)
    print(f"distilled {args.source} -> {args.output}: {maps.features} features per head, window {maps.window}; "
          f"row KL {kl}")
    return 0
