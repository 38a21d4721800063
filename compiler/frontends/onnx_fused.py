"""Fused onnxruntime ops (``com.microsoft`` domain) and the opset-23 fused ops, mapped like their parts."""

from __future__ import annotations
