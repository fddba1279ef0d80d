"""The options of the NER pipeline, declared once: `PipelineOptions`.

Every way in reads this one declaration: the Python API (`pipeline(model, stride=64)`, or
`pipeline(model, options=PipelineOptions(...))`), the command line (cli/options.py makes one flag
per field), both batch engines (they hand the object to their workers), the server and the batch
manifest. The values are checked here, once, when the object is made; inside, they are trusted.

Each field names, in its metadata, the one group it belongs to and the markers that apply to it
(`fields_in(name)` lists the fields of either); everything that treats fields alike reads them
there: the options a call may change (`pipeline.CALL_OPTIONS`), those a server request may change
(`serve/requests.PARAMETERS`), the command line's flag groups, the manifest (`output_fields`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, get_args

from ..config import DTYPE_NAMES
from ..devices import canonical_device
from ..errors import InputError
from .aggregation import STRATEGIES, WORD_GROUPINGS, Strategy, WordGrouping

__all__ = [
    "DEFAULT_MODEL",
    "DTYPES",
    "ENTITY",
    "GROUPS",
    "LOADING",
    "MARKERS",
    "QUANTIZATIONS",
    "REQUEST",
    "RUNNER",
    "RUNTIME",
    "SECRET",
    "STRATEGIES",
    "WEIGHTS",
    "WORD_GROUPINGS",
    "DType",
    "PipelineOptions",
    "Quantization",
    "Strategy",
    "WordGrouping",
    "canonical_device",
    "fields_in",
    "option",
]

DEFAULT_MODEL = "dslim/distilbert-NER"

# torch's dtypes, the mixed mode and "auto" (precision.py: what each runs, and what auto picks).
DType = Literal["float32", "bfloat16", "float16", "bfloat16-mixed", "auto"]
Quantization = Literal["int8"]  # see quantize.py
DTYPES: tuple[DType, ...] = get_args(DType)
MODE_ALIASES = {"bf16-mixed": "bfloat16-mixed"}  # shorthands, as DTYPE_NAMES has for torch's
QUANTIZATIONS: tuple[Quantization, ...] = get_args(Quantization)

# The groups: every field is in exactly one.
ENTITY = "entity"  # how token labels become entities (`NERPipeline.entities`); a call may change it
RUNNER = "runner"  # how tokens go through the model, in windows and batches (`WindowRunner`);
# a call may change it
LOADING = "loading"  # fixed when the pipeline is made: which weights, where, in which form
GROUPS = (ENTITY, RUNNER, LOADING)
# The markers: any number per field.
WEIGHTS = "weights"  # what `load_model` takes too: every command that loads a model takes it
REQUEST = "request"  # a request to the server may change it (serve/requests.py)
RUNTIME = "runtime"  # changes how fast the pipeline runs, not what it outputs (a resumed batch
# job may change it)
SECRET = "secret"  # never written anywhere (manifests, logs, the server's /info)
MARKERS = (WEIGHTS, REQUEST, RUNTIME, SECRET)


def option(default: Any, group: str, *markers: str) -> Any:
    """A field of `group` with `markers` (the constants above), in its metadata."""
    assert group in GROUPS and set(markers) <= set(MARKERS), (group, markers)
    return dataclasses.field(
        default=default, metadata=MappingProxyType({"names": frozenset((group, *markers))})
    )


def fields_in(name: str, options: type | None = None) -> tuple[str, ...]:
    """The fields of `options` (default: `PipelineOptions`) in group or with marker `name`, in
    declaration order."""
    assert name in GROUPS or name in MARKERS, name
    declared = dataclasses.fields(options or PipelineOptions)
    return tuple(f.name for f in declared if name in f.metadata["names"])


@dataclass(frozen=True)
class PipelineOptions:
    """How the NER pipeline loads a model and runs it. Frozen: change one with `replace`."""

    # --- what the output is
    aggregation_strategy: Strategy = option("simple", ENTITY, REQUEST)  # aggregation.py
    ignore_labels: tuple[str, ...] = option(("O",), ENTITY, REQUEST)  # entity groups to leave out
    # What a word is: "transformers", its pipeline's rule (the default, the spec), or
    # "word_ids", the tokenizer's own words with `word` = text[start:end] (aggregation.py rule 5)
    word_grouping: WordGrouping = option("transformers", ENTITY)
    stride: int = option(128, RUNNER, REQUEST)  # tokens neighbouring windows share, at least
    max_length: int | None = option(None, RUNNER)  # tokens per window; None: the model's
    # the weights' dtype, bf16 matmuls in a float32 model, or the fastest trusted mode on this
    # CPU (precision.py); None: float32
    dtype: DType | None = option(None, LOADING, WEIGHTS)
    quantize: Quantization | None = option(None, LOADING)  # int8 linear layers (quantize.py)
    revision: str | None = option(None, LOADING, WEIGHTS)  # a hub model's branch, tag or commit
    # --- how it runs: the same output, sooner
    # None: CUDA if there is a GPU (devices.py); also an int as in transformers (-1: CPU, N: GPU
    # N) or a torch.device, kept as its name
    device: str | None = option(None, LOADING, WEIGHTS, RUNTIME)
    batch_size: int = option(32, RUNNER, RUNTIME)  # rows per forward pass, at most
    max_batch_tokens: int = option(16384, RUNNER, RUNTIME)  # padded tokens per pass, at most
    compile: bool = option(False, LOADING, RUNTIME)  # run the model via torch.compile
    # --- access
    token: str | bool | None = option(None, LOADING, WEIGHTS, SECRET)  # for private hub models

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
            name = DTYPE_NAMES.get(name, MODE_ALIASES.get(name, name))
            if name not in DTYPES:
                known = name in DTYPE_NAMES.values()
                raise InputError(
                    f"{'unsupported' if known else 'unknown'} dtype {dtype!r}; use one of "
                    f"{', '.join(DTYPES)}"
                )
            dtype = name
        if self.quantize is not None and self.quantize not in QUANTIZATIONS:
            raise InputError(
                f"unknown quantize={self.quantize!r}; use None or one of {', '.join(QUANTIZATIONS)}"
            )
        if self.quantize is not None and dtype in ("auto", "bfloat16-mixed"):
            raise InputError(
                f"dtype={dtype!r} and quantize={self.quantize!r} do not go together: "
                f"{'auto picks the quantization too' if dtype == 'auto' else 'choose one'}"
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
        return self.as_json(exclude=(RUNTIME, SECRET))

    def as_json(self, exclude: tuple[str, ...] = (SECRET,)) -> dict[str, Any]:
        """The fields, JSON-ready (tuples as lists), but those with a marker in `exclude`."""
        return {
            f.name: list(value) if isinstance(value := getattr(self, f.name), tuple) else value
            for f in dataclasses.fields(self)
            if not f.metadata["names"] & set(exclude)
        }
