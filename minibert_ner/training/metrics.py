"""Entity-level precision, recall and F1 (micro and per type), and token accuracy.

The numbers equal `seqeval`'s default mode (and the `conlleval` script of the CoNLL shared task)
to the last digit. An entity is a maximal chunk of words with one type; it counts as found only
if the prediction has a chunk with the same type, start and end. The chunking is lenient, as
conlleval's: `I-X` after `O` (or after another type) starts a new entity instead of being an
error, and a change of type always ends one. E- and S- tags (IOBES) follow the same rules.

    precision = correct / predicted     recall = correct / true     F1 = 2 P R / (P + R)
    accuracy  = words whose tag is right / all words   (O words included)
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from ..errors import ConfigError, InputError, MiniBertWarning
from .conll import entity_types

__all__ = [
    "Entity",
    "Report",
    "Scores",
    "evaluate",
    "evaluate_pipeline",
    "get_entities",
    "prf",
    "split_tag",
]

if TYPE_CHECKING:  # for annotations only: scoring tags needs neither
    from ..inference.pipeline import NERPipeline
    from .conll import Sentence

Entity = tuple[str, int, int]  # (type, first word, last word), both ends inclusive


def split_tag(label: str) -> tuple[str, str]:
    """Split a tag: B-PER -> ("B", "PER"), O -> ("O", ""); ValueError for anything else."""
    if label == "O":
        return "O", ""
    if len(label) > 2 and label[0] in "BIES" and label[1] == "-":
        return label[0], label[2:]
    raise InputError(f"label {label!r} is not an IOB tag (O, or B-/I-/E-/S- and a type)")


def _ends_chunk(prev_tag: str, prev_type: str, tag: str, type_: str) -> bool:
    """Does the chunk open at the previous word end before this word?"""
    if prev_tag in ("E", "S"):
        return True
    if prev_tag in ("B", "I") and tag in ("B", "S", "O"):
        return True
    return prev_tag != "O" and prev_type != type_


def _starts_chunk(prev_tag: str, prev_type: str, tag: str, type_: str) -> bool:
    """Does a new chunk start at this word? (I- or E- after O starts one, as in conlleval.)"""
    if tag in ("B", "S"):
        return True
    if prev_tag in ("E", "S", "O") and tag in ("I", "E"):
        return True
    return tag != "O" and prev_type != type_


def get_entities(labels: Sequence[str]) -> list[Entity]:
    """The entities in one sentence's tags: ["B-PER", "I-PER", "O", "I-LOC"] ->
    [("PER", 0, 1), ("LOC", 3, 3)]."""
    entities: list[Entity] = []
    prev_tag, prev_type, begin = "O", "", 0
    for i, label in enumerate([*labels, "O"]):  # a final O closes the last chunk
        tag, type_ = split_tag(label)
        if _ends_chunk(prev_tag, prev_type, tag, type_):
            entities.append((prev_type, begin, i - 1))
        if _starts_chunk(prev_tag, prev_type, tag, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return entities


def prf(correct: int, predicted: int, true: int) -> tuple[float, float, float]:
    """Precision, recall, F1 from counts; 0.0 where a denominator is 0 (as seqeval)."""
    precision = correct / predicted if predicted else 0.0
    recall = correct / true if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


@dataclass
class Scores:
    """Scores of one entity type, or of all types together (micro average)."""

    precision: float
    recall: float
    f1: float
    support: int  # entities in the gold tags
    predicted: int  # entities in the predictions
    correct: int  # predicted entities that match a gold one exactly

    @classmethod
    def from_counts(cls, correct: int, predicted: int, true: int) -> Scores:
        return cls(
            *prf(correct, predicted, true), support=true, predicted=predicted, correct=correct
        )


@dataclass
class Report:
    """The result of `evaluate`: micro-averaged scores, token accuracy and per-type scores."""

    precision: float
    recall: float
    f1: float
    accuracy: float
    support: int
    predicted: int
    correct: int
    sentences: int
    words: int
    per_type: dict[str, Scores] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict (the `--json` report of `minibert-ner evaluate`)."""
        return asdict(self)

    def format_table(self, digits: int = 4) -> str:
        """A text table: one row per type, then the micro average and the accuracy."""
        width = max([len("micro avg"), *map(len, self.per_type)])
        head = f"{'':<{width}}  precision     recall         f1    support  predicted"
        rows = [head]
        for name, s in [*self.per_type.items(), ("micro avg", self)]:
            if name == "micro avg":
                rows.append("")
            rows.append(
                f"{name:<{width}}  {s.precision:>9.{digits}f}  {s.recall:>9.{digits}f}  "
                f"{s.f1:>9.{digits}f}  {s.support:>9}  {s.predicted:>9}"
            )
        rows.append(f"{'accuracy':<{width}}  {self.accuracy:>9.{digits}f}  ({self.words} words)")
        return "\n".join(rows)


def evaluate(true: Sequence[Sequence[str]], pred: Sequence[Sequence[str]]) -> Report:
    """Score predicted tags against gold tags, sentence by sentence (entities never cross
    sentences). `true` and `pred` are lists of tag lists of equal shape."""
    if len(true) != len(pred):
        raise InputError(f"{len(true)} gold sentences but {len(pred)} predicted ones")
    true_entities: set[tuple[int, str, int, int]] = set()  # (sentence, type, start, end)
    pred_entities: set[tuple[int, str, int, int]] = set()
    right_words = words = 0
    for n, (t, p) in enumerate(zip(true, pred, strict=True)):
        if len(t) != len(p):
            raise InputError(f"sentence {n}: {len(t)} gold tags but {len(p)} predicted ones")
        true_entities.update((n, *e) for e in get_entities(t))
        pred_entities.update((n, *e) for e in get_entities(p))
        right_words += sum(a == b for a, b in zip(t, p, strict=True))
        words += len(t)
    correct_entities = true_entities & pred_entities

    def count_types(entities: set[tuple[int, str, int, int]]) -> Counter[str]:
        return Counter(type_ for _, type_, _, _ in entities)

    n_true, n_pred, n_correct = map(count_types, (true_entities, pred_entities, correct_entities))
    per_type = {
        name: Scores.from_counts(n_correct[name], n_pred[name], n_true[name])
        for name in sorted(n_true.keys() | n_pred.keys())
    }
    total = Scores.from_counts(len(correct_entities), len(pred_entities), len(true_entities))
    return Report(
        **asdict(total),
        accuracy=right_words / words if words else 0.0,
        sentences=len(true),
        words=words,
        per_type=per_type,
    )


def evaluate_pipeline(
    ner: NERPipeline,
    sentences: Sequence[Sentence],
    *,
    chunk_size: int = 512,
    progress: Callable[[int], None] | None = None,
) -> Report:
    """Score an NER pipeline on CoNLL sentences (`conll.Sentence`): `ner.label_words` labels each
    sentence's words (first-subword rule) and those labels are scored against the gold ones.

    Sentences go to the pipeline `chunk_size` at a time (it batches within each chunk), and
    `progress(n)` is called with the number of sentences labelled after each chunk.
    """
    predicts = set()
    for label in ner.model.id2label.values():
        try:
            predicts.add(split_tag(label)[1])
        except ValueError as e:
            raise ConfigError(
                f"the model predicts {label!r}, which is not an IOB tag; evaluation needs labels "
                "like O, B-PER, I-PER (set id2label in the model's config.json)"
            ) from e
    gold = set(entity_types(sentences))
    if gold and not gold & predicts:
        warnings.warn(
            f"the model predicts the entity types {', '.join(sorted(predicts - {''})) or 'none'} "
            f"and the data has {', '.join(sorted(gold))}: none in common, so every score is 0; "
            "is this the model for this data?",
            MiniBertWarning,
            stacklevel=2,
        )
    predicted: list[list[str]] = []
    for start in range(0, len(sentences), chunk_size):
        chunk = sentences[start : start + chunk_size]
        predicted += ner.label_words([s.words for s in chunk])
        if progress is not None:
            progress(len(chunk))
    return evaluate([s.labels for s in sentences], predicted)
