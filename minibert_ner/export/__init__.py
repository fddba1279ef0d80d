"""Export: a model as an ONNX graph with everything a runtime needs around it (onnx_export.py).

    minibert_ner.export_onnx("dslim/distilbert-NER", "exported/")
    minibert_ner.pipeline("exported/")     # runs it with onnxruntime, without torch

The runtime that reads the folder is the inference layer's ONNX engine
(inference/onnx_engine.py); docs/onnx.md says how to install it without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

_EXPORTS = {"ExportReport": "onnx_export", "export_onnx": "onnx_export"}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .onnx_export import ExportReport, export_onnx


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
