"""``tripartite generate`` (and ``run --generate N``): a session over a compiled decoder, the text
printed as it is produced, tokens per second on stderr, the arrays of the ``-o`` contract."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from compiler.errors import InputError


def add_generate_parser(sub) -> None:
    g = sub.add_parser("generate", help="generate text with a compiled decoder, printed as it is produced",
                       description="The prompt is written into the circuits once; each new token is one write "
                                   "and one read per circuit.")
    g.add_argument("net")
    src = g.add_mutually_exclusive_group(required=True)
    src.add_argument("--text", action="append", help="prompt text (repeat for a batch)")
    src.add_argument("--text-file", help="file with one prompt per line")
    src.add_argument("--inputs", help=".npz with 'input_ids' (+ 'mask')")
    g.add_argument("--max-new-tokens", type=int, default=32, metavar="N", help="stop after N new tokens (default 32)")
    g.add_argument("--min-new-tokens", type=int, default=0, metavar="N",
                   help="never stop at the end-of-sequence token before N new tokens")
    g.add_argument("--temperature", type=float, default=0.0, help="0: greedy (default); > 0: sample")
    g.add_argument("--top-k", type=int, default=0, metavar="K", help="sample among the K likeliest tokens (0: all)")
    g.add_argument("--seed", type=int, default=0, help="seed of the sampler (same seed, same tokens)")
    g.add_argument("--backend", choices=("golden", "lava"), default="golden",
                   help="golden simulator or a Lava runtime kept up for the whole generation (fused)")
    g.add_argument("--timeout", type=float, default=600.0, help="seconds before a Lava session is stopped")
    g.add_argument("--chat", action="store_true", help="wrap each prompt in the model's chat template")
    g.add_argument("-o", "--output", help=".npz to write: input_ids, mask, generated_ids, generated_text")


def prompt_batch(args, net):
    """Token ids of the prompts: texts (through the chat template with ``--chat``) or ``--inputs``."""
    from runtime.inputs import from_ids, from_texts, load_npz_inputs
    from runtime.text import read_text_file

    if net.encoder is None or net.encoder.token_embeddings is None:
        raise InputError(f"{args.net}: this network takes no token ids, so it cannot generate text")
    if args.inputs:
        if args.chat:
            raise InputError("--chat wraps text prompts; give --text or --text-file")
        batch = load_npz_inputs(args.inputs, net.encoder, net.encoder.width)
        if batch.input_ids is None:
            raise InputError(f"{args.inputs}: generation needs an array 'input_ids'")
        return batch
    texts = args.text if args.text else read_text_file(args.text_file)
    if not args.chat:
        return from_texts(net.encoder, texts, net.meta)
    from runtime.chat import chat_prompt
    from runtime.generate import pad_right

    tokenizer = net.encoder.tokenizer()
    ids = [tokenizer.encode(chat_prompt(net.encoder, t), add_special_tokens=False).ids for t in texts]
    input_ids, mask = pad_right(ids, int(net.encoder.pad_token_id))
    return from_ids(net.encoder, input_ids, mask, texts=texts)


class Printer:
    """Writes each sequence's new text as it becomes final: one sequence streams to ``out`` token
    by token; a batch prints each continuation on its own line at the end."""

    def __init__(self, tokenizer, batch: int, out=None):
        from runtime.text_stream import TextStream

        self.streams = [TextStream(tokenizer) for _ in range(batch)] if tokenizer is not None else []
        self.out = out or sys.stdout
        self.live = batch == 1

    def __call__(self, step: int, ids: np.ndarray) -> None:
        for stream, token in zip(self.streams, ids):
            if token >= 0:
                piece = stream.push(int(token))
                if self.live and piece:
                    self.out.write(piece)
                    self.out.flush()

    def finish(self) -> list[str]:
        if self.live and self.streams:
            self.out.write(self.streams[0].finish() + "\n")
        elif self.streams:
            for stream in self.streams:
                stream.finish()
                self.out.write(stream.shown.replace("\n", " ") + "\n")
        self.out.flush()
        return [s.text() for s in self.streams]


def sampling_from(args, net, max_new_tokens: int):
    from runtime.generate import Sampling, eos_ids

    return Sampling(max_new_tokens=max_new_tokens, min_new_tokens=getattr(args, "min_new_tokens", 0),
                    temperature=getattr(args, "temperature", 0.0), top_k=getattr(args, "top_k", 0),
                    seed=getattr(args, "seed", 0), eos_ids=eos_ids(net.encoder))


def run_session(net, batch, sampling, backend: str, timeout: float, printer: Printer):
    from runtime.generate import generate
    from runtime.session import Session

    with Session(net, backend=backend, budget=batch.input_ids.shape[1] + sampling.max_new_tokens - 1,
                 timeout=timeout) as session:
        result = generate(session, batch, sampling, on_token=printer)
    result.generated_text = printer.finish()
    return result


def report_speed(result, backend: str, out=None) -> None:
    out = out or sys.stderr
    gen = result.seconds - result.prompt_seconds
    steps = max(int(result.lengths.max()) - 1, 0)
    rate = steps * result.input_ids.shape[0] / gen if gen > 0 and steps else float("nan")
    print(f"generated {result.new_tokens} token(s) on {backend} ({result.precision}) in {result.seconds:.2f} s: "
          f"prompt of {result.input_ids.shape[1]} tokens {result.prompt_seconds:.2f} s, then {rate:.2f} tokens/s",
          file=out)


def cmd_generate(args) -> int:
    from runtime.commands import load_net
    from runtime.run import save_outputs

    net = load_net(args.net)
    batch = prompt_batch(args, net)
    sampling = sampling_from(args, net, args.max_new_tokens)
    printer = Printer(net.encoder.tokenizer() if net.encoder.tokenizer_json else None, batch.input_ids.shape[0])
    result = run_session(net, batch, sampling, args.backend, args.timeout, printer)
    report_speed(result, args.backend)
    if args.output:
        save_outputs(args.output, result.arrays())
    return 0


def run_generate(args, net, batch) -> int:
    """``run --generate N``: greedy continuation on a session; writes the generation arrays and the
    prompt's outputs (``hidden``, ``logits``: B x T x size, shaped like ``input_ids``)."""
    from runtime.run import save_outputs

    if batch.input_ids is None:
        raise InputError("--generate needs token inputs (text or input_ids), not token vectors")
    start = time.perf_counter()
    printer = Printer(net.encoder.tokenizer() if net.encoder.tokenizer_json else None, batch.input_ids.shape[0],
                      out=open_null())
    result = run_session(net, batch, sampling_from(argparse.Namespace(), net, args.generate), args.backend,
                         args.timeout, printer)
    arrays = result.arrays()
    arrays.update({role: np.asarray(v) for role, v in result.prompt_outputs.items()})
    for name, count in result.saturations.items():
        arrays[f"saturations/{name}"] = np.asarray(count)
    save_outputs(args.output, arrays)
    print(f"generated {result.new_tokens} token(s) after {batch.input_ids.shape[0]} prompt(s) of "
          f"{batch.input_ids.shape[1]} tokens on {args.backend} in {time.perf_counter() - start:.2f} s; "
          f"wrote {args.output}")
    return 0


def open_null():
    import io

    return io.StringIO()
