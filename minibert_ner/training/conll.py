"""Read CoNLL-format NER data: one word a line, its NER tag in the last column, blank lines
between sentences.

    EU NNP B-NP B-ORG          word  [POS  chunk ...]  NER
    rejects VBZ B-VP O
    ...
                               <- blank line ends a sentence
    -DOCSTART- -X- -X- O       <- document separator (original distribution): skipped

Two tagging schemes are in use for the same data. IOB2 (our files, and what models predict):
every entity starts with `B-`. IOB1 (the original CoNLL-2003 distribution): an entity starts
with `I-`, and `B-` appears only where an entity directly follows another of the same type.
`read_conll` always returns IOB2: it rewrites an `I-X` that starts an entity to `B-X`, which
changes nothing in a file that already is IOB2.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError

__all__ = [
    "DOCSTART",
    "Sentence",
    "entity_types",
    "iob1_to_iob2",
    "parse_conll",
    "read_conll",
]

DOCSTART = "-DOCSTART-"
# "O", or B-/I- and a type ("B-PER", "I-MISC"): the tags both schemes use.
TAG = re.compile(r"^(O|[BI]-\S+)$")


@dataclass
class Sentence:
    """One sentence: its words and their NER tags (IOB2), and where it starts in its file."""

    words: list[str]
    labels: list[str]
    line: int = 0  # 1-based line number of the first word, for messages


def iob1_to_iob2(labels: Sequence[str]) -> list[str]:
    """IOB1 -> IOB2: an `I-X` that does not continue an entity of type X becomes `B-X`."""
    out: list[str] = []
    prev = "O"
    for label in labels:
        if label.startswith("I-") and prev[2:] != label[2:]:
            label = "B-" + label[2:]  # prev is O or another type: an entity starts here
        out.append(label)
        prev = label
    return out


def parse_conll(lines: Iterable[str], source: str = "<input>") -> list[Sentence]:
    """Parse CoNLL lines (see the module docstring); `source` names the file in error messages.

    Every non-blank line must have the same number of columns (at least two: word and tag) and
    end in a tag `O`, `B-TYPE` or `I-TYPE`; anything else raises `DataError` naming file:line.
    """
    sentences: list[Sentence] = []
    words: list[str] = []
    labels: list[str] = []
    start = 0
    columns: int | None = None  # column count of the first word line; all must match it

    def end_sentence() -> None:
        if words:
            sentences.append(Sentence(list(words), iob1_to_iob2(labels), start))
            words.clear()
            labels.clear()

    for number, line in enumerate(lines, start=1):
        fields = line.split()
        if not fields:
            end_sentence()
            continue
        if fields[0] == DOCSTART:
            end_sentence()  # a document boundary is also a sentence boundary
            continue
        where = f"{source}:{number}"
        if len(fields) < 2:
            raise DataError(
                f"{where}: expected a word and its NER tag separated by whitespace, got {line.strip()!r}"
            )
        if columns is None:
            columns = len(fields)
        elif len(fields) != columns:
            raise DataError(
                f"{where}: {len(fields)} columns where earlier lines have {columns} "
                f"(a word with a space in it?): {line.strip()!r}"
            )
        tag = fields[-1]
        if not TAG.match(tag):
            raise DataError(
                f"{where}: NER tag {tag!r} (last column) is not O, B-TYPE or I-TYPE; "
                "only the IOB1 and IOB2 schemes are supported"
            )
        if not words:
            start = number
        words.append(fields[0])
        labels.append(tag)
    end_sentence()
    return sentences


def read_conll(path: str | Path) -> list[Sentence]:
    """All sentences of a CoNLL file (IOB1 or IOB2, with or without `-DOCSTART-`), tags in IOB2."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no data file {path}" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e}") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"{path}:{line}: not UTF-8 text ({e.reason}); convert the file, e.g. with iconv"
        ) from e
    sentences = parse_conll(text.split("\n"), str(path))
    if not sentences:
        raise DataError(f"{path} holds no sentences (is it a CoNLL file?)")
    return sentences


def entity_types(sentences: Iterable[Sentence]) -> list[str]:
    """The entity types (PER, LOC, ...) that occur in the tags, sorted."""
    return sorted({label[2:] for s in sentences for label in s.labels if label != "O"})
