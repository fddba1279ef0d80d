"""Label large corpora of files, resumably, locally or on Ray.

Text files (one text a line), JSON lines or Parquet in; one output file per input file out (JSONL or Parquet), one output record per input record (its line or row
number, its id with --id-column, its entities). Bad records (invalid UTF-8, no text, ...) go to
<name>.errors.jsonl with the reason. A rerun into the same --output skips finished files.
--engine ray runs the same job on Ray Data actors (a local Ray, or the cluster at --address).
Exit status: 0 every record labelled; 3 finished, but some records were not (see the
.errors.jsonl files and the last line); 2 bad input or options; 1 stopped part-way (output not
writable, Ray failure: run again to resume); 130 interrupted (run again to resume)."""

from __future__ import annotations

import argparse
import sys

from ..batch.job import ENGINES
from ..batch.records import OUTPUT_FORMATS
from .options import (
    add_format_argument,
    add_gliner_arguments,
    add_model_argument,
    add_output_argument,
    add_pipeline_arguments,
    add_verbose_argument,
    gliner_settings,
    int_at_least,
    pipeline_options,
    positive_float,
)

__all__ = [
    "add_arguments",
    "run",
]


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
    add_output_argument(io, required=True, metavar="DIR", help="folder for the results")
    add_format_argument(io, OUTPUT_FORMATS, "jsonl")
    io.add_argument(
        "--text-column", default="text", help="JSONL field / Parquet column of the text"
    )
    io.add_argument(
        "--id-column",
        help="JSONL field / Parquet column copied to each output record as 'id' (default: none; "
        "records are keyed by line or row number)",
    )
    model = parser.add_argument_group("model")
    add_model_argument(model)
    add_gliner_arguments(parser)
    add_pipeline_arguments(parser)  # a section per option group
    add_verbose_argument(parser)
    engine = parser.add_argument_group(
        "engine", "with --engine ray, --device cuda gives each actor one GPU"
    )
    engine.add_argument("--engine", choices=ENGINES, default="local", help="where the job runs")
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
    engine.add_argument(
        "--connect-timeout",
        type=positive_float,
        metavar="SECONDS",
        help="how long to wait for the Ray cluster at --address (default: 30)",
    )


def run(args: argparse.Namespace) -> int:
    from ..batch.job import run_batch

    options = pipeline_options(args)
    if args.verbose:  # what this machine picks (each Ray node resolves "auto" for its own CPU)
        from ..devices import resolve_device
        from ..inference.precision import resolve

        device = resolve_device(options.device).type
        print(f"minibert-ner: precision {resolve(options.dtype, options.quantize, device)}",
              file=sys.stderr)  # fmt: skip
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
        connect_timeout=args.connect_timeout,
        log=sys.stderr,
        options=options,
        gliner=gliner_settings(args),
    )
    print(summary.describe())
    return summary.exit_status
