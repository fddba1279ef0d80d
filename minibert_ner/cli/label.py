"""Label texts with named entities.

  minibert-ner "My name is Wolfgang and I live in Berlin" "Paris is big"
  minibert-ner label --file texts.txt            one text per line (label is the default command)
  minibert-ner --file report.txt --document      the whole file is one text
  cat texts.txt | minibert-ner --format jsonl    standard input, one text per line
  minibert-ner --file texts.txt -o out.json      write to a file (complete, or not at all)
  minibert-ner -- evaluate                       a text that equals a subcommand's name

Formats: json (one array; written only once every text is labelled, so it is never cut short),
jsonl (one object per text: {"text", "entities"}), table (for people; control characters in the
text are shown escaped), conll (one "word label" line per whitespace-separated word, a blank line
after each text). Offsets count characters. A progress bar goes to stderr when it is a terminal.
Exit status: 0 done; 3 done, but --skip-invalid skipped lines (listed on stderr); 2 bad
arguments, unreadable input (the message names the line of invalid UTF-8) or unknown model;
1 the output cannot be written; 130 interrupted; 141 output closed early (piped into `head`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from ..errors import InputError
from ..textio import decode_line, utf8_problem
from ..writers import WRITERS, formats_for, suffix_formats
from .options import (
    add_format_argument,
    add_gliner_arguments,
    add_model_argument,
    add_output_argument,
    add_pipeline_arguments,
    add_verbose_argument,
    gliner_pipeline,
    pipeline_options,
)
from .output import output_file
from .progress import Progress

__all__ = [
    "EXIT_SKIPPED",
    "FORMATS",
    "add_arguments",
    "run",
]

FORMATS = formats_for("label")
EXIT_SKIPPED = 3  # as a batch job that finished but skipped records
CHUNK_LINES = 2048  # lines labelled together: sorted by length within a chunk, then written
CHUNK_CHARS = 1 << 22  # ... or fewer lines once they hold this many characters
SHOWN_SKIPPED = 10  # skipped lines named in the message; the rest are counted


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "texts", nargs="*", metavar="TEXT", help="texts to label (none: read --file or stdin)"
    )
    parser.add_argument(
        "-f",
        "--file",
        metavar="PATH",
        help="read texts from a UTF-8 file, one per line ('-': stdin) (default: the TEXT "
        "arguments, else stdin)",
    )
    parser.add_argument(
        "--document",
        action="store_true",
        help="the whole file (or stdin) is one text; long text runs as overlapping windows",
    )
    parser.add_argument(
        "--skip-invalid",
        action="store_true",
        help="skip lines that are not valid UTF-8 (listed on stderr, exit status 3) instead of "
        "stopping at the first",
    )
    add_format_argument(parser, FORMATS, "table on a terminal, jsonl otherwise")
    add_output_argument(
        parser, required=False, metavar="PATH", help="write to this file (default: stdout)"
    )
    add_model_argument(parser)
    add_gliner_arguments(parser)
    add_pipeline_arguments(parser)
    add_verbose_argument(parser)


@dataclass
class Chunk:
    texts: list[str]
    size: int  # bytes of input they came from (for the progress bar)


@dataclass
class Skipped:
    """Lines --skip-invalid left out: (line number, what was wrong), in input order."""

    lines: list[tuple[int, str]] = field(default_factory=list)

    def describe(self, name: str) -> str:
        shown = "; ".join(f"line {n}: {problem}" for n, problem in self.lines[:SHOWN_SKIPPED])
        more = len(self.lines) - SHOWN_SKIPPED
        return (
            f"{name}: skipped {len(self.lines)} line(s) that are not valid UTF-8 ({shown}"
            + (f"; and {more} more" if more > 0 else "")
            + "); save the text as UTF-8 to label them"
        )


def not_utf8(name: str, line: int, problem: str, skippable: bool) -> InputError:
    hint = ", or pass --skip-invalid to skip such lines" if skippable else ""
    return InputError(f"{name}, line {line}: {problem}; save the text as UTF-8{hint}")


def read_lines(stream: BinaryIO, name: str, skipped: Skipped | None) -> Iterator[Chunk]:
    """One text per line (without its line ending), in chunks. A line that is not UTF-8 is an
    InputError, or with `skipped` a line noted there and left out."""
    texts: list[str] = []
    size = chars = 0
    try:
        for number, raw in enumerate(stream, 1):
            size += len(raw)
            try:
                text = decode_line(raw, first=number == 1)
            except UnicodeDecodeError as e:
                if skipped is None:
                    raise not_utf8(name, number, utf8_problem(e), skippable=True) from None
                skipped.lines.append((number, utf8_problem(e)))
                continue
            texts.append(text)
            chars += len(text)
            if len(texts) >= CHUNK_LINES or chars >= CHUNK_CHARS:
                yield Chunk(texts, size)
                texts, size, chars = [], 0, 0
    except OSError as e:
        raise InputError(f"cannot read {name}: {e.strerror or e}") from e
    if texts or size:
        yield Chunk(texts, size)


def read_document(stream: BinaryIO, name: str) -> Iterator[Chunk]:
    """The whole input as one text."""
    try:
        data = stream.read()
    except OSError as e:
        raise InputError(f"cannot read {name}: {e.strerror or e}") from e
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")  # a byte-order mark
    except UnicodeDecodeError as e:
        line_start = data.rfind(b"\n", 0, e.start) + 1
        line = data.count(b"\n", 0, e.start) + 1
        raise not_utf8(name, line, utf8_problem(e, line_start), skippable=False) from None
    yield Chunk([text], len(data))


def open_input(
    args: argparse.Namespace, skipped: Skipped | None
) -> tuple[Iterator[Chunk], int | None, str]:
    """The chunks of text to label, the input's size in bytes when known (for progress), and
    its name for messages."""
    if args.texts:
        if args.file is not None:
            raise InputError("give texts as arguments or --file, not both")
        if args.document:
            raise InputError("--document reads --file or standard input; each argument is one text")
        for i, text in enumerate(args.texts, 1):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:  # argv bytes that were not UTF-8 arrive as surrogates
                raise InputError(f"argument {i} is not valid UTF-8 text") from None
        return iter([Chunk(list(args.texts), 0)]), None, "arguments"
    if args.file in (None, "-"):
        if args.file is None and sys.stdin.isatty():
            raise InputError(
                "no input: give texts as arguments, --file PATH, or pipe text into standard input"
            )
        stream, name = sys.stdin.buffer, "standard input"
    else:
        name = args.file
        try:
            stream = open(args.file, "rb")  # noqa: SIM115 (read lazily, closed at exit)
        except OSError as e:
            raise InputError(f"cannot read {args.file}: {e.strerror or e}") from e
    try:
        info = os.fstat(stream.fileno())
        total = info.st_size if os.path.stat.S_ISREG(info.st_mode) else None
    except (OSError, ValueError):
        total = None
    chunks = read_document(stream, name) if args.document else read_lines(stream, name, skipped)
    return chunks, total, name


# --output's suffix -> the format it implies when --format is not given.
SUFFIX_FORMATS = suffix_formats("label")


def output_format(args: argparse.Namespace) -> str:
    if args.format is not None:
        return args.format
    if args.output is not None:
        return SUFFIX_FORMATS.get(Path(args.output).suffix.lower(), "jsonl")
    return "table" if sys.stdout.isatty() else "jsonl"


def run(args: argparse.Namespace) -> int:
    from ..inference.pipeline import pipeline  # here: --help needs no torch

    fmt = output_format(args)
    words = WRITERS[fmt].result == "labels"  # the words' labels, not entities (conll)
    if words and args.aggregation_strategy is not None:
        raise InputError(
            f"--format {fmt} labels each word by its first token; --aggregation does not apply"
        )
    if args.skip_invalid and args.document:
        raise InputError(
            "--skip-invalid skips lines, but with --document the input is one text; "
            "convert it to UTF-8 (e.g. iconv -f latin1 -t utf-8)"
        )
    if args.skip_invalid and args.texts:
        raise InputError("--skip-invalid applies to --file or standard input, not to arguments")
    skipped = Skipped() if args.skip_invalid else None
    chunks, total, name = open_input(args, skipped)  # bad files fail here, before the model loads
    options = pipeline_options(args)
    with output_file(args.output) as stream:
        ner = (
            gliner_pipeline(args, options)
            if args.labels is not None
            else pipeline(args.model, options=options)
        )
        if args.verbose:
            print(f"minibert-ner: precision {ner.precision}", file=sys.stderr)
        # Standard output is read as it grows: a JSON array waits there until it is whole.
        writer = WRITERS[fmt](stream, live=args.output is None)
        # A bar for files and streams, never for texts given as arguments.
        with Progress(total=total, unit="texts", enabled=not args.texts) as progress:
            for chunk in chunks:
                if words:
                    results = ner.label_words([text.split() for text in chunk.texts])
                else:
                    results = ner(chunk.texts)
                for text, result in zip(chunk.texts, results, strict=True):
                    writer.write({"text": text, writer.result: result})
                stream.flush()
                progress.update(len(chunk.texts), chunk.size)
        writer.close()
    if skipped is not None and skipped.lines:
        print(f"minibert-ner: warning: {skipped.describe(name)}", file=sys.stderr)
        return EXIT_SKIPPED
    return 0
