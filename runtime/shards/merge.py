"""Merging shards: run outputs concatenated in input order, verify statistics combined exactly.

Run outputs: arrays whose first axis is the shard's batch are concatenated; arrays whose second
axis is the shard's token count are right-padded to the longest shard first (``input_ids`` with the
pad id, everything else with zeros and ``mask`` false, so the padding stays padding); saturation
counts are summed.

Verify statistics: over the unmasked tokens of each shard, for every compared quantity, the
sufficient statistics of :func:`runtime.verify.error_stats`::

    n, sum (a - b)**2, sum b**2, max |a - b|, sum cos_n, min cos_n, all finite

merge by sums, maxima and minima, so ``rel_l2_err = sqrt(sum (a-b)**2 / sum b**2)`` and
``cosine_mean = sum cos_n / n`` of the whole data set equal those of one unsharded run (up to the
order of float additions).  Task agreement (means over sequences or tokens) is merged as a weighted
mean with the shard's count; keys ending in ``_min`` by their minimum.
"""

from __future__ import annotations

import numpy as np

from runtime.verify import ErrorStats, tolerance_checks

COUNT_UNIT = {"decoder": "tokens"}


# ---- verify ------------------------------------------------------------------------------------------
def sufficient_stats(name: str, got, want, mask, node: str = "") -> dict:
    a = np.asarray(got, dtype=np.float64)[mask].reshape(int(mask.sum()), -1)
    b = np.asarray(want, dtype=np.float64)[mask].reshape(a.shape)
    finite = bool(np.all(np.isfinite(a)))
    if a.size == 0 or not finite:
        return {"name": name, "node": node, "n": int(a.shape[0]), "sq_diff": 0.0, "sq_ref": 0.0, "max_abs": 0.0,
                "cos_sum": float(a.shape[0]), "cos_min": 1.0, "finite": finite}
    diff = a - b
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    cos = np.where((na == 0) & (nb == 0), 1.0, (a * b).sum(axis=1) / np.maximum(na * nb, 1e-300))
    return {"name": name, "node": node, "n": int(a.shape[0]), "sq_diff": float(np.sum(diff * diff)),
            "sq_ref": float(np.sum(b * b)), "max_abs": float(np.abs(diff).max()), "cos_sum": float(cos.sum()),
            "cos_min": float(cos.min()), "finite": True}


def shard_statistics(report, batch) -> dict:
    """The mergeable statistics of one shard's :class:`runtime.verify.VerifyReport`."""
    from runtime.verify import layer_value

    ref, result, mask = report.arrays["reference"], report.arrays["result"], report.arrays["mask"]
    role = report.output.name
    layers = [sufficient_stats(s.name, layer_value(result, s.node), ref.values[s.name], mask, s.node)
              for s in report.layers]
    unit = report.tokens if COUNT_UNIT.get(report.task) == "tokens" else report.sequences
    return {
        "backend": report.backend, "precision": report.precision, "lowering": report.lowering,
        "source": report.source, "reference": report.reference, "task": report.task, "tokens": report.tokens,
        "sequences": report.sequences, "output": sufficient_stats(role, result.outputs[role], ref.outputs[role], mask),
        "layers": layers, "saturations": dict(report.saturations),
        "agreement": dict(report.agreement), "agreement_count": int(unit),
        "seconds": dict(report.seconds),
    }


def merge_error(parts: list[dict]) -> ErrorStats:
    first = parts[0]
    n = sum(p["n"] for p in parts)
    if n == 0:
        return ErrorStats(first["name"], 0.0, 0.0, 1.0, 1.0, first["node"])
    if not all(p["finite"] for p in parts):
        return ErrorStats(first["name"], np.inf, np.inf, -1.0, -1.0, first["node"])
    sq_diff, sq_ref = sum(p["sq_diff"] for p in parts), sum(p["sq_ref"] for p in parts)
    rel = float(np.sqrt(sq_diff) / np.sqrt(sq_ref)) if sq_ref > 0 else float(sq_diff > 0) * np.inf
    return ErrorStats(first["name"], max(p["max_abs"] for p in parts), rel, sum(p["cos_sum"] for p in parts) / n,
                      min(p["cos_min"] for p in parts), first["node"])


def merge_agreement(stats: list[dict]) -> dict[str, float]:
    keys = stats[0]["agreement"].keys()
    total = sum(s["agreement_count"] for s in stats)
    out = {}
    for key in keys:
        values = [(s["agreement"][key], s["agreement_count"]) for s in stats if key in s["agreement"]]
        if key.endswith("_min"):
            out[key] = float(min(v for v, _ in values))
        else:
            out[key] = float(sum(v * c for v, c in values) / max(total, 1))
    return out


def merge_verify(stats: list[dict], rtol=None):
    """One :class:`runtime.verify.VerifyReport` from the statistics of every shard (input order)."""
    from runtime.verify import VerifyReport, set_reference

    first = stats[0]
    output = merge_error([s["output"] for s in stats])
    layers = [merge_error([s["layers"][i] for s in stats]) for i in range(len(first["layers"]))]
    saturations: dict[str, int] = {}
    for s in stats:
        for k, v in s["saturations"].items():
            saturations[k] = saturations.get(k, 0) + int(v)
    agreement = merge_agreement(stats)
    seconds = {k: sum(s["seconds"].get(k, 0.0) for s in stats) for k in first["seconds"]}
    report = VerifyReport(
        backend=first["backend"], precision=first["precision"], lowering=first["lowering"], source=first["source"],
        task=first["task"], tokens=sum(s["tokens"] for s in stats), sequences=sum(s["sequences"] for s in stats),
        layers=layers, output=output, saturations=saturations, agreement=agreement,
        checks=tolerance_checks(first["precision"], first["lowering"], output, agreement, rtol), seconds=seconds,
    )
    set_reference(report, first.get("reference", report.reference), rtol)
    return report


# ---- run ---------------------------------------------------------------------------------------------
def pad_tokens(key: str, value: np.ndarray, T: int, pad_id: int) -> np.ndarray:
    if value.ndim < 2 or value.shape[1] >= T:
        return value
    width = [(0, 0)] * value.ndim
    width[1] = (0, T - value.shape[1])
    fill = pad_id if key == "input_ids" else 0
    return np.pad(value, width, constant_values=fill)


def merge_outputs(parts: list[dict[str, np.ndarray]], pad_id: int = 0) -> dict[str, np.ndarray]:
    """The ``run -o`` arrays of the whole input from each shard's, in input order (module docstring)."""
    if len(parts) == 1:
        return dict(parts[0])
    T = max(p["mask"].shape[1] for p in parts)
    keys = list(dict.fromkeys(k for p in parts for k in p))
    merged: dict[str, np.ndarray] = {}
    for key in keys:
        if key.startswith("saturations/"):
            merged[key] = np.asarray(sum(int(p[key]) for p in parts if key in p))
            continue
        if not all(key in p for p in parts):
            raise ValueError(f"shard outputs disagree: array {key!r} is missing from some shards")
        values = []
        for p in parts:
            v, (rows, t) = p[key], p["mask"].shape
            if v.ndim == 0 or v.shape[0] != rows:
                values = None
                break
            values.append(pad_tokens(key, v, T, pad_id) if v.ndim >= 2 and v.shape[1] == t else v)
        merged[key] = parts[0][key] if values is None else np.concatenate(values, axis=0)
    return merged
