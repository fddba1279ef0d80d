"""minibert-ner: named-entity recognition with hand-written DistilBERT / BERT / DeBERTa models in
PyTorch.

The core, one module each: text -> `tokenizer` -> `model` (weights via `checkpoint`, files via
`hub`, shapes from `config`; DeBERTa's disentangled attention in `deberta`) -> labels. Around it, by layer: `inference/` (labels -> entities:
the pipeline), `training/` (CoNLL, metrics, fine-tuning), `study/` (model internals),
`batch/` (corpora of files, Ray), `cli/` (the `minibert-ner` command).

    import minibert_ner
    ner = minibert_ner.pipeline("dslim/distilbert-NER")
    ner("My name is Wolfgang and I live in Berlin")
"""

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
    MissingExtraError,
    ModelNotFoundError,
    TokenizerError,
)
from .inference import Entity, NERPipeline, PipelineOptions, TokenEntity, pipeline
from .model import TokenClassifier, TokenClassifierOutput
from .tokenizer import Tokenizer

__version__ = "0.1.0"

__all__ = [
    "BatchError",
    "Entity",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DebertaTokenClassifier",
    "InputError",
    "InterventionError",
    "JobError",
    "MiniBertError",
    "MissingExtraError",
    "ModelConfig",
    "ModelNotFoundError",
    "NERPipeline",
    "PipelineOptions",
    "TokenClassifier",
    "TokenClassifierOutput",
    "TokenEntity",
    "Tokenizer",
    "TokenizerError",
    "load_model",
    "pipeline",
    "save_model",
]
