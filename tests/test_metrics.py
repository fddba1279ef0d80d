"""Our entity-level metrics equal seqeval's default mode (conlleval) exactly, digit for digit."""

from __future__ import annotations

import random
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minibert_ner.training.conll import read_conll
from minibert_ner.training.metrics import Report, evaluate, get_entities

seqeval_metrics = pytest.importorskip("seqeval.metrics")
from seqeval.metrics.sequence_labeling import get_entities as seqeval_entities  # noqa: E402

TYPES = ["PER", "ORG", "LOC", "MISC"]
IOB2_TAGS = ["O"] + [f"{p}-{t}" for t in TYPES for p in "BI"]
ALL_TAGS = IOB2_TAGS + [f"{p}-{t}" for t in TYPES for p in "ES"]  # IOBES too: same chunk rules


def seqeval_report(true: list[list[str]], pred: list[list[str]]) -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # undefined-metric warnings for empty types
        report = seqeval_metrics.classification_report(true, pred, output_dict=True)
        accuracy = seqeval_metrics.accuracy_score(true, pred)
        micro = (
            seqeval_metrics.precision_score(true, pred),
            seqeval_metrics.recall_score(true, pred),
            seqeval_metrics.f1_score(true, pred),
        )
    return {"report": report, "accuracy": accuracy, "micro": micro}


def assert_equal_to_seqeval(ours: Report, true: list[list[str]], pred: list[list[str]]) -> None:
    ref = seqeval_report(true, pred)
    # == on floats: the same operations in the same order, so the same last digit.
    assert (ours.precision, ours.recall, ours.f1) == ref["micro"]
    assert ours.accuracy == ref["accuracy"]
    micro = ref["report"]["micro avg"]
    assert (ours.precision, ours.recall, ours.f1, ours.support) == (
        micro["precision"], micro["recall"], micro["f1-score"], micro["support"],
    )  # fmt: skip
    types = {k: v for k, v in ref["report"].items() if not k.endswith(" avg")}
    assert sorted(ours.per_type) == sorted(types)
    for name, s in ours.per_type.items():
        r = types[name]
        assert (s.precision, s.recall, s.f1, s.support) == (
            r["precision"], r["recall"], r["f1-score"], r["support"],
        )  # fmt: skip


def corrupt(
    labels: list[list[str]], rate: float, rng: random.Random, tags: list[str]
) -> list[list[str]]:
    return [[rng.choice(tags) if rng.random() < rate else x for x in s] for s in labels]


@pytest.fixture(scope="module")
def valid_labels(conll_dir) -> list[list[str]]:
    return [s.labels for s in read_conll(conll_dir / "valid.txt")]


def test_chunking_examples():
    assert get_entities(["B-PER", "I-PER", "O", "B-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3)]
    # conlleval leniency: I- after O starts an entity; a type change ends one; B- splits.
    assert get_entities(["O", "I-LOC", "I-LOC"]) == [("LOC", 1, 2)]
    assert get_entities(["B-PER", "I-ORG", "I-ORG"]) == [("PER", 0, 0), ("ORG", 1, 2)]
    assert get_entities(["B-PER", "B-PER", "I-PER"]) == [("PER", 0, 0), ("PER", 1, 2)]
    assert get_entities([]) == []
    with pytest.raises(ValueError, match="'LABEL_3' is not an IOB tag"):
        get_entities(["O", "LABEL_3"])


@given(st.lists(st.sampled_from(ALL_TAGS), max_size=30))
@settings(max_examples=300, deadline=None)
def test_entities_equal_seqeval(labels):
    assert get_entities(labels) == seqeval_entities(labels)


@given(
    st.lists(
        st.lists(st.tuples(st.sampled_from(ALL_TAGS), st.sampled_from(ALL_TAGS)), max_size=12),
        min_size=1,
        max_size=6,
    ).filter(lambda sents: any(sents))
)
@settings(max_examples=200, deadline=None)
def test_random_sequences_equal_seqeval(pairs):
    true = [[t for t, _ in s] for s in pairs]
    pred = [[p for _, p in s] for s in pairs]
    assert_equal_to_seqeval(evaluate(true, pred), true, pred)


@pytest.mark.parametrize("rate", [0.0, 0.02, 0.2, 1.0])
def test_real_labels_with_corrupted_predictions(valid_labels, rate):
    rng = random.Random(int(rate * 100))
    pred = corrupt(valid_labels, rate, rng, IOB2_TAGS)
    ours = evaluate(valid_labels, pred)
    assert_equal_to_seqeval(ours, valid_labels, pred)
    if rate == 0.0:
        assert (ours.f1, ours.accuracy, ours.support) == (1.0, 1.0, 5942)


def test_entities_do_not_cross_sentences():
    # Concatenated, these would be one PER entity; per sentence they are two.
    report = evaluate([["B-PER"], ["I-PER"]], [["B-PER"], ["I-PER"]])
    assert (report.support, report.correct) == (2, 2)


def test_shape_mismatch_and_json():
    with pytest.raises(ValueError, match="2 gold sentences but 1 predicted"):
        evaluate([["O"], ["O"]], [["O"]])
    with pytest.raises(ValueError, match="sentence 0: 2 gold tags but 1 predicted"):
        evaluate([["O", "O"]], [["O"]])
    report = evaluate([["B-PER", "O"]], [["B-LOC", "O"]]).to_dict()
    assert report["per_type"]["LOC"] == {
        "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0, "predicted": 1, "correct": 0,
    }  # fmt: skip
    assert report["accuracy"] == 0.5 and report["words"] == 2
