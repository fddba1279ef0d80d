"""Int8 dynamic quantization (torchao): off by default, applied at the call site, close to float32."""

from __future__ import annotations

import sys

import pytest
import torch

import minibert_ner
from minibert_ner.errors import InputError, MissingExtraError

from .helpers.data import conll_sentences


def test_int8_labels_agree_with_float32(ner_model_dir) -> None:
    pytest.importorskip("torchao", reason="pip install 'minibert-ner[quant]'")
    exact = minibert_ner.pipeline(ner_model_dir)
    int8 = minibert_ner.pipeline(ner_model_dir, quantize="int8")
    assert int8.model.classifier.weight.dtype == torch.float32  # the head stays exact
    sentences = conll_sentences("test", limit=200)
    a, b = exact.label_words(sentences), int8.label_words(sentences)
    words = sum(len(s) for s in sentences)
    same = sum(x == y for p, q in zip(a, b, strict=True) for x, y in zip(p, q, strict=True))
    print(f"\nint8 vs float32: {same}/{words} word labels agree ({same / words:.4f})")
    assert same / words >= 0.95
    ids = torch.tensor([exact.tokenizer.encode(" ".join(sentences[0])).ids])
    with torch.inference_mode():
        diff = (exact.model(ids).logits - int8.model(ids).logits).abs().max().item()
    assert 0 < diff < 1.0  # really quantized, and still close


def test_bad_quantize_value_and_missing_extra(ner_model_dir, monkeypatch) -> None:
    with pytest.raises(InputError, match="unknown quantize='int4'"):
        minibert_ner.pipeline(ner_model_dir, quantize="int4")
    monkeypatch.setitem(sys.modules, "torchao", None)  # import torchao -> ImportError
    monkeypatch.setitem(sys.modules, "torchao.quantization", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'minibert-ner\[quant\]'"):
        minibert_ner.pipeline(ner_model_dir, quantize="int8")
