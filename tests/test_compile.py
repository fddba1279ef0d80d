"""torch.compile on CPU (inductor): a compiled model gives the eager model's logits."""

from __future__ import annotations

import shutil

import pytest
import torch

from minibert_ner import load_model
from minibert_ner.inference.compile import compile_model

from .helpers.checkpoints import make_reference_checkpoint


def test_compiled_model_equals_eager(tmp_path) -> None:
    if shutil.which("gcc") is None and shutil.which("cc") is None:
        pytest.skip("inductor needs a C compiler on CPU")
    model = load_model(make_reference_checkpoint(tmp_path, "bert"))
    compiled = compile_model(model)
    ids = torch.randint(5, 1000, (2, 64))
    mask = torch.ones_like(ids)
    mask[1, 40:] = 0
    with torch.inference_mode():
        eager = model(ids, mask).logits
        fast = compiled(ids, mask).logits
    diff = (eager - fast).abs().max().item()
    print(f"\ncompiled vs eager max|diff| {diff:.2e}")
    assert diff <= 1e-5
