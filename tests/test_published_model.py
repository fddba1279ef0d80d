"""The real dslim/distilbert-NER, where it is available: in the local Hugging Face cache, or in a
folder named by MINIBERT_NER_DSLIM_PATH. Skipped (with the reason) elsewhere, e.g. in CI here,
which cannot reach the hub."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from minibert_ner import ModelNotFoundError, Tokenizer, load_model
from minibert_ner.hub import resolve_folder

from .helpers.checkpoints import load_reference


def published_folder() -> Path:
    env = os.environ.get("MINIBERT_NER_DSLIM_PATH")
    if env:
        return Path(env)
    try:
        from huggingface_hub import try_to_load_from_cache

        config = try_to_load_from_cache("dslim/distilbert-NER", "config.json")
        if isinstance(config, str):
            return resolve_folder("dslim/distilbert-NER")
    except ModelNotFoundError:
        pass
    pytest.skip("dslim/distilbert-NER is not in the local HF cache (set MINIBERT_NER_DSLIM_PATH)")


def test_published_model_matches_reference_and_model_card() -> None:
    folder = published_folder()
    ours = load_model(folder)
    tok = Tokenizer.from_pretrained(folder)
    ref = load_reference(folder)
    enc = tok.encode("My name is Wolfgang and I live in Berlin")
    ids = torch.tensor([enc.ids])
    with torch.inference_mode():
        logits = ours(ids).logits[0]
        diff = (logits - ref(input_ids=ids).logits[0]).abs().max().item()
    print(f"\ndslim/distilbert-NER logits max|diff| {diff:.2e}")
    assert diff <= 1e-4
    labels = {
        t: ours.id2label[i] for t, i in zip(enc.tokens, logits.argmax(-1).tolist(), strict=True)
    }
    assert labels["Wolfgang"] == "B-PER" and labels["Berlin"] == "B-LOC"
