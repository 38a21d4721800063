"""Text generation on a session: write the prompt once, then one token per step, each new token
written into the circuits as the next one is read out (no prefix is ever run again).

Each step picks the next token of every unfinished sequence from the logits of its last token:
the arg-max at temperature 0, else a sample from ``softmax(logits / temperature)`` restricted to
the ``top_k`` largest (all when 0), drawn from a generator seeded with ``seed`` (the same seed
gives the same tokens).  A sequence finishes at its end-of-sequence token (not before
``min_new_tokens``: until then the token is never chosen) or after ``max_new_tokens``; finished
sequences are fed as padding (never written) until the others are done.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from compiler.errors import InputError
from runtime.inputs import Batch
from runtime.session import Session


@dataclass
class Sampling:
    """How the next token is chosen, and when a sequence stops."""

    max_new_tokens: int = 32
    min_new_tokens: int = 0
    temperature: float = 0.0
    top_k: int = 0
    seed: int = 0
    eos_ids: tuple[int, ...] = ()

    def check(self) -> None:
        if self.max_new_tokens < 1:
            raise InputError(f"--max-new-tokens {self.max_new_tokens}: give at least 1")
        if not 0 <= self.min_new_tokens <= self.max_new_tokens:
            raise InputError(f"--min-new-tokens {self.min_new_tokens}: give 0 to --max-new-tokens "
                             f"({self.max_new_tokens})")
        if not np.isfinite(self.temperature) or self.temperature < 0:
            raise InputError(f"--temperature {self.temperature}: give 0 (greedy) or a positive number")
        if self.top_k < 0:
            raise InputError(f"--top-k {self.top_k}: give 0 (all tokens) or a positive number")


@dataclass
class Generation:
    """The prompt (``input_ids``, ``mask``: B x T), the new tokens (``generated_ids``: B x N, the
    pad id after a sequence ends; ``generated_mask`` true on real ones), their text, the prompt's
    outputs by role and the timings."""

    input_ids: np.ndarray
    mask: np.ndarray
    generated_ids: np.ndarray
    generated_text: list[str]
    prompt_outputs: dict[str, np.ndarray] = field(default_factory=dict)
    prompt_seconds: float = 0.0
    seconds: float = 0.0
    saturations: dict[str, int] = field(default_factory=dict)
    generated_mask: np.ndarray | None = None
    precision: str = ""

    @property
    def lengths(self) -> np.ndarray:
        """New tokens of each sequence (its end-of-sequence token included)."""
        return self.generated_mask.sum(axis=1)

    @property
    def new_tokens(self) -> int:
        return int(self.lengths.sum())

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays of the ``generate -o`` contract."""
        return {"input_ids": self.input_ids, "mask": self.mask, "generated_ids": self.generated_ids,
                "generated_text": np.array(self.generated_text, dtype=str)}


def pad_right(sequences: list[list[int]], pad: int) -> tuple[np.ndarray, np.ndarray]:
    """Token id lists as one (B, T) array padded on the right with ``pad``, and its mask."""
    T = max(len(s) for s in sequences)
    ids = np.full((len(sequences), T), pad, dtype=np.int64)
    mask = np.zeros((len(sequences), T), dtype=bool)
    for i, s in enumerate(sequences):
        ids[i, : len(s)] = s
        mask[i, : len(s)] = True
    return ids, mask


def choose(logits: np.ndarray, sampling: Sampling, rng: np.random.Generator, ban: np.ndarray | None) -> np.ndarray:
    """Next token per row of ``logits`` (B, V): arg-max (temperature 0) or a seeded top-k sample;
    ``ban`` lists token ids that may not be chosen."""
    z = np.asarray(logits, dtype=np.float64).copy()
    if ban is not None and len(ban):
        z[:, ban] = -np.inf
    if sampling.temperature == 0:
        return np.argmax(z, axis=1)
    z = z / sampling.temperature
    if 0 < sampling.top_k < z.shape[1]:
        kth = np.partition(z, -sampling.top_k, axis=1)[:, -sampling.top_k][:, None]
        z = np.where(z >= kth, z, -np.inf)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return np.array([rng.choice(p.shape[1], p=row) for row in p])


def eos_ids(encoder) -> tuple[int, ...]:
    """End-of-sequence ids the model's encoder names (``special['eos_token_id']``, one or a list)."""
    value = (encoder.special or {}).get("eos_token_id") if encoder is not None else None
    if value is None:
        return ()
    return tuple(int(v) for v in (value if isinstance(value, (list, tuple)) else [value]))


def generate(session: Session, batch: Batch, sampling: Sampling,
             on_token: Callable[[int, np.ndarray], None] | None = None) -> Generation:
    """Continue every sequence of ``batch`` (token ids, padded on the right) on ``session``.

    ``on_token(step, ids)`` is called with the ids chosen at each step (B,) as soon as they are known.
    """
    sampling.check()
    if batch.input_ids is None:
        raise InputError("generation needs token inputs (text or input_ids), not token vectors")
    if "logits" not in {op.role for op in session.net.of_kind("output_decoder")}:
        raise InputError("generation needs a model with an output head (logits); this network has none")
    ids, mask = np.asarray(batch.input_ids), np.asarray(batch.mask, dtype=bool)
    B, T = ids.shape
    if not mask.any(axis=1).all():
        raise InputError("every sequence needs at least one prompt token")
    needed = T + sampling.max_new_tokens - 1
    if needed > session.budget:
        raise InputError(f"a prompt of {T} tokens and {sampling.max_new_tokens} new ones need {needed} slots; the "
                         f"network holds {session.budget} (compiled with --max-tokens {session.max_tokens}); "
                         "compile with a larger --max-tokens or ask for fewer new tokens")
    pad = int(session.net.encoder.pad_token_id)
    rng = np.random.default_rng(sampling.seed)
    eos = np.array(sampling.eos_ids, dtype=np.int64)
    new = np.full((B, sampling.max_new_tokens), pad, dtype=np.int64)
    alive = np.ones(B, dtype=bool)
    written = np.zeros((B, sampling.max_new_tokens), dtype=bool)
    start = time.perf_counter()
    step = session.feed(ids, mask)
    prompt_outputs = step.outputs
    prompt_seconds = time.perf_counter() - start
    logits = step.outputs["logits"][np.arange(B), mask.shape[1] - 1 - np.argmax(mask[:, ::-1], axis=1)]
    for n in range(sampling.max_new_tokens):
        chosen = choose(logits, sampling, rng, eos if n < sampling.min_new_tokens else None)
        new[alive, n] = chosen[alive]
        written[:, n] = alive
        if on_token is not None:
            on_token(n, np.where(alive, chosen, -1))
        alive &= ~np.isin(chosen, eos)
        if not alive.any() or n + 1 == sampling.max_new_tokens:
            break
        logits = session.feed(new[:, n:n + 1], alive[:, None]).outputs["logits"][:, 0]
    return Generation(input_ids=ids, mask=mask, generated_ids=new, generated_text=[], prompt_outputs=prompt_outputs,
                      prompt_seconds=prompt_seconds, seconds=time.perf_counter() - start,
                      saturations=dict(session.saturations), generated_mask=written,
                      precision=session.stream.precision)
