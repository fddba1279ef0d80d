"""Inference: text in, entities out.

`pipeline()` / `NERPipeline` (pipeline.py) tokenize, run the model over length-sorted batches of
windows (windows.py: long text is never cut) and turn token labels into entities by
`transformers`' rules (aggregation.py); compile.py and quantize.py are the optional speed options;
onnx_engine.py runs a folder written by `minibert-ner export` with onnxruntime, without torch.
The names below load on first use (options.py and aggregation.py need no torch).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

_EXPORTS = {
    "Entity": "aggregation",
    "TokenEntity": "aggregation",
    "PipelineOptions": "options",
    "NERPipeline": "pipeline",
    "pipeline": "pipeline",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .aggregation import Entity, TokenEntity
    from .options import PipelineOptions
    from .pipeline import NERPipeline, pipeline


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
