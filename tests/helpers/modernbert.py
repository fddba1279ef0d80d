"""ModernBERT checkpoints and tokenizers for the tests: small random-weight models that
`transformers` itself builds and saves, with rows longer than the local window, and a byte-level
BPE tokenizer with ModernBERT's special tokens and template."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

# Small, but every part is there: 5 blocks, global every 2nd (0, 2, 4) and local between them, a
# local window of 8 (4 each side) that rows of 40 tokens go far beyond.
SMALL = {
    "hidden_size": 32,
    "num_hidden_layers": 5,
    "num_attention_heads": 4,
    "intermediate_size": 48,
    "global_attn_every_n_layers": 2,
    "local_attention": 8,
    "global_rope_theta": 1000.0,  # bases that turn the first dimensions fast within 40 tokens
    "local_rope_theta": 100.0,
}
# ModernBERT-base's shape (22 layers x 768, 12 heads, GeGLU 1152, window 128, global every 3rd)
BASE_SHAPE = {
    "hidden_size": 768,
    "num_hidden_layers": 22,
    "num_attention_heads": 12,
    "intermediate_size": 1152,
}
# ModernBERT's special tokens, at the end of its vocabulary as in answerdotai/ModernBERT-base
MODERNBERT_SPECIAL = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]


def make_modernbert_checkpoint(
    folder: Path,
    *,
    labels: list[str] | None,
    vocab_size: int = 300,
    seed: int = 0,
    pad_token_id: int = 0,
    base: bool = False,
    **overrides,
) -> Path:
    """A random-weight ModernBertForTokenClassification (or, `base`, ModernBertModel) saved by
    `transformers`. LayerNorm weights and any biases are perturbed, so that each matters
    (transformers' init leaves them at 1/0)."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    settings = SMALL | {"pad_token_id": pad_token_id, "bos_token_id": None, "eos_token_id": None,
                        "cls_token_id": None, "sep_token_id": None} | overrides  # fmt: skip
    if labels is not None:
        id2label = dict(enumerate(labels))
        settings |= {"id2label": id2label, "label2id": {v: k for k, v in id2label.items()}}
    config = transformers.ModernBertConfig(vocab_size=vocab_size, **settings)
    cls = transformers.ModernBertModel if base else transformers.ModernBertForTokenClassification
    model = cls(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def train_modernbert_tokenizer(folder: Path, **config) -> Path:
    """A byte-level BPE learnt from CoNLL-2003 train (tests/helpers/tokenizers.py), saved as
    answerdotai/ModernBERT-base ships its tokenizer: tokenizer.json with `[CLS] text [SEP]`, the
    special tokens last in the vocabulary ([MASK] taking the space before it), no prefix space,
    and a tokenizer_config.json naming PreTrainedTokenizerFast (transformers 5 uses
    tokenizer.json as it is for model_type modernbert, whatever the class named)."""
    from tokenizers import AddedToken, Tokenizer, processors

    from .tokenizers import train_byte_level_bpe

    train_byte_level_bpe(folder)
    backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
    backend.add_special_tokens(MODERNBERT_SPECIAL[:4])
    backend.add_special_tokens([AddedToken("[MASK]", lstrip=True, special=True)])
    cls_id, sep_id = backend.token_to_id("[CLS]"), backend.token_to_id("[SEP]")
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    backend.save(str(folder / "tokenizer.json"))
    for name in ("vocab.json", "merges.txt"):
        (folder / name).unlink()
    settings = {
        "tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": 8192,
        "clean_up_tokenization_spaces": True, "cls_token": "[CLS]", "sep_token": "[SEP]",
        "pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]",
        "model_input_names": ["input_ids", "attention_mask"],
    } | config  # fmt: skip
    (folder / "tokenizer_config.json").write_text(json.dumps(settings, indent=2), "utf-8")
    (folder / "config.json").write_text(json.dumps({"model_type": "modernbert"}), "utf-8")
    return folder


def modernbert_ner_checkpoint(folder: Path, tokenizer: Path, **overrides) -> Path:
    """A transformers-made ModernBERT token classifier over `tokenizer`'s vocabulary ([PAD] its
    padding), its head calibrated so that about half the tokens are "O"."""
    from minibert_ner import Tokenizer

    from .checkpoints import BERT_NER_LABELS, calibrate_head, copy_tokenizer

    tok = Tokenizer.from_pretrained(tokenizer)
    make_modernbert_checkpoint(folder, labels=BERT_NER_LABELS, vocab_size=tok.vocab_size,
                               pad_token_id=tok.pad_token_id, **overrides)  # fmt: skip
    copy_tokenizer(tokenizer, folder)
    return calibrate_head(folder)
