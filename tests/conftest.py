"""Shared fixtures: the real MiniLM checkpoint, small random reference checkpoints (made by
`transformers`), the CoNLL folder, and one local Ray for the whole run. What the fixtures are
built with lives in tests/helpers/."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from .helpers.checkpoints import (
    BERT_NER_LABELS,
    make_ner_checkpoint,
    make_reference_checkpoint,
    minilm_dir,
    train_cased_wordpiece,
)
from .helpers.data import CONLL_DIR, conll_file
from .helpers.tokenizers import train_byte_level_bpe, train_unigram


@pytest.fixture(scope="session")
def minilm() -> Path:
    return minilm_dir()


@pytest.fixture(scope="session")
def conll_dir() -> Path:
    conll_file("test")
    return CONLL_DIR


@pytest.fixture(scope="session")
def small_distilbert(tmp_path_factory, minilm) -> Path:
    """Small random DistilBERT NER model (dslim/distilbert-NER label order) with MiniLM's tokenizer."""
    folder = tmp_path_factory.mktemp("small_distilbert")
    return make_reference_checkpoint(
        folder, "distilbert", tokenizer_from=minilm, classifier_scale=30.0
    )


@pytest.fixture(scope="session")
def small_bert(tmp_path_factory, minilm) -> Path:
    """Small random BERT NER model (dslim/bert-base-NER label order) with MiniLM's tokenizer."""
    folder = tmp_path_factory.mktemp("small_bert")
    return make_reference_checkpoint(
        folder, "bert", labels=BERT_NER_LABELS, tokenizer_from=minilm, classifier_scale=30.0
    )


@pytest.fixture(scope="session")
def cased_tokenizer(tmp_path_factory, conll_dir) -> Path:
    return train_cased_wordpiece(tmp_path_factory.mktemp("cased_tokenizer"))


@pytest.fixture(scope="session")
def bpe_tokenizer(tmp_path_factory, conll_dir) -> Path:
    """RoBERTa byte-level BPE learnt from CoNLL train: tokenizer.json, vocab.json, merges.txt."""
    return train_byte_level_bpe(tmp_path_factory.mktemp("bpe_tokenizer"))


@pytest.fixture(scope="session")
def unigram_tokenizer(tmp_path_factory, conll_dir) -> Path:
    """XLM-RoBERTa SentencePiece Unigram learnt from CoNLL train (converter-style tokenizer.json)."""
    return train_unigram(tmp_path_factory.mktemp("unigram_tokenizer"))


@pytest.fixture(scope="session")
def deberta_tokenizer(tmp_path_factory, conll_dir) -> Path:
    """DeBERTa-v3 SentencePiece Unigram learnt from CoNLL train (tests/helpers/deberta.py)."""
    from .helpers.deberta import train_deberta_v3_tokenizer

    return train_deberta_v3_tokenizer(tmp_path_factory.mktemp("deberta_tokenizer"))


@pytest.fixture(scope="session")
def modernbert_tokenizer(tmp_path_factory, conll_dir) -> Path:
    """ModernBERT's byte-level BPE learnt from CoNLL train (tests/helpers/modernbert.py)."""
    from .helpers.modernbert import train_modernbert_tokenizer

    return train_modernbert_tokenizer(tmp_path_factory.mktemp("modernbert_tokenizer"))


@pytest.fixture(scope="session")
def camembert_tokenizer(tmp_path_factory, conll_dir) -> Path:
    """CamemBERT SentencePiece Unigram (its "NOTUSED" special tokens) learnt from CoNLL train."""
    return train_unigram(tmp_path_factory.mktemp("camembert_tokenizer"), "CamembertTokenizer")


@pytest.fixture(scope="session")
def ner_model_dir(tmp_path_factory, minilm) -> Path:
    """Small random DistilBERT NER model (dslim/distilbert-NER labels, MiniLM's real uncased
    tokenizer, calibrated head): for pipeline, property and command-line tests."""
    folder = tmp_path_factory.mktemp("ner_model")
    return make_ner_checkpoint(folder, "distilbert", tokenizer_from=minilm)


@pytest.fixture(scope="session")
def small_roberta(tmp_path_factory, bpe_tokenizer) -> Path:
    """Small random RoBERTa NER model (dslim/distilbert-NER labels, calibrated head) with a
    byte-level BPE learnt from CoNLL train: a family without "##" sub-words."""
    folder = tmp_path_factory.mktemp("small_roberta")
    return make_ner_checkpoint(folder, "roberta", tokenizer_from=bpe_tokenizer)


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory, minilm):
    """A 2-layer, 32-wide random BERT *base* model (no head) with MiniLM's tokenizer, saved by
    transformers: what fine-tuning starts from."""
    transformers = pytest.importorskip("transformers")
    folder = tmp_path_factory.mktemp("tiny_base")
    torch.manual_seed(0)
    vocab_size = len((minilm / "vocab.txt").read_text("utf-8").splitlines())
    config = transformers.BertConfig(
        vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64,
    )  # fmt: skip
    transformers.BertModel(config, add_pooling_layer=False).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (folder / name).write_bytes((minilm / name).read_bytes())
    return folder


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray for the whole run (starting one takes seconds): 2 CPUs, loopback, no
    dashboard. Other processes (a command under test) join it at `ray_address`."""
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install 'minibert-ner[ray]'")
    pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install 'ray[data]'")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        logging_level="warning",
        log_to_driver=False,
    )
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def ray_address(ray_session) -> str:
    return ray_session.get_runtime_context().gcs_address
