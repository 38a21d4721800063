"""--chat renders SmolLM2's chat template (from its GGUF) exactly as transformers' apply_chat_template,
and tokenizes the result to the same ids."""

import pytest

from compiler.frontends.source import load_source, smollm2_gguf
from runtime.chat import chat_prompt

pytestmark = [pytest.mark.crosscheck, pytest.mark.slow]

QUESTIONS = ["What is the capital of France?", "Write   two\nlines, with ümlauts."]


def test_chat_prompt_matches_transformers(tmp_path):
    transformers = pytest.importorskip("transformers")
    (tmp_path / "model.gguf").symlink_to(smollm2_gguf())
    hf = transformers.AutoTokenizer.from_pretrained(str(tmp_path), gguf_file="model.gguf")
    encoder = load_source(smollm2_gguf()).encoder
    ours = encoder.tokenizer()
    for question in QUESTIONS:
        expected = hf.apply_chat_template([{"role": "user", "content": question}], tokenize=False,
                                          add_generation_prompt=True)
        text = chat_prompt(encoder, question)
        assert text == expected
        assert ours.encode(text, add_special_tokens=False).ids == hf(expected, add_special_tokens=False).input_ids
