"""Fitting learned feature maps, layer by layer, on the hidden states of the converted layers.

For attention layer l (in graph order) the model runs with layers 0..l-1 already replaced by their
learned circuits (:func:`~compiler.distill.surrogate.run_surrogate`); the queries and keys layer l
receives there, and its own softmax rows on them, are the training data.  The maps minimise the soft
cross-entropy of :func:`~compiler.distill.hedgehog.row_loss` with scipy's L-BFGS (analytic gradient),
over chunks of texts of similar length.  Deterministic for a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

from compiler.attention import AttentionGraph
from compiler.distill.hedgehog import logits, row_loss, softmax_rows, window_slots
from compiler.distill.maps import ARRAYS, FeatureMaps, LayerMaps
from compiler.distill.surrogate import attention_visibility, split
from compiler.errors import InputError

INITS = ("random", "principal")


@dataclass
class DistillOptions:
    """``features``: neurons per head (2m, even); ``epochs``: L-BFGS iterations per layer; ``window``:
    exact slots the maps are fitted next to; ``chunk``: texts per loss evaluation block; ``rows``: query
    rows per chunk the loss looks at (a seeded sample of positions; 0: all); ``init``: ``random`` columns
    or the heads' ``principal`` directions (:meth:`LayerMaps.principal`)."""

    features: int = 64
    epochs: int = 100
    seed: int = 0
    window: int = 0
    chunk: int = 8
    rows: int = 64
    init: str = "random"
    sinks: bool = False

    def check(self):
        if self.init not in INITS:
            raise InputError(f"init {self.init!r}: choose one of {', '.join(INITS)}")
        if self.features < 2 or self.features % 2:
            raise InputError(f"--features {self.features}: the learned maps need an even count >= 2 (2m features)")
        if self.epochs < 1:
            raise InputError(f"--epochs {self.epochs}: give at least one")
        if self.window < 0:
            raise InputError(f"--window {self.window}: must be >= 0")


@dataclass
class Chunk:
    q: np.ndarray
    k: np.ndarray
    target: np.ndarray
    vis: np.ndarray
    win: np.ndarray


def chunks_for(att, q, k, mask, options: DistillOptions, rng: np.random.Generator) -> list[Chunk]:
    """Texts sorted by length and cut into chunks, each trimmed to its longest text; a chunk keeps
    ``options.rows`` query positions drawn from ``rng`` (all keys)."""
    lengths = mask.sum(1)
    order = np.argsort(lengths, kind="stable")
    out = []
    for start in range(0, len(order), options.chunk):
        texts = order[start:start + options.chunk]
        T = max(int(lengths[texts].max()), 1)
        cq, ck, cm = q[texts, :, :T], k[texts, :, :T], mask[texts, :T]
        vis = attention_visibility(att, cm)
        win = window_slots(vis, options.window, att.causal, options.sinks)
        pick = np.arange(T)
        if 0 < options.rows < T:
            pick = np.sort(rng.choice(T, options.rows, replace=False))
        cq, vis, win = cq[:, :, pick], vis[:, :, pick], win[:, :, pick]
        target = softmax_rows(logits(cq, ck, att.scale), vis) * cm[:, None, pick, None]
        out.append(Chunk(cq, ck, target, vis, win))
    return out


def pack(maps: LayerMaps) -> np.ndarray:
    return np.concatenate([getattr(maps, key).ravel() for key in ARRAYS])


def unpack(vector: np.ndarray, like: LayerMaps) -> dict[str, np.ndarray]:
    out, start = {}, 0
    for key in ARRAYS:
        shape = getattr(like, key).shape
        size = int(np.prod(shape))
        out[key] = vector[start:start + size].reshape(shape)
        start += size
    return out


def total_loss(chunks: list[Chunk], params: dict, scale: float, need_grad=True):
    """Mean row cross-entropy over all chunks and its gradient."""
    rows = [max(int((c.target.sum(-1) > 0).sum()), 1) for c in chunks]
    total = sum(rows)
    loss, grads = 0.0, {key: np.zeros_like(value) for key, value in params.items()}
    for c, n in zip(chunks, rows):
        lc, gc = row_loss(c.q, c.k, c.target, c.vis, c.win, params, scale, need_grad)
        loss += lc * n / total
        if need_grad:
            for key in grads:
                grads[key] += gc[key] * (n / total)
    return loss, grads


def entropy(chunks: list[Chunk]) -> float:
    """Mean entropy of the target rows (so that cross-entropy - entropy is the row KL)."""
    rows = sum(max(int((c.target.sum(-1) > 0).sum()), 1) for c in chunks)
    return float(sum(-(c.target * np.log(np.where(c.target > 0, c.target, 1))).sum() for c in chunks) / rows)


def row_kl_per_head(att, q, k, mask, rows) -> np.ndarray:
    """Row KL per head (H,) between the softmax rows of ``q``/``k`` and the circuit ``rows``, over real queries."""
    vis = attention_visibility(att, mask)
    target = softmax_rows(logits(q, k, att.scale), vis) * mask[:, None, :, None]
    tiny = np.finfo(np.float64).tiny
    kl = (target * (np.log(np.maximum(target, tiny)) - np.log(np.maximum(rows, tiny)))).sum(-1)
    return kl.sum(axis=(0, 2)) / max(int(mask.sum()), 1)


def fit_layer(att, chunks: list[Chunk], init: LayerMaps, options: DistillOptions, progress=None):
    """L-BFGS on one layer's maps; returns the maps and the row KL before and after."""
    fixed_gain = options.window == 0 and not options.sinks  # no exact slot: the gain cancels out

    def objective(vector):
        params = unpack(vector, init)
        loss, grads = total_loss(chunks, params, att.scale)
        if fixed_gain:
            grads["log_gain"] = np.zeros_like(grads["log_gain"])
        return loss, np.concatenate([grads[key].ravel() for key in ARRAYS])

    step, trace = [0], []

    def callback(intermediate_result):
        step[0] += 1
        trace.append(float(intermediate_result.fun))
        if progress is not None:
            progress(att.name, step[0], options.epochs)

    h = entropy(chunks)
    x0 = pack(init)
    before = objective(x0)[0] - h
    result = minimize(objective, x0, jac=True, method="L-BFGS-B", callback=callback,
                      options={"maxiter": options.epochs, "maxcor": 20})
    maps = LayerMaps(**unpack(result.x, init))
    kl = [round(v - h, 5) for v in trace]
    return maps, {"kl_before": float(before), "kl_after": float(result.fun - h), "iterations": int(result.nit),
                  "kl_trace": kl[::max(len(kl) // 20, 1)] + kl[-1:]}


def distill_graph(graph: AttentionGraph, x: np.ndarray, mask: np.ndarray, options: DistillOptions,
                  progress=None) -> FeatureMaps:
    """Fit the maps of every attention node of ``graph`` on token vectors ``x`` (B, T, width) with ``mask``.

    BLAS runs single-threaded: its small stacked products gain nothing from threads, and on a shared
    machine spinning BLAS threads made them 10-30x slower (measured here).
    """
    from threadpoolctl import threadpool_limits

    options.check()
    with threadpool_limits(limits=1, user_api="blas"):
        return fit_all(graph, x, mask, options, progress)


class Fitted(Exception):  # noqa: N818 (a signal that ends the walk, not an error)
    """Raised inside the graph walk once the last attention node is fitted: nothing after it is needed."""


def fit_all(graph, x, mask, options, progress):
    """One walk through the graph in order: each attention node is fitted on the queries and keys it
    receives from the layers before it (already converted), then computed by its learned circuit."""
    from compiler.attention import EvalContext
    from compiler.distill.surrogate import learned_attention
    from compiler.interpret import interpret

    attention = [n for n in graph.order() if graph.node(n).kind == "attention"]
    if not attention:
        raise InputError(f"model {graph.name!r} has no attention node to distill")
    maps = FeatureMaps(window=options.window, source=graph.name)
    rng = np.random.default_rng(options.seed)
    m = options.features // 2
    B, T = mask.shape
    ctx = EvalContext(dtype=np.float64, mask=mask, positions=np.broadcast_to(np.arange(T), (B, T)))

    def evaluate(op, args):
        if op.kind != "attention":
            return op.evaluate(args, ctx).astype(np.float64, copy=False)
        q, k, _ = split(op, args)
        if options.init == "principal":
            init = LayerMaps.principal(rng, q, k, mask, m, op.scale)
        else:
            init = LayerMaps.initial(rng, op.n_heads, op.n_kv_heads, op.head_dim, m, op.scale)
        chunks = chunks_for(op, q, k, mask, options, rng)
        maps.layers[op.name], maps.report[op.name] = fit_layer(op, chunks, init, options, progress)
        if op.name == attention[-1]:
            raise Fitted
        return learned_attention(op, args, mask, maps.layers[op.name], options.window, options.sinks)

    try:
        interpret(graph, {graph.input_node(): np.asarray(x, np.float64)}, evaluate, (), "distill")
    except Fitted:
        pass
    return maps
