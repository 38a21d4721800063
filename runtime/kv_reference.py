"""The float transformer reference with a key/value cache: a decoder's attention graph fed a prompt,
then one token at a time, as transformers' ``generate`` runs it.

Every node is evaluated as in :mod:`runtime.reference`, except two: causal attention keeps the keys
and values of every token fed so far (the cache) and attends the new queries to them,
``y_i = sum_j softmax_j(s q_i.k_j) v_j`` over real cached tokens ``j <= i``; linear layers use
weights cast to the run's dtype once.  Positions continue each sequence (``p`` = real tokens fed
before), so a feed of one token costs one token's work plus one dot product per cached key.
"""

from __future__ import annotations

import numpy as np

from compiler.attention import EvalContext
from compiler.interpret import interpret
from hardware_sim.golden.stream import FrozenGraph
from hardware_sim.inputs import check_tokens
from runtime.reference import resolve_dtype
from runtime.session import StreamingError


class KVCacheReference:
    """A causal attention graph whose attention nodes cache keys and values across feeds."""

    def __init__(self, graph, precision: str = "float32"):
        self.dtype = resolve_dtype(precision)
        shapes = graph.validate()
        self.graph = FrozenGraph(graph)
        self.entry = graph.input_node()
        self.width = shapes[self.entry][0]
        for op in self.graph.of_kind("attention"):
            if not op.causal:
                raise StreamingError(f"graph {graph.name!r}: attention {op.name!r} is bidirectional; a key/value "
                                     "cache serves causal decoders only")
        self.outputs = {op.role: op.name for op in self.graph.of_kind("output")}
        self.weights = {op.name: (op.weight.astype(self.dtype).T.copy(),
                                  None if op.bias is None else op.bias.astype(self.dtype))
                        for op in self.graph.of_kind("linear")}
        self.reset()

    def reset(self) -> None:
        self.cache: dict[str, tuple] = {}
        self.seen: np.ndarray | None = None

    def feed(self, x, mask=None) -> dict[str, np.ndarray]:
        """Outputs by role (B, T, size) of token vectors ``x`` (B, T, width) after those fed before."""
        x, mask = check_tokens(x, mask, self.width)
        seen = np.zeros(mask.shape[0], dtype=np.int64) if self.seen is None else self.seen
        ctx = EvalContext(dtype=self.dtype, mask=mask, positions=seen[:, None] + np.cumsum(mask, axis=1) - mask)

        def evaluate(op, args):
            if op.kind == "attention":
                return self.attend(op, args, mask)
            if op.kind == "linear":
                w, b = self.weights[op.name]
                y = args["x"] @ w
                return y if b is None else y + b
            return op.evaluate(args, ctx).astype(self.dtype, copy=False)

        values = interpret(self.graph, {self.entry: x.astype(self.dtype)}, evaluate, set(self.outputs.values()),
                           "kv reference")
        self.seen = seen + mask.sum(axis=1)
        return {role: values[name] for role, name in self.outputs.items()}

    def attend(self, op, args, mask) -> np.ndarray:
        """Attention of the new queries over the cached and new keys (real ones, not after the query)."""
        qh, kh, vh = op.split_heads(args["q"], args["k"], args["v"])
        old = self.cache.get(op.name)
        written = mask if op.use_padding_mask else np.ones_like(mask)
        if old is not None:
            kh, vh, written = (np.concatenate([a, b], axis=ax) for a, b, ax in
                               zip(old, (kh, vh, written), (2, 2, 1)))
        self.cache[op.name] = (kh, vh, written)
        B, H, T, _ = qh.shape
        n = kh.shape[2]
        logits = (qh @ kh.transpose(0, 1, 3, 2)) * self.dtype(op.scale)
        visible = written[:, None, None, :] & (np.arange(n)[None, :] <= n - T + np.arange(T)[:, None])[None, None]
        logits = np.where(visible, logits, -np.inf)
        peak = np.max(logits, axis=-1, keepdims=True)
        weights = np.exp(logits - np.where(np.isfinite(peak), peak, 0))
        total = weights.sum(axis=-1, keepdims=True)
        out = (weights / np.where(total > 0, total, 1)) @ vh
        return out.transpose(0, 2, 1, 3).reshape(B, T, H * op.v_head_dim)
