"""Incremental decoding: the text of a growing list of token ids, printed piece by piece.

Byte-level tokenizers split a multi-byte character over several tokens, and word-piece ones
join a piece to the word before it; decoding each token alone gets both wrong.  A
:class:`TextStream` decodes the whole list each time and hands out the new suffix, holding it back
while the text ends in an incomplete character (U+FFFD, the decoder's stand-in for dangling bytes).
"""

from __future__ import annotations

REPLACEMENT = "\ufffd"


class TextStream:
    """The text of the ids pushed so far, handed out as it becomes final."""

    def __init__(self, tokenizer, skip_special_tokens: bool = True):
        self.tokenizer = tokenizer
        self.skip = skip_special_tokens
        self.ids: list[int] = []
        self.shown = ""

    def push(self, token: int) -> str:
        """Add ``token``; return the text that became final (possibly empty)."""
        self.ids.append(int(token))
        text = self.tokenizer.decode(self.ids, skip_special_tokens=self.skip)
        if text.endswith(REPLACEMENT):
            return ""
        return self.advance(text)

    def finish(self) -> str:
        """The rest of the text, dangling bytes included (shown as U+FFFD)."""
        return self.advance(self.text())

    def text(self) -> str:
        return self.tokenizer.decode(self.ids, skip_special_tokens=self.skip)

    def advance(self, text: str) -> str:
        common = 0
        limit = min(len(text), len(self.shown))
        while common < limit and text[common] == self.shown[common]:
            common += 1
        piece = text[len(self.shown):] if common == len(self.shown) else text[common:]
        self.shown = text
        return piece
