"""Command line of an exported network: ``python network.py --inputs X.npz -o OUT.npz``.

Reads ``input_ids`` (+ ``mask``, ``token_type_ids``) or token vectors ``x`` (+ ``mask``) from
X.npz, simulates the netlist's network in Brian2 and writes what ``tripartite run -o`` writes:
``mask``, ``input_ids`` (when given), one array per output role (``hidden``, ``logits``) and, for
mean-pooled encoders, ``embeddings`` (mean of ``hidden`` over the mask, L2-normalised).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from .netlist import NetlistError, encode, read
from .network import simulate_records


def load_inputs(path, netlist, width: int) -> dict:
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise NetlistError(f"{path}: unreadable inputs ({str(exc).splitlines()[0]})") from None
    if "input_ids" in arrays:
        x = encode(netlist.encoder, arrays["input_ids"], arrays.get("token_type_ids"))
    elif "x" in arrays:
        x = np.asarray(arrays["x"], dtype=np.float64)
    else:
        raise NetlistError(f"{path}: expected an array 'input_ids' or 'x', found {sorted(arrays) or 'none'}")
    if x.ndim != 3 or x.shape[2] != width or not np.all(np.isfinite(x)):
        raise NetlistError(f"{path}: token vectors must be finite, shape (batch, tokens, {width}); got {x.shape}")
    mask = np.asarray(arrays.get("mask", np.ones(x.shape[:2], bool))).astype(bool)
    if mask.shape != x.shape[:2]:
        raise NetlistError(f"{path}: mask must have shape {x.shape[:2]}, got {mask.shape}")
    out = {"x": x, "mask": mask}
    if "input_ids" in arrays:
        out["input_ids"] = arrays["input_ids"]
    return out


def mean_pool(hidden, mask):
    w = mask.astype(np.float64)[..., None]
    pooled = (hidden * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1e-9)
    return pooled / np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)


def main(argv=None, default_netlist: Path | None = None) -> int:
    parser = argparse.ArgumentParser(description="Simulate an exported tripartite network in Brian2.")
    parser.add_argument("--inputs", required=True, help=".npz with 'input_ids' (+ 'mask', 'token_type_ids') or 'x'")
    parser.add_argument("-o", "--output", required=True, help=".npz to write")
    parser.add_argument("--netlist", default=default_netlist, help="netlist to simulate (default: the exported one)")
    args = parser.parse_args(argv)
    try:
        netlist = read(args.netlist)
        width = next(r.attrs["size"] for r in netlist.records if r.kind == "input_encoder")
        inputs = load_inputs(args.inputs, netlist, width)
        outputs, _ = simulate_records(netlist.records, inputs["x"], inputs["mask"])
    except (OSError, KeyError, ValueError) as exc:
        print(f"network.py: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2
    arrays = {"mask": inputs["mask"], **outputs}
    if "input_ids" in inputs:
        arrays["input_ids"] = inputs["input_ids"]
    if "hidden" in outputs and netlist.meta.get("pooling", "mean") == "mean":
        arrays["embeddings"] = mean_pool(outputs["hidden"], inputs["mask"])
    np.savez_compressed(args.output, **arrays)
    print(f"simulated {inputs['x'].shape[0]} sequence(s) x {inputs['x'].shape[1]} tokens in Brian2; "
          f"wrote {args.output}")
    return 0
