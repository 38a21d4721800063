"""Quantize pass: per-node exponents for the ``loihi2`` precision, from calibration ranges.

Ranges come from running the float golden simulator on calibration inputs
(``options.calibration``: an array ``(B, T, width)``, a pair ``(x, mask)``, a dict or ``.npz`` file
with ``x`` and optional ``mask``).  Without calibration data the default is the model's own
statistics: for models that carry a tokenizer, the bundled calibration sentences
(``calibration_sentences.txt``: varied English, questions, numbers, code-like text) tokenized and
embedded; otherwise its embeddings applied to random token ids (4 sequences of up to 16 tokens, seed
0), its patch projection applied to uniform [0, 1] images (square, up to 16 patches), or unit
Gaussian vectors.

Each node's ``quant`` records (formats in docs/fixed_point.md; value = integer * 2**exp)::

    every activity node   range (calibrated max |x|), exp, bits (24)
    synapses              w_exp (group), w_row_exp (one per post-synaptic row: what the loihi2
                          arithmetic uses), w_bits (8), w_rel_error (relative RMS error, per row)
    population            in_exp (the summed or product input u), exp (after the response)
    norm_astrocyte        gain_exp (1/sqrt(var + eps)), w_exp (24-bit gain weights), exp
    features              score_exp (scale q.k, Cauchy-Schwarz bound), exp (feature activity);
                          learned maps: {q,k}_w_exp, {q,k}_logit_exp (:mod:`.quantize_learned`)
    hebbian_synapses      w_exp (24-bit plastic weights), exp (read-out u)
    astrocyte             calcium_exp, soma_exp (z; exact circuits: range at least the slot count),
                          recip_exp (1/z), exp (gated output)

``exp = exponent_for(HEADROOM * range, 24)``: a factor-2 headroom above the calibrated range;
whatever still overflows is saturated and counted at run time.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from compiler.errors import InputError
from compiler.passes.base import CompileOptions, Pass
from compiler.passes.quantize_learned import learned_ranges, record_learned
from compiler.passes.rounding import round_group, second_moment
from compiler.passes.split_groups import QK, add_residual, outlier_channels, split_outliers
from hardware_sim.fixed_point import STATE_BITS, WEIGHT_BITS, dequantize_weights, exponent_for, quantize_weights

HEADROOM = 2.0
DEFAULT_BATCH, DEFAULT_TOKENS = 4, 16


def state_exp(r: float) -> int:
    return exponent_for(r, STATE_BITS, HEADROOM)


# ---- calibration inputs ----------------------------------------------------------------------
CALIBRATION_TEXT = Path(__file__).with_name("calibration_sentences.txt")


def bundled_sentences(encoder, max_tokens: int) -> tuple[np.ndarray, np.ndarray]:
    """Token vectors and mask of the bundled calibration sentences, right-padded, cut at ``max_tokens``."""
    tokenizer = encoder.tokenizer()
    texts = [line.strip() for line in CALIBRATION_TEXT.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [tokenizer.encode(text).ids[:max_tokens] for text in texts]
    T = max(len(r) for r in rows)
    ids = np.full((len(rows), T), encoder.pad_token_id, dtype=np.int64)
    mask = np.zeros((len(rows), T), dtype=bool)
    for i, r in enumerate(rows):
        ids[i, : len(r)], mask[i, : len(r)] = r, True
    return encoder.encode(ids), mask


def calibration_inputs(net, calibration, max_tokens: int = DEFAULT_TOKENS):
    """``(x, mask, source)`` from ``calibration`` (see module docstring) or the model's defaults."""
    width = net.of_kind("input_encoder")[0].size
    if calibration is None:
        enc = net.encoder
        T = min(DEFAULT_TOKENS, max_tokens, (enc.max_positions if enc is not None else None) or DEFAULT_TOKENS)
        rng = np.random.default_rng(0)
        if enc is not None and enc.token_embeddings is not None and enc.tokenizer_json is not None:
            x, mask = bundled_sentences(enc, min(max_tokens, enc.max_positions or max_tokens))
            return x, mask, "default: bundled calibration sentences"
        if enc is not None and enc.token_embeddings is not None:
            ids = rng.integers(0, enc.vocab_size, size=(DEFAULT_BATCH, T))
            ones = np.ones((DEFAULT_BATCH, T), bool)
            return enc.encode(ids), ones, "default: random token ids through the embeddings"
        if enc is not None and enc.patch_projection is not None:
            side = math.isqrt(min(max_tokens, enc.max_positions or DEFAULT_TOKENS)) * enc.patch_size
            x = enc.encode_patches(rng.uniform(0.0, 1.0, size=(DEFAULT_BATCH, side, side)))
            return x, np.ones(x.shape[:2], bool), "default: uniform [0, 1] images through the patch projection"
        return rng.normal(size=(DEFAULT_BATCH, T, width)), np.ones((DEFAULT_BATCH, T), bool), "default: N(0, 1)"
    mask, source = None, "calibration data"
    if isinstance(calibration, (str, Path)):
        source = str(calibration)
        try:
            with np.load(calibration, allow_pickle=False) as f:
                calibration = {k: f[k] for k in f.files}
        except (OSError, ValueError) as exc:
            raise InputError(
                f"calibration file {calibration}: cannot read ({exc}); give an .npz with arrays x, mask"
            ) from None
    if isinstance(calibration, dict):
        if "x" not in calibration:
            raise InputError(f"{source}: calibration needs an array 'x' of shape (batch, tokens, {width})")
        x, mask = calibration["x"], calibration.get("mask")
    elif isinstance(calibration, (tuple, list)) and len(calibration) == 2:
        x, mask = calibration
    else:
        x = calibration
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or x.shape[2] != width or not np.all(np.isfinite(x)):
        raise InputError(f"{source}: calibration inputs must be finite, shape (batch, tokens, {width}); got {x.shape}")
    mask = np.ones(x.shape[:2], bool) if mask is None else np.asarray(mask).astype(bool)
    if mask.shape != x.shape[:2] or not mask.any():
        raise InputError(f"{source}: calibration mask must have shape {x.shape[:2]} and select some tokens")
    return x, mask, source


# ---- ranges ----------------------------------------------------------------------------------------
def _max_abs(a, mask=None) -> float:
    a = np.asarray(a, dtype=np.float64)
    if mask is not None and a.ndim >= 2 and a.shape[:2] == mask.shape:
        a = a[mask]
    return float(np.max(np.abs(a))) if a.size else 0.0


def calibration_run(net, x, mask):
    """The float golden run on the calibration inputs, every node's value kept."""
    from hardware_sim.golden import simulator

    return simulator.simulate(net, x, mask, "float64", probes=("calcium", "soma", "activity", "weights"),
                              keep=list(net.order()))


def simulated_ranges(net, x, mask, res=None) -> dict[str, dict[str, float]]:
    """Calibrated ranges by node: ``value`` (output), and for circuits the probed internals."""
    names = list(net.order())
    res = calibration_run(net, x, mask) if res is None else res
    ranges: dict[str, dict[str, float]] = {n: {} for n in names}
    for name, v in res.values.items():
        if isinstance(v, np.ndarray):  # circuit internals (feature activity, Hebbian state) come from probes
            ranges[name]["value"] = _max_abs(v, mask)
    for key, v in res.probes.items():
        node, var = key.split("/", 1)
        ranges.setdefault(node, {})[var] = _max_abs(v, mask)
        if var == "activity":
            ranges[node].setdefault("value", ranges[node][var])
        if var == "soma_sum":
            pos = np.asarray(v)[np.asarray(v) > 0]
            ranges[node]["soma_min"] = float(pos.min()) if pos.size else 1.0
    for name in names:
        op, inputs = net.node(name), net.inputs_of(name)
        if op.kind == "population":
            ins = [res.values[inputs[p]] for p in op.input_ports()]
            u = ins[0] * ins[1] if op.response == "product" else sum(ins)
            ranges[name]["input"] = _max_abs(u, mask)
        if op.kind == "hebbian_synapses" and "value" not in ranges[name]:
            # read-out u = sum_t v_t (f(k_t) . f(q)) with z the same sum of non-negative terms: |u| <= max|v| z
            somas = [ranges.get(a, {}).get("soma_sum", 1.0) for a in net.g.successors(name)]
            teacher = ranges.get(inputs["teacher"], {}).get("value", 1.0)
            ranges[name]["value"] = teacher * max(somas, default=1.0)
        if op.kind == "features":
            q, k = res.values[inputs["query"]], res.values[inputs["key"]]
            if not isinstance(q, np.ndarray) or not isinstance(k, np.ndarray):
                continue
            ranges[name]["score"] = op.scale * _head_norm(q, op.n_heads, mask) * _head_norm(k, op.n_kv_heads, mask)
    return ranges


def exact_soma_bounds(net, ranges) -> None:
    """Raise the soma range of exact circuits to their slot count: every written slot adds at most
    ``exp(0) = 1`` to ``z``, so ``z <= m`` holds for any input, however long or flat its attention."""
    for op in net.of_kind("astrocyte"):
        feats = net.node(net.inputs_of(op.name)["features"])
        if feats.lowering == "exact":
            r = ranges.setdefault(op.name, {})
            r["soma_sum"] = max(r.get("soma_sum", 0.0), float(feats.m))


def _head_norm(a, heads: int, mask) -> float:
    a = np.asarray(a, dtype=np.float64)
    a = a.reshape(*a.shape[:-1], heads, -1)
    return _max_abs(np.linalg.norm(a, axis=-1), mask)


# ---- per-kind records -------------------------------------------------------------------------------
def _activity(op, r):
    op.quant.update(range=r.get("value", 0.0), exp=state_exp(r.get("value", 0.0)), bits=STATE_BITS)


def round_weights(op, h, rounding: str) -> np.ndarray:
    """Round ``op``'s weights to 8-bit mantissas at per-row exponents (``rounding``: nearest or
    compensated, :mod:`.rounding`), record them, and leave in ``op.weight`` exactly the values the
    mantissas hold; return the float weights."""
    w = op.weight
    m, e = round_group(w, h, rounding)
    q = dequantize_weights(m, e, axis=0)
    err = float(np.sqrt(np.mean((q - w) ** 2) / max(np.mean(w**2), 1e-300)))
    op.quant.update(w_exp=int(quantize_weights(w)[1]), w_row_exp=[int(v) for v in e], w_bits=WEIGHT_BITS,
                    w_rel_error=err, rounding=rounding)
    op.weight = q
    return w


def _tokens(values, mask) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return v[mask] if v.ndim == 3 and v.shape[:2] == mask.shape else v.reshape(-1, v.shape[-1])


def _set_range(ranges, name, value) -> None:
    r = float(np.max(np.abs(value))) if np.size(value) else 0.0
    ranges[name] = {"value": r, "input": r}


def split_outlier_groups(net, values, mask, ranges, ratio: float) -> list[str]:
    """Give the outlier input channels of every weighted synapse group a group of their own
    (:func:`.split_groups.split_outliers`), with calibrated ranges; return the groups split."""
    done = []
    for op in [o for o in net.of_kind("synapses") if o.weight is not None]:
        x = _tokens(values[net.inputs_of(op.name)["pre"]], mask)
        channels = outlier_channels(np.max(np.abs(x), axis=0, initial=0.0), ratio)
        if not channels.size:
            continue
        sel, relay, group = split_outliers(net, op.name, channels)
        xs = x[:, channels]
        values[relay] = xs
        for name in (sel, relay):
            _set_range(ranges, name, xs)
        _set_range(ranges, group, xs @ net.node(group).weight.T)
        bias = 0.0 if op.bias is None else op.bias
        _set_range(ranges, op.name, x @ op.weight.T + bias)
        done.append(op.name)
    return done


def quantize_synapses(net, values, mask, ranges, options: CompileOptions) -> None:
    """Outlier groups, rounding of every weighted group, residual groups of q/k maps (options)."""
    values = dict(values)  # relay populations add theirs; the caller's run stays as it was
    if options.outlier_ratio > 0:
        split_outlier_groups(net, values, mask, ranges, options.outlier_ratio)
    residuals = []
    for op in [o for o in net.of_kind("synapses") if o.weight is not None]:
        pre = net.inputs_of(op.name)["pre"]
        exact = op.quant.get("part") == "select"
        h = second_moment(_tokens(values[pre], mask)) if options.rounding == "compensated" and not exact else None
        w = round_weights(op, h, "nearest" if exact else options.rounding)
        if options.split_qk and QK.search(op.name):
            residuals.append((op.name, pre, w - op.weight))
    for name, pre, r in residuals:
        group = net.node(add_residual(net, name, r))
        _set_range(ranges, group.name, _tokens(values[pre], mask) @ r.T)
        round_weights(group, None, "nearest")


def _synapses(op, r):
    _activity(op, r)


def _population(op, r):
    _activity(op, r)
    op.quant["in_exp"] = state_exp(r.get("input", r.get("value", 0.0)))


def _norm(op, r):
    _activity(op, r)
    op.quant.update(gain_exp=state_exp(r.get("gain", 1.0)), w_exp=exponent_for(_max_abs(op.weight), STATE_BITS))


def _features(op, r):
    _activity(op, r)
    op.quant["score_exp"] = state_exp(r.get("score", 1.0))
    if op.lowering == "learned":
        record_learned(op, r, state_exp)


def _hebbian(op, r):
    _activity(op, r)
    op.quant["w_exp"] = state_exp(r.get("weights", r.get("value", 1.0)))


def _astrocyte(op, r):
    _activity(op, r)
    op.quant.update(calcium_exp=state_exp(r.get("calcium", 1.0)), soma_exp=state_exp(r.get("soma_sum", 1.0)),
                    recip_exp=state_exp(1.0 / max(r.get("soma_min", 1.0), 1e-12)))


RECORDS = {"synapses": _synapses, "population": _population, "norm_astrocyte": _norm, "features": _features,
           "hebbian_synapses": _hebbian, "astrocyte": _astrocyte, "input_encoder": _activity,
           "output_decoder": _activity, "schedule": lambda op, r: None}


class Quantize(Pass):
    """Choose every exponent of the ``loihi2`` precision from calibration ranges (module docstring)."""

    name = "quantize"
    requires = ("lowered",)
    ensures = ("quantized",)

    def run(self, graph, options: CompileOptions):
        x, mask, source = calibration_inputs(graph, options.calibration, options.max_tokens)
        res = calibration_run(graph, x, mask)
        ranges = simulated_ranges(graph, x, mask, res)
        exact_soma_bounds(graph, ranges)
        learned_ranges(graph, res.values, mask, ranges)
        quantize_synapses(graph, res.values, mask, ranges, options)
        for name in graph.order():
            op = graph.node(name)
            RECORDS[op.kind](op, ranges.get(name, {}))
        graph.meta["quantization"] = {"source": source, "headroom": HEADROOM, "tokens": int(mask.sum()),
                                      "state_bits": STATE_BITS, "weight_bits": WEIGHT_BITS,
                                      "rounding": options.rounding, "outlier_ratio": options.outlier_ratio,
                                      "split_qk": options.split_qk}
        return graph
