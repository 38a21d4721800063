"""Text tokenisation and text files: padding, truncation, limits and errors."""

from __future__ import annotations

import numpy as np
import pytest

from compiler.errors import InputError
from compiler.frontends import load_checkpoint, minilm_dir
from compiler.models import random_bert
from runtime.text import read_text_file, tokenize

CLS, SEP, PAD = 101, 102, 0
TEXTS = ["Hello world!", "A somewhat longer sentence about astrocytes and synapses.", ""]


@pytest.fixture(scope="module")
def minilm():
    return load_checkpoint(minilm_dir())


def test_padding_on_the_right_to_the_longest(minilm):
    ids, mask, types = tokenize(minilm, TEXTS)
    assert ids.dtype == np.int64 and mask.dtype == bool and types.dtype == np.int64
    lengths = mask.sum(axis=1)
    assert ids.shape[1] == lengths.max() and lengths[2] == 2
    for row, n in enumerate(lengths):
        assert mask[row, :n].all() and not mask[row, n:].any()
        assert ids[row, 0] == CLS and ids[row, n - 1] == SEP and (ids[row, n:] == PAD).all()
    assert not types.any()
    tokenizer = minilm.encoder.tokenizer()
    for row, text in enumerate(TEXTS):  # each row alone is what the tokenizer itself gives
        assert ids[row, : lengths[row]].tolist() == tokenizer.encode(text).ids


def test_default_limit_is_sentence_transformers_max_seq_length(minilm):
    ids, mask, _ = tokenize(minilm, ["word " * 400, "short"])
    assert ids.shape == (2, 256) and mask[0].all()
    assert ids[0, 0] == CLS and ids[0, -1] == SEP
    ids, _, _ = tokenize(minilm, ["word " * 400], max_length=10)
    assert ids.shape == (1, 10) and ids[0, -1] == SEP


def test_encoder_alone_is_limited_by_its_positions(minilm):
    ids, mask, _ = tokenize(minilm.encoder, ["word " * 600])
    assert ids.shape == (1, 512) and mask.all()


def test_tokens_embed_without_error(minilm):
    ids, _, types = tokenize(minilm, ["word " * 600])
    assert minilm.encoder.encode(ids, types).shape == (1, 256, 384)


@pytest.mark.parametrize("texts, message", [
    ([], "no texts"),
    ("a single string", "list of strings"),
    (["ok", 3], "list of strings"),
])
def test_bad_texts(minilm, texts, message):
    with pytest.raises(InputError, match=message):
        tokenize(minilm, texts)


def test_bad_limit_and_missing_tokenizer(minilm):
    with pytest.raises(InputError, match="max_length must be positive"):
        tokenize(minilm, ["hi"], max_length=0)
    with pytest.raises(InputError, match="carries no tokenizer"):
        tokenize(random_bert(), ["hi"])
    with pytest.raises(InputError, match="expected an attention graph or an input encoder"):
        tokenize("minilm", ["hi"])


def test_read_text_file(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_bytes("\ufeffFirst line\r\n\n   \n  second line  \nthird — ünïcode\n".encode())
    assert read_text_file(path) == ["First line", "second line", "third — ünïcode"]


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b"", "holds no text"),
    (b"\n  \n\t\n", "holds no text"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary or non-UTF-8 file"),
    (b"caf\xe9 latin-1\n", "binary or non-UTF-8 file"),
])
def test_read_text_file_errors(tmp_path, content, message):
    path = tmp_path / "input.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        read_text_file(path)
    assert "input.txt" in str(info.value)


def test_read_text_file_directory(tmp_path):
    with pytest.raises(InputError, match="not a regular file"):
        read_text_file(tmp_path)


@pytest.mark.crosscheck
@pytest.mark.parametrize("max_length", [None, 5, 16, 256])
def test_live_autotokenizer_agreement(minilm, max_length):
    from transformers import AutoTokenizer

    texts = TEXTS + [
        "word " * 300,
        "Ünïcödé, ACCENTS and CAPITALS; tabs\tand  double  spaces.",
        "URLs like https://example.org/a?b=c and e-mail@example.com",
        "中文字符和日本語のテキスト",
        "emoji 🧠⚡ and symbols ±≤≥",
    ]
    limit = 256 if max_length is None else max_length
    auto = AutoTokenizer.from_pretrained(str(minilm_dir()))
    want = auto(texts, padding=True, truncation=True, max_length=limit, return_tensors="np")
    ids, mask, types = tokenize(minilm, texts, max_length=max_length)
    np.testing.assert_array_equal(ids, want["input_ids"])
    np.testing.assert_array_equal(mask, want["attention_mask"].astype(bool))
    np.testing.assert_array_equal(types, want["token_type_ids"])
