"""Tokenizers of the RoBERTa family for the tests, trained on CoNLL-2003 train sentences and saved
the way the published checkpoints ship them: byte-level BPE (RoBERTa: tokenizer.json, and
vocab.json + merges.txt) and SentencePiece Unigram (XLM-RoBERTa, CamemBERT: a tokenizer.json
from transformers' converters, whose normaliser and pre-tokenizer transformers 5.x replaces)."""

from __future__ import annotations

import json
from pathlib import Path

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

N_SENTENCES = 3000  # CoNLL train sentences the tokenizers learn from (~1 s)
VOCAB_SIZE = 3000

ROBERTA_SPECIAL = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids 0..4, as roberta-base
# camembert-base's first ids: SentencePiece's own <s>/</s> are kept as "NOTUSED" copies
CAMEMBERT_SPECIAL = ["<s>NOTUSED", "<pad>", "</s>NOTUSED", "<unk>", "<unk>NOTUSED", "<s>", "</s>"]


def _texts() -> list[str]:
    return [" ".join(words) for words in conll_sentences("train", limit=N_SENTENCES)]


def _write_config(folder: Path, tokenizer_class: str, **extra) -> None:
    config = {"tokenizer_class": tokenizer_class, "model_max_length": 512, **extra}
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2), "utf-8")


def train_byte_level_bpe(folder: Path, **config) -> Path:
    """RoBERTa's byte-level BPE: tokenizer.json (as roberta-base ships it), vocab.json and
    merges.txt, tokenizer_config.json naming RobertaTokenizer (plus `config`)."""
    backend = Tokenizer(models.BPE(continuing_subword_prefix="", end_of_word_suffix=""))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=ROBERTA_SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_texts(), trainer)
    backend.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    folder.mkdir(parents=True, exist_ok=True)
    backend.save(str(folder / "tokenizer.json"))
    backend.model.save(str(folder))  # vocab.json + merges.txt
    _write_config(folder, "RobertaTokenizer", **config)
    return folder


def train_unigram(folder: Path, tokenizer_class: str = "XLMRobertaTokenizer", **config) -> Path:
    """A SentencePiece Unigram tokenizer.json as transformers' XLMRobertaConverter (or
    CamembertConverter) writes it: collapse runs of spaces, Metaspace "▁" before every word,
    `<s> text </s>`; `<mask>` last."""
    special = CAMEMBERT_SPECIAL if tokenizer_class == "CamembertTokenizer" else ROBERTA_SPECIAL[:4]
    backend = Tokenizer(models.Unigram())
    backend.normalizer = normalizers.Sequence(
        [normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")]
    )
    backend.pre_tokenizer = pre_tokenizers.Metaspace("▁", prepend_scheme="always")
    backend.decoder = decoders.Metaspace("▁", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=special, unk_token="<unk>", show_progress=False
    )
    backend.train_from_iterator(_texts(), trainer)
    backend.add_special_tokens(["<mask>"])
    s, e = backend.token_to_id("<s>"), backend.token_to_id("</s>")
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", s), ("</s>", e)],
    )
    folder.mkdir(parents=True, exist_ok=True)
    backend.save(str(folder / "tokenizer.json"))
    _write_config(folder, tokenizer_class, **config)
    return folder


# SentencePiece's own ids as deberta-v3-base's spm.model has them: [PAD] [CLS] [SEP] control
# pieces, [UNK] the unknown piece ([MASK] is added by the tokenizer, after the vocabulary).
DEBERTA_V3_SPM = {
    "pad_id": 0, "bos_id": 1, "eos_id": 2, "unk_id": 3,
    "pad_piece": "[PAD]", "bos_piece": "[CLS]", "eos_piece": "[SEP]", "unk_piece": "[UNK]",
}  # fmt: skip
SPM_SENTENCES = 1000  # CoNLL train sentences a SentencePiece model learns from (~0.5 s)


def train_sentencepiece(folder: Path, vocab_size: int = 1000, **options) -> Path:
    """`folder/spm.model`, trained by the `sentencepiece` package on CoNLL-2003 train sentences
    with deberta-v3's special pieces; `options` are SentencePieceTrainer's (model_type,
    normalization_rule_name, byte_fallback, user_defined_symbols, ...)."""
    import io

    import sentencepiece

    model = io.BytesIO()
    texts = [" ".join(words) for words in conll_sentences("train", limit=SPM_SENTENCES)]
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size,
        num_threads=1, minloglevel=2, **(DEBERTA_V3_SPM | options),
    )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spm.model").write_bytes(model.getvalue())
    return folder
