"""Distillation of learned (Hedgehog) feature maps from a transformer's own attention."""

from compiler.distill.maps import FeatureMaps, LayerMaps, load_maps

__all__ = ["FeatureMaps", "LayerMaps", "load_maps"]
