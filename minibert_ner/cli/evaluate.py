"""Score a model on a CoNLL file (IOB1 or IOB2): entity-level precision, recall and F1 per type
and overall (micro), and token accuracy, equal to seqeval's default mode. Words are labelled by
the NER pipeline (first-subword rule). Prints a table; --json writes the report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import InputError
from ..inference.pipeline import pipeline
from ..training.conll import read_conll
from ..training.metrics import evaluate_pipeline
from .options import add_pipeline_arguments, pipeline_options
from .progress import Progress

__all__ = [
    "add_arguments",
    "run",
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path, help="CoNLL file to score on")
    parser.add_argument("--json", type=Path, metavar="REPORT.json", help="write the report here")
    model = parser.add_argument_group("model (options as in the label command)")
    add_pipeline_arguments(model, model_required=True, entities=False)  # words, not entities


def run(args: argparse.Namespace) -> int:
    sentences = read_conll(args.data)
    ner = pipeline(args.model, options=pipeline_options(args))
    with Progress(total=len(sentences), unit="sentences") as bar:
        report = evaluate_pipeline(ner, sentences, progress=lambda n: bar.update(count=n, amount=n))
    print(f"{args.model} on {args.data} ({report.sentences} sentences, {report.words} words)\n")
    print(report.format_table())
    if args.json is not None:
        record = {"model": str(args.model), "data": str(args.data), **report.to_dict()}
        try:
            args.json.write_text(json.dumps(record, indent=2) + "\n", "utf-8")
        except OSError as e:
            raise InputError(f"cannot write the report to {args.json}: {e}") from e
    return 0
