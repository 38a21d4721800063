"""Fixtures shared by the runtime tests."""

import string

import pytest

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "word", *string.ascii_lowercase]


def word_tokenizer_json() -> str:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2),
                                                                                               ("[SEP]", 3)])
    return tok.to_str()


def with_tokenizer(graph):
    graph.encoder.tokenizer_json = word_tokenizer_json()
    return graph


@pytest.fixture(scope="session")
def tokenized():
    """``tokenized(graph)``: the graph with a word-level tokenizer (ids below 31)."""
    return with_tokenizer
