"""minibert-ner: named-entity recognition with hand-written DistilBERT / BERT models in PyTorch.

The flow, one module each: text -> `tokenizer` -> `model` (weights via `checkpoint`, files via
`hub`) -> labels -> entities.
"""

from .config import ModelConfig
from .errors import CheckpointError, ConfigError, MiniBertError, ModelNotFoundError, TokenizerError
from .model import TokenClassifier, TokenClassifierOutput
from .pipeline import NERPipeline, pipeline
from .tokenizer import Tokenizer

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "MiniBertError",
    "ModelConfig",
    "ModelNotFoundError",
    "NERPipeline",
    "TokenClassifier",
    "TokenClassifierOutput",
    "Tokenizer",
    "TokenizerError",
    "pipeline",
]
