"""Learned feature maps of every attention node, and their ``.npz`` storage.

A maps file holds, per attention node ``N``: ``N/q_weight`` (n_heads, head_dim, m), ``N/q_bias``
(n_heads, m), ``N/k_weight`` (n_kv_heads, head_dim, m), ``N/k_bias`` (n_kv_heads, m) and ``N/log_gain``
(n_heads,), plus ``meta`` (JSON: format, version, ``features`` = 2m per head, ``window``, ``window_keys``,
``layers``).  ``window_keys`` is ``nearest``: the window's exact slots hold the W keys nearest each
query (:func:`compiler.distill.hedgehog.window_slots`).  Files written before it was recorded fitted an
encoder's window to the last W tokens of the text (``last``); they still serve causal models, where
both are the same keys.
It is read with ``allow_pickle=False``; anything malformed is a one-line :class:`InputError`.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from compiler.errors import InputError
from compiler.npzfile import read_npz

FORMAT = "tripartite-feature-maps"
VERSION = 1
ARRAYS = ("q_weight", "q_bias", "k_weight", "k_bias", "log_gain")


@dataclass
class LayerMaps:
    """The maps of one attention node: per query head ``q_weight``/``q_bias``, per key/value head
    ``k_weight``/``k_bias``, and the per-head log gain of the feature part next to a window."""

    q_weight: np.ndarray
    q_bias: np.ndarray
    k_weight: np.ndarray
    k_bias: np.ndarray
    log_gain: np.ndarray

    @property
    def m(self) -> int:
        return self.q_weight.shape[-1]

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in ARRAYS}

    @classmethod
    def initial(cls, rng: np.random.Generator, n_heads: int, n_kv_heads: int, head_dim: int, m: int,
                scale: float) -> LayerMaps:
        """Random start: columns ``N(0, sqrt(scale))`` (so ``z`` has the spread of the logits), zero biases."""
        spread = np.sqrt(scale)
        return cls(q_weight=rng.standard_normal((n_heads, head_dim, m)) * spread, q_bias=np.zeros((n_heads, m)),
                   k_weight=rng.standard_normal((n_kv_heads, head_dim, m)) * spread,
                   k_bias=np.zeros((n_kv_heads, m)), log_gain=np.zeros(n_heads))

    @classmethod
    def principal(cls, rng: np.random.Generator, q: np.ndarray, k: np.ndarray, mask: np.ndarray, m: int,
                  scale: float) -> LayerMaps:
        """Start from the head's principal directions: the columns of ``W`` are the top ``m`` eigenvectors of
        ``C_q / tr C_q + C_k / tr C_k`` (uncentred second moments of the head's queries ``q`` (B, H, T, d)
        and of its key/value head's keys ``k`` (B, G, T, d) over the real tokens), the same basis for the
        query and the key map (so that ``z_q`` and ``z_k`` grow together along the directions ``q.k``
        uses), scaled to the norm of the random start's columns; random columns fill in when ``m > d``."""
        H, G, d = q.shape[1], k.shape[1], q.shape[-1]
        cq = [second_moment(q[:, h], mask) for h in range(H)]
        ck = [second_moment(k[:, g], mask) for g in range(G)]
        group = H // G
        norm = np.sqrt(scale * d)

        def basis(c):
            _, vectors = np.linalg.eigh(c)
            top = vectors[:, ::-1][:, :m] * norm
            if m > d:
                top = np.concatenate([top, rng.standard_normal((d, m - d)) * np.sqrt(scale)], axis=1)
            return top

        q_weight = np.stack([basis(cq[h] + ck[h // group]) for h in range(H)])
        k_weight = np.stack([basis(ck[g] + sum(cq[g * group:(g + 1) * group]) / group) for g in range(G)])
        return cls(q_weight=q_weight, q_bias=np.zeros((H, m)), k_weight=k_weight, k_bias=np.zeros((G, m)),
                   log_gain=np.zeros(H))

    def check(self, name: str, n_heads: int, n_kv_heads: int, head_dim: int, where: str) -> None:
        """Shapes against the attention node ``name`` they are meant for."""
        m = self.m
        want = {"q_weight": (n_heads, head_dim, m), "q_bias": (n_heads, m), "k_weight": (n_kv_heads, head_dim, m),
                "k_bias": (n_kv_heads, m), "log_gain": (n_heads,)}
        for key, shape in want.items():
            value = getattr(self, key)
            if value.shape != shape:
                raise InputError(f"{where}: {name}/{key} has shape {value.shape}, the node needs {shape}; "
                                 f"distill the maps from this model")
            if not np.all(np.isfinite(value)):
                raise InputError(f"{where}: {name}/{key} holds NaN or infinite values; distill again")


def second_moment(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``sum_t x_t x_t^T / tr`` over the real tokens of ``x`` (B, T, d), normalised to unit trace."""
    rows = x[mask]
    c = rows.T @ rows
    return c / max(float(np.trace(c)), 1e-300)


@dataclass
class FeatureMaps:
    """Maps by attention node name; ``window`` is the number of exact slots they were fitted for and
    ``window_keys`` which keys those slots held (``nearest`` each query; ``last``: an older file)."""

    layers: dict[str, LayerMaps] = field(default_factory=dict)
    window: int = 0
    window_keys: str = "nearest"
    source: str = ""
    report: dict = field(default_factory=dict)

    def check_window(self, name: str, causal: bool, where: str) -> None:
        """A one-line error when the maps' window held other keys than this node's window would."""
        if self.window and not causal and self.window_keys != "nearest":
            raise InputError(f"{where}: the maps of {name!r} were fitted for a window of the last {self.window} "
                             f"tokens of the text; an encoder's window now holds the {self.window} keys nearest "
                             f"each query: distill the maps again")

    @property
    def features(self) -> int:
        """Feature neurons per head (2m)."""
        return 2 * next(iter(self.layers.values())).m if self.layers else 0

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        arrays = {f"{name}/{key}": value for name, maps in self.layers.items() for key, value in maps.as_dict().items()}
        meta = {"format": FORMAT, "version": VERSION, "features": self.features, "window": self.window,
                "window_keys": self.window_keys, "source": self.source, "layers": list(self.layers),
                "report": self.report}
        with open(path, "wb") as fh:
            np.savez(fh, meta=np.array(json.dumps(meta)), **arrays)
        return path


def load_maps(path: str | Path) -> FeatureMaps:
    """Read a maps file written by :meth:`FeatureMaps.save` (``allow_pickle=False``)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"--feature-maps {path}: no such file; write one with `tripartite distill`")
    if not zipfile.is_zipfile(path):
        raise InputError(f"{path}: not an .npz feature-maps file; write one with `tripartite distill`")
    arrays = read_npz(path, "feature-maps file")
    meta = parse_meta(path, arrays.pop("meta", None))
    layers = {}
    for name in meta["layers"]:
        missing = [key for key in ARRAYS if f"{name}/{key}" not in arrays]
        if missing:
            raise InputError(f"{path}: layer {name!r} lacks arrays {missing}; distill again")
        values = {key: arrays[f"{name}/{key}"] for key in ARRAYS}
        if any(v.dtype.kind != "f" for v in values.values()):
            raise InputError(f"{path}: layer {name!r} arrays must be floating point")
        layers[name] = LayerMaps(**{k: v.astype(np.float64) for k, v in values.items()})
    return FeatureMaps(layers=layers, window=meta["window"], window_keys=meta.get("window_keys", "last"),
                       source=meta.get("source", ""),
                       report=meta.get("report", {}))


def parse_meta(path: Path, raw) -> dict:
    if raw is None or raw.dtype.kind not in "US" or raw.shape != ():
        raise InputError(f"{path}: no 'meta' record; not a feature-maps file written by `tripartite distill`")
    try:
        meta = json.loads(str(raw))
    except json.JSONDecodeError:
        raise InputError(f"{path}: 'meta' is not JSON; write the file with `tripartite distill`") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise InputError(f"{path}: 'meta' does not name the {FORMAT} format; write the file with `tripartite distill`")
    if meta.get("version") != VERSION:
        raise InputError(f"{path}: feature-maps version {meta.get('version')!r} is not supported (need {VERSION})")
    window, layers = meta.get("window"), meta.get("layers")
    if not isinstance(window, int) or window < 0 or not isinstance(layers, list) or not layers:
        raise InputError(f"{path}: 'meta' needs a window >= 0 and a non-empty list of layers")
    if meta.get("window_keys", "last") not in ("nearest", "last"):
        raise InputError(f"{path}: 'meta' window_keys {meta['window_keys']!r} is neither 'nearest' nor 'last'; "
                         f"distill again")
    return meta
