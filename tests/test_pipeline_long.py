"""Long text: no token is dropped, each is labelled by the window that gives it the most context,
offsets index the original text, entities cross window edges, and text that fits one window is
run exactly as a short text."""

from __future__ import annotations

import unicodedata
from itertools import pairwise

import pytest
import torch

import minibert_ner
from minibert_ner import ModelConfig, NERPipeline, TokenClassifier, Tokenizer
from minibert_ner.inference.aggregation import STRATEGIES
from minibert_ner.inference.windows import plan_windows

from .helpers.assertions import assert_same_entities
from .helpers.checkpoints import DISTILBERT_NER_LABELS, make_ner_checkpoint
from .helpers.data import conll_sentences
from .test_pipeline_parity import reference_entities, reference_pipeline


def long_document(n_words: int) -> tuple[str, list[str]]:
    """CoNLL test sentences up to `n_words` words, ten sentences to a paragraph."""
    sentences, words = [], []
    for sentence in conll_sentences("test"):
        sentences.append(" ".join(sentence))
        words += sentence
        if len(words) >= n_words:
            break
    assert len(words) >= n_words, "not enough CoNLL test text"
    paragraphs = [" ".join(sentences[i : i + 10]) for i in range(0, len(sentences), 10)]
    return "\n\n".join(paragraphs), words


def fold(text: str) -> str:
    """What an uncased BERT tokenizer makes of text: lower case, accents stripped."""
    return "".join(
        c for c in unicodedata.normalize("NFD", text.lower()) if not unicodedata.combining(c)
    )


def context(start: int, end: int, token: int) -> int:
    """Tokens a window [start, end) shows `token` on its poorer side."""
    return min(token - start, end - 1 - token)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13])
def test_window_plan_labels_every_token_once_with_the_most_context(size) -> None:
    for n in range(0, 70):
        for stride in range(size):
            windows = plan_windows(n, size, stride)
            what = f"n={n} size={size} stride={stride}: {windows}"
            if n <= size:  # fits: one window, exactly the short-text run
                assert [(w.start, w.end, w.keep_start, w.keep_end) for w in windows] == [
                    (0, n, 0, n)
                ], what
                continue
            assert windows[0].start == 0 and windows[-1].end == n, what
            assert all(w.end - w.start == size for w in windows), what
            for a, b in pairwise(windows):
                assert a.end - b.start >= stride, what  # overlap at least `stride`
                assert a.keep_end == b.keep_start, what
            assert windows[0].keep_start == 0 and windows[-1].keep_end == n, what
            for w in windows:
                for token in range(w.keep_start, w.keep_end):
                    assert w.start <= token < w.end, what
                    best = max(context(v.start, v.end, token) for v in windows
                               if v.start <= token < v.end)  # fmt: skip
                    assert context(w.start, w.end, token) == best, (token, what)


def test_a_20000_word_document_gets_every_token_and_entity(ner_model_dir) -> None:
    text, words = long_document(20_000)
    ner = minibert_ner.pipeline(ner_model_dir)
    encoding = ner.tokenizer.encode(text)
    n = len(encoding.ids) - 2
    windows = plan_windows(n, ner.window_size - 2, ner.options.stride)
    assert len(windows) > 40

    tokens = ner(text, aggregation_strategy="none", ignore_labels=[])
    assert [t["index"] for t in tokens] == list(range(1, n + 1))  # every token, once, in order
    assert [(t["start"], t["end"]) for t in tokens] == encoding.offsets[1:-1]
    for t in tokens:  # offsets index the original text (uncased: lower-cased, accents off)
        piece = text[t["start"] : t["end"]]
        assert piece and t["word"] in (piece, fold(piece), "##" + fold(piece)), t
    tail = text.rstrip()
    assert tokens[-1]["end"] == len(tail)

    entities = ner(text)
    assert entities[-1]["end"] > len(text) * 0.95  # found near the end, far beyond 512 tokens
    assert len(entities) > 5000
    for a, b in pairwise(entities):
        assert a["end"] <= b["start"]

    # Word labels of the same text as one 20,000-word pre-split sentence: one per word, each
    # its first token's label (the words are joined by spaces: the same tokens, windows, labels).
    labels = ner.label_words([words])[0]
    assert len(labels) == len(words)
    per_token = ner(words, is_split_into_words=True, aggregation_strategy="none", ignore_labels=[])
    word_ids = ner.tokenizer.encode(words).word_ids
    first = {w: i for i, w in reversed(list(enumerate(word_ids))) if w is not None}
    assert [per_token[first[w] - 1]["entity"] for w in range(len(words))] == labels
    assert 0.2 < labels.count("O") / len(labels) < 0.8


def test_each_token_comes_from_the_window_with_the_most_context(ner_model_dir) -> None:
    text, _ = long_document(400)
    ner = minibert_ner.pipeline(ner_model_dir, max_length=40, stride=12)
    ids = ner.tokenizer.encode(text).ids
    n = len(ids) - 2
    windows = plan_windows(n, 38, 12)
    got = ner(text, aggregation_strategy="none", ignore_labels=[])
    assert len(got) == n

    # Every window run on its own, straight through the model: probabilities per token.
    seen: list[dict[int, tuple[int, torch.Tensor]]] = [{} for _ in range(n)]
    with torch.inference_mode():
        for w in windows:
            row = torch.tensor([ids[:1] + ids[1 + w.start : 1 + w.end] + ids[-1:]])
            probs = ner.model(row).logits[0, 1:-1].softmax(-1)  # (window tokens, labels)
            for token in range(w.start, w.end):
                seen[token][w.start] = (context(w.start, w.end, token), probs[token - w.start])
    disagreements = 0
    for token, entity in enumerate(got):
        best = max(c for c, _ in seen[token].values())
        candidates = [p for c, p in seen[token].values() if c == best]
        assert any(
            abs(entity["score"] - p.max().item()) < 1e-5
            and entity["entity"] == ner.model.id2label[p.argmax().item()]
            for p in candidates
        ), (token, entity)
        labels = {p.argmax().item() for _, p in seen[token].values()}
        disagreements += len(labels) > 1
    assert disagreements > 10  # windows do disagree, so choosing the right one matters


def context_free_pipeline(minilm, max_length: int | None) -> NERPipeline:
    """A model without blocks or positions: each token's label depends on the token alone, so
    windows cannot change any label, and any difference is the merge's fault."""
    torch.manual_seed(0)
    config = ModelConfig(model_type="distilbert", vocab_size=30522, hidden_size=32, num_layers=0,
                         num_heads=2, intermediate_size=64, max_position_embeddings=100_000,
                         id2label=dict(enumerate(DISTILBERT_NER_LABELS)))  # fmt: skip
    model = TokenClassifier(config)
    model.init_weights()
    with torch.no_grad():
        model.embeddings.position_embeddings.weight.zero_()
        model.classifier.weight.mul_(30)
        model.classifier.bias[0] = 4.0  # "O" for about half the tokens
    model.eval()
    backend = Tokenizer.from_pretrained(minilm).backend
    tokenizer = Tokenizer(backend, model_max_length=None)  # no limit: one window if we like
    return NERPipeline(model, tokenizer, max_length=max_length, stride=8)


def test_entities_cross_window_edges_as_if_there_were_none(minilm) -> None:
    text, _ = long_document(3000)
    whole = context_free_pipeline(minilm, max_length=None)  # one window over everything
    assert whole.window_size > len(whole.tokenizer.encode(text).ids)
    windowed = context_free_pipeline(minilm, max_length=24)  # 22 tokens a window
    offsets = whole.tokenizer.encode(text).offsets[1:-1]
    windows = plan_windows(len(offsets), 22, 8)
    edges = [offsets[w.keep_start][0] for w in windows[1:]]  # where one window's labels end
    assert len(edges) > 150
    crossing = 0
    for strategy in STRATEGIES:
        expected = whole(text, aggregation_strategy=strategy)
        got = windowed(text, aggregation_strategy=strategy)
        assert_same_entities([got], [expected], strategy)
        crossing += sum(e["start"] < edge < e["end"] for e in expected for edge in edges)
    assert crossing > 50  # entities that two windows labelled, merged as if there were one


def test_text_that_fits_one_window_is_run_as_short_text(ner_model_dir) -> None:
    """510 tokens + [CLS] + [SEP] fit: transformers' own pipeline gives the same entities. One
    token more: transformers drops it, we label it."""
    text, _ = long_document(600)
    ner = minibert_ner.pipeline(ner_model_dir)
    while len(ner.tokenizer.encode(text).ids) > 512:
        text = text.rsplit(" ", 1)[0]
    text += " a" * (512 - len(ner.tokenizer.encode(text).ids))  # "a" is one token
    assert len(ner.tokenizer.encode(text).ids) == 512
    theirs = reference_pipeline(ner_model_dir)
    expected = reference_entities(theirs, [text])
    for strategy in STRATEGIES:
        assert_same_entities(
            ner([text], aggregation_strategy=strategy), expected[strategy], strategy
        )

    longer = text + " a"
    got = ner(longer, aggregation_strategy="none", ignore_labels=[])
    cut = theirs(longer, aggregation_strategy="none", ignore_labels=[])
    assert len(got) == 511 and len(cut) == 510
    assert got[-1]["end"] == len(longer)


def test_roberta_windows_come_from_usable_positions_and_the_template(tmp_path, bpe_tokenizer):
    """A RoBERTa model with 66 position rows has 64 usable positions (its ids start at
    pad_token_id + 1 = 2): windows are 64 tokens, <s> and </s> included, whatever the tokenizer
    allows (512); each window is the text's tokens between the template's own special tokens,
    and each token's result is the one window's with the most context."""
    folder = make_ner_checkpoint(
        tmp_path, "roberta", tokenizer_from=bpe_tokenizer, max_position_embeddings=66
    )
    ner = minibert_ner.pipeline(folder, stride=10)
    assert ner.model.config.max_positions == 64 and ner.tokenizer.model_max_length == 512
    assert ner.window_size == 64
    text, _ = long_document(300)
    ids = ner.tokenizer.encode(text).ids
    cls, sep = ner.tokenizer.backend.token_to_id("<s>"), ner.tokenizer.backend.token_to_id("</s>")
    assert ids[0] == cls and ids[-1] == sep and cls != sep
    n = len(ids) - 2
    windows = plan_windows(n, 62, 10)
    assert len(windows) > 5
    got = ner(text, aggregation_strategy="none", ignore_labels=[])
    assert [t["index"] for t in got] == list(range(1, n + 1))
    with torch.inference_mode():
        for w in windows:
            row = torch.tensor([[cls] + ids[1 + w.start : 1 + w.end] + [sep]])
            probs = ner.model(row).logits[0, 1:-1].softmax(-1)
            for token in range(w.keep_start, w.keep_end):
                p = probs[token - w.start]
                assert got[token]["entity"] == ner.model.id2label[p.argmax().item()]
                assert abs(got[token]["score"] - p.max().item()) < 1e-5
