"""The ``learned`` lowering's feature-population attributes, from a distilled maps file."""

from __future__ import annotations

from compiler.distill.maps import FeatureMaps, load_maps
from compiler.errors import InputError


def feature_maps(options) -> FeatureMaps:
    """``options.feature_maps`` as :class:`FeatureMaps` (a path is read once and cached on the options)."""
    maps = options.feature_maps
    if maps is None:
        raise InputError("the learned lowering needs feature maps: run `tripartite distill` and pass "
                         "--feature-maps MAPS.npz")
    if not isinstance(maps, FeatureMaps):
        maps = options.feature_maps = load_maps(maps)
    return maps


def learned_attributes(att, options) -> dict:
    """FeaturePopulation attributes of attention node ``att``: m, the maps and the window."""
    maps = feature_maps(options)
    if att.name not in maps.layers:
        raise InputError(f"feature maps have no entry for attention node {att.name!r} (they hold "
                         f"{', '.join(maps.layers)}); distill them from this model")
    layer = maps.layers[att.name]
    layer.check(att.name, att.n_heads, att.n_kv_heads, att.head_dim, "feature maps")
    maps.check_window(att.name, att.causal, "feature maps")
    window = maps.window if options.window is None else options.window
    if window != maps.window:
        raise InputError(f"--window {window}: the feature maps were fitted for a window of {maps.window}; "
                         f"distill them with --window {window}")
    return dict(m=2 * layer.m, window=window, **layer.as_dict())
