"""A Hugging Face ``tokenizer.json`` document rebuilt from a GGUF file's ``tokenizer.*`` metadata.

GGUF stores the vocabulary (``tokenizer.ggml.tokens``, index = id), the BPE merges
(``tokenizer.ggml.merges``, "left right", highest priority first), a type per token
(``tokenizer.ggml.token_type``: 1 normal, 3 control, 4 user-defined ...), the special ids and the name of
the pre-tokenizer llama.cpp applies (``tokenizer.ggml.pre``).  Byte-level BPE (``tokenizer.ggml.model``
``gpt2``) is rebuilt with the ``tokenizers`` package:

* control tokens become special added tokens and user-defined ones plain added tokens, so both are
  matched whole in the text;
* the text is split by the pre-tokenizer ``tokenizer.ggml.pre`` names (:data:`PRE_TOKENIZERS`), then
  mapped to the byte alphabet and merged;
* a BOS (EOS) token is prepended (appended) when ``tokenizer.ggml.add_bos_token``
  (``add_eos_token``) is true.
"""

from __future__ import annotations

from typing import Any

from compiler.errors import FrontendError

CONTROL, USER_DEFINED = 3, 4


def byte_level(split_digits: bool):
    """GPT-2's byte-level split, optionally after cutting every digit apart (SmolLM's ``smollm``)."""
    from tokenizers import pre_tokenizers

    byte = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    if not split_digits:
        return byte
    return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte])


PRE_TOKENIZERS = {
    "default": lambda: byte_level(False),
    "gpt-2": lambda: byte_level(False),
    "gpt2": lambda: byte_level(False),
    "smollm": lambda: byte_level(True),
}


def _list(values: dict[str, Any], key: str, where: str, kind: type) -> list:
    items = values.get(key)
    if not isinstance(items, list) or not all(isinstance(i, kind) for i in items):
        raise FrontendError(f"{where}: metadata {key!r} is missing or not a list of {kind.__name__}")
    return items


def _token_id(values: dict[str, Any], key: str, vocab_size: int, where: str) -> int | None:
    value = values.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < vocab_size:
        raise FrontendError(f"{where}: metadata {key!r}={value!r} is not a token id below {vocab_size}")
    return value


def post_processor(values: dict[str, Any], tokens: list[str], where: str):
    """BOS/EOS insertion as ``tokenizer.ggml.add_bos_token``/``add_eos_token`` ask."""
    from tokenizers import processors

    ends = []
    for flag, key in (("add_bos_token", "bos_token_id"), ("add_eos_token", "eos_token_id")):
        if values.get(f"tokenizer.ggml.{flag}"):
            index = _token_id(values, f"tokenizer.ggml.{key}", len(tokens), where)
            if index is None:
                raise FrontendError(f"{where}: tokenizer.ggml.{flag} is set but tokenizer.ggml.{key} is missing")
            ends.append((tokens[index], index))
        else:
            ends.append(None)
    bos, eos = ends
    single = ([bos[0]] if bos else []) + ["$A"] + ([eos[0]] if eos else [])
    pair = single + ["$B:1"] + ([f"{eos[0]}:1"] if eos else [])
    return processors.TemplateProcessing(single=single, pair=pair, special_tokens=[e for e in ends if e])


def tokenizer_json(values: dict[str, Any], where: str) -> str:
    """The ``tokenizer.json`` text of the tokenizer the metadata ``values`` describe."""
    from tokenizers import AddedToken, Tokenizer, decoders, models

    model = values.get("tokenizer.ggml.model")
    if model != "gpt2":
        raise FrontendError(f"{where}: tokenizer.ggml.model={model!r} is not supported; only 'gpt2' "
                            "(byte-level BPE); compile a Hugging Face checkpoint directory instead")
    pre = values.get("tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZERS:
        raise FrontendError(f"{where}: tokenizer.ggml.pre={pre!r} is not supported; supported: "
                            f"{', '.join(PRE_TOKENIZERS)}")
    tokens = _list(values, "tokenizer.ggml.tokens", where, str)
    merges = [tuple(m.split(" ", 1)) for m in _list(values, "tokenizer.ggml.merges", where, str)]
    if any(len(m) != 2 for m in merges):
        raise FrontendError(f"{where}: tokenizer.ggml.merges holds an entry without a space; the file is corrupt")
    types = values.get("tokenizer.ggml.token_type") or [1] * len(tokens)
    if len(types) != len(tokens):
        raise FrontendError(f"{where}: tokenizer.ggml.token_type has {len(types)} entries for {len(tokens)} tokens")
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise FrontendError(f"{where}: tokenizer.ggml.tokens lists the same token twice; the file is corrupt")
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    tokenizer.add_special_tokens([AddedToken(t, normalized=False, special=True)
                                  for t, kind in zip(tokens, types) if kind == CONTROL])
    tokenizer.add_tokens([AddedToken(t, normalized=False, special=False)
                          for t, kind in zip(tokens, types) if kind == USER_DEFINED])
    tokenizer.pre_tokenizer = PRE_TOKENIZERS[pre]()
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = post_processor(values, tokens, where)
    return tokenizer.to_str()


def encoder_special(values: dict[str, Any]) -> dict[str, Any]:
    """Special ids, BOS/EOS flags and the chat template, for ``InputEncoder.special``."""
    special: dict[str, Any] = {}
    for key in ("bos_token_id", "eos_token_id", "padding_token_id", "unknown_token_id", "add_bos_token",
                "add_eos_token"):
        if f"tokenizer.ggml.{key}" in values:
            special[key.replace("padding", "pad").replace("unknown", "unk")] = values[f"tokenizer.ggml.{key}"]
    if isinstance(values.get("tokenizer.chat_template"), str):
        special["chat_template"] = values["tokenizer.chat_template"]
    return special
