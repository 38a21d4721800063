"""Layout ops (Reshape, Transpose, Unsqueeze, Squeeze, Expand, Flatten) on :class:`Vec` values.

They move no data in the attention graph: each maps one ONNX layout of a node's output onto
another.  A reshape splits the feature axis into heads (``f -> h d``), merges heads back
(``h d -> f``), merges the repeated key/value heads of grouped-query attention (``g r -> h``) or
folds the batch axis of size one into another axis; anything that would mix tokens with features
is refused.
"""

from __future__ import annotations

import numpy as np

from compiler.frontends.onnx_values import Vec


class LayoutError(ValueError):
    """A layout change that does not keep tokens and features apart."""


def target_shape(sizes: tuple, shape: np.ndarray, allowzero: bool) -> list[int]:
    """ONNX Reshape's output shape: 0 copies the input dimension (unless ``allowzero``), -1 is inferred."""
    dims = [int(d) for d in np.asarray(shape).ravel()]
    dims = [sizes[i] if d == 0 and not allowzero else d for i, d in enumerate(dims)]
    if -1 in dims:
        known = int(np.prod([d for d in dims if d != -1]))
        dims[dims.index(-1)] = int(np.prod(sizes)) // max(known, 1)
    return dims


def group_labels(labels: list[str], in_sizes: list[int], out_sizes: list[int], rep: int) -> tuple[list[str], int]:
    """Labels of one group of output dimensions holding the same elements as input ``labels``."""
    if labels == ["t"] and out_sizes == in_sizes:
        return ["t"], rep
    if "t" in labels:
        raise LayoutError("a reshape mixes the token axis with features")
    if out_sizes == in_sizes:
        return list(labels), rep
    if labels == ["f"] and len(out_sizes) == 2:
        return ["h", "d"], rep
    if labels == ["h", "d"] and len(out_sizes) == 1:
        return ["f"], rep
    if labels == ["g", "r", "d"] and len(out_sizes) == 1:
        return ["f"], in_sizes[1]
    if labels == ["g", "r"] and len(out_sizes) == 1:
        return ["h"], in_sizes[1]
    if labels == ["g", "r", "d"] and out_sizes == [in_sizes[0] * in_sizes[1], in_sizes[2]]:
        return ["h", "d"], in_sizes[1]
    raise LayoutError(f"cannot reshape features {labels} {in_sizes} into {out_sizes}")


def reshape(vec: Vec, dims: list[int]) -> Vec:
    """``vec`` reshaped to ``dims`` (size-one dimensions are free; other groups must line up)."""
    src = [(a, s) for a, s in zip(vec.axes, vec.sizes) if a != "1"]
    dst = [(k, d) for k, d in enumerate(dims) if d != 1]
    labels: dict[int, str] = {}
    rep, i, j, head_dim = vec.rep, 0, 0, vec.head_dim
    while i < len(src) or j < len(dst):
        if i >= len(src) or j >= len(dst):
            raise LayoutError(f"cannot reshape {vec.sizes} into {dims}")
        gi, gj = [src[i]], [dst[j]]
        i, j = i + 1, j + 1
        while np.prod([s for _, s in gi]) != np.prod([d for _, d in gj]):
            if np.prod([s for _, s in gi]) < np.prod([d for _, d in gj]):
                if i >= len(src):
                    raise LayoutError(f"cannot reshape {vec.sizes} into {dims}")
                gi.append(src[i])
                i += 1
            else:
                if j >= len(dst):
                    raise LayoutError(f"cannot reshape {vec.sizes} into {dims}")
                gj.append(dst[j])
                j += 1
        names, rep = group_labels([a for a, _ in gi], [s for _, s in gi], [d for _, d in gj], rep)
        if names == ["f"] and rep > 1:
            head_dim = dict(gi)["d"]
        for (k, _), name in zip(gj, names):
            labels[k] = name
    axes = [labels.get(k, "1") for k in range(len(dims))]
    return vec.with_axes(axes, dims, rep, head_dim)


def transpose(vec: Vec, perm) -> Vec:
    perm = list(perm) if perm is not None else list(range(len(vec.axes)))[::-1]
    return vec.with_axes([vec.axes[p] for p in perm], [vec.sizes[p] for p in perm])


def unsqueeze(vec: Vec, axes) -> Vec:
    rank = len(vec.axes) + len(axes)
    where = sorted(int(a) % rank for a in axes)
    labels, sizes = list(vec.axes), list(vec.sizes)
    for a in where:
        labels.insert(a, "1")
        sizes.insert(a, 1)
    return vec.with_axes(labels, sizes)


def squeeze(vec: Vec, axes) -> Vec:
    rank = len(vec.axes)
    drop = {int(a) % rank for a in axes} if axes is not None else {k for k, s in enumerate(vec.sizes) if s == 1}
    if any(vec.sizes[k] != 1 for k in drop):
        raise LayoutError("squeeze of an axis longer than one")
    keep = [k for k in range(rank) if k not in drop]
    return vec.with_axes([vec.axes[k] for k in keep], [vec.sizes[k] for k in keep])


def expand(vec: Vec, shape) -> Vec:
    """Repeat size-one axes: only the repetition of key/value heads (``h 1 -> g r``) is allowed."""
    dims = [int(d) for d in np.asarray(shape).ravel()]
    if len(dims) > len(vec.axes):
        vec = vec.with_axes(["1"] * (len(dims) - len(vec.axes)) + list(vec.axes),
                            [1] * (len(dims) - len(vec.axes)) + list(vec.sizes))
    labels, sizes = list(vec.axes), list(vec.sizes)
    for k, d in enumerate(dims):
        if d in (1, sizes[k]):
            continue
        previous = [m for m in range(k) if labels[m] != "1"]
        if sizes[k] != 1 or not previous or labels[previous[-1]] != "h" or vec.rep != 1:
            raise LayoutError("an expand repeats something other than key/value heads")
        labels[previous[-1]], labels[k], sizes[k] = "g", "r", d
    return vec.with_axes(labels, sizes)
