"""The options of the NER pipeline, declared once: `PipelineOptions`.

Every way in reads this one declaration: the Python API (`pipeline(model, stride=64)`, or
`pipeline(model, options=PipelineOptions(...))`), the command line (cli/options.py makes one flag
per field), both batch engines (they hand the object to their workers) and the batch manifest
(`output_fields()`: the fields that change what the pipeline outputs). The values are checked
here, once, when the object is made; inside, they are trusted.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, get_args

from ..config import DTYPE_NAMES
from ..errors import InputError
from .aggregation import STRATEGIES, WORD_GROUPINGS, Strategy, WordGrouping

__all__ = [
    "DEFAULT_MODEL",
    "DTYPES",
    "QUANTIZATIONS",
    "STRATEGIES",
    "WORD_GROUPINGS",
    "DType",
    "PipelineOptions",
    "Quantization",
    "Strategy",
    "WordGrouping",
    "canonical_device",
]

DEFAULT_MODEL = "dslim/distilbert-NER"

DType = Literal["float32", "bfloat16", "float16"]
Quantization = Literal["int8"]  # see quantize.py
DTYPES: tuple[DType, ...] = get_args(DType)
QUANTIZATIONS: tuple[Quantization, ...] = get_args(Quantization)

# Field markers. RUNTIME: changes how fast the pipeline runs, not what it outputs (a resumed
# batch job may change it). SECRET: never written anywhere (manifests, logs).
RUNTIME = MappingProxyType({"runtime": True})
SECRET = MappingProxyType({"secret": True})


def canonical_device(device: object) -> str | None:
    """A device as its name: transformers' integers (-1: "cpu", N: "cuda:N"), a torch.device, or
    a str (checked against the hardware when the model loads: `pipeline.resolve_device`)."""
    if isinstance(device, str) and device.strip().lstrip("-").isdigit():
        device = int(device)  # "0" / "-1" from a command line, as transformers' integers
    if device is None or isinstance(device, str):
        return device
    if isinstance(device, int) and not isinstance(device, bool):
        if device < -1:
            raise InputError(f"device {device}: use -1 for the CPU or N >= 0 for GPU N")
        return "cpu" if device == -1 else f"cuda:{device}"
    torch = sys.modules.get("torch")  # a torch.device exists only once torch is imported
    if torch is not None and isinstance(device, torch.device):
        return str(device)
    raise InputError(
        f"device must be a str such as 'cuda:0', an int or a torch.device, got {device!r}"
    )


@dataclass(frozen=True)
class PipelineOptions:
    """How the NER pipeline loads a model and runs it. Frozen: change one with `replace`."""

    # --- what the output is
    aggregation_strategy: Strategy = "simple"  # how token labels become entities (aggregation.py)
    ignore_labels: tuple[str, ...] = ("O",)  # entity groups (tokens, with "none") to leave out
    # What a word is: "transformers", its pipeline's rule (the default, the spec), or
    # "word_ids", the tokenizer's own words with `word` = text[start:end] (aggregation.py rule 5)
    word_grouping: WordGrouping = "transformers"
    stride: int = 128  # tokens that neighbouring windows over long text share, at least
    max_length: int | None = None  # tokens per window with special tokens; None: the model's
    dtype: DType | None = None  # the weights' dtype; None: float32
    quantize: Quantization | None = None  # int8 linear layers (CPU speed; the quant extra)
    revision: str | None = None  # a hub model's branch, tag or commit
    # --- how it runs: the same output, sooner
    device: str | None = field(default=None, metadata=RUNTIME)  # None: CUDA if there is a GPU;
    # also an int as in transformers (-1: CPU, N: GPU N) or a torch.device, kept as its name
    batch_size: int = field(default=32, metadata=RUNTIME)  # rows per forward pass, at most
    max_batch_tokens: int = field(default=16384, metadata=RUNTIME)  # padded tokens per pass
    compile: bool = field(default=False, metadata=RUNTIME)  # run the model via torch.compile
    # --- access
    token: str | bool | None = field(default=None, metadata=SECRET)  # for private hub models

    def __post_init__(self) -> None:
        strategy = self.aggregation_strategy
        strategy = strategy.lower() if isinstance(strategy, str) else strategy
        if strategy not in STRATEGIES:
            raise InputError(
                f"unknown aggregation_strategy {self.aggregation_strategy!r}; choose one of "
                f"{', '.join(STRATEGIES)}"
            )
        if self.word_grouping not in WORD_GROUPINGS:
            raise InputError(
                f"unknown word_grouping {self.word_grouping!r}; choose one of "
                f"{', '.join(WORD_GROUPINGS)}"
            )
        labels = self.ignore_labels
        if isinstance(labels, str):  # ignore_labels="O" would ignore the letter, not the label
            raise InputError(
                f"ignore_labels must be a list of labels, e.g. [{labels!r}], not a str"
            )
        if not isinstance(labels, (list, tuple)) or not all(isinstance(x, str) for x in labels):
            raise InputError(f"ignore_labels must hold label names (str), got {labels!r}")
        for name, low in (("batch_size", 1), ("max_batch_tokens", 1), ("stride", 0),
                          ("max_length", 2)):  # fmt: skip
            value = getattr(self, name)
            if name == "max_length" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
        # Any name in DTYPE_NAMES ("bf16", ...) or a torch dtype, kept by its canonical name.
        dtype = self.dtype
        if dtype is not None:
            name = str(dtype).removeprefix("torch.")
            if name not in DTYPE_NAMES:
                raise InputError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
            if DTYPE_NAMES[name] not in DTYPES:
                raise InputError(f"unsupported dtype {dtype}; use one of {', '.join(DTYPES)}")
            dtype = DTYPE_NAMES[name]
        if self.quantize is not None and self.quantize not in QUANTIZATIONS:
            raise InputError(
                f"unknown quantize={self.quantize!r}; use None or one of {', '.join(QUANTIZATIONS)}"
            )
        if not isinstance(self.compile, bool):
            raise InputError(f"compile must be True or False, got {self.compile!r}")
        device = canonical_device(self.device)
        # Canonical values, so that equal options compare (and serialise) equal.
        object.__setattr__(self, "aggregation_strategy", strategy)
        object.__setattr__(self, "ignore_labels", tuple(labels))
        object.__setattr__(self, "dtype", dtype)
        object.__setattr__(self, "device", device)

    def replace(self, **changes: Any) -> PipelineOptions:
        """A copy with some fields changed (checked again); an unknown name is an InputError."""
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise InputError(
                f"unknown pipeline option(s) {', '.join(unknown)}; the options are: "
                f"{', '.join(names)}"
            )
        return dataclasses.replace(self, **changes) if changes else self

    def output_fields(self) -> dict[str, Any]:
        """The fields that decide the output, JSON-ready (for a batch job's manifest): neither
        RUNTIME nor SECRET ones."""
        return {
            f.name: list(value) if isinstance(value := getattr(self, f.name), tuple) else value
            for f in dataclasses.fields(self)
            if not (f.metadata.get("runtime") or f.metadata.get("secret"))
        }
