"""Int8 dynamic quantization of the linear layers, for CPU speed at a small cost in exactness.

`torch.ao.quantization.quantize_dynamic` is deprecated in current PyTorch; its replacement is
`torchao` (`quantize_` with `Int8DynamicActivationInt8WeightConfig`): weights stored as int8 per
channel, activations quantized per token at run time, int8 matmuls. It is an optional extra
(`pip install minibert-ner[quant]`); the model itself is unchanged until a caller applies it.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

from ..errors import MissingExtraError
from ..families import Model

__all__ = ["quantize_int8"]


def quantize_int8(model: Model, *, include_classifier: bool = False) -> Model:
    """Quantize the encoder's linear layers to int8 in place (dynamic activations); returns model.

    The classifier stays in float by default: it is tiny, and label scores are what we report.
    """
    try:
        with quiet_import():
            from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    except ImportError as e:
        raise MissingExtraError(
            "int8 quantization needs torchao: pip install 'minibert-ner[quant]'"
        ) from e

    def wanted(module: nn.Module, name: str) -> bool:
        return isinstance(module, nn.Linear) and (include_classifier or name != "classifier")

    quantize_(model, Int8DynamicActivationInt8WeightConfig(), filter_fn=wanted)
    return model


# Loggers that talk while torchao imports: "Failed to load <kernel>.so" for kernels this machine
# has no use for (other GPUs, other Python builds), torch's notes on pytree registrations.
IMPORT_CHATTER = ("torchao", "torch.utils._pytree")


@contextmanager
def quiet_import() -> Iterator[None]:
    """Import an optional dependency without its warnings and log lines: none of them is
    something the user of the pipeline can or should act on."""
    loggers = [logging.getLogger(name) for name in IMPORT_CHATTER]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
