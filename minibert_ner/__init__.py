"""minibert-ner: named-entity recognition with hand-written encoders in PyTorch, for DistilBERT,
BERT, RoBERTa, XLM-RoBERTa, CamemBERT, ELECTRA and DeBERTa-v2/v3 checkpoints.

The core, one module each: text -> `tokenizer` -> `model` (weights via `checkpoint`, files via
`hub`, shapes from `config`, each family registered once in `families`; DeBERTa's disentangled
attention in `deberta`) -> labels. Around it, by layer: `inference/` (labels -> entities: the
pipeline), `training/` (CoNLL, metrics, fine-tuning), `study/` (model internals), `batch/`
(corpora of files, Ray), `cli/` (the `minibert-ner` command).

    import minibert_ner
    ner = minibert_ner.pipeline("dslim/distilbert-NER")
    ner("My name is Wolfgang and I live in Berlin")

The names below load on first use, so that `import minibert_ner` (and the command line's
`--help`) does not pay for importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import lazy_exports

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "BatchError": "errors",
    "CheckpointError": "errors",
    "ConfigError": "errors",
    "DataError": "errors",
    "InputError": "errors",
    "InterventionError": "errors",
    "JobError": "errors",
    "MiniBertError": "errors",
    "MiniBertWarning": "errors",
    "MissingExtraError": "errors",
    "ModelNotFoundError": "errors",
    "TokenizerError": "errors",
    "ModelConfig": "config",
    "load_model": "checkpoint",
    "save_model": "checkpoint",
    "TokenClassifier": "model",
    "TokenClassifierOutput": "model",
    "DebertaTokenClassifier": "deberta",
    "ModernBertTokenClassifier": "modernbert",
    "Tokenizer": "tokenizer",
    "GLiNER": "gliner.api",
    "Entity": "inference.aggregation",
    "TokenEntity": "inference.aggregation",
    "PipelineOptions": "inference.options",
    "NERPipeline": "inference.pipeline",
    "pipeline": "inference.pipeline",
    "ExportReport": "export.onnx_export",
    "export_onnx": "export.onnx_export",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # what type checkers and editors see
    from .checkpoint import load_model, save_model
    from .config import ModelConfig
    from .deberta import DebertaTokenClassifier
    from .errors import (
        BatchError,
        CheckpointError,
        ConfigError,
        DataError,
        InputError,
        InterventionError,
        JobError,
        MiniBertError,
        MiniBertWarning,
        MissingExtraError,
        ModelNotFoundError,
        TokenizerError,
    )
    from .export.onnx_export import ExportReport, export_onnx
    from .gliner.api import GLiNER
    from .inference.aggregation import Entity, TokenEntity
    from .inference.options import PipelineOptions
    from .inference.pipeline import NERPipeline, pipeline
    from .model import TokenClassifier, TokenClassifierOutput
    from .modernbert import ModernBertTokenClassifier
    from .tokenizer import Tokenizer


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
