"""Where the test data is: the repository, and CoNLL-2003 (from MINIBERT_NER_CONLL_DIR, by default
../shared/data/conll2003 next to the repository). A test that needs data that is missing fails
and says where it looked, rather than skipping unseen."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONLL_DIR = Path(
    os.environ.get("MINIBERT_NER_CONLL_DIR", REPO.parent / "shared" / "data" / "conll2003")
)


def conll_file(split: str) -> Path:
    """CoNLL-2003 `split`.txt (train, valid or test), or a failure saying where it was looked for."""
    path = CONLL_DIR / f"{split}.txt"
    if not path.is_file():
        pytest.fail(
            f"CoNLL-2003 {split}.txt not found in {CONLL_DIR}: set MINIBERT_NER_CONLL_DIR to the "
            "folder holding train.txt, valid.txt and test.txt",
            pytrace=False,
        )
    return path


def conll_sentences(split: str = "test", limit: int | None = None) -> list[list[str]]:
    """Words of the CoNLL sentences (plain reader, independent of the package's own)."""
    path = conll_file(split)
    sentences, words = [], []
    for line in path.read_text("utf-8").splitlines():
        if not line.strip():
            if words:
                sentences.append(words)
                words = []
            if limit and len(sentences) >= limit:
                break
            continue
        words.append(line.split()[0])
    if words and not (limit and len(sentences) >= limit):
        sentences.append(words)
    return sentences
