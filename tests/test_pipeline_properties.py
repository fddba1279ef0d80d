"""Properties of the pipeline on arbitrary text (hypothesis): spans are real and never overlap,
batches keep order and count, windows keep every token; and bad input gets a clear error."""

from __future__ import annotations

import unicodedata

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minibert_ner
from minibert_ner import NERPipeline, TokenizerError
from minibert_ner.errors import InputError
from minibert_ner.inference.aggregation import STRATEGIES

from .helpers.assertions import assert_same_entities

# Pieces that stress tokenization: accents, combining marks, emoji sequences, CJK, ligatures,
# zero-width and control characters, literal special tokens, punctuation runs.
PIECES = [
    *"aAzZ0 éÉüßø-.,;'\"()$%&…",
    "😀", "👩‍🔬", "🇫🇷", "北京", "東京", "서울", "ﬁ", "İ", "e\u0301", "\u0301", "\u200b", "\ufeff",
    "\x00", "\x07", "\t", "\n", "\r\n", "  ", "Berlin", "Jean-Baptiste", "New York", "U.S.",
    "##", "##ing", "[SEP]", "[UNK]", "supercalifragilistic", "a" * 120,
]  # fmt: skip
TEXTS = st.lists(
    st.one_of(st.sampled_from(PIECES), st.text(st.characters(codec="utf-8"), max_size=4)),
    max_size=25,
).map("".join)
WORDS = st.lists(st.one_of(st.sampled_from(PIECES), st.text(max_size=6)), max_size=20)
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def ner(ner_model_dir) -> NERPipeline:
    return minibert_ner.pipeline(ner_model_dir)


def variant(ner: NERPipeline, **settings) -> NERPipeline:
    """The same model and tokenizer, run with other settings."""
    return NERPipeline(ner.model, ner.tokenizer, **settings)


def check_spans(text: str, entities: list[dict], strategy: str) -> None:
    """Each entity is a non-empty span of the text; spans come in order and never overlap.

    One exception, shared with transformers (whose offsets these are): a tokenizer that strips
    accents decomposes a Hangul syllable into letters that become separate tokens, each with the
    syllable's span; "none" and "simple" keep such tokens apart, so two of their spans can share
    that one character. Word strategies merge them into one word.
    """
    end = 0
    for e in entities:
        assert 0 <= e["start"] < e["end"] <= len(text), (e, entities)
        if e["start"] < end:
            shared = text[e["start"] : end]
            assert strategy in ("none", "simple") and len(shared) == 1, (e, entities)
            assert len(unicodedata.normalize("NFD", shared)) > 1, (e, entities)
        end = max(end, e["end"])
        assert type(e["score"]) is float and 0.0 <= e["score"] <= 1.0


@SETTINGS
@given(text=TEXTS, strategy=st.sampled_from(STRATEGIES))
def test_spans_are_real_and_disjoint(ner, text, strategy) -> None:
    everything = ner(text, aggregation_strategy=strategy, ignore_labels=[])  # "O" too
    check_spans(text, everything, strategy)
    entities = ner(text, aggregation_strategy=strategy)
    assert all(e in everything for e in entities)


@SETTINGS
@given(texts=st.lists(TEXTS, max_size=8), batch_size=st.integers(1, 4))
def test_batches_keep_order_and_count(ner, texts, batch_size) -> None:
    small_batches = variant(ner, batch_size=batch_size, max_batch_tokens=48)
    together = small_batches(texts, aggregation_strategy="first")
    assert len(together) == len(texts)
    assert_same_entities(together, [ner(t, aggregation_strategy="first") for t in texts], "batched")


@settings(SETTINGS, max_examples=40)
@given(text=TEXTS, stride=st.integers(0, 5))
def test_windows_label_every_token_once(ner, text, stride) -> None:
    windowed = variant(ner, max_length=12, stride=stride)  # 10 tokens a window
    encoding = ner.tokenizer.encode(text)
    kept = [i for i, special in enumerate(encoding.special_tokens_mask) if not special]
    tokens = windowed(text, aggregation_strategy="none", ignore_labels=[])
    assert [t["index"] for t in tokens] == kept
    assert [(t["start"], t["end"]) for t in tokens] == [encoding.offsets[i] for i in kept]
    check_spans(text, windowed(text, aggregation_strategy="max", ignore_labels=[]), "max")


@SETTINGS
@given(sentences=st.lists(WORDS, max_size=5))
def test_pre_split_words_get_one_label_each(ner, sentences) -> None:
    windowed = variant(ner, max_length=12, stride=3)
    labels = windowed.label_words(sentences)
    assert [len(x) for x in labels] == [len(words) for words in sentences]
    assert all(label in ner.scheme.names for x in labels for label in x)
    results = windowed(sentences, is_split_into_words=True, ignore_labels=[])
    assert len(results) == len(sentences)
    for words, entities in zip(sentences, results, strict=True):
        check_spans(" ".join(words), entities, "simple")


def test_edge_inputs_give_results(ner) -> None:
    assert ner("") == [] and ner(" \t\n ") == [] and ner("\x00\x07\u200b") == []
    assert ner([]) == [] and ner.label_words([]) == [] and ner.label_words([[]]) == [[]]
    assert ner.label_words([["", "\x00", "Berlin"]])[0][:2] == ["O", "O"]  # no token: "O"
    assert len(ner(["", "Berlin", ""])) == 3
    assert ner("...!!! ???", ignore_labels=[])  # only punctuation: labelled like anything else


def test_bad_input_gets_a_clear_error(ner, ner_model_dir) -> None:
    with pytest.raises(TokenizerError, match="lone surrogate"):
        ner("Berlin \ud800")
    with pytest.raises(TypeError, match="input 1 is a int"):
        ner(["ok", 3])
    with pytest.raises(TypeError, match="is_split_into_words=True expects a list of words"):
        ner("text", is_split_into_words=True)
    with pytest.raises(TypeError, match="expected a str or a list of str"):
        ner(None)
    with pytest.raises(TypeError, match="label_words expects a list of sentences"):
        ner.label_words("Berlin")
    with pytest.raises(InputError, match="unknown aggregation_strategy 'best'"):
        ner("text", aggregation_strategy="best")
    with pytest.raises(InputError, match="ignore_labels must be a list"):
        ner("text", ignore_labels="O")
    for bad in ({"stride": -1}, {"batch_size": 0}, {"max_length": 2}, {"max_batch_tokens": 1.5}):
        with pytest.raises(InputError):
            variant(ner, **bad)
    with pytest.raises(InputError, match="unknown dtype"):
        minibert_ner.pipeline(ner_model_dir, dtype="float8")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA GPU"):
            minibert_ner.pipeline(ner_model_dir, device="cuda")
    with pytest.raises(InputError, match="unknown device"):
        minibert_ner.pipeline(ner_model_dir, device="gpu0")


def test_a_model_in_training_mode_is_labelled_without_dropout_and_left_training(
    ner_model_dir,
) -> None:
    """The runner turns dropout off for inference and gives a model that was training back in
    training mode (a pipeline called during fine-tuning); a model in eval mode stays as it is."""
    ner = minibert_ner.pipeline(ner_model_dir)
    texts = ["Angela Merkel visited Paris .", "EU rejects German call ."]
    expected = ner(texts)
    ner.model.train()
    torch.manual_seed(0)
    assert ner(texts) == expected  # dropout (p = 0.1) would change the scores
    assert ner.model.training and all(m.training for m in ner.model.modules())
    ner.model.eval()
    assert ner(texts) == expected
    assert not any(m.training for m in ner.model.modules())
