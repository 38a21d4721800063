"""The float model with some attention nodes replaced by their learned circuits.

For attention node ``N`` with maps, head h and query i (visible keys j, window slots per
:func:`~compiler.distill.hedgehog.window_slots`): ``y_i = sum_j S_ij v_j / sum_j S_ij`` with ``S`` from
:func:`~compiler.distill.hedgehog.circuit_scores`.  Everything else is the float reference.  The
distillation runs the model this way to fit each layer on the hidden states the already-converted
layers produce; tests use it as the float yardstick of the ``learned`` circuit.
"""

from __future__ import annotations

import numpy as np

from compiler.attention import AttentionGraph, EvalContext
from compiler.distill.hedgehog import bmm, circuit_scores, expand, hedgehog, logits, visibility, window_slots
from compiler.distill.maps import FeatureMaps, LayerMaps
from compiler.interpret import interpret


def split(att, args):
    """q (B, H, T, d), k (B, G, T, d), v (B, G, T, dv) of an attention node's inputs."""
    B, T, _ = args["q"].shape
    q = args["q"].reshape(B, T, att.n_heads, att.head_dim).transpose(0, 2, 1, 3)
    k = args["k"].reshape(B, T, att.n_kv_heads, att.head_dim).transpose(0, 2, 1, 3)
    v = args["v"].reshape(B, T, att.n_kv_heads, att.v_head_dim).transpose(0, 2, 1, 3)
    return q, k, v


def attention_visibility(att, mask: np.ndarray) -> np.ndarray:
    used = mask if att.use_padding_mask else np.ones_like(mask)
    return visibility(used, att.causal)


def learned_rows(att, q, k, mask, maps: LayerMaps, window: int, sinks: bool = False) -> np.ndarray:
    """Normalised circuit rows (B, H, T, T); ``sinks``: see :func:`~compiler.distill.hedgehog.window_slots`."""
    vis = attention_visibility(att, mask)
    win = window_slots(vis, window, att.causal, sinks)
    fq = hedgehog(q, maps.q_weight, maps.q_bias)
    fk = hedgehog(k, maps.k_weight, maps.k_bias)
    lg = logits(q, k, att.scale) if window or sinks else None
    S = circuit_scores(fq, fk, lg, vis, win, np.exp(maps.log_gain))[0]
    Z = S.sum(-1, keepdims=True)
    return S / np.where(Z > 0, Z, 1)


def learned_attention(att, args, mask, maps: LayerMaps, window: int, sinks: bool = False) -> np.ndarray:
    q, k, v = split(att, args)
    rows = learned_rows(att, q, k, mask, maps, window, sinks)
    B, H, T, _ = rows.shape
    out = bmm(rows, expand(v, H))
    return out.transpose(0, 2, 1, 3).reshape(B, T, -1)


def run_surrogate(graph: AttentionGraph, x: np.ndarray, mask: np.ndarray, maps: FeatureMaps | None,
                  keep=(), converted=None, sinks: bool = False) -> dict[str, np.ndarray]:
    """Values of ``keep`` (and the outputs, by role) with the attention nodes in ``converted`` (default:
    all with maps) computed by their learned circuits, in float64 (``sinks``: with sink slots, a study)."""
    layers = {} if maps is None else maps.layers
    converted = set(layers) if converted is None else set(converted)
    entry = graph.input_node()
    B, T = mask.shape
    ctx = EvalContext(dtype=np.float64, mask=mask, positions=np.broadcast_to(np.arange(T), (B, T)))
    outputs = graph.output_nodes()

    def evaluate(op, args):
        if op.kind == "attention" and op.name in converted:
            maps.check_window(op.name, op.causal, "surrogate")
            return learned_attention(op, args, mask, layers[op.name], maps.window, sinks)
        return op.evaluate(args, ctx).astype(np.float64, copy=False)

    values = interpret(graph, {entry: np.asarray(x, np.float64)}, evaluate, set(keep) | set(outputs.values()),
                       "distill")
    values.update({role: values[name] for role, name in outputs.items()})
    return values
