"""The bundled model: a 2-layer vision transformer for scikit-learn's 8x8 digits.

Images (pixel values / 16, so in [0, 1]) are cut into 2x2 patches: 16 tokens of 4 pixels.  The host
encoder embeds them, ``x_t = P p_t + b_P + E_pos[t]`` (width 32).  Each block is pre-LayerNorm:

    a = h + O Attn(Q LN1(h), K LN1(h), V LN1(h))        (4 heads of 8)
    h' = a + W2 gelu(W1 LN2(a) + b1) + b2               (GELU MLP of 64)

then ``logits_t = W_head LN(h_t) + b_head`` per token; the host averages them over the tokens (mean
pooling commutes with the linear head), ``class = argmax_c mean_t logits_t``.

The weights ship in ``data/digits_vit.npz`` (float64, ``allow_pickle=False``), trained by
``examples/train_digits_vit.py`` on a fixed split of ``load_digits``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from compiler.attention import AttentionGraph
from compiler.attention import nodes as op
from compiler.encoder import InputEncoder
from compiler.errors import FrontendError
from compiler.models.common import Params, RandomParams

WEIGHTS = Path(__file__).with_name("data") / "digits_vit.npz"
SPLIT_SEED = 2023
TEST_FRACTION = 0.2


@dataclass
class DigitsVitConfig:
    image_size: int = 8
    patch_size: int = 2
    width: int = 32
    heads: int = 4
    mlp: int = 64
    layers: int = 2
    classes: int = 10
    eps: float = 1e-5

    @property
    def tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def patch_dim(self) -> int:
        return self.patch_size**2

    @property
    def head_dim(self) -> int:
        return self.width // self.heads


def param_shapes(cfg: DigitsVitConfig) -> dict[str, tuple[int, ...]]:
    """Every parameter name and its shape (linear weights are (out, in))."""
    D, M = cfg.width, cfg.mlp
    shapes = {"patch.weight": (D, cfg.patch_dim), "patch.bias": (D,), "pos": (cfg.tokens, D)}
    for i in range(cfg.layers):
        n = f"layer{i}."
        for norm in ("ln1", "ln2"):
            shapes[n + norm + ".weight"] = (D,)
            shapes[n + norm + ".bias"] = (D,)
        for lin in ("attn.q", "attn.k", "attn.v", "attn.o"):
            shapes[n + lin + ".weight"] = (D, D)
            shapes[n + lin + ".bias"] = (D,)
        shapes[n + "mlp.up.weight"] = (M, D)
        shapes[n + "mlp.up.bias"] = (M,)
        shapes[n + "mlp.down.weight"] = (D, M)
        shapes[n + "mlp.down.bias"] = (D,)
    shapes.update({"norm.weight": (D,), "norm.bias": (D,), "head.weight": (cfg.classes, D),
                   "head.bias": (cfg.classes,)})
    return shapes


def init_params(cfg: DigitsVitConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Initial parameters: Gaussian weights of std 1/sqrt(fan_in), zero biases, unit norm gains."""
    r = RandomParams(seed)
    params = {}
    for name, shape in param_shapes(cfg).items():
        if name.endswith(".bias"):
            params[name] = np.zeros(shape)
        elif name.endswith("ln1.weight") or name.endswith("ln2.weight") or name == "norm.weight":
            params[name] = np.ones(shape)
        elif name == "pos":
            params[name] = r.rng.normal(0.0, 0.1, size=shape)
        else:
            params[name] = r.rng.normal(0.0, 1.0 / math.sqrt(shape[1]), size=shape)
    return params


def build_digits_vit(cfg: DigitsVitConfig, tensors, source: str = "digits-vit") -> AttentionGraph:
    """Attention graph (input: embedded patches, output: per-token class logits) and its host encoder."""
    p = Params(tensors, source)
    D, M, C = cfg.width, cfg.mlp, cfg.classes
    encoder = InputEncoder(token_embeddings=None, position_embeddings=p("pos", (cfg.tokens, D)),
                           patch_projection=p("patch.weight", (D, cfg.patch_dim)), patch_bias=p("patch.bias", (D,)),
                           patch_size=cfg.patch_size)
    meta = {"family": "vit", "task": "classifier", "pooling": "mean", "layer_outputs": [], "config": asdict(cfg)}
    g = AttentionGraph(name=source, meta=meta, encoder=encoder)
    h = g.add(op.Input("input", width=D))

    def lin(name, src, shape):
        return g.add(op.Linear(name, weight=p(name + ".weight", shape), bias=p(name + ".bias", shape[:1])), x=src)

    def norm(name, src):
        return g.add(op.LayerNorm(name, weight=p(name + ".weight", (D,)), bias=p(name + ".bias", (D,)), eps=cfg.eps),
                     x=src)

    for i in range(cfg.layers):
        n = f"layer{i}."
        a = norm(n + "ln1", h)
        q, k, v = (lin(n + f"attn.{t}", a, (D, D)) for t in "qkv")
        att = g.add(op.Attention(n + "attn", n_heads=cfg.heads, n_kv_heads=cfg.heads, head_dim=cfg.head_dim,
                                 scale=1.0 / math.sqrt(cfg.head_dim)), q=q, k=k, v=v)
        o = lin(n + "attn.o", att, (D, D))
        h = g.add(op.Add(n + "attn.residual"), a=h, b=o)
        u = lin(n + "mlp.up", norm(n + "ln2", h), (M, D))
        u = g.add(op.Activation(n + "mlp.act", function="gelu_erf"), x=u)
        d = lin(n + "mlp.down", u, (D, M))
        h = g.add(op.Add(n + "mlp.residual"), a=h, b=d)
        g.meta["layer_outputs"].append(h)
    logits = lin("head", norm("norm", h), (C, D))
    g.add(op.Output("output.logits", role="logits"), x=logits)
    g.validate()
    return g


def load_params(path: str | Path = WEIGHTS) -> tuple[DigitsVitConfig, dict[str, np.ndarray]]:
    """Configuration and parameters stored by the training script."""
    path = Path(path)
    if not path.is_file():
        raise FrontendError(f"{path}: bundled weights are missing; run examples/train_digits_vit.py")
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    cfg = DigitsVitConfig(**{k[len("config/"):]: (float(v) if k == "config/eps" else int(v))
                             for k, v in arrays.items() if k.startswith("config/")})
    return cfg, {k: v for k, v in arrays.items() if not k.startswith(("config/", "metrics/"))}


def save_params(path: str | Path, cfg: DigitsVitConfig, params: dict[str, np.ndarray],
                metrics: dict[str, float] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = dict(params)
    arrays.update({f"config/{k}": np.asarray(v) for k, v in asdict(cfg).items()})
    arrays.update({f"metrics/{k}": np.asarray(v) for k, v in (metrics or {}).items()})
    with open(path, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    return path


def digits_vit(path: str | Path = WEIGHTS) -> AttentionGraph:
    """The bundled, trained digits transformer."""
    cfg, params = load_params(path)
    return build_digits_vit(cfg, params, source="digits-vit")


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The fixed split of ``load_digits``: (train images, train labels, test images, test labels).

    Images are (N, 8, 8) in [0, 1]; the test set is 20% of every class, chosen with a fixed seed.
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    images = data.images / 16.0
    labels = data.target.astype(np.int64)
    rng = np.random.default_rng(SPLIT_SEED)
    test = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        test[rng.choice(idx, size=int(round(TEST_FRACTION * len(idx))), replace=False)] = True
    return images[~test], labels[~test], images[test], labels[test]


def class_scores(logits: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Per-image class scores: per-token logits (B, T, C) averaged over the (unmasked) tokens."""
    if mask is None:
        return logits.mean(axis=1)
    w = mask.astype(logits.dtype)[..., None]
    return (logits * w).sum(axis=1) / np.maximum(w.sum(axis=1), 1)
