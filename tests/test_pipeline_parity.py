"""Entity-for-entity parity with `transformers`' token-classification pipeline.

Checkpoints are made and saved by transformers (random weights, or all-MiniLM-L6-v2's real ones;
heads calibrated so that about half the tokens are "O"), in both published label orders. Both
pipelines run them over CoNLL test sentences joined three to a text (330 for the small
DistilBERT and BERT models, 90 for the small RoBERTa, XLM-RoBERTa, CamemBERT and ELECTRA ones,
150 for the published shape, 60 for MiniLM's real weights) plus hard Unicode texts, with all
five aggregation strategies: the same entities, labels, spans and `word` strings, scores within
1e-4. The number of texts and entities compared is printed (run with -s to see it).
"""

from __future__ import annotations

import json
import shutil
import time

import pytest

import minibert_ner
from minibert_ner.inference.aggregation import STRATEGIES

from .helpers.assertions import assert_same_entities
from .helpers.checkpoints import (
    BERT_NER_LABELS,
    DISTILBERT_NER_LABELS,
    make_minilm_ner_checkpoint,
    make_ner_checkpoint,
)
from .helpers.data import conll_sentences

transformers = pytest.importorskip("transformers")

N_SENTENCES = 330

HARD_TEXTS = [
    "",
    " ",
    "\t\n ",
    "...!!! ??? --- (((",
    "My name is Wolfgang and I live in Berlin.",
    "Jean-Baptiste O'Neill (U.S.A.) paid $3.5bn to Crème Brûlée Ltd. -- 'quoted' \"twice\"",
    "Crème brûlée at Café Müller in Zürich; Ångström, naïve, Øresund, ÉCOLE SUPÉRIEURE.",
    "北京大学 and 東京 met 서울 officials in 上海 with Angela Merkel.",
    "Emoji 😀 next to names: Anna 👩‍🔬 Smith 🇫🇷 visited Paris 🗼.",
    "Control\tchars\x00 and \x07 bell \u200b zero-width \ufeff BOM\r\nnew line in New York",
    "Decomposed e\u0301 and \u0301 lone combining marks; İstanbul ß Ǆemal ﬁnance",
    "Ａｒａｂｉｃ ١٢٣ مرحبا بك في دبي and עברית in Tel Aviv",
    "Supercalifragilisticexpialidocious" * 4 + " " + "a" * 120 + " Obama",
    "Mathematical 𝐀𝐁𝐂 Bold, Ｆｕｌｌ width and ＩＢＭ Corp.",
    "[CLS] [SEP] [MASK] [PAD] [UNK] as text, and ## ##ing markers",
]


def parity_texts(n_sentences: int = N_SENTENCES) -> list[str]:
    """CoNLL test sentences joined three to a text, then the hard texts."""
    sentences = conll_sentences("test", limit=n_sentences)
    assert len(sentences) == n_sentences
    texts = [
        " ".join(" ".join(words) for words in sentences[i : i + 3])
        for i in range(0, len(sentences), 3)
    ]
    return texts + HARD_TEXTS


def reference_pipeline(folder):
    return transformers.pipeline("token-classification", model=str(folder), device="cpu")


def reference_entities(pipe, texts: list[str]) -> dict[str, list]:
    """transformers' pipeline on each text for every strategy, with one forward pass per text:
    what its `run_single` does (preprocess -> forward -> postprocess), postprocess run once per
    strategy. (Calling the pipeline once per strategy gives the same, five times slower.)"""
    results: dict[str, list] = {strategy: [] for strategy in STRATEGIES}
    preprocess_params, forward_params, _ = pipe._sanitize_parameters()
    for text in texts:
        outputs = [
            pipe.forward(x, **forward_params) for x in pipe.preprocess(text, **preprocess_params)
        ]
        for strategy in STRATEGIES:
            _, _, postprocess_params = pipe._sanitize_parameters(aggregation_strategy=strategy)
            results[strategy].append(pipe.postprocess(outputs, **postprocess_params))
    return results


# (id, model type, size, label order, tokenizer, CoNLL test sentences)
PUBLISHED_SHAPE = (
    "distilbert-published-shape-cased", "distilbert", "published", DISTILBERT_NER_LABELS, "cased",
    150,
)  # fmt: skip
CASES = [
    ("distilbert-small-cased", "distilbert", "small", DISTILBERT_NER_LABELS, "cased", 330),
    ("bert-small-cased", "bert", "small", BERT_NER_LABELS, "cased", 330),
    ("minilm-real-weights-uncased", "minilm", "published", BERT_NER_LABELS, "uncased", 60),
    # The other families, with tokenizers learnt from CoNLL train: no "##" prefix, so the
    # pipeline's rule "a sub-word has no space before it" decides what a word is.
    ("roberta-small-bpe", "roberta", "small", DISTILBERT_NER_LABELS, "bpe", 90),
    ("xlm-roberta-small-unigram", "xlm-roberta", "small", BERT_NER_LABELS, "unigram", 90),
    ("camembert-small-unigram", "camembert", "small", DISTILBERT_NER_LABELS, "camembert", 90),
    ("electra-small-cased", "electra", "small", BERT_NER_LABELS, "cased", 90),
    # The dslim/distilbert-NER shape (768 wide, 6 layers, vocabulary 28996), once: slow on CPU.
    pytest.param(PUBLISHED_SHAPE, marks=pytest.mark.slow, id=PUBLISHED_SHAPE[0]),
]


TOKENIZER_FIXTURES = {
    "cased": "cased_tokenizer",
    "bpe": "bpe_tokenizer",
    "unigram": "unigram_tokenizer",
    "camembert": "camembert_tokenizer",
}


def build(case, folder, request):
    _, model_type, size, labels, tokenizer, _ = case
    if model_type == "minilm":
        return make_minilm_ner_checkpoint(folder, labels)
    tokenizer_folder = request.getfixturevalue(TOKENIZER_FIXTURES[tokenizer])
    return make_ner_checkpoint(
        folder, model_type, tokenizer_from=tokenizer_folder, labels=labels, size=size
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0])
def test_entities_match_transformers(case, tmp_path, request) -> None:
    name, n_sentences = case[0], case[-1]
    folder = build(case, tmp_path / "model", request)
    texts = parity_texts(n_sentences)
    ours = minibert_ner.pipeline(folder)
    assert ours.window_size == 512

    start = time.perf_counter()
    expected = reference_entities(reference_pipeline(folder), texts)
    theirs_seconds = time.perf_counter() - start
    compared, start = {}, time.perf_counter()
    for strategy in STRATEGIES:
        got = ours(texts, aggregation_strategy=strategy)
        compared[strategy] = assert_same_entities(got, expected[strategy], f"{name}, {strategy}")
    ours_seconds = time.perf_counter() - start
    print(
        f"\n{name}: {len(texts)} texts ({n_sentences} CoNLL test sentences + {len(HARD_TEXTS)} "
        f"hard texts), {sum(compared.values())} entities compared {compared}; ours "
        f"{ours_seconds:.1f}s (5 calls), transformers {theirs_seconds:.1f}s (1 forward per text)"
    )
    # Not vacuous: every strategy finds entities, and "O" (ignored) is common.
    n_tokens = sum(len(ours.tokenizer.encode(t).ids) - 2 for t in texts)
    assert min(compared.values()) > n_tokens / 10
    assert compared["none"] < 0.8 * n_tokens


def test_ignore_labels_and_pre_split_words_match_transformers(tmp_path, cased_tokenizer) -> None:
    folder = make_ner_checkpoint(tmp_path / "model", "bert", tokenizer_from=cased_tokenizer,
                                 labels=BERT_NER_LABELS)  # fmt: skip
    # The tokenizer as dslim/bert-base-NER ships it: vocab.txt and a legacy tokenizer_config.
    (folder / "tokenizer.json").unlink()
    config = {"do_lower_case": False, "max_len": 512, "tokenizer_class": "BertTokenizer"}
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    ours, theirs = minibert_ner.pipeline(folder), reference_pipeline(folder)
    assert ours.window_size == 512
    texts = parity_texts(60)
    n = 0
    for ignore in ([], ["O", "PER", "B-MISC"]):
        for strategy in ("none", "simple", "average"):
            expected = theirs(texts, aggregation_strategy=strategy, ignore_labels=ignore)
            got = ours(texts, aggregation_strategy=strategy, ignore_labels=ignore)
            n += assert_same_entities(got, expected, f"ignore_labels={ignore}, {strategy}")

    sentences = conll_sentences("test", limit=40) + [["Crème", "brûlée", "😀"], ["", "a"]]
    for strategy in STRATEGIES:
        got = ours(sentences, is_split_into_words=True, aggregation_strategy=strategy)
        # transformers wraps a pre-split sentence's result in one more list; ours does not.
        expected = [
            theirs(words, is_split_into_words=True, aggregation_strategy=strategy)[0]
            for words in sentences
        ]
        n += assert_same_entities(got, expected, f"pre-split words, {strategy}")
        one = ours(sentences[0], is_split_into_words=True, aggregation_strategy=strategy)
        assert_same_entities([one], got[:1], "one pre-split sentence")
    print(f"\nignore_labels and pre-split words: {n} entities compared")


def test_compiled_pipeline_equals_eager(tmp_path, ner_model_dir) -> None:
    """compile=True pads lengths to multiples of 64 and batches to a fixed shape; the entities
    stay the same."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("torch.compile (inductor) needs a C compiler on CPU")
    texts = [
        "My name is Wolfgang and I live in Berlin.",
        "EU rejects German call to boycott British lamb.",
        "",
        "Peter Blackburn",
    ]
    eager = minibert_ner.pipeline(ner_model_dir, aggregation_strategy="none", ignore_labels=[])
    compiled = minibert_ner.pipeline(
        ner_model_dir, aggregation_strategy="none", ignore_labels=[], compile=True, batch_size=4
    )
    assert compiled.runner._forward is not compiled.model  # really the torch.compile wrapper
    got, expected = compiled(texts), eager(texts)
    assert assert_same_entities(got, expected, "compiled") == sum(len(x) for x in expected) > 20
