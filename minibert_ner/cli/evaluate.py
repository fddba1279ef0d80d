"""Score a model on a CoNLL file: entity precision, recall and F1 per type, as seqeval scores.

Entity-level precision, recall and F1 per type and overall (micro), and token accuracy, equal to
seqeval's default mode, on CoNLL data in IOB1 or IOB2. Words are labelled by the NER pipeline
(first-subword rule). Prints a table, or the report as JSON (--format json); -o writes it to a
file; --json also writes the JSON report to a file beside the table. A warning on stderr says when the model and the data share no entity type.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from ..errors import InputError
from .options import (
    WORD_FIELDS,
    add_format_argument,
    add_gliner_arguments,
    add_model_argument,
    add_output_argument,
    add_pipeline_arguments,
    gliner_pipeline,
    pipeline_options,
)
from .progress import Progress

__all__ = [
    "add_arguments",
    "run",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path, help="CoNLL file to score on")
    add_format_argument(parser, ("table", "json"), "table")
    add_output_argument(
        parser,
        required=False,
        metavar="PATH",
        help="write the report to this file (default: stdout)",
    )
    parser.add_argument(
        "--json",
        metavar="REPORT.json",
        help="also write the report as JSON to this file, beside the output (default: none)",
    )
    model = parser.add_argument_group("model")
    add_model_argument(model)
    add_gliner_arguments(parser, label_map=True)
    add_pipeline_arguments(parser, WORD_FIELDS)  # words, not entities: no aggregation flags


def run(args: argparse.Namespace) -> int:
    from ..inference.pipeline import pipeline  # here: --help needs no torch
    from ..training.conll import read_conll
    from ..training.metrics import evaluate_pipeline
    from .label import output_file

    both = args.json is not None and args.output is not None
    if both and os.path.realpath(args.output) == os.path.realpath(args.json):
        raise InputError(f"--output and --json are both {args.output}; give two files")
    sentences = read_conll(args.data)
    # Both outputs are checked before the model loads, and written whole or not at all.
    with output_file(args.output) as out, output_file(args.json, "--json") as json_file:
        options = pipeline_options(args)
        ner = (
            gliner_pipeline(args, options)
            if args.labels is not None
            else pipeline(args.model, options=options)
        )
        with Progress(total=len(sentences), unit="sentences") as bar:
            report = evaluate_pipeline(
                ner, sentences, progress=lambda n: bar.update(count=n, amount=n)
            )
        record = {"model": str(args.model), "data": str(args.data), **report.to_dict()}
        if args.json is not None:
            json_file.write(json.dumps(record, indent=2) + "\n")
        if args.format == "json":
            out.write(json.dumps(record, indent=2) + "\n")
        else:
            out.write(
                f"{args.model} on {args.data} ({report.sentences} sentences, "
                f"{report.words} words)\n\n{report.format_table()}\n"
            )
    return 0
