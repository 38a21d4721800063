"""onnxruntime as the reference of networks compiled from an ``.onnx`` file.

``verify NET --reference model.onnx`` compares the network with the file as onnxruntime runs it:
each sequence of the batch runs on its own (batch 1, its padding mask given as ``attention_mask``;
onnxruntime's opset-23 ``RotaryEmbedding`` refuses larger batches), and each graph output takes the
role the importer gave it (``meta['onnx_outputs']``: hidden, logits, embeddings).  The reference is
float32, so the output tolerance is at least :data:`FLOAT32_RTOL`.  Without onnxruntime the float
reference of the imported graph is used and the report says so.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from compiler.errors import InputError

FLOAT32_RTOL = 1e-5
NAME = "onnxruntime"
FALLBACK = "float reference of the imported graph (onnxruntime not installed)"


def onnx_path(reference) -> Path | None:
    """The ONNX file behind ``reference``: the path itself, or the source of a graph imported from one."""
    if isinstance(reference, (str, Path)):
        return Path(reference) if Path(reference).suffix.lower() == ".onnx" else None
    meta = getattr(reference, "meta", {}) or {}
    if meta.get("model_type") == "onnx" and Path(str(meta.get("source", ""))).is_file():
        return Path(meta["source"])
    return None


def session(path: Path):
    """An onnxruntime session on ``path``, or ``None`` when onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def feeds(sess, roles: dict, ids: np.ndarray, mask: np.ndarray) -> dict:
    """Inputs of one sequence (1, T) by the roles the importer found."""
    T = ids.shape[1]
    arrays = {"tokens": ids, "mask": mask.astype(np.int64), "types": np.zeros_like(ids),
              "positions": np.arange(T, dtype=np.int64)[None]}
    out = {}
    for value in sess.get_inputs():
        role = roles.get(value.name)
        if role not in arrays:
            raise InputError(f"{value.name!r} is an input of the ONNX file the network was not compiled from; "
                             "is --reference the file NET was compiled from?")
        dtype = np.int32 if "int32" in value.type else np.int64
        out[value.name] = arrays[role].astype(dtype)
    return out


def onnx_outputs(reference, graph, batch) -> tuple[dict[str, np.ndarray] | None, str]:
    """(outputs by role, description) of ``reference`` run by onnxruntime on ``batch``; ``(None, ...)``
    when the reference is no ONNX file or onnxruntime is missing."""
    path = onnx_path(reference)
    if path is None:
        return None, "float reference"
    sess = session(path)
    if sess is None:
        return None, FALLBACK
    if batch.input_ids is None:
        raise InputError("--reference model.onnx runs on token ids: give text or --inputs with input_ids, not 'x'")
    roles = graph.meta.get("onnx_outputs") or {}
    names = [o.name for o in sess.get_outputs()]
    rows: dict[str, list] = {}
    for b in range(batch.input_ids.shape[0]):
        result = sess.run(None, feeds(sess, graph.meta.get("onnx_inputs") or {}, batch.input_ids[b:b + 1],
                                      batch.mask[b:b + 1]))
        for name, value in zip(names, result):
            if name in roles:
                rows.setdefault(roles[name], []).append(np.asarray(value, np.float64))
    return {role: np.concatenate(parts, axis=0) for role, parts in rows.items()}, NAME
