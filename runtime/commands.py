"""Implementations of the CLI commands (each takes the parsed arguments, returns an exit code)."""

from __future__ import annotations

import json
from pathlib import Path

from compiler.errors import InputError, TripartiteError
from runtime.cli import parse_layer_lowerings


class NotAvailableError(TripartiteError):
    """A command whose back end is not part of this build."""


def console():
    from rich.console import Console

    return Console(stderr=True)


class token_progress:  # noqa: N801  (a context manager used like a function)
    """A rich progress bar over tokens; yields the ``progress(done, total)`` callback backends call."""

    def __init__(self, description: str):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(TextColumn(description), BarColumn(), MofNCompleteColumn(), TextColumn("tokens"),
                            TimeElapsedColumn(), console=console(), transient=True)
        self.task = None

    def __enter__(self):
        return self.update

    def update(self, done: int, total: int) -> None:
        if self.task is None:  # shown from the first report on, so fast runs and early errors print nothing
            self.bar.start()
            self.task = self.bar.add_task("run", total=total)
        self.bar.update(self.task, completed=done, total=total)

    def __exit__(self, *exc) -> None:
        if self.task is not None:
            self.bar.stop()


def load_net(path: str):
    """A compiled network from a .tpn archive, an HDF5 netlist or a NIR file of tripartite's dialect."""
    from compiler.exporters import load_network

    return load_network(path)


def load_batch(args, net):
    from runtime.inputs import from_texts, load_npz_inputs
    from runtime.text import read_text_file

    width = next(op.size for op in net.nodes() if op.kind == "input_encoder")
    if args.inputs:
        return load_npz_inputs(args.inputs, net.encoder, width)
    texts = args.text if args.text else read_text_file(args.text_file)
    if getattr(args, "truncate", False):
        from runtime.limits import token_limit

        return from_texts(net.encoder, texts, {**net.meta, "max_seq_length": token_limit(net)})
    return from_texts(net.encoder, texts, net.meta)


def calibration_for(source, calibrate):
    """``--calibrate FILE``: an .npz (``x``/``mask`` or ``input_ids``/``mask``) or a text file, one
    sample per line, tokenized with the model's own tokenizer.  Returns (source, calibration)."""
    import zipfile

    if calibrate is None:
        return source, None
    path = Path(calibrate)
    if not path.is_file():
        raise InputError(f"--calibrate {path}: no such file")
    from compiler.api import load_attention_graph
    from runtime.inputs import from_texts, load_npz_inputs
    from runtime.text import read_text_file

    graph = load_attention_graph(source)
    width = graph.validate()[graph.input_node()][0]
    if zipfile.is_zipfile(path):
        batch = load_npz_inputs(path, graph.encoder, width)
    else:
        batch = from_texts(graph.encoder, read_text_file(path), graph.meta)
    return graph, {"x": batch.x, "mask": batch.mask}


def cmd_compile(args) -> int:
    import time

    from compiler.api import compile as compile_model

    start = time.perf_counter()
    with console().status(f"compiling {args.source}"):
        source = args.source
        if getattr(args, "tokenizer", None):
            from compiler.api import load_attention_graph
            from compiler.frontends.tokenizer_file import embed_tokenizer

            source = embed_tokenizer(load_attention_graph(source), args.tokenizer)
        source, calibration = calibration_for(source, args.calibrate)
        net = compile_model(
            source, lowering=args.lowering, precision=args.precision, features=args.features,
            seed=args.seed, max_tokens=args.max_tokens, per_layer=parse_layer_lowerings(args.layer_lowering),
            orthogonal=args.orthogonal, calibrate=calibration, debug=args.debug, rounding=args.rounding,
            outlier_ratio=args.outlier_ratio, split_qk=args.split_qk, feature_maps=args.feature_maps,
            window=args.window, force=args.force,
        )
        net.save(args.output)
    counts = {}
    for op in net.nodes():
        counts[op.kind] = counts.get(op.kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    print(f"compiled {args.source} -> {args.output} in {time.perf_counter() - start:.2f} s ({summary})")
    return 0


def cmd_distill(args) -> int:
    from runtime.distill import cmd_distill as run_distill

    return run_distill(args)


def cmd_run(args) -> int:
    from runtime.run import output_arrays, run, save_outputs

    net = load_net(args.net)
    from runtime.shard_commands import cmd_run_sharded, use_shards

    if use_shards(args):
        return cmd_run_sharded(args, net)
    batch = load_batch(args, net)
    probes = [p for p in args.probe.split(",") if p]
    if args.generate:
        from runtime.generate_command import run_generate

        return run_generate(args, net, batch)
    with token_progress(f"running on {args.backend}") as progress:
        result = run(net, batch, backend=args.backend, probes=probes, timeout=args.timeout, progress=progress,
                     granularity=args.granularity)
    save_outputs(args.output, output_arrays(net, batch, result))
    sat = sum(int(v) for v in result.saturations.values())
    print(f"ran {batch.x.shape[0]} sequence(s) x {batch.x.shape[1]} tokens on {result.backend} "
          f"({result.precision}) in {result.seconds:.2f} s; saturations: {sat}; wrote {args.output}")
    if args.plots:
        from runtime.plots import run_plots

        run_plots(net, batch, result, Path(args.plots))
    return 0


def cmd_generate(args) -> int:
    from runtime.generate_command import cmd_generate as generate_command

    return generate_command(args)


def cmd_verify(args) -> int:
    from runtime.verify import verify

    net = load_net(args.net)
    from runtime.shard_commands import cmd_verify_sharded, use_shards

    if use_shards(args):
        report = cmd_verify_sharded(args, net)
    else:
        batch = load_batch(args, net)
        with token_progress(f"verifying on {args.backend}") as progress:
            report = verify(net, args.reference, batch, backend=args.backend, rtol=args.rtol, timeout=args.timeout,
                            granularity=args.granularity, progress=progress)
    if args.breakdown:
        from runtime.error_breakdown import breakdown_for

        report.breakdown = breakdown_for(net, args.reference, load_batch(args, net), report)
    report.print_table()
    if args.json:
        from compiler.atomic import atomic_write_text

        atomic_write_text(args.json, json.dumps(report.to_dict(), indent=2))
    if args.plots:
        from runtime.plots import verify_plots

        verify_plots(net, batch, report, Path(args.plots))
    return 0 if report.passed else 1


def cmd_report(args) -> int:
    from hardware_sim.chip import load_chip, resources

    net = load_net(args.net)
    chip = load_chip(args.chip, overrides=args.costs)
    summary = resources(net, chip)
    summary.update(lava_schedule(net, args.tokens))
    if args.json:
        print(json.dumps(summary, indent=2, default=float))
    else:
        from rich.table import Table

        table = Table(title=f"{args.net} on {args.chip}")
        table.add_column("quantity")
        table.add_column("value", justify="right")
        for key, value in summary.items():
            if isinstance(value, (int, float)):
                table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
        from rich.console import Console

        Console().print(table)
    return 0


def lava_schedule(net, tokens: int | None) -> dict:
    """Lava time steps of one sequence of ``tokens`` tokens, per granularity (see docs/lava_schedule.md)."""
    from hardware_sim.lava.schedule import lava_steps

    tokens = tokens or int(net.meta.get("max_tokens", 128))
    out: dict = {"lava_tokens": tokens}
    for granularity in ("fused", "fine"):
        steps = lava_steps(net, tokens, 1, granularity=granularity)
        out[f"lava_{granularity}_processes"] = steps["processes"]
        out[f"lava_{granularity}_steps"] = steps["total"]
        out[f"lava_{granularity}_steps_per_token"] = steps["per_token"]
        out[f"lava_{granularity}_delay_values"] = steps["delay_values"]
    return out


def cmd_export(args) -> int:
    from compiler.exporters import describe, export

    net = load_net(args.net)
    path = export(net, args.format, args.output)
    summary = describe(args.format, path)
    print(f"exported {args.net} as {args.format} -> {path}" + (f" ({summary})" if summary else ""))
    return 0


def cmd_demo(args) -> int:
    from runtime.demo import demo

    if args.limit is not None and args.limit <= 0:
        raise InputError(f"--limit {args.limit}: give a positive number of test images")
    return demo(Path(args.out), backend=args.backend, limit=args.limit)
