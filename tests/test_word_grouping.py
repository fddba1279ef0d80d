"""word_grouping="word_ids" (aggregation.py rule 5): words are the tokenizer's own, every `word`
is the text itself. Checked against an independent oracle (the `none` tokens grouped by word
id), as properties over generated text (hypothesis), and beside transformers' rule, whose
quirks (empty, whitespace-only and glued words) it removes."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import minibert_ner
from minibert_ner.inference.aggregation import STRATEGIES

from .helpers.assertions import assert_same_entities
from .helpers.checkpoints import BERT_NER_LABELS, DISTILBERT_NER_LABELS, make_ner_checkpoint
from .helpers.data import conll_sentences

# Where transformers' rule goes wrong without "##": a newline or tab is not a space, runs of
# spaces and lone "▁"/"Ġ" tokens make words of nothing.
QUIRK_TEXTS = [
    "Angela Merkel met Emmanuel Macron in Berlin\nParis and Rome\tMadrid on Monday .",
    "Peter Blackburn  ( Reuters )   BRUSSELS 1996-08-22\n\nEU rejects German call .",
    "AL-AIN , United Arab Emirates 1996-12-06\r\nJapan began the defence of their Asian Cup",
    "Jean-Baptiste O'Neill (U.S.A.) paid $3.5bn to Crème Brûlée Ltd. -- 'quoted' \"twice\"",
    "\tLeading tab, trailing newline in New York\n",
    "北京大学 and 東京 met 서울 officials in 上海 with Angela Merkel.",
    "Emoji 😀 next to names: Anna 👩‍🔬 Smith 🇫🇷 visited Paris 🗼.",
]
FAMILY_MODELS = {  # model type, labels, tokenizer fixture
    "roberta": ("roberta", DISTILBERT_NER_LABELS, "bpe_tokenizer"),
    "xlm-roberta": ("xlm-roberta", BERT_NER_LABELS, "unigram_tokenizer"),
    "camembert": ("camembert", DISTILBERT_NER_LABELS, "camembert_tokenizer"),
    "bert": ("bert", BERT_NER_LABELS, "cased_tokenizer"),
}


@pytest.fixture(scope="module", params=list(FAMILY_MODELS))
def model_folder(request, tmp_path_factory):
    model_type, labels, tokenizer = FAMILY_MODELS[request.param]
    return make_ner_checkpoint(
        tmp_path_factory.mktemp(f"{request.param}_ner"),
        model_type,
        tokenizer_from=request.getfixturevalue(tokenizer),
        labels=labels,
    )


@pytest.fixture(scope="module")
def ner(model_folder):
    return minibert_ner.pipeline(model_folder, word_grouping="word_ids")


def texts() -> list[str]:
    sentences = conll_sentences("test", limit=60)
    return [" ".join(" ".join(w) for w in sentences[i : i + 3]) for i in range(0, 60, 3)] + (
        QUIRK_TEXTS
    )


def words_of(ner, text: str) -> list[tuple[int, int]]:
    """The tokenizer's words as character spans (their tokens' spans, trimmed of whitespace)."""
    enc = ner.tokenizer.encode(text)
    spans: dict[int, list[int]] = {}
    for word, (start, end) in zip(enc.word_ids, enc.offsets, strict=True):
        piece = text[start:end]
        start, end = start + len(piece) - len(piece.lstrip()), start + len(piece.rstrip())
        if word is not None and start < end:
            spans.setdefault(word, []).extend((start, end))
    return [(min(s), max(s)) for _, s in sorted(spans.items())]


def oracle_first(ner, text: str) -> list[dict]:
    """Strategy "first" from the per-token output: each word takes its first token's label,
    neighbouring words of one tag join unless a word's label is B-."""
    tokens = ner(text, aggregation_strategy="none", ignore_labels=[])
    words = words_of(ner, text)
    labelled = []  # (label, score, start, end) per word
    for start, end in words:
        inside = [t for t in tokens if start <= t["start"] and t["end"] <= end]
        first = inside[0]
        labelled.append((first["entity"], first["score"], start, end))
    entities, group = [], []
    for unit in labelled + [None]:
        tag = None if unit is None else unit[0].removeprefix("B-").removeprefix("I-")
        if group and (unit is None or unit[0].startswith("B-") or tag != group[0][4]):
            name = group[0][0].split("-", 1)[-1]
            if name != "O":
                start, end = group[0][2], group[-1][3]
                score = sum(g[1] for g in group) / len(group)
                entities.append({"entity_group": name, "score": score, "word": text[start:end],
                                 "start": start, "end": end})  # fmt: skip
            group = []
        if unit is not None:
            group.append((*unit, tag))
    return entities


def check_entities(ner, text: str, entities: list[dict], strategy: str) -> None:
    """Rule 5's promises: word = text[start:end], never empty or whitespace at either end;
    entities in order; those of word strategies apart, each covering whole words. (Tokens, and
    so `none` and `simple` entities, may share a character that byte-level BPE splits.)"""
    words = words_of(ner, text)
    previous_start = previous_end = 0
    for e in entities:
        word = e["word"]
        assert word == text[e["start"] : e["end"]] and word and word == word.strip(), (text, e)
        assert e["start"] >= previous_start, (text, entities)
        if strategy in ("first", "average", "max"):
            assert e["start"] >= previous_end, (text, entities)
            assert any(s == e["start"] for s, _ in words) and any(t == e["end"] for _, t in words)
        previous_start, previous_end = e["start"], e["end"]


def test_word_ids_grouping_equals_the_oracle_and_keeps_its_promises(ner) -> None:
    n = 0
    for text in texts():
        got = ner(text, aggregation_strategy="first")
        expected = oracle_first(ner, text)
        assert [{**e, "score": round(e["score"], 5)} for e in got] == [
            {**e, "score": round(e["score"], 5)} for e in expected
        ], text
        for strategy in STRATEGIES:
            entities = ner(text, aggregation_strategy=strategy)
            check_entities(ner, text, entities, strategy)
            n += len(entities)
    assert n > 200  # not vacuous


def test_transformers_rule_has_the_quirks_word_ids_remove(ner) -> None:
    """The default reproduces transformers' mis-grouping on these texts (a `word` that is empty,
    whitespace, or spans a line break); word_ids has none of it, with the same tokens."""
    quirks = 0
    for text in QUIRK_TEXTS:
        for strategy in ("simple", "first", "average", "max"):
            default = ner(text, aggregation_strategy=strategy, word_grouping="transformers")
            for e in default:
                word = e["word"]
                quirks += (
                    not word.strip()
                    or word != word.strip()
                    or "\n" in text[e["start"] : e["end"]].strip()
                )
    if ner.model.config.model_type == "bert":
        return  # "##" marks sub-words: the default rule is sound there
    assert quirks > 0


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.one_of(
            st.sampled_from([w for s in conll_sentences("test", limit=40) for w in s]),
            st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=6),
            st.sampled_from([" ", "  ", "\n", "\t", "\r\n", "\u3000", "\u00a0"]),
        ),
        max_size=25,
    )
)
def test_word_ids_promises_hold_on_any_text(ner, pieces) -> None:
    text = " ".join(pieces)
    for strategy in STRATEGIES:
        check_entities(
            ner, text, ner(text, aggregation_strategy=strategy, ignore_labels=[]), strategy
        )


SIDE_BY_SIDE = "Angela Merkel met Emmanuel Macron in Berlin\nParis and Rome\tMadrid ."


def test_side_by_side_with_transformers(ner, model_folder) -> None:
    """docs/labelling.md's example (run with -s): transformers' pipeline and ours by default
    give the same entities; word_ids gives each word its own text."""
    transformers = pytest.importorskip("transformers")
    reference = transformers.pipeline(
        "token-classification", model=str(model_folder), aggregation_strategy="first"
    )
    theirs = reference(SIDE_BY_SIDE)
    default = ner(SIDE_BY_SIDE, aggregation_strategy="first", word_grouping="transformers")
    by_word = ner(SIDE_BY_SIDE, aggregation_strategy="first")
    assert assert_same_entities([default], [theirs]) == len(theirs)
    check_entities(ner, SIDE_BY_SIDE, by_word, "first")

    def show(entities: list[dict]) -> str:
        return ", ".join(
            f"{e['entity_group']} {e['word']!r} {e['start']}:{e['end']}" for e in entities
        )

    print(f"\n{ner.model.config.model_type} ({ner.tokenizer.config['tokenizer_class']}), "
          f"aggregation_strategy='first', {SIDE_BY_SIDE!r}")  # fmt: skip
    print(f"  transformers:            {show(theirs)}")
    print(f"  ours, default:           {show(default)}")
    print(f"  ours, word_ids:          {show(by_word)}")
