"""The host-side input encoder: token ids to the vectors the input node receives.

``x_t = E_tok[id_t] + E_pos[p_t + position_offset] + E_type[type_t]`` where the position and
token-type tables are optional (LLaMA uses neither, GPT-2 no token types).  The tokenizer (a
Hugging Face ``tokenizer.json`` document) travels with the encoder so a compiled network can take text.

Image models carry a patch projection instead of a token table: an image (H, W) is cut into
``patch_size`` x ``patch_size`` patches in row-major order, each flattened to ``p_t`` (patch_size^2
pixels), and ``x_t = P p_t + b_P + E_pos[t]`` (:meth:`InputEncoder.encode_patches`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from compiler.errors import InputError, SerializationError

ARRAY_NAMES = ("token_embeddings", "position_embeddings", "token_type_embeddings", "patch_projection", "patch_bias")


@dataclass
class InputEncoder:
    """Embedding tables applied on the host before the network's input node."""

    token_embeddings: np.ndarray | None
    position_embeddings: np.ndarray | None = None
    token_type_embeddings: np.ndarray | None = None
    position_offset: int = 0
    pad_token_id: int = 0
    tokenizer_json: str | None = None
    special: dict[str, Any] = field(default_factory=dict)
    patch_projection: np.ndarray | None = None
    patch_bias: np.ndarray | None = None
    patch_size: int = 0

    @property
    def width(self) -> int:
        table = self.token_embeddings if self.token_embeddings is not None else self.patch_projection.T
        return int(table.shape[1])

    @property
    def vocab_size(self) -> int:
        return 0 if self.token_embeddings is None else int(self.token_embeddings.shape[0])

    @property
    def max_positions(self) -> int | None:
        if self.position_embeddings is None:
            return None
        return int(self.position_embeddings.shape[0]) - self.position_offset

    def encode(self, input_ids: np.ndarray, token_type_ids: np.ndarray | None = None, dtype=np.float64,
               positions: np.ndarray | None = None):
        """Embed ``input_ids`` (B, T) into (B, T, width) vectors; ``positions`` (B, T) are the tokens'
        positions ``p_t`` (default ``0 .. T-1``; a stream continuing a sequence passes its own)."""
        if self.token_embeddings is None:
            raise InputError("this model takes images, not token ids; pass an array 'images' (batch, H, W)")
        ids = np.asarray(input_ids)
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            raise InputError(f"input_ids must be a 2-D integer array (batch, tokens), got {ids.dtype} {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise InputError(
                f"input_ids hold ids outside [0, {self.vocab_size}); was the text tokenized for this model?"
            )
        T = ids.shape[1]
        last = T if positions is None else int(np.max(positions, initial=-1)) + 1
        if self.max_positions is not None and last > self.max_positions:
            raise InputError(f"{last} tokens exceed the model's {self.max_positions} positions; shorten the input")
        x = self.token_embeddings[ids].astype(dtype)  # rows first: the table can be large
        if self.position_embeddings is not None and positions is None:
            x = x + self.position_embeddings.astype(dtype)[self.position_offset : self.position_offset + T][None]
        elif self.position_embeddings is not None:
            x = x + self.position_embeddings[self.position_offset + np.asarray(positions)].astype(dtype)
        if self.token_type_embeddings is not None:
            types = np.zeros_like(ids) if token_type_ids is None else np.asarray(token_type_ids)
            n_types = self.token_type_embeddings.shape[0]
            if types.shape != ids.shape or types.dtype.kind not in "iu" or (
                    types.size and (types.min() < 0 or types.max() >= n_types)):
                raise InputError(f"token_type_ids must be integers in [0, {n_types}) shaped like input_ids "
                                 f"{ids.shape}, got {types.dtype} {types.shape}")
            x = x + self.token_type_embeddings.astype(dtype)[types]
        return x

    def encode_patches(self, images: np.ndarray, dtype=np.float64) -> np.ndarray:
        """Cut ``images`` (B, H, W) into patches and project them: (B, T, width), T = HW / patch_size^2."""
        if self.patch_projection is None:
            raise InputError("this model takes token ids, not images; pass 'input_ids' or text")
        imgs = np.asarray(images, dtype=dtype)
        s = self.patch_size
        if imgs.ndim != 3 or imgs.shape[1] % s or imgs.shape[2] % s:
            raise InputError(f"images must have shape (batch, H, W) with H and W multiples of {s}, got {imgs.shape}")
        if not np.all(np.isfinite(imgs)):
            raise InputError("images contain NaN or infinity")
        B, H, W = imgs.shape
        patches = imgs.reshape(B, H // s, s, W // s, s).transpose(0, 1, 3, 2, 4).reshape(B, -1, s * s)
        T = patches.shape[1]
        if self.max_positions is not None and T > self.max_positions:
            raise InputError(f"{T} patches exceed the model's {self.max_positions} positions; use smaller images")
        x = patches @ self.patch_projection.astype(dtype).T
        if self.patch_bias is not None:
            x = x + self.patch_bias.astype(dtype)
        if self.position_embeddings is not None:
            x = x + self.position_embeddings.astype(dtype)[self.position_offset : self.position_offset + T][None]
        return x

    def tokenizer(self):
        """A ``tokenizers.Tokenizer`` from the stored document (padding and truncation switched off)."""
        if self.tokenizer_json is None:
            raise InputError("this model carries no tokenizer; pass token ids or arrays instead of text")
        from tokenizers import Tokenizer

        try:
            tok = Tokenizer.from_str(self.tokenizer_json)
        except Exception as exc:  # noqa: BLE001  (tokenizers raises a bare Exception for a bad document)
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(f"the model's tokenizer.json is not a valid tokenizer ({first}); "
                             "replace it with the checkpoint's original") from None
        tok.no_padding()
        tok.no_truncation()
        return tok

    # ---- storage ------------------------------------------------------------------------------
    def to_record(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        attrs = {
            "position_offset": self.position_offset,
            "pad_token_id": self.pad_token_id,
            "special": self.special,
            "tokenizer_json": self.tokenizer_json,
            "patch_size": self.patch_size,
            "arrays": [n for n in ARRAY_NAMES if getattr(self, n) is not None],
        }
        return attrs, {n: getattr(self, n) for n in attrs["arrays"]}

    @classmethod
    def from_record(cls, attrs: dict[str, Any], arrays: dict[str, np.ndarray], where: str) -> InputEncoder:
        try:
            tables = {n: arrays[n] for n in attrs["arrays"]}
            tables.setdefault("token_embeddings", None)
            enc = cls(
                **tables,
                patch_size=int(attrs.get("patch_size", 0)),
                position_offset=int(attrs["position_offset"]),
                pad_token_id=int(attrs["pad_token_id"]),
                tokenizer_json=attrs["tokenizer_json"],
                special=dict(attrs.get("special") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SerializationError(f"{where}: corrupt input encoder record ({exc})") from exc
        if enc.tokenizer_json is not None:
            try:
                json.loads(enc.tokenizer_json)
            except ValueError as exc:
                raise SerializationError(f"{where}: stored tokenizer is not JSON ({exc})") from exc
        for name in ARRAY_NAMES:
            table = getattr(enc, name)
            ndim = 1 if name == "patch_bias" else 2
            if table is not None and (table.ndim != ndim or table.dtype.kind not in "iuf"):
                raise SerializationError(f"{where}/{name}: a table must be {ndim}-D and numeric, "
                                         f"got {table.dtype} {table.shape}")
        return enc

    def same_as(self, other: InputEncoder) -> bool:
        a_attrs, a_arrays = self.to_record()
        b_attrs, b_arrays = other.to_record()
        return a_attrs == b_attrs and all(np.array_equal(a_arrays[k], b_arrays[k]) for k in a_arrays)


def encoder_record(encoder: InputEncoder | None):
    """(JSON, arrays) storing an optional encoder beside a graph."""
    if encoder is None:
        return {"encoder": None}, {}
    attrs, arrays = encoder.to_record()
    return {"encoder": attrs}, {f"encoder/{k}": v for k, v in arrays.items()}


def encoder_from_record(structure: dict, arrays: dict[str, np.ndarray], where: str) -> InputEncoder | None:
    """Inverse of :func:`encoder_record`."""
    attrs = structure.get("encoder")
    if attrs is None:
        return None
    enc_arrays = {k[len("encoder/"):]: v for k, v in arrays.items() if k.startswith("encoder/")}
    return InputEncoder.from_record(attrs, enc_arrays, f"{where}: encoder")
