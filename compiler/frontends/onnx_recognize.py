"""Recognising a chain of elementwise ONNX ops as one attention-graph op, by probing it.

Exports spell the same function many ways: LayerNorm as ReduceMean/Sub/Pow/Sqrt/Div, RMSNorm with
Reciprocal or Div, GELU through Erf or Tanh, SiLU as Sigmoid*Mul, RoPE as Slice/Neg/Concat with
cos/sin tables.  Instead of matching each spelling, the chain (a :class:`Pending`) is run by onnx's
reference evaluator on probe inputs and compared with each candidate op, evaluated by the attention
graph's own node semantics.  Probe rows span scales 1e-3..3, so the eps of a norm and the two GELU
approximations are told apart; a candidate matches when every row agrees to :data:`RTOL`.

Candidates: identity, a scale factor, layer norm and RMS norm (eps from the chain's constants),
gelu_erf, gelu_tanh, silu, relu on whole feature vectors, and RoPE (half or interleaved pairing,
base read from the chain's cos/sin tables) on head-split vectors.
"""

from __future__ import annotations

import math

import numpy as np

from compiler.attention import EvalContext
from compiler.attention import nodes as op
from compiler.frontends.onnx_values import Pending, Vec

RTOL = 3e-5


def probe_inputs(tokens: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(1234)
    scales = np.logspace(-3, 0.5, tokens)[:, None]
    return (rng.standard_normal((tokens, width)) * scales).astype(np.float32)


def probe_model(pending: Pending, opsets: dict, constant):
    """A one-purpose ONNX model computing ``pending.out`` from its input values."""
    import onnx
    import onnx_ir as ir
    from onnx import helper

    protos, inits, seen = [], [], set(pending.inputs)
    produced = {o.name for n in pending.nodes for o in n.outputs}
    for node in pending.nodes:
        protos.append(ir.serde.serialize_node(node))
        for value in node.inputs:
            if value is None or value.name in seen or value.name in produced:
                continue
            seen.add(value.name)
            inits.append(onnx.numpy_helper.from_array(np.asarray(constant(value)), value.name))
    inputs = [helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, list(vec.sizes))
              for name, vec in pending.inputs.items()]
    output = helper.make_tensor_value_info(pending.out.name, onnx.TensorProto.FLOAT, None)
    graph = helper.make_graph(protos, "probe", inputs, [output], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])


def evaluate(pending: Pending, opsets: dict, constant, x: np.ndarray) -> np.ndarray:
    from onnx.reference import ReferenceEvaluator

    feeds = {name: vec.to_layout(x) for name, vec in pending.inputs.items()}
    return np.asarray(ReferenceEvaluator(probe_model(pending, opsets, constant)).run(None, feeds)[0])


def agrees(got: np.ndarray, want: np.ndarray) -> bool:
    if got.shape != want.shape or not np.all(np.isfinite(got)):
        return False
    g = got.reshape(got.shape[0], -1) if got.ndim > 1 else got[None]
    w = want.reshape(g.shape).astype(np.float64)
    err = np.linalg.norm(g - w, axis=-1)
    return bool(np.all(err <= RTOL * np.maximum(np.linalg.norm(w, axis=-1), 1e-30)))


def scalars(pending: Pending, constant) -> list[float]:
    out = set()
    for node in pending.nodes:
        for value in node.inputs:
            if value is not None and value.name not in pending.inputs:
                array = constant(value)
                if array is not None and np.size(array) == 1:
                    out.add(float(np.asarray(array).ravel()[0]))
    return sorted(v for v in out if 0 < v < 1e-2) + [0.0]


def rope_bases(pending: Pending, constant, tokens: int, head_dim: int) -> list[float]:
    """RoPE bases implied by any cos/sin table among the chain's constants (position 1's angles)."""
    bases = set()
    for node in pending.nodes:
        for value in node.inputs:
            array = None if value is None or value.name in pending.inputs else constant(value)
            if array is None or np.size(array) % tokens or np.size(array) < tokens * 2:
                continue
            table = np.asarray(array, np.float64).reshape(tokens, -1)
            if np.abs(table).max() > 1 + 1e-6 or table.shape[1] < 2:
                continue
            for angle in (np.arccos(np.clip(table[1], -1, 1)), np.arcsin(np.clip(table[1], -1, 1))):
                for i in (1, 2):
                    theta = angle[i] if i < len(angle) else 0
                    for step in (i, i // 2):
                        if 0 < theta < 1 and step:
                            bases.add(round(theta ** (-head_dim / (2 * step)), 3))
    estimates = sorted(b for b in bases if 1 < b < 1e9)
    return [round_base(b) for b in estimates] + estimates


def round_base(base: float) -> float:
    """Three significant digits: the base a float32 table was computed from (10000, 5e5, ...)."""
    return float(f"{base:.3g}")


def candidates(vec: Vec, pending: Pending, constant, tokens: int):
    """(kind, parameters, node factory) for every op ``pending`` may be."""
    out = []
    if vec.flat():
        for eps in scalars(pending, constant):
            out.append(("layernorm", {"eps": eps}))
            out.append(("rmsnorm", {"eps": eps}))
        for function in op.ACTIVATIONS:
            out.append(("activation", {"function": function}))
    sizes = vec.feature_sizes()
    if set(sizes) == {"h", "d"} and vec.rep == 1:
        for base in rope_bases(pending, constant, tokens, sizes["d"]):
            for pairing in op.ROPE_PAIRINGS:
                out.append(("rope", {"n_heads": sizes["h"], "head_dim": sizes["d"], "base": base,
                                     "pairing": pairing}))
    return out


def make_node(kind: str, name: str, params: dict, width: int):
    if kind == "layernorm":
        return op.LayerNorm(name, weight=np.ones(width), bias=None, eps=params["eps"])
    if kind == "rmsnorm":
        return op.RMSNorm(name, weight=np.ones(width), eps=params["eps"])
    if kind == "activation":
        return op.Activation(name, function=params["function"])
    return op.Rope(name, **params)


def recognise(pending: Pending, opsets: dict, constant, tokens: int, width: int):
    """``('identity'|'scale', factor, vec)`` or ``('node', node factory, vec)`` or ``None``.

    ``vec`` is the input layout the chain's output has (the result is seen through it).
    """
    x = probe_inputs(tokens, width)
    try:
        got = evaluate(pending, opsets, constant, x)
    except Exception:  # noqa: BLE001  (a chain the evaluator cannot run is simply not recognised)
        return None
    layouts = [v for v in pending.inputs.values() if tuple(v.sizes) == got.shape]
    if not layouts:
        return None
    vec = Vec(layouts[0].node, layouts[0].axes, layouts[0].sizes, layouts[0].rep, 1.0)
    base = vec.to_layout(x).astype(np.float64)
    if agrees(got, base):
        return "identity", 1.0, vec
    factor = float((got * base).sum() / max((base * base).sum(), 1e-30))
    if factor and math.isfinite(factor) and agrees(got, factor * base):
        return "scale", factor, vec
    ctx = EvalContext(dtype=np.float64, mask=np.ones((1, tokens), bool),
                      positions=np.arange(tokens)[None])
    x64 = x.astype(np.float64)[None]
    for kind, params in candidates(vec, pending, constant, tokens):
        node = make_node(kind, "probe", params, width)
        want = vec.to_layout(node.evaluate({"x": x64}, ctx)[0])
        if agrees(got, want):
            return "node", (kind, params), vec
    return None
