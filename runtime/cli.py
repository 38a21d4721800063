"""The ``tripartite`` command line: a thin layer over the Python API.

Exit codes: 0 success, 1 a check failed, 2 bad input or usage.  Errors print one line on stderr
naming the culprit; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from compiler.errors import InputError, TripartiteError

LOWERINGS = ("exact", "favor", "relu", "elu1", "taylor2", "learned")
PRECISIONS = ("float64", "float32", "loihi2")
ROUNDINGS = ("nearest", "compensated")


def add_input_options(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", action="append", help="input text (repeat for a batch)")
    src.add_argument("--text-file", help="file with one input text per line")
    src.add_argument("--inputs", help=".npz with 'input_ids' (+ 'mask', 'token_type_ids') or token vectors 'x'")
    p.add_argument("--backend", choices=("golden", "lava", "brian2"), default="golden",
                   help="simulator (default: golden)")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds before a Lava run is stopped")
    p.add_argument("--granularity", choices=("fused", "block", "fine"), default="fused",
                   help="Lava processes: one for the network (fused, default), one per block or per circuit element")
    p.add_argument("--plots", metavar="DIR", help="write PNG figures and an HTML page to DIR")
    add_shard_options(p)


def add_shard_options(p: argparse.ArgumentParser) -> None:
    s = p.add_argument_group("large inputs (runtime/shards)")
    s.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local worker processes for the shards (default: the machine's cores)")
    s.add_argument("--scheduler", metavar="ADDRESS", help="run the shards on a Dask distributed cluster")
    s.add_argument("--shard-size", type=int, default=None, metavar="S", help="sequences per shard (default 32)")
    s.add_argument("--resume", action="store_true", help="continue an interrupted run from its finished shards")
    s.add_argument("--fail-fast", action="store_true", help="stop at the first failing shard")
    s.add_argument("--truncate", action="store_true",
                   help="cut texts longer than the network's token limit instead of refusing them")
    s.add_argument("--force", action="store_true", help="run even when the memory estimate exceeds what is free")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tripartite",
        description="Compile transformers into neuron-astrocyte circuits and run them on Loihi-class simulators.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("compile", help="compile a model into a neuron-astrocyte network (.tpn)",
                       description="SOURCE: a Hugging Face checkpoint directory, an .onnx file or a saved "
                                   "attention graph (.tpg).")
    c.add_argument("source")
    c.add_argument("-o", "--output", required=True, help="compiled network file to write (.tpn)")
    c.add_argument("--lowering", choices=LOWERINGS, default="exact", help="how softmax attention becomes a circuit")
    c.add_argument("--layer-lowering", action="append", default=[], metavar="NODE=LOWERING",
                   help="override the lowering of one attention node, e.g. layer0.attn=favor")
    c.add_argument("--features", type=int, default=256, help="feature neurons per head for random-feature lowerings")
    c.add_argument("--orthogonal", action="store_true", help="orthogonal random features (favor)")
    c.add_argument("--seed", type=int, default=0, help="seed of random features")
    c.add_argument("--precision", choices=PRECISIONS, default="float64")
    c.add_argument("--max-tokens", type=int, default=None,
                   help="context length (slots of exact circuits; default 128, or the model's limit if shorter)")
    c.add_argument("--calibrate", metavar="FILE", help="sample inputs (.npz or text file) for quantization")
    c.add_argument("--feature-maps", metavar="MAPS", help="learned lowering: maps written by `tripartite distill`")
    c.add_argument("--window", type=int, default=None, metavar="W",
                   help="learned lowering: exact slots for the W keys nearest each query (the last W in a decoder, "
                        "the band around the query in an encoder; default: the window the maps were fitted for)")
    c.add_argument("--force", action="store_true",
                   help="compile even when the memory estimate exceeds what is free, or --max-tokens exceeds a "
                        "rotary model's trained context")

    ds = sub.add_parser("distill", help="fit learned feature maps (the learned lowering) to a model's attention",
                        description="SOURCE: a Hugging Face checkpoint directory or a saved attention graph.")
    ds.add_argument("source")
    ds.add_argument("-o", "--output", required=True, help="feature maps file to write (.npz)")
    ds.add_argument("--features", type=int, default=64, help="feature neurons per head (2m, even)")
    calib = ds.add_mutually_exclusive_group()
    calib.add_argument("--text-file", help="calibration texts, one per line (default: the shipped corpus)")
    calib.add_argument("--inputs", help="calibration .npz: 'input_ids' (+ 'mask') or token vectors 'x'")
    ds.add_argument("--epochs", type=int, default=100, help="L-BFGS iterations per layer")
    ds.add_argument("--seed", type=int, default=0)
    ds.add_argument("--window", type=int, default=0, metavar="W",
                    help="fit next to W exact slots: the W keys nearest each query")
    ds.add_argument("--joint-steps", type=int, default=50, metavar="N",
                    help="Adam steps tuning all maps on the model's outputs (needs torch; 0: layer by layer only)")
    c.add_argument("--tokenizer", metavar="T", help="tokenizer.json (or its directory) to embed, for sources "
                   "without one (.onnx); default: the tokenizer.json beside the source")
    c.add_argument("--rounding", choices=ROUNDINGS, default="nearest",
                   help="loihi2 weight mantissas: round to nearest, or compensate the output error on calibration")
    c.add_argument("--outlier-ratio", type=float, default=0.0, metavar="R",
                   help="loihi2: input channels louder than R x the median get a synapse group of their own (0: off)")
    c.add_argument("--split-qk", action="store_true",
                   help="loihi2: a second 8-bit synapse group carries the rounding residual of query/key maps")

    r = sub.add_parser("run", help="run a compiled network on inputs and write outputs (.npz)")
    r.add_argument("net")
    add_input_options(r)
    r.add_argument("--generate", type=int, default=0, metavar="N", help="greedily generate N tokens (decoders)")
    r.add_argument("--probe", default="", help="comma-separated probes: calcium,soma,weights,activity")
    r.add_argument("-o", "--output", required=True, help=".npz file to write")

    from runtime.generate_command import add_generate_parser

    add_generate_parser(sub)

    v = sub.add_parser("verify", help="check a compiled network against the float model it came from")
    v.add_argument("net")
    v.add_argument("--reference", required=True, help="SOURCE the network was compiled from")
    add_input_options(v)
    v.add_argument("--json", metavar="OUT", help="write the verification report as JSON")
    v.add_argument("--rtol", type=float, default=None, help="relative L2 tolerance of the output")
    v.add_argument("--breakdown", action="store_true",
                   help="loihi2: re-run golden with each synapse-group kind and integer operation in float")

    rp = sub.add_parser("report", help="resources, energy and latency of a compiled network on a chip")
    rp.add_argument("net")
    rp.add_argument("--chip", default="loihi2", help="loihi2, loihi1 or a chip description JSON file")
    rp.add_argument("--costs", metavar="FILE", help="JSON overriding per-operation energy/time costs")
    rp.add_argument("--json", action="store_true", help="print JSON instead of a table")
    rp.add_argument("--tokens", type=int, default=None,
                    help="context length for the Lava time-step count (default: the network's max tokens)")

    e = sub.add_parser("export", help="export a compiled network for Loihi-class toolchains")
    e.add_argument("net")
    e.add_argument("--format", choices=("netlist", "brian2", "nir"), required=True,
                   help="netlist: HDF5 file (.h5); brian2: a script directory; nir: NIR file (.nir)")
    e.add_argument("-o", "--output", required=True)

    d = sub.add_parser("demo", help="compile, simulate on Lava and verify the bundled model")
    d.add_argument("--out", "--plots", dest="out", default="demo-report",
                   help="report directory (report.json, figures, index.html)")
    d.add_argument("--limit", type=int, default=None, metavar="N", help="use only the first N test images")
    d.add_argument("--backend", choices=("golden", "lava"), default="lava")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    args = parser.parse_args([a for a in argv if a != "--debug"])
    args.debug = debug
    if args.command is None:
        parser.print_help()
        return 2
    from runtime import commands
    from runtime.signals import Terminated, terminate_on_signals

    try:
        with terminate_on_signals():
            return getattr(commands, f"cmd_{args.command}")(args)
    except Terminated as exc:
        print(f"tripartite {args.command}: stopped by {exc.name}", file=sys.stderr)
        return 128 + exc.signum
    except TripartiteError as exc:
        if args.debug:
            traceback.print_exc()
        print(f"tripartite {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"tripartite {args.command}: interrupted", file=sys.stderr)
        return 130
    except (OSError, MemoryError) as exc:
        if args.debug:
            traceback.print_exc()
        print(f"tripartite {args.command}: error: {exc}", file=sys.stderr)
        return 2


def parse_layer_lowerings(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, lowering = item.partition("=")
        if not sep or lowering not in LOWERINGS:
            choices = ", ".join(LOWERINGS)
            raise InputError(f"--layer-lowering {item!r}: expected NODE=LOWERING with LOWERING in {choices}")
        out[name] = lowering
    return out


if __name__ == "__main__":
    sys.exit(main())
