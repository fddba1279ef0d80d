"""Export a model to ONNX, for the torch-free runtime (onnxruntime; docs/onnx.md).

Writes model.onnx (dynamic batch and sequence axes), the tokenizer, config.json and
pipeline.json (labels, template, windows, word rule) into --output, after checking onnxruntime's
logits against the model's on sample batches. Run the folder with any command's --model:

    minibert-ner export --model dslim/distilbert-NER --output exported/ --quantize int8
    minibert-ner --model exported/ "My name is Wolfgang and I live in Berlin"
"""

from __future__ import annotations

import argparse

from ..errors import InputError
from .options import LOADING_FIELDS, add_model_argument, add_pipeline_arguments, int_at_least

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    parser.add_argument(
        "-o", "--output", required=True, metavar="DIR",
        help="folder to write (new, empty, or an earlier export: its files are replaced)",
    )  # fmt: skip
    parser.add_argument(
        "--quantize",
        choices=("int8",),
        help="onnxruntime's dynamic int8 quantization (default: none, float weights)",
    )
    parser.add_argument(
        "--optimize", action="store_true",
        help="onnxruntime's transformer fusions (attention, LayerNorm, GELU) where the family has them",
    )  # fmt: skip
    parser.add_argument(
        "--opset", type=int_at_least(17), default=17, help="the ONNX opset to write"
    )
    add_pipeline_arguments(
        parser, LOADING_FIELDS,
        help={
            "dtype": "the graph's dtype: float32 (default) or float16",
            "device": "where the model is traced: the CPU (the default, and the only choice)",
        },
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from ..export.onnx_export import export_onnx  # here: --help needs no torch

    if args.device not in (None, "cpu"):
        raise InputError(
            f"export traces the model on the CPU, not {args.device}; leave --device out"
        )
    report = export_onnx(
        args.model, args.output, dtype=args.dtype or "float32", quantize=args.quantize,
        optimize=args.optimize, opset=args.opset, revision=args.revision, token=args.token,
    )  # fmt: skip
    print(
        f"exported {args.model} to {report.folder}: {', '.join(report.files)} "
        f"(model.onnx {report.megabytes:.1f} MB); onnxruntime against the model on "
        f"{report.tokens_checked} tokens: logits within {report.max_abs_diff:.2g}, "
        f"{report.label_agreement:.2%} of best labels equal"
    )
    return 0
