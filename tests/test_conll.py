"""The CoNLL reader: our IOB2 files, the original IOB1 distribution, and malformed input."""

from __future__ import annotations

import pytest

from minibert_ner.errors import DataError, MiniBertError
from minibert_ner.training.conll import entity_types, iob1_to_iob2, parse_conll, read_conll

from .helpers.data import conll_sentences

# The start of the original eng.train (IOB1, with document separators), and the same in IOB2.
ORIGINAL = """-DOCSTART- -X- O O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- O O

Hoover NNP I-NP I-PER
Dam NNP I-NP I-LOC
Bill NNP I-NP I-PER
Clinton NNP I-NP I-PER
Gore NNP I-NP B-PER
"""
IOB2 = [
    ["B-ORG", "O", "B-MISC", "O"],
    ["B-PER", "I-PER"],
    # A type change starts an entity; IOB1's B- (same type, adjacent) stays B-.
    ["B-PER", "B-LOC", "B-PER", "I-PER", "B-PER"],
]


def test_original_distribution_is_read_as_iob2(tmp_path):
    path = tmp_path / "eng.train"
    path.write_text(ORIGINAL, "utf-8")
    sentences = read_conll(path)
    assert [s.labels for s in sentences] == IOB2
    assert sentences[0].words == ["EU", "rejects", "German", "call"]
    assert [s.line for s in sentences] == [3, 8, 13]
    assert entity_types(sentences) == ["LOC", "MISC", "ORG", "PER"]


def test_iob2_is_unchanged_by_the_conversion():
    labels = ["B-PER", "I-PER", "B-PER", "O", "B-LOC", "I-LOC", "B-ORG"]
    assert iob1_to_iob2(labels) == labels
    assert iob1_to_iob2(["O", "I-LOC", "I-ORG", "I-ORG"]) == ["O", "B-LOC", "B-ORG", "I-ORG"]


def test_our_files(conll_dir):
    """Counts from the data README: sentences, tokens and entities per type."""
    expected = {
        "train": (14041, 203621, {"LOC": 7140, "MISC": 3438, "ORG": 6321, "PER": 6600}),
        "valid": (3250, 51362, {"LOC": 1837, "MISC": 922, "ORG": 1341, "PER": 1842}),
        "test": (3453, 46435, {"LOC": 1668, "MISC": 702, "ORG": 1661, "PER": 1617}),
    }
    for split, (n_sentences, n_words, per_type) in expected.items():
        sentences = read_conll(conll_dir / f"{split}.txt")
        assert len(sentences) == n_sentences
        assert sum(len(s.words) for s in sentences) == n_words
        assert all(len(s.words) == len(s.labels) for s in sentences)
        starts = [label[2:] for s in sentences for label in s.labels if label.startswith("B-")]
        assert {t: starts.count(t) for t in per_type} == per_type
    # Words agree with the independent reader in tests/helpers/data.py.
    assert [s.words for s in read_conll(conll_dir / "test.txt")[:50]] == conll_sentences("test", 50)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("EU B-ORG\nrejects\n", "t.txt:2: expected a word and its NER tag"),
        ("EU NNP B-ORG\nrejects O\n", "t.txt:2: 2 columns where earlier lines have 3"),
        ("EU NNP B-ORG\n\nrejects VBZ X-ORG\n", "t.txt:3: NER tag 'X-ORG'"),
        ("EU B-\n", "t.txt:1: NER tag 'B-'"),
        ("EU S-ORG\n", "only the IOB1 and IOB2 schemes"),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "t.txt"
    path.write_text(text, "utf-8")
    with pytest.raises(DataError, match=message):
        read_conll(path)


def test_missing_empty_and_binary_files(tmp_path):
    with pytest.raises(MiniBertError, match="no data file"):
        read_conll(tmp_path / "nope.txt")
    (tmp_path / "empty.txt").write_text("\n\n-DOCSTART- -X- O O\n\n", "utf-8")
    with pytest.raises(DataError, match="holds no sentences"):
        read_conll(tmp_path / "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("EU O\n\nM\xfcnchen B-LOC\n".encode("latin-1"))
    with pytest.raises(DataError, match="latin1.txt:3: not UTF-8"):
        read_conll(tmp_path / "latin1.txt")


def test_crlf_and_trailing_text_without_blank_line():
    sentences = parse_conll(["EU B-ORG\r", "rejects O\r", "\r", "Peter I-PER"])
    assert [(s.words, s.labels) for s in sentences] == [
        (["EU", "rejects"], ["B-ORG", "O"]),
        (["Peter"], ["B-PER"]),
    ]
