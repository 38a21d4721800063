"""A Hugging Face ``tokenizer.json`` document rebuilt from a GGUF file's ``tokenizer.*`` metadata.

GGUF stores the vocabulary (``tokenizer.ggml.tokens``, index = id), the BPE merges
(``tokenizer.ggml.merges``, "left right", highest priority first), a type per token
(``tokenizer.ggml.token_type``: 1 normal, 3 control, 4 user-defined ...), the special ids and the name of
the pre-tokenizer llama.cpp applies (``tokenizer.ggml.pre``).  Byte-level BPE (``tokenizer.ggml.model``
``gpt2``) and sentencepiece BPE (``llama``, :func:`sentencepiece_bpe`) are rebuilt with the ``tokenizers``
package:

* control tokens become special added tokens and user-defined ones plain added tokens, so both are
  matched whole in the text;
* the text is split by the pre-tokenizer ``tokenizer.ggml.pre`` names (:data:`PRE_TOKENIZERS`), then
  mapped to the byte alphabet and merged;
* a BOS (EOS) token is prepended (appended) when ``tokenizer.ggml.add_bos_token``
  (``add_eos_token``) is true; without the key, sentencepiece vocabularies get BOS, as llama.cpp does.
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


def _list(values: dict[str, Any], key: str, where: str, kind: type | tuple) -> list:
    items = values.get(key)
    if not isinstance(items, list) or not all(isinstance(i, kind) for i in items):
        name = kind.__name__ if isinstance(kind, type) else "numbers"
        raise FrontendError(f"{where}: metadata {key!r} is missing or not a list of {name}")
    return items


def _token_id(values: dict[str, Any], key: str, vocab_size: int, where: str) -> int | None:
    value = values.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < vocab_size:
        raise FrontendError(f"{where}: metadata {key!r}={value!r} is not a token id below {vocab_size}")
    return value


def post_processor(values: dict[str, Any], tokens: list[str], where: str, add_bos_default: bool):
    """BOS/EOS insertion as ``tokenizer.ggml.add_bos_token``/``add_eos_token`` ask (BOS default per model)."""
    from tokenizers import processors

    ends = []
    for flag, key, default in (("add_bos_token", "bos_token_id", add_bos_default),
                               ("add_eos_token", "eos_token_id", False)):
        if values.get(f"tokenizer.ggml.{flag}", default):
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


def bpe_model(where: str, **settings):
    """The BPE model of the file's vocabulary and merges; one line when they do not fit together."""
    from tokenizers import models

    try:
        return models.BPE(**settings)
    except Exception as exc:  # noqa: BLE001  (tokenizers raises a plain Exception)
        raise FrontendError(f"{where}: the tokenizer's vocabulary and merges do not fit together "
                            f"({str(exc).splitlines()[0][:100]}); the file is corrupt") from exc


def byte_level_bpe(values: dict[str, Any], tokens: list[str], vocab: dict[str, int], where: str):
    """``gpt2``: byte-level BPE with the file's merges and the pre-tokenizer ``tokenizer.ggml.pre`` names."""
    from tokenizers import Tokenizer, decoders

    pre = values.get("tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZERS:
        raise FrontendError(f"{where}: tokenizer.ggml.pre={pre!r} is not supported; supported: "
                            f"{', '.join(PRE_TOKENIZERS)}")
    merges = [tuple(m.split(" ", 1)) for m in _list(values, "tokenizer.ggml.merges", where, str)]
    if any(len(m) != 2 for m in merges):
        raise FrontendError(f"{where}: tokenizer.ggml.merges holds an entry without a space; the file is corrupt")
    tokenizer = Tokenizer(bpe_model(where, vocab=vocab, merges=merges, fuse_unk=False))
    tokenizer.pre_tokenizer = PRE_TOKENIZERS[pre]()
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer, False


def score_merges(tokens: list[str], scores: list[float], vocab: dict[str, int]) -> list[tuple[str, str]]:
    """BPE merges implied by a sentencepiece vocabulary: every split of a token into two tokens, ranked
    by the token's score (highest first; ties: longer left piece, then longer right piece, then ids)."""
    pairs = []
    for token, score in zip(tokens, scores):
        local = [(token[:i], token[i:]) for i in range(1, len(token)) if token[:i] in vocab and token[i:] in vocab]
        local.sort(key=lambda p: (vocab[p[0]], vocab[p[1]]))
        pairs.extend((left, right, score) for left, right in local)
    pairs.sort(key=lambda p: (p[2], len(p[0]), len(p[1])), reverse=True)
    return [(left, right) for left, right, _ in pairs]


def sentencepiece_bpe(values: dict[str, Any], tokens: list[str], vocab: dict[str, int], where: str):
    """``llama``: sentencepiece BPE (``▁`` for spaces, byte fallback to ``<0xXX>`` tokens), merges from the
    scores when the file lists none, a ``▁`` prepended to the text unless ``add_space_prefix`` is false."""
    from tokenizers import Tokenizer, decoders, pre_tokenizers

    if "tokenizer.ggml.merges" in values:
        merges = [tuple(m.split(" ", 1)) for m in _list(values, "tokenizer.ggml.merges", where, str)]
    else:
        scores = _list(values, "tokenizer.ggml.scores", where, (int, float))
        if len(scores) != len(tokens):
            raise FrontendError(f"{where}: tokenizer.ggml.scores has {len(scores)} entries for {len(tokens)} tokens")
        merges = score_merges(tokens, scores, vocab)
    prefix = bool(values.get("tokenizer.ggml.add_space_prefix", True))
    tokenizer = Tokenizer(bpe_model(where, vocab=vocab, merges=merges, fuse_unk=True, byte_fallback=True))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first" if prefix
                                                       else "never", split=False)
    steps = [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()]
    tokenizer.decoder = decoders.Sequence(steps + ([decoders.Strip(content=" ", left=1)] if prefix else []))
    return tokenizer, True


# tokenizer.ggml.model -> builder returning (tokenizer, whether BOS is added unless the file says otherwise)
MODELS = {"gpt2": byte_level_bpe, "llama": sentencepiece_bpe}


def tokenizer_json(values: dict[str, Any], where: str) -> str:
    """The ``tokenizer.json`` text of the tokenizer the metadata ``values`` describe."""
    from tokenizers import AddedToken

    model = values.get("tokenizer.ggml.model")
    if model not in MODELS:
        raise FrontendError(f"{where}: tokenizer.ggml.model={model!r} is not supported; supported: "
                            f"{', '.join(MODELS)}; compile a Hugging Face checkpoint directory instead")
    tokens = _list(values, "tokenizer.ggml.tokens", where, str)
    types = values.get("tokenizer.ggml.token_type") or [1] * len(tokens)
    if len(types) != len(tokens):
        raise FrontendError(f"{where}: tokenizer.ggml.token_type has {len(types)} entries for {len(tokens)} tokens")
    vocab = {token: index for index, token in enumerate(tokens)}
    if len(vocab) != len(tokens):
        raise FrontendError(f"{where}: tokenizer.ggml.tokens lists the same token twice; the file is corrupt")
    tokenizer, add_bos = MODELS[model](values, tokens, vocab, where)
    tokenizer.add_special_tokens([AddedToken(t, normalized=False, special=True)
                                  for t, kind in zip(tokens, types) if kind == CONTROL])
    tokenizer.add_tokens([AddedToken(t, normalized=False, special=False)
                          for t, kind in zip(tokens, types) if kind == USER_DEFINED])
    tokenizer.post_processor = post_processor(values, tokens, where, add_bos)
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
