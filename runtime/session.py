"""A session: a compiled causal network whose circuits keep their state from one call to the next.

    with Session(net) as s:                      # backend "golden" (default) or "lava"
        step = s.feed(prompt_ids)                # writes the prompt, returns its outputs by role
        step = s.feed(next_ids[:, None])         # one more token per sequence: one write, one read

Each :meth:`Session.feed` writes its tokens into every attention circuit (Hebbian weights, calcium,
exact slots' keys) after the tokens fed before, and reads them, exactly as one run over the whole
sequence would: token ``t`` of a feed is column ``start + t`` of the circuit's schedule.  A token's
position (rotary phases, position embeddings) is the number of real tokens its sequence had before
it, so a prompt padded on the right continues at its own length.  :meth:`reset` starts over.

Only causal schedules can stream (a bidirectional read waits for every write); the context is the
schedule's ``max_tokens`` (the slots of exact circuits), and a feed past it is refused with a
one-line error naming the limit.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

from compiler.errors import InputError, TripartiteError
from hardware_sim.golden.stream import FrozenGraph
from hardware_sim.inputs import check_token_inputs
from runtime.run import float_precision


class StreamingError(TripartiteError):
    """A network or a feed the session cannot stream (bidirectional schedules, context exhausted)."""


@dataclass
class Step:
    """Outputs of one feed by role (B, T, size), probes recorded during it (token axis 1) and the
    saturations it counted (loihi2)."""

    outputs: dict[str, np.ndarray]
    probes: dict[str, np.ndarray] = field(default_factory=dict)
    saturations: dict[str, int] = field(default_factory=dict)


def context_limit(net) -> int:
    """The tokens a session can hold: the smallest ``max_tokens`` of the network's schedules.

    Raises :class:`StreamingError` for a bidirectional schedule or a network without circuits.
    """
    schedules = net.of_kind("schedule")
    if not schedules:
        raise StreamingError(f"network {net.name!r} has no attention circuit, so nothing to stream; "
                             "use `tripartite run`")
    for op in schedules:
        if op.mode != "causal":
            raise StreamingError(f"network {net.name!r} has a {op.mode} (encoder) schedule {op.name!r}: its reads "
                                 "wait for every write, so it cannot take one token at a time; use `tripartite run`")
    return min(op.max_tokens for op in schedules)


def one_blas_thread():
    """A context in which BLAS uses one thread: a token's matrix-vector products take well under a
    millisecond, and a thread pool's hand-offs cost more than they save (a 1536 x 576 product took
    20 ms on two threads and 0.4 ms on one, measured while other processes kept both cores busy)."""
    controller = blas_controller()
    return controller.limit(limits=1) if controller is not None else contextlib.nullcontext()


def blas_controller():
    from hardware_sim.lava.runner import blas_controller as find

    return find()


class GoldenStream:
    """The golden simulator, continuing from the circuit state of the previous feed."""

    def __init__(self, net, precision: str, probes=()):
        from hardware_sim.golden.stream import StreamState

        self.net, self.precision, self.probes = net, precision, tuple(probes)
        self.state = StreamState()

    def feed(self, x, mask, positions) -> Step:
        from hardware_sim.golden import simulate

        with one_blas_thread():
            result = simulate(self.net, x, mask, precision=self.precision, probes=set(self.probes),
                              stream=self.state, positions=positions)
        self.state = result.stream
        return Step(result.outputs, result.probes, result.saturations)

    def reset(self) -> None:
        from hardware_sim.golden.stream import StreamState

        self.state = StreamState(cache=self.state.cache)

    def close(self) -> None:
        pass


def lava_stream(net, precision: str, probes, timeout, budget):
    from hardware_sim.lava.stream import LavaStream

    return LavaStream(net, precision, probes=probes, timeout=timeout, budget=budget)


STREAMS = {"golden": lambda net, precision, probes, timeout, budget: GoldenStream(net, precision, probes),
           "lava": lava_stream}


class Session:
    """A compiled causal network on ``backend`` whose circuit state persists between feeds.

    Parameters
    ----------
    net : a compiled ProcessGraph with causal schedules.
    backend : golden (float64, float32 or loihi2 as compiled) or lava (the runtime stays up for the
        whole session; float32 or loihi2).
    probes : probe kinds recorded on every feed (golden: calcium, soma, weights, activity).
    budget : tokens the session will hold at most (Lava sizes its run by it); default the context.
    timeout : seconds a Lava session may live.
    """

    def __init__(self, net, backend: str = "golden", probes=(), budget: int | None = None,
                 timeout: float | None = 600.0):
        if backend not in STREAMS:
            raise InputError(f"unknown backend {backend!r} for a session; choose one of {', '.join(STREAMS)}")
        self.net = net
        self.backend = backend
        self.max_tokens = context_limit(net)
        self.budget = self.max_tokens if budget is None else min(int(budget), self.max_tokens)
        self.precision = float_precision(net)
        self.graph = FrozenGraph(net)
        entries = self.graph.of_kind("input_encoder")
        if len(entries) != 1:
            raise StreamingError(f"network {net.name!r} needs exactly one input encoder, has {len(entries)}")
        self.entry = entries[0]
        self.stream = STREAMS[backend](self.graph, self.precision, tuple(probes), timeout, self.budget)
        self.saturations: dict[str, int] = {}
        self.columns = 0
        self.seen: np.ndarray | None = None
        self.first: np.ndarray | None = None

    # ---- context manager ----------------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Stop the backend (a Lava runtime ends, its processes and segments removed)."""
        self.stream.close()

    # ---- feeding -------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every write: the next feed starts new sequences (any batch size)."""
        self.stream.reset()
        self.columns = 0
        self.seen = self.first = None
        self.saturations = {}

    @property
    def width(self) -> int:
        """Width of the token vectors the network takes."""
        return self.entry.size

    @property
    def tokens(self) -> int:
        """Columns written so far (prompt padding included)."""
        return self.columns

    def feed(self, input_ids, mask=None, token_type_ids=None) -> Step:
        """Write token ids (B, T) (a 1-D array is one sequence) after the tokens fed so far and return
        their outputs; ``mask`` (B, T) false marks tokens that are not written (padding, finished
        sequences)."""
        if self.net.encoder is None:
            raise InputError("this network has no input encoder; feed token vectors with feed_vectors()")
        ids = np.asarray(input_ids)
        if ids.ndim == 1:
            ids = ids[None]
        mask = self.check_mask(ids.shape, mask)
        positions = self.positions(mask)
        x = self.net.encoder.encode(ids, token_type_ids, positions=positions)
        return self.feed_vectors(x, mask, positions)

    def feed_vectors(self, x, mask=None, positions=None) -> Step:
        """Write token vectors ``x`` (B, T, width) (already embedded, positions included)."""
        x = np.asarray(x)
        if x.ndim != 3:
            raise InputError(f"token vectors must have shape (batch, tokens, width), got {x.shape}")
        mask = self.check_mask(x.shape[:2], mask)
        positions = self.positions(mask) if positions is None else positions
        _, x, mask = check_token_inputs(self.graph, x, mask, "session")
        B, T = mask.shape
        self.check_room(T)
        x = self.stand_in(x, mask)
        step = self.stream.feed(x, mask, positions)
        self.columns += T
        self.seen = self.seen + mask.sum(axis=1) if self.seen is not None else mask.sum(axis=1)
        for name, count in step.saturations.items():
            self.saturations[name] = self.saturations.get(name, 0) + int(count)
        return step

    def check_mask(self, shape, mask) -> np.ndarray:
        if self.seen is not None and shape[0] != self.seen.shape[0]:
            raise InputError(f"this session holds {self.seen.shape[0]} sequence(s), the feed has {shape[0]}; "
                             "call reset() to start a new batch")
        mask = np.ones(shape, dtype=bool) if mask is None else np.asarray(mask).astype(bool)
        if mask.shape != tuple(shape):
            raise InputError(f"mask must have shape {tuple(shape)}, got {mask.shape}")
        return mask

    def check_room(self, T: int) -> None:
        if self.columns + T > self.budget:
            limit = self.budget
            raise StreamingError(
                f"the session holds {limit} tokens and has {self.columns}; {T} more do not fit "
                + (f"(the network was compiled with --max-tokens {self.max_tokens}; compile with a larger "
                   "--max-tokens for a longer context)" if limit == self.max_tokens else
                   "(its token budget; open the session with a larger budget)"))

    def positions(self, mask: np.ndarray) -> np.ndarray:
        """Position of each token: the real tokens its sequence had before it (B, T)."""
        seen = np.zeros(mask.shape[0], dtype=np.int64) if self.seen is None else self.seen
        return seen[:, None] + np.cumsum(mask, axis=1) - mask

    def stand_in(self, x: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Padding tokens carry their sequence's first real token (values in calibrated ranges; no
        saturation counted for a token that does not exist; see the loihi2 simulator)."""
        if self.first is None and mask.any(axis=1).all():
            self.first = x[np.arange(x.shape[0]), np.argmax(mask, axis=1)]
        if mask.all() or self.first is None:
            return x
        return np.where(mask[..., None], x, self.first[:, None, :].astype(x.dtype))
