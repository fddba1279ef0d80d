"""Command-line options that several subcommands share, declared once.

- `int_at_least`, `positive_float`: argparse types that reject bad numbers with a one-line error.
- `add_pipeline_arguments` and `pipeline_kwargs`: the options of the NER pipeline (model, batch
  sizes, device, dtype, ...) for the commands that label text through it (label, batch,
  evaluate), and the keyword arguments of `minibert_ner.pipeline` they stand for.
- `add_device_argument`: --device alone, for the commands that load a model their own way.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..inference.aggregation import STRATEGIES
from ..inference.pipeline import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_BATCH_TOKENS,
    DEFAULT_MODEL,
    DEFAULT_STRIDE,
)
from ..inference.quantize import QUANTIZATIONS

DTYPES = ("float32", "bfloat16", "float16")

# A parser, or one of its argument groups: both have add_argument.
Parser = argparse.ArgumentParser | argparse._ArgumentGroup


def int_at_least(low: int):
    """argparse type: an integer >= low."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    return parse


def positive_float(text: str) -> float:
    """argparse type: a number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def add_device_argument(parser: Parser) -> None:
    parser.add_argument("--device", help="cpu, cuda, cuda:N, mps (default: cuda if available)")


def add_pipeline_arguments(
    parser: Parser, *, model_required: bool, aggregation: bool = True
) -> None:
    """The options of `minibert_ner.pipeline`. model_required: --model has no default (else it
    is DEFAULT_MODEL). aggregation=False leaves out --aggregation, for commands that label
    words rather than find entities (evaluate)."""
    if model_required:
        parser.add_argument("-m", "--model", required=True, help="NER model: hub id or folder")
    else:
        parser.add_argument(
            "-m",
            "--model",
            default=DEFAULT_MODEL,
            help=f"NER model: hub id or folder (default {DEFAULT_MODEL})",
        )
    if aggregation:
        parser.add_argument(
            "-a",
            "--aggregation",
            choices=STRATEGIES,
            type=str.lower,
            help="how tokens become entities, as in transformers (default simple)",
        )
    parser.add_argument(
        "--batch-size",
        type=int_at_least(1),
        default=DEFAULT_BATCH_SIZE,
        help=f"texts or windows per forward pass, at most (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--max-batch-tokens",
        type=int_at_least(1),
        default=DEFAULT_MAX_BATCH_TOKENS,
        help=f"padded tokens per forward pass, at most (default {DEFAULT_MAX_BATCH_TOKENS})",
    )
    parser.add_argument(
        "--stride",
        type=int_at_least(0),
        default=DEFAULT_STRIDE,
        help="tokens that neighbouring windows over long text share, at least; at most half a "
        f"window (default {DEFAULT_STRIDE})",
    )
    add_device_argument(parser)
    parser.add_argument("--dtype", choices=DTYPES, help="weights' dtype (default float32)")
    parser.add_argument(
        "--quantize",
        choices=QUANTIZATIONS[1:],  # None, the default, is not a choice
        help="int8 dynamic quantization of the linear layers (CPU speed, needs the quant extra: "
        "pip install 'minibert-ner[quant]'); default: exact float32",
    )
    parser.add_argument(
        "--compile", action="store_true", help="run the model through torch.compile"
    )


def pipeline_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `minibert_ner.pipeline(args.model, ...)` that the options of
    `add_pipeline_arguments` give."""
    return {
        # No --aggregation given, or none declared (evaluate): the pipeline's default.
        "aggregation_strategy": getattr(args, "aggregation", None) or "simple",
        "device": args.device,
        "dtype": args.dtype,
        "batch_size": args.batch_size,
        "max_batch_tokens": args.max_batch_tokens,
        "stride": args.stride,
        "quantize": args.quantize,
        "compile": args.compile,
    }
