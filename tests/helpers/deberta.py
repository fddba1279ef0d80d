"""DeBERTa-v2/v3 checkpoints for the tests: small random-weight models that `transformers` itself
builds and saves, in the two layouts the hub has."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tokenizers import (
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

from .data import conll_sentences

# v3 (deberta-v3-*, mDeBERTa-v3, the PII and medical taggers): log-bucketed relative positions,
# position projections shared with key/query, LayerNorm'ed relative table, no absolute positions.
V3_STYLE = {
    "relative_attention": True,
    "position_buckets": 8,  # 2 x 8 rows; distances beyond 4 fall in log buckets
    "max_relative_positions": -1,  # -> max_position_embeddings
    "max_position_embeddings": 64,
    "position_biased_input": False,
    "pos_att_type": ["p2c", "c2p"],
    "share_att_key": True,
    "norm_rel_ebd": "layer_norm",
    "type_vocab_size": 0,
    "hidden_act": "gelu",
}
# v2 (deberta-v2-xlarge style): absolute positions too, a ConvLayer after the first block,
# separate pos_key/pos_query projections, unbucketed distances clamped at max_relative_positions,
# embeddings narrower than the hidden size (embed_proj), token types.
V2_STYLE = {
    "relative_attention": True,
    "position_buckets": -1,
    "max_relative_positions": 16,
    "max_position_embeddings": 64,
    "position_biased_input": True,
    "pos_att_type": "p2c|c2p",  # the string form older configs use
    "share_att_key": False,
    "conv_kernel_size": 3,
    "conv_act": "gelu",
    "embedding_size": 24,
    "type_vocab_size": 2,
}
STYLES = {"v3": V3_STYLE, "v2": V2_STYLE}


def make_deberta_checkpoint(
    folder: Path,
    style: str | dict = "v3",
    *,
    labels: list[str],
    vocab_size: int = 300,
    seed: int = 0,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 4,
    **overrides,
) -> Path:
    """A random-weight DebertaV2ForTokenClassification saved by `transformers`.

    Every weight is drawn at a scale where each term matters (transformers' init leaves biases
    and LayerNorms at 0/1 and the relative table tiny, which would hide mistakes in them).
    """
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    id2label = dict(enumerate(labels))
    settings = dict(STYLES[style] if isinstance(style, str) else style) | overrides
    config = transformers.DebertaV2Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=(4 if hidden_size >= 256 else 2) * hidden_size,
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
        **settings,
    )
    model = transformers.DebertaV2ForTokenClassification(config)
    perturb(model)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def perturb(model: torch.nn.Module) -> None:
    """Biases, LayerNorms and the relative table away from transformers' init (0, 1, tiny), so
    that mistakes in them show."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(0.1 * torch.randn_like(p))
            elif "rel_embeddings" in name:
                p.normal_(0, 0.5)


DEBERTA_SPECIAL = ["[PAD]", "[CLS]", "[SEP]", "[UNK]"]  # ids 0..3, as deberta-v3-base


def train_deberta_v3_tokenizer(folder: Path, vocab_size: int = 2000, **config) -> Path:
    """A SentencePiece Unigram tokenizer learnt from CoNLL-2003 train sentences, saved as
    deberta-v3-base ships its tokenizer.json (transformers' DebertaV2Converter: strip, collapse
    runs of spaces, Metaspace "▁" before every word, `[CLS] text [SEP]`, `[MASK]` added last)
    with a tokenizer_config.json naming DebertaV2Tokenizer (plus `config`)."""
    texts = [" ".join(words) for words in conll_sentences("train", limit=3000)]
    backend = Tokenizer(models.Unigram())
    backend.normalizer = normalizers.Sequence(
        [normalizers.Strip(), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    backend.pre_tokenizer = pre_tokenizers.Metaspace("▁", prepend_scheme="always")
    backend.decoder = decoders.Metaspace("▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=DEBERTA_SPECIAL, unk_token="[UNK]",
        show_progress=False,
    )  # fmt: skip
    backend.train_from_iterator(texts, trainer)
    backend.add_special_tokens(["[MASK]"])
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 1), ("[SEP]", 2)],
    )
    folder.mkdir(parents=True, exist_ok=True)
    backend.save(str(folder / "tokenizer.json"))
    settings = {
        "tokenizer_class": "DebertaV2Tokenizer", "do_lower_case": False, "split_by_punct": False,
        "bos_token": "[CLS]", "eos_token": "[SEP]", "unk_token": "[UNK]", "sep_token": "[SEP]",
        "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]", "vocab_type": "spm",
    } | config  # fmt: skip
    (folder / "tokenizer_config.json").write_text(json.dumps(settings, indent=2), "utf-8")
    return folder
