"""Model families: configurations and graph builders, shared by in-code construction and importers.

Each family builds its attention graph from a configuration and a parameter dictionary keyed by the
Hugging Face tensor names, so random models built in code and checkpoints read from disk go through
the same builder.
"""

from compiler.models.bert import BertConfig, build_bert, random_bert
from compiler.models.gpt2 import Gpt2Config, build_gpt2, random_gpt2
from compiler.models.llama import LlamaConfig, build_llama, random_llama

__all__ = [
    "BertConfig", "build_bert", "random_bert",
    "LlamaConfig", "build_llama", "random_llama",
    "Gpt2Config", "build_gpt2", "random_gpt2",
]
