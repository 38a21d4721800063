"""Import of Hugging Face-format checkpoint directories as attention graphs (no torch needed).

``load_checkpoint(path)`` reads ``config.json``, maps it onto a family configuration, reads the
safetensors weights, strips the prefix of the class that saved them (``bert.``, ``model.``,
``transformer.`` ...) and calls the family builder.  The tokenizer (``tokenizer.json``) travels in the
input encoder; sentence-transformers settings (pooling, normalisation, ``max_seq_length``) go to
``graph.meta``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from compiler.attention import AttentionGraph
from compiler.errors import FrontendError, GraphError
from compiler.frontends.checkpoint_files import read_json, read_tensors, strip_prefix
from compiler.frontends.hf_config import ConfigReader, bert_config, gpt2_config, llama_config
from compiler.models import build_bert, build_gpt2, build_llama

POOLING_MODES = (
    ("pooling_mode_mean_tokens", "mean"),
    ("pooling_mode_cls_token", "cls"),
    ("pooling_mode_max_tokens", "max"),
    ("pooling_mode_mean_sqrt_len_tokens", "mean_sqrt_len"),
    ("pooling_mode_lasttoken", "last"),
)


@dataclass(frozen=True)
class Family:
    """How one ``model_type`` is imported: config mapping, builder and a tensor every checkpoint has."""

    read_config: Callable[[ConfigReader], Any]
    build: Callable[..., AttentionGraph]
    anchor: str


FAMILIES = {
    "bert": Family(bert_config, build_bert, "embeddings.word_embeddings.weight"),
    "llama": Family(llama_config, build_llama, "embed_tokens.weight"),
    "gpt2": Family(gpt2_config, build_gpt2, "wte.weight"),
}


def supported() -> str:
    return ", ".join(FAMILIES)


def checkpoint_dir(path: str | Path) -> Path:
    """``path`` as a directory holding ``config.json``, or a one-line error saying what is wrong."""
    directory = Path(path)
    if not directory.exists():
        raise FrontendError(f"{directory}: no such file or directory")
    if not directory.is_dir():
        raise FrontendError(f"{directory}: not a directory; a Hugging Face checkpoint is a directory with config.json")
    if not (directory / "config.json").is_file():
        raise FrontendError(
            f"{directory}: no config.json; not a Hugging Face checkpoint directory (config.json + *.safetensors)"
        )
    return directory


def read_tokenizer(directory: Path) -> str | None:
    """The text of ``tokenizer.json`` (checked to be JSON), or ``None``."""
    path = directory / "tokenizer.json"
    if not path.is_file():
        return None
    read_json(path)
    return path.read_text(encoding="utf-8")


def sentence_transformers_meta(directory: Path) -> dict[str, Any]:
    """Pooling, normalisation and ``max_seq_length`` of a sentence-transformers directory."""
    meta: dict[str, Any] = {}
    modules = read_json(directory / "modules.json", required=False)
    pooling_dir = directory / "1_Pooling"
    if isinstance(modules, list):
        types = [m.get("type", "") for m in modules if isinstance(m, dict)]
        meta["normalize"] = any(t.endswith(".Normalize") for t in types)
        for module in modules:
            if isinstance(module, dict) and str(module.get("type", "")).endswith(".Pooling"):
                pooling_dir = directory / str(module.get("path", "1_Pooling"))
    pooling = read_json(pooling_dir / "config.json", required=False)
    if isinstance(pooling, dict):
        modes = [mode for key, mode in POOLING_MODES if pooling.get(key)]
        meta["pooling"] = modes[0] if len(modes) == 1 else "+".join(modes) or "mean"
    elif modules is not None:
        meta["pooling"] = "mean"
    settings = read_json(directory / "sentence_bert_config.json", required=False)
    if isinstance(settings, dict) and isinstance(settings.get("max_seq_length"), int):
        meta["max_seq_length"] = settings["max_seq_length"]
    return meta


def output_head(graph: AttentionGraph, model_type: str, reader: ConfigReader, tensors: dict[str, np.ndarray]) -> str:
    """Describe the output head (none, tied, untied); remove it when an untied checkpoint carries none.

    A ``LlamaModel`` checkpoint with ``tie_word_embeddings`` false has no ``lm_head.weight``: its
    graph gives hidden states only.  GPT-2's builder ties the head to ``wte``, so an untied GPT-2
    head that differs from ``wte`` is refused.
    """
    if "lm_head" not in graph:
        return "none"
    if reader.get("tie_word_embeddings", model_type != "llama"):
        return "tied"
    if "lm_head.weight" not in tensors:
        graph.g.remove_nodes_from(["lm_head", "output.logits"])
        return "none"
    if model_type == "gpt2":
        if not np.array_equal(tensors["lm_head.weight"], tensors["wte.weight"]):
            raise FrontendError(f"{reader.where}: an untied GPT-2 output head is not supported; only one tied to wte")
        return "tied"
    return "untied"


def model_name(directory: Path) -> str:
    """The directory's name, or its parent's when the directory is generically named ``model``."""
    resolved = directory.resolve()
    return resolved.parent.name if resolved.name == "model" and resolved.parent.name else resolved.name


def load_checkpoint(path: str | Path) -> AttentionGraph:
    """Import the Hugging Face checkpoint directory ``path`` (BERT, LLaMA or GPT-2 family).

    Returns an attention graph whose encoder holds the embeddings and the tokenizer, and whose
    ``meta`` names the ``source``, ``model_type``, ``pooling`` and, for sentence-transformers
    directories, ``normalize`` and ``max_seq_length``.
    """
    directory = checkpoint_dir(path)
    where = str(directory / "config.json")
    reader = ConfigReader(read_json(directory / "config.json"), where)
    model_type = reader.get("model_type")
    if not isinstance(model_type, str) or model_type not in FAMILIES:
        raise FrontendError(f"{where}: model_type {model_type!r} is not supported; supported: {supported()}")
    family = FAMILIES[model_type]
    config = family.read_config(reader)
    tokenizer_json = read_tokenizer(directory)
    tensors, _ = strip_prefix(read_tensors(directory), family.anchor, str(directory))
    try:
        graph = family.build(config, tensors, source=str(directory), tokenizer_json=tokenizer_json)
        head = output_head(graph, model_type, reader, tensors)
        graph.validate()
    except GraphError as exc:
        raise FrontendError(f"{directory}: weights do not form a valid {model_type} graph: {exc}") from exc
    graph.name = model_name(directory)
    graph.meta.update({"source": str(directory.resolve()), "model_type": model_type, "output_head": head})
    graph.meta.update(sentence_transformers_meta(directory))
    return graph
