"""Train the bundled digits vision transformer with numpy alone (manual backprop, Adam).

    .venv/bin/python examples/train_digits_vit.py [--out compiler/models/data/digits_vit.npz]

Deterministic: fixed data split, fixed initialisation and batch order (seed 0).  The forward pass
is the same computation as the attention graph built by :func:`compiler.models.digits_vit.build_digits_vit`
(a test checks the two agree); the loss is cross-entropy of the token-averaged logits.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import erf

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compiler.models.digits_vit import (  # noqa: E402
    WEIGHTS,
    DigitsVitConfig,
    digits_split,
    init_params,
    save_params,
)

SQRT2 = math.sqrt(2.0)


# ---- layers: forward returns (y, cache); backward takes (dy, cache, grads) -> dx ----------------
def linear(x, p, name):
    return x @ p[name + ".weight"].T + p[name + ".bias"], x


def linear_back(dy, x, p, name, grads):
    dy2, x2 = dy.reshape(-1, dy.shape[-1]), x.reshape(-1, x.shape[-1])
    grads[name + ".weight"] = grads.get(name + ".weight", 0) + dy2.T @ x2
    grads[name + ".bias"] = grads.get(name + ".bias", 0) + dy2.sum(axis=0)
    return dy @ p[name + ".weight"]


def layernorm(x, p, name, eps):
    """``y = (x - mean) / sqrt(var + eps) * g + b``."""
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    inv = 1.0 / np.sqrt((xc**2).mean(axis=-1, keepdims=True) + eps)
    xhat = xc * inv
    return xhat * p[name + ".weight"] + p[name + ".bias"], (xhat, inv)


def layernorm_back(dy, cache, p, name, grads):
    """``dx = inv (dxhat - mean(dxhat) - xhat mean(dxhat xhat))`` with ``dxhat = dy g``."""
    xhat, inv = cache
    grads[name + ".weight"] = (dy * xhat).reshape(-1, xhat.shape[-1]).sum(axis=0)
    grads[name + ".bias"] = dy.reshape(-1, dy.shape[-1]).sum(axis=0)
    dxhat = dy * p[name + ".weight"]
    return inv * (dxhat - dxhat.mean(axis=-1, keepdims=True) - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))


def gelu(u):
    return 0.5 * u * (1.0 + erf(u / SQRT2))


def gelu_grad(u):
    """``gelu'(u) = Phi(u) + u phi(u)``."""
    return 0.5 * (1.0 + erf(u / SQRT2)) + u * np.exp(-0.5 * u * u) / math.sqrt(2.0 * math.pi)


def attention(q, k, v, heads):
    """Multi-head softmax attention of (B, T, D) inputs; returns (B, T, D) and the cache."""
    B, T, D = q.shape
    d = D // heads

    def split(t):
        return t.reshape(B, T, heads, d).transpose(0, 2, 1, 3)

    qh, kh, vh = split(q), split(k), split(v)
    s = qh @ kh.transpose(0, 1, 3, 2) / math.sqrt(d)
    s = s - s.max(axis=-1, keepdims=True)
    a = np.exp(s)
    a /= a.sum(axis=-1, keepdims=True)
    out = (a @ vh).transpose(0, 2, 1, 3).reshape(B, T, D)
    return out, (qh, kh, vh, a)


def attention_back(dout, cache):
    qh, kh, vh, a = cache
    B, H, T, d = qh.shape
    do = dout.reshape(B, T, H, d).transpose(0, 2, 1, 3)
    da = do @ vh.transpose(0, 1, 3, 2)
    dvh = a.transpose(0, 1, 3, 2) @ do
    ds = a * (da - (da * a).sum(axis=-1, keepdims=True)) / math.sqrt(d)
    dqh = ds @ kh
    dkh = ds.transpose(0, 1, 3, 2) @ qh

    def merge(t):
        return t.transpose(0, 2, 1, 3).reshape(B, T, H * d)

    return merge(dqh), merge(dkh), merge(dvh)


# ---- the model -------------------------------------------------------------------------------------
def patches(images: np.ndarray, size: int) -> np.ndarray:
    B, H, W = images.shape
    return images.reshape(B, H // size, size, W // size, size).transpose(0, 1, 3, 2, 4).reshape(B, -1, size * size)


def forward(p, cfg: DigitsVitConfig, images):
    """Per-token logits (B, T, C) and the caches for :func:`backward`."""
    caches = {}
    x = patches(images, cfg.patch_size)
    h, caches["patch"] = linear(x, p, "patch")
    h = h + p["pos"]
    for i in range(cfg.layers):
        n = f"layer{i}."
        a, caches[n + "ln1"] = layernorm(h, p, n + "ln1", cfg.eps)
        q, caches[n + "attn.q"] = linear(a, p, n + "attn.q")
        k, caches[n + "attn.k"] = linear(a, p, n + "attn.k")
        v, caches[n + "attn.v"] = linear(a, p, n + "attn.v")
        att, caches[n + "attn"] = attention(q, k, v, cfg.heads)
        o, caches[n + "attn.o"] = linear(att, p, n + "attn.o")
        h = h + o
        c, caches[n + "ln2"] = layernorm(h, p, n + "ln2", cfg.eps)
        u, caches[n + "mlp.up"] = linear(c, p, n + "mlp.up")
        caches[n + "mlp.act"] = u
        dn, caches[n + "mlp.down"] = linear(gelu(u), p, n + "mlp.down")
        h = h + dn
    z, caches["norm"] = layernorm(h, p, "norm", cfg.eps)
    logits, caches["head"] = linear(z, p, "head")
    return logits, caches


def backward(dlogits, p, cfg: DigitsVitConfig, caches) -> dict[str, np.ndarray]:
    """Gradients of every parameter given d loss / d per-token logits."""
    g: dict[str, np.ndarray] = {}
    dh = layernorm_back(linear_back(dlogits, caches["head"], p, "head", g), caches["norm"], p, "norm", g)
    for i in reversed(range(cfg.layers)):
        n = f"layer{i}."
        du = linear_back(dh, caches[n + "mlp.down"], p, n + "mlp.down", g) * gelu_grad(caches[n + "mlp.act"])
        dh = dh + layernorm_back(linear_back(du, caches[n + "mlp.up"], p, n + "mlp.up", g), caches[n + "ln2"], p,
                                 n + "ln2", g)
        datt = linear_back(dh, caches[n + "attn.o"], p, n + "attn.o", g)
        dq, dk, dv = attention_back(datt, caches[n + "attn"])
        da = sum(linear_back(dt, caches[n + f"attn.{t}"], p, n + f"attn.{t}", g) for t, dt in zip("qkv", (dq, dk, dv)))
        dh = dh + layernorm_back(da, caches[n + "ln1"], p, n + "ln1", g)
    g["pos"] = dh.sum(axis=0)
    linear_back(dh, caches["patch"], p, "patch", g)
    return g


def loss_and_grads(p, cfg, images, labels):
    """Mean cross-entropy of the token-averaged logits, and its gradients."""
    logits, caches = forward(p, cfg, images)
    scores = logits.mean(axis=1)
    scores = scores - scores.max(axis=1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(axis=1, keepdims=True)
    B, T = logits.shape[:2]
    loss = -np.log(probs[np.arange(B), labels]).mean()
    dscores = probs.copy()
    dscores[np.arange(B), labels] -= 1.0
    dlogits = np.broadcast_to((dscores / B)[:, None, :] / T, logits.shape)
    return loss, backward(dlogits, p, cfg, caches)


def predict(p, cfg, images, batch: int = 512) -> np.ndarray:
    return np.concatenate([forward(p, cfg, images[i:i + batch])[0].mean(axis=1).argmax(axis=1)
                           for i in range(0, len(images), batch)])


def train(cfg: DigitsVitConfig | None = None, epochs: int = 40, batch: int = 32, lr: float = 3e-3,
          seed: int = 0, log=None):
    """Adam (beta 0.9, 0.999) with a cosine learning-rate decay; returns (cfg, params, metrics)."""
    cfg = cfg or DigitsVitConfig()
    xtr, ytr, xte, yte = digits_split()
    p = init_params(cfg, seed)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    s = {k: np.zeros_like(v) for k, v in p.items()}
    rng = np.random.default_rng(seed)
    steps_per_epoch = -(-len(xtr) // batch)
    total, step = epochs * steps_per_epoch, 0
    for epoch in range(epochs):
        order = rng.permutation(len(xtr))
        for i in range(0, len(xtr), batch):
            idx = order[i:i + batch]
            loss, grads = loss_and_grads(p, cfg, xtr[idx], ytr[idx])
            step += 1
            rate = lr * 0.5 * (1.0 + math.cos(math.pi * step / total))
            for k in p:
                m[k] = 0.9 * m[k] + 0.1 * grads[k]
                s[k] = 0.999 * s[k] + 0.001 * grads[k] ** 2
                p[k] = p[k] - rate * (m[k] / (1 - 0.9**step)) / (np.sqrt(s[k] / (1 - 0.999**step)) + 1e-8)
        if log:
            log(f"epoch {epoch + 1:3d}  loss {loss:.4f}")
    metrics = {"train_accuracy": float((predict(p, cfg, xtr) == ytr).mean()),
               "test_accuracy": float((predict(p, cfg, xte) == yte).mean())}
    return cfg, p, metrics


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(WEIGHTS), help="weights file to write (.npz)")
    parser.add_argument("--epochs", type=int, default=40)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    cfg, params, metrics = train(epochs=args.epochs, log=print)
    save_params(args.out, cfg, params, metrics)
    print(f"train accuracy {metrics['train_accuracy']:.4f}, test accuracy {metrics['test_accuracy']:.4f}, "
          f"{time.perf_counter() - start:.1f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
