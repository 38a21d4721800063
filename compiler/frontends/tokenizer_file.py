"""A tokenizer given beside a model: ``--tokenizer DIR_OR_tokenizer.json``.

Sources that carry no tokenizer (ONNX files) take one from the command line or the API; it travels
inside the compiled network like a checkpoint's own ``tokenizer.json``.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

from compiler.attention import AttentionGraph
from compiler.errors import FrontendError
from compiler.frontends.checkpoint_files import read_json


def read_tokenizer(tokenizer: str | Path) -> str:
    """The text of ``tokenizer`` (a ``tokenizer.json`` file, or a directory holding one), checked to be JSON."""
    given = Path(tokenizer)
    file = given / "tokenizer.json" if given.is_dir() else given
    if not file.is_file():
        raise FrontendError(f"--tokenizer {given}: no tokenizer.json there; give a tokenizer.json file or the "
                            "directory holding it")
    document = read_json(file)
    if not isinstance(document, dict) or "model" not in document:
        raise FrontendError(f"--tokenizer {file}: not a Hugging Face tokenizer.json (no 'model' entry)")
    return file.read_text(encoding="utf-8")


def embed_tokenizer(graph: AttentionGraph, tokenizer: str | Path) -> AttentionGraph:
    """A copy of ``graph`` whose input encoder carries ``tokenizer`` (the graph itself is not changed)."""
    if graph.encoder is None or graph.encoder.token_embeddings is None:
        raise FrontendError(f"--tokenizer: graph {graph.name!r} takes no token ids, so it has no use for a tokenizer")
    out = copy.copy(graph)
    out.encoder = dataclasses.replace(graph.encoder, tokenizer_json=read_tokenizer(tokenizer))
    return out
