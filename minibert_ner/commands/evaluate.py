"""Score a model on a CoNLL file (IOB1 or IOB2): entity-level precision, recall and F1 per type
and overall (micro), and token accuracy, equal to seqeval's default mode. Words are labelled by
the NER pipeline (first-subword rule). Prints a table; --json writes the report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..conll import read_conll
from ..errors import InputError
from ..metrics import evaluate_pipeline
from ..pipeline import pipeline
from ..progress import Progress


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="model folder or hub id")
    parser.add_argument("--data", required=True, type=Path, help="CoNLL file to score on")
    parser.add_argument("--json", type=Path, metavar="REPORT.json", help="write the report here")
    parser.add_argument(
        "--batch-size", type=int, default=32, help="sentences per forward pass (default: 32)"
    )
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--dtype", help="float32 (default), bfloat16 or float16")


def run(args: argparse.Namespace) -> int:
    sentences = read_conll(args.data)
    ner = pipeline(
        model=args.model, device=args.device, dtype=args.dtype, batch_size=args.batch_size
    )
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
