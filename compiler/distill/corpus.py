"""Calibration text: the corpus shipped with the project, cut into texts of the model's context lengths."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CORPUS = Path(__file__).with_name("data") / "calibration.txt"


def paragraphs() -> list[str]:
    """The shipped calibration paragraphs (varied English prose written for the project)."""
    return [line.strip() for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]


def calibration_texts(count: int, seed: int, max_paragraphs: int = 3) -> list[str]:
    """``count`` texts of 1 to ``max_paragraphs`` consecutive paragraphs (about 60-300 tokens), seeded."""
    paras = paragraphs()
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(count):
        n = int(rng.integers(1, max_paragraphs + 1))
        start = int(rng.integers(0, len(paras)))
        texts.append(" ".join(paras[(start + i) % len(paras)] for i in range(n)))
    return texts
