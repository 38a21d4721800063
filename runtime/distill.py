"""``tripartite distill``: fit learned feature maps of a model on calibration text."""

from __future__ import annotations

from compiler.distill.corpus import calibration_texts
from compiler.distill.fit import DistillOptions, distill_graph
from compiler.distill.maps import FeatureMaps


def distill(source, features: int = 64, texts: list[str] | None = None, epochs: int = 100, seed: int = 0,
            window: int = 0, count: int = 48, progress=None, batch=None) -> FeatureMaps:
    """Feature maps of every attention node of ``source`` (a graph or a model path).

    ``texts``: calibration texts (default: ``count`` texts cut from the shipped corpus, 60-300 tokens,
    truncated at the model's context), or ``batch`` (a :class:`runtime.inputs.Batch`).  ``features``:
    neurons per head (2m).  ``epochs``: L-BFGS iterations per layer.  ``progress(layer, step, total)``
    is called after each iteration.
    """
    from compiler.api import load_attention_graph
    from runtime.inputs import from_texts

    graph = load_attention_graph(source)
    if batch is None:
        texts = calibration_texts(count, seed) if texts is None else texts
        batch = from_texts(graph.encoder, texts, graph.meta)
    options = DistillOptions(features=features, epochs=epochs, seed=seed, window=window)
    return distill_graph(graph, batch.x, batch.mask, options, progress=progress)


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

    with bar:
        maps = distill(graph, features=args.features, texts=texts, epochs=args.epochs, seed=args.seed,
                       window=args.window, progress=progress, batch=batch)
    maps.save(args.output)
    kl = ", ".join(f"{name} {r['kl_after']:.3f}" for name, r in maps.report.items())
    print(f"distilled {args.source} -> {args.output}: {maps.features} features per head, window {maps.window}; "
          f"row KL {kl}")
    return 0
