"""The shipped calibration corpus: size, paragraph lengths, no held-out text in it, seeded texts."""

import re
from pathlib import Path

from compiler.distill.corpus import CORPUS, calibration_texts, paragraphs

HELD_OUT = Path(__file__).resolve().parents[1] / "fixtures" / "sentences200.txt"


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def runs(text: str, n: int) -> set[str]:
    w = words(text)
    return {" ".join(w[i:i + n]) for i in range(len(w) - n + 1)}


def test_corpus_is_about_two_hundred_paragraphs_of_40_to_200_words():
    paras = paragraphs()
    assert len(paras) >= 190 and len(set(paras)) == len(paras)
    assert CORPUS.stat().st_size > 75_000
    lengths = [len(p.split()) for p in paras]
    assert min(lengths) >= 40 and max(lengths) <= 200, (min(lengths), max(lengths))


def test_no_held_out_sentence_nor_six_word_run_of_one_is_in_the_corpus():
    held = [s.strip() for s in HELD_OUT.read_text(encoding="utf-8").splitlines() if s.strip()]
    assert len(held) == 200
    corpus = " ".join(paragraphs())
    assert [s for s in held if s in corpus] == []
    shared = set().union(*(runs(s, 6) for s in held)) & runs(corpus, 6)
    assert shared == set(), sorted(shared)[:5]


def test_calibration_texts_are_seeded():
    a, b, c = calibration_texts(12, 3), calibration_texts(12, 3), calibration_texts(12, 4)
    assert a == b and a != c
    paras = set(paragraphs())
    assert all(any(t.startswith(p) for p in paras) for t in a)
