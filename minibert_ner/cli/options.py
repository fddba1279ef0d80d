"""Command-line options that several subcommands share, declared once, so that the same thing
has the same flag, short form and default in every subcommand.

- `add_model_argument`, `add_output_argument`, `add_format_argument`: -m/--model, -o/--output and
  --format (its values and their meanings from one table, `FORMATS`).
- `add_pipeline_arguments` / `pipeline_options`: one flag per field of
  `inference.options.PipelineOptions` (the fields are read from the dataclass; `PIPELINE_FLAGS`
  holds only what is the command line's own: flag names, help, argparse types), in a section of
  --help per option group (`SECTIONS`), and the `PipelineOptions` the given flags stand for.
  The fields' groups decide which commands take which: `ENTITY_FIELDS` (not for commands that
  label words), `WORD_FIELDS` (the rest), `LOADING_FIELDS` (for commands that load a model their
  own way: inspect, train).
- `add_gliner_arguments` / `gliner_pipeline`: --labels and the other flags of GLiNER models
  (zero-shot: the entity types are named on the command line), and the `GLiNERPipeline` they make.
- `int_at_least`, `positive_float`: argparse types that reject bad numbers with a one-line error.

Nothing here imports torch: `--help` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from ..inference.options import (
    DEFAULT_MODEL,
    DTYPES,
    ENTITY,
    GROUPS,
    LOADING,
    QUANTIZATIONS,
    RUNNER,
    STRATEGIES,
    WEIGHTS,
    WORD_GROUPINGS,
    PipelineOptions,
    fields_in,
)
from ..writers import WRITERS

__all__ = [
    "ENTITY_FIELDS",
    "FORMATS",
    "LOADING_FIELDS",
    "PIPELINE_FLAGS",
    "SECTIONS",
    "WORD_FIELDS",
    "add_format_argument",
    "add_gliner_arguments",
    "add_model_argument",
    "add_output_argument",
    "add_pipeline_arguments",
    "gliner_pipeline",
    "gliner_settings",
    "add_verbose_argument",
    "int_at_least",
    "label_list",
    "pipeline_options",
    "positive_float",
]

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


def label_list(text: str) -> tuple[str, ...]:
    """argparse type: comma-separated labels ("O,MISC"); "" is none. One value, not many, so
    that the texts after the flag stay texts."""
    return tuple(label.strip() for label in text.split(",") if label.strip())


# PipelineOptions field -> (flags, argparse keywords besides the default, which comes from the
# field). Every field has an entry: tests/test_cli.py checks it.
PIPELINE_FLAGS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "aggregation_strategy": (
        ("-a", "--aggregation", "--aggregation-strategy"),
        {
            "choices": STRATEGIES,
            "type": str.lower,
            "metavar": "STRATEGY",
            "help": f"how tokens become entities, as in transformers: {', '.join(STRATEGIES)}",
        },
    ),  # fmt: skip
    "ignore_labels": (
        ("--ignore-labels",),
        {
            "type": label_list,
            "metavar": "LABEL,...",
            "help": "entity groups to leave out, comma-separated; '' for none (default: O)",
        },
    ),
    "word_grouping": (
        ("--word-grouping",),
        {
            "choices": WORD_GROUPINGS,
            "help": "what a word is: transformers' rule (default) or the tokenizer's word ids, "
            "with each entity's word the text itself",
        },
    ),  # fmt: skip
    "stride": (
        ("--stride",),
        {
            "type": int_at_least(0),
            "help": "tokens that neighbouring windows over long text "
            "share, at least; at most half a window",
        },
    ),  # fmt: skip
    "max_length": (
        ("--max-length",),
        {
            "type": int_at_least(2),
            "help": "tokens per window, special tokens included (default: the model's positions)",
        },
    ),  # fmt: skip
    "dtype": (
        ("--dtype",),
        {
            "choices": DTYPES,
            "help": "weights' dtype; bfloat16-mixed: bfloat16 matmuls, the rest float32; auto: "
            "the fastest mode this CPU can trust (docs/benchmarks.md) (default: float32)",
        },
    ),  # fmt: skip
    "quantize": (
        ("--quantize",),
        {
            "choices": QUANTIZATIONS,
            "help": "int8 dynamic quantization of the linear layers (CPU "
            "speed, needs the quant extra: pip install 'minibert-ner[quant]'); default: exact",
        },
    ),  # fmt: skip
    "revision": (
        ("--revision",),
        {"help": "a hub model's branch, tag or commit (default: main)"},
    ),
    "device": (
        ("--device",),
        {
            "help": "cpu, cuda, cuda:N, mps, or as in transformers -1 (cpu) / N (cuda:N) "
            "(default: cuda if available)"
        },
    ),  # fmt: skip
    "batch_size": (
        ("--batch-size",),
        {"type": int_at_least(1), "help": "texts or windows per forward pass, at most"},
    ),
    "max_batch_tokens": (
        ("--max-batch-tokens",),
        {"type": int_at_least(1), "help": "padded tokens per forward pass, at most"},
    ),
    "compile": (
        ("--compile",),
        {"action": "store_true", "help": "run the model via torch.compile"},
    ),
    "token": (
        ("--token",),
        {"help": "hub access token for private models (default: HF_TOKEN or the cached login)"},
    ),
}
# The option groups' sections in --help, in this order.
SECTIONS = {
    ENTITY: "entities (how token labels become entities)",
    RUNNER: "windows and batches (how texts go through the model)",
    LOADING: "model loading",
}
assert tuple(SECTIONS) == GROUPS
# The fields that make entities out of token labels: not for commands that label words.
ENTITY_FIELDS = fields_in(ENTITY)
# The fields for commands that label words, not entities (evaluate).
WORD_FIELDS = tuple(
    f.name for f in dataclasses.fields(PipelineOptions) if f.name not in ENTITY_FIELDS
)
# The fields that say which weights to load, where and how: for every command that loads a model.
LOADING_FIELDS = fields_in(WEIGHTS)

# Every output format any command writes -> what it is (writers.WRITERS). A command offers
# those that fit its output; the same name means the same thing everywhere.
FORMATS = {name: writer.description for name, writer in WRITERS.items()}


def add_model_argument(parser: Parser, *, base: bool = False) -> None:
    """-m/--model. base=True: the checkpoint to fine-tune (required: no NER model is a base)."""
    if base:
        parser.add_argument(
            "-m", "--model", required=True, help="checkpoint to fine-tune: hub id or folder"
        )
    else:
        parser.add_argument(
            "-m",
            "--model",
            default=DEFAULT_MODEL,
            help=f"NER model: hub id or folder (default: {DEFAULT_MODEL})",
        )


def add_output_argument(parser: Parser, *, required: bool, metavar: str, help: str) -> None:
    """-o/--output: where the command's result goes (a file, or a folder)."""
    parser.add_argument("-o", "--output", required=required, metavar=metavar, help=help)


def add_format_argument(parser: Parser, choices: tuple[str, ...], default: str) -> None:
    """--format, offering `choices` of FORMATS; `default` is a name or a phrase."""
    lines = "; ".join(f"{name}: {FORMATS[name]}" for name in choices)
    parser.add_argument(
        "--format",
        choices=choices,
        default=default if default in choices else None,
        help=f"output format ({lines}; default: {default})",
    )


def add_verbose_argument(parser: Parser) -> None:
    """-v/--verbose: say on stderr which precision mode the model runs in, and why."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="say on stderr which precision mode runs (what --dtype auto picked, and why)",
    )


def add_pipeline_arguments(
    parser: Parser, fields: tuple[str, ...] | None = None, help: dict[str, str] | None = None
) -> None:
    """One flag per `PipelineOptions` field (or per name in `fields`), with the field's default
    shown; `help` replaces a flag's help where a command uses the option its own way. Given the
    parser, the flags go in one section per option group (`SECTIONS`); given an argument group,
    into that group."""
    defaults = PipelineOptions()
    sections: dict[str, Parser] = {}
    for field in dataclasses.fields(PipelineOptions):
        if fields is not None and field.name not in fields:
            continue
        if isinstance(parser, argparse.ArgumentParser):
            (group,) = field.metadata["names"] & set(GROUPS)
            if group not in sections:
                sections[group] = parser.add_argument_group(SECTIONS[group])
            section = sections[group]
        else:
            section = parser
        flags, kwargs = PIPELINE_FLAGS[field.name]
        default = getattr(defaults, field.name)
        help_text = (help or {}).get(field.name, kwargs["help"])
        if default not in (None, False) and "default" not in help_text:
            shown = ",".join(default) if isinstance(default, tuple) else default
            help_text += f" (default: {shown})"
        # None: not given, so that the options object's own default applies.
        section.add_argument(*flags, **{**kwargs, "help": help_text}, dest=field.name, default=None)


def pipeline_options(args: argparse.Namespace) -> PipelineOptions:
    """The `PipelineOptions` that the flags of `add_pipeline_arguments` given on the command line
    stand for (the others keep their defaults)."""
    given = {
        field.name: getattr(args, field.name)
        for field in dataclasses.fields(PipelineOptions)
        if getattr(args, field.name, None) is not None
    }
    return PipelineOptions().replace(**given)


def unit_float(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def add_gliner_arguments(
    parser: argparse.ArgumentParser, *, label_map: bool = False, served: bool = False
) -> None:
    """--labels (which makes --model a GLiNER model), --threshold, --nested, --multi-label;
    label_map: --label-map too (evaluate: GLiNER labels -> the data's entity types); served:
    the flags are the defaults of a server's requests (a GLiNER model is found by its files)."""
    group = parser.add_argument_group("GLiNER models (zero-shot: name the entity types)")
    group.add_argument(
        "--labels",
        metavar="LABEL,...",
        help="entity types to find, comma-separated (e.g. person,company); --model is then a "
        "GLiNER model (gliner_config.json) (default: none: --model is a token classifier)"
        if not served
        else "default entity types of requests that name none, comma-separated (e.g. "
        "person,company), for a GLiNER model (gliner_config.json) (default: none: each "
        "request names its labels)",
    )
    group.add_argument(
        "--threshold", type=unit_float, default=0.5, help="least score of an entity (default: 0.5)"
    )
    group.add_argument(
        "--nested", action="store_true", help="allow entities inside entities (flat_ner=False)"
    )
    group.add_argument(
        "--multi-label", action="store_true", help="let one span carry several labels"
    )
    if label_map:
        group.add_argument(
            "--label-map",
            metavar="LABEL=TAG,...",
            help="write each GLiNER label as the data's entity type, e.g. person=PER,city=LOC "
            "(default: the labels as given)",
        )


def gliner_settings(args: argparse.Namespace) -> dict[str, Any] | None:
    """The GLiNERPipeline fields that --labels and the GLiNER flags give; None without
    --labels."""
    if args.labels is None:
        return None
    from ..gliner.pipeline import parse_label_map, parse_labels

    label_map = getattr(args, "label_map", None)
    return {
        "labels": parse_labels(args.labels),
        "threshold": args.threshold,
        "flat_ner": not args.nested,
        "multi_label": args.multi_label,
        "label_map": parse_label_map(label_map) if label_map else {},
    }


def gliner_pipeline(args: argparse.Namespace, options: PipelineOptions) -> Any:
    """The GLiNERPipeline that --model, --labels and the GLiNER flags describe."""
    from ..gliner.pipeline import GLiNERPipeline

    return GLiNERPipeline.from_options(args.model, options, **gliner_settings(args))  # type: ignore[arg-type]
