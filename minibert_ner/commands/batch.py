"""Label large corpora: text files (one text a line), JSON lines or Parquet in; one output file
per input file out (JSONL or Parquet), one output record per input record (its line or row
number, its id with --id-column, its entities). Bad records (invalid UTF-8, no text, ...) go to
<name>.errors.jsonl with the reason. A rerun into the same --output skips finished files.
--engine ray runs the same job on Ray Data actors (a local Ray, or the cluster at --address)."""

from __future__ import annotations

import argparse
import sys

from ..aggregation import STRATEGIES
from ..batch import ENGINES, OUTPUT_FORMATS, run_batch
from ..pipeline import DEFAULT_BATCH_SIZE, DEFAULT_MAX_BATCH_TOKENS, DEFAULT_STRIDE


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    io = parser.add_argument_group("input and output")
    io.add_argument(
        "--input",
        required=True,
        action="append",
        metavar="PATH_OR_GLOB",
        help="input file, folder or glob (quote it: 'corpus/*.jsonl'); .txt/.text: one text a "
        "line, .jsonl/.ndjson: JSON objects, .parquet; repeat for more",
    )
    io.add_argument("--output", required=True, metavar="DIR", help="folder for the results")
    io.add_argument("--format", choices=OUTPUT_FORMATS, default="jsonl", help="output format")
    io.add_argument(
        "--text-column", default="text", help="JSONL field / Parquet column of the text"
    )
    io.add_argument(
        "--id-column", help="JSONL field / Parquet column copied to each output record as 'id'"
    )
    model = parser.add_argument_group("model (options as in the label command)")
    model.add_argument("-m", "--model", required=True, help="NER checkpoint: hub id or folder")
    model.add_argument(
        "-a",
        "--aggregation",
        choices=STRATEGIES,
        type=str.lower,
        default="simple",
        help="how tokens become entities, as in transformers (default simple)",
    )
    model.add_argument(
        "--batch-size",
        type=int_at_least(1),
        default=DEFAULT_BATCH_SIZE,
        help=f"texts or windows per forward pass, at most (default {DEFAULT_BATCH_SIZE})",
    )
    model.add_argument(
        "--max-batch-tokens",
        type=int_at_least(1),
        default=DEFAULT_MAX_BATCH_TOKENS,
        help=f"padded tokens per forward pass, at most (default {DEFAULT_MAX_BATCH_TOKENS})",
    )
    model.add_argument(
        "--stride",
        type=int_at_least(0),
        default=DEFAULT_STRIDE,
        help=f"tokens shared by neighbouring windows over long text (default {DEFAULT_STRIDE})",
    )
    model.add_argument(
        "--device",
        help="cpu, cuda, cuda:N, mps (default: cuda if available); with --engine ray, "
        "cuda gives each actor one GPU",
    )
    model.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16"),
        help="weights' dtype (default float32)",
    )
    model.add_argument("--compile", action="store_true", help="run the model through torch.compile")
    engine = parser.add_argument_group("engine")
    engine.add_argument("--engine", choices=ENGINES, default="local", help="default: local")
    engine.add_argument(
        "--address", help="Ray cluster to join (default: RAY_ADDRESS, else a local Ray)"
    )
    engine.add_argument(
        "--num-actors",
        type=int_at_least(1),
        help="Ray actors, each with its own model (default: one per GPU with --device cuda, "
        "else one per --cpus-per-actor CPUs of the cluster)",
    )
    engine.add_argument(
        "--cpus-per-actor", type=positive_float, help="CPUs per Ray actor (default: 1)"
    )


def run(args: argparse.Namespace) -> int:
    summary = run_batch(
        args.input,
        args.output,
        args.model,
        engine=args.engine,
        output_format=args.format,
        text_column=args.text_column,
        id_column=args.id_column,
        address=args.address,
        num_actors=args.num_actors,
        cpus_per_actor=args.cpus_per_actor,
        log=sys.stderr,
        aggregation_strategy=args.aggregation,
        device=args.device,
        dtype=args.dtype,
        batch_size=args.batch_size,
        max_batch_tokens=args.max_batch_tokens,
        stride=args.stride,
        compile=args.compile,
    )
    c = summary.counts
    print(
        f"{summary.files} files labelled, {summary.skipped} already done; {c.records} records = "
        f"{c.written} written + {c.errors} errors; {summary.seconds:.1f} s "
        f"({summary.records_per_second:.1f} records/s)"
    )
    return 0
