"""Front ends: model sources (Hugging Face checkpoints, GGUF files, saved graphs) to attention graphs."""

from compiler.frontends.hf_checkpoint import FAMILIES, load_checkpoint
from compiler.frontends.source import load_source, minilm_dir, smollm2_gguf

__all__ = ["FAMILIES", "load_checkpoint", "load_source", "minilm_dir", "smollm2_gguf"]
