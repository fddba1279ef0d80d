"""Label texts with named entities (the default action of minibert-ner).

  minibert-ner "My name is Wolfgang and I live in Berlin"
  minibert-ner --file texts.txt                one text per line
  minibert-ner --file report.txt --document    the whole file is one text
  cat texts.txt | minibert-ner --format jsonl  standard input, one text per line
  minibert-ner -- evaluate                     a text that equals a subcommand's name

Output formats: json (one array), jsonl (one object per text: {"text", "entities"}), table (for
people), conll (one "word label" line per whitespace-separated word, blank line after each text).
Offsets count characters. A progress bar goes to stderr when it is a terminal.
Exit status: 0 done; 2 bad arguments, unreadable input (the message names the line of invalid
UTF-8) or unknown model; 130 interrupted; 141 output closed early (e.g. piped into `head`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, TextIO

from ..errors import InputError
from ..inference.pipeline import pipeline
from .options import add_pipeline_arguments, pipeline_options
from .progress import Progress

__all__ = [
    "FORMATS",
    "add_arguments",
    "run",
]

FORMATS = ("json", "jsonl", "table", "conll")
CHUNK_LINES = 2048  # lines labelled together: sorted by length within a chunk, then written
CHUNK_CHARS = 1 << 22  # ... or fewer lines once they hold this many characters


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter  # keep the examples' layout
    parser.add_argument(
        "texts", nargs="*", metavar="TEXT", help="texts to label (none: read --file or stdin)"
    )
    parser.add_argument(
        "-f",
        "--file",
        metavar="PATH",
        help="read texts from a UTF-8 file, one per line ('-': stdin)",
    )
    parser.add_argument(
        "--document",
        action="store_true",
        help="the whole file (or stdin) is one text; long text runs as overlapping windows",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="output format (default: table on a terminal, jsonl otherwise)",
    )
    add_pipeline_arguments(parser, model_required=False)


@dataclass
class Chunk:
    texts: list[str]
    size: int  # bytes of input they came from (for the progress bar)


def check_utf8(data: bytes, name: str, first_line: int = 1) -> str:
    """Decode UTF-8, or say which line (and which byte in it) is not UTF-8."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = first_line + data.count(b"\n", 0, e.start)
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise InputError(
            f"{name}, line {line}: not valid UTF-8 (byte {data[e.start]:#04x} at byte {column} of "
            "the line); save the text as UTF-8"
        ) from None
    return text.removeprefix("\ufeff") if first_line == 1 else text  # a byte-order mark


def read_lines(stream: BinaryIO, name: str) -> Iterator[Chunk]:
    """One text per line (without its line ending), in chunks."""
    texts: list[str] = []
    size = chars = 0
    try:
        for number, raw in enumerate(stream, 1):
            text = check_utf8(raw, name, number).rstrip("\r\n")
            texts.append(text)
            size += len(raw)
            chars += len(text)
            if len(texts) >= CHUNK_LINES or chars >= CHUNK_CHARS:
                yield Chunk(texts, size)
                texts, size, chars = [], 0, 0
    except OSError as e:
        raise InputError(f"cannot read {name}: {e.strerror or e}") from e
    if texts:
        yield Chunk(texts, size)


def read_document(stream: BinaryIO, name: str) -> Iterator[Chunk]:
    try:
        data = stream.read()
    except OSError as e:
        raise InputError(f"cannot read {name}: {e.strerror or e}") from e
    yield Chunk([check_utf8(data, name)], len(data))


def preview(text: str, width: int = 100) -> str:
    """One line of a text for the table: whitespace collapsed, cut at `width`."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


class Writer:
    """Writes each text's result in one of FORMATS as it comes (json streams its array too)."""

    def __init__(self, fmt: str, stream: TextIO) -> None:
        self.fmt, self.out, self.count = fmt, stream, 0

    def write(self, text: str, result: list) -> None:
        """`result`: entity dicts, or for conll the words' labels."""
        out, first = self.out, self.count == 0
        self.count += 1
        if self.fmt in ("json", "jsonl"):
            record = json.dumps({"text": text, "entities": result}, ensure_ascii=False)
            if self.fmt == "jsonl":
                out.write(record + "\n")
            else:
                out.write(("[\n" if first else ",\n") + record)
        elif self.fmt == "conll":
            out.writelines(
                f"{word} {label}\n" for word, label in zip(text.split(), result, strict=True)
            )
            out.write("\n")
        else:
            out.write(("" if first else "\n") + preview(text) + "\n")
            if not result:
                out.write("  (no entities)\n")
            rows = [
                (e.get("entity_group", e.get("entity")), f"{e['score']:.4f}",
                 f"{e['start']}:{e['end']}", e["word"])
                for e in result
            ]  # fmt: skip
            widths = [max(len(row[k]) for row in rows) for k in range(3)] if rows else []
            for label, score, span, word in rows:
                out.write(f"  {label:<{widths[0]}}  {score}  {span:>{widths[2]}}  {word}\n")

    def close(self) -> None:
        if self.fmt == "json":
            self.out.write("[]\n" if self.count == 0 else "\n]\n")
        self.out.flush()


def open_input(args: argparse.Namespace) -> tuple[Iterator[Chunk], int | None]:
    """The chunks of text to label, and the input's size in bytes when known (for progress)."""
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
        return iter([Chunk(list(args.texts), 0)]), None
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
    reader = read_document if args.document else read_lines
    return reader(stream, name), total


def run(args: argparse.Namespace) -> int:
    fmt = args.format or ("table" if sys.stdout.isatty() else "jsonl")
    if fmt == "conll" and args.aggregation_strategy is not None:
        raise InputError(
            "--format conll labels each word by its first token; --aggregation does not apply"
        )
    chunks, total = open_input(args)  # bad files fail here, before the model loads
    ner = pipeline(args.model, options=pipeline_options(args))
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(encoding="utf-8")  # JSON is UTF-8, whatever the locale says
    writer = Writer(fmt, sys.stdout)
    try:
        # A bar for files and streams, never for texts given as arguments.
        with Progress(total=total, unit="texts", enabled=not args.texts) as progress:
            for chunk in chunks:
                if fmt == "conll":
                    results = ner.label_words([text.split() for text in chunk.texts])
                else:
                    results = ner(chunk.texts)
                for text, result in zip(chunk.texts, results, strict=True):
                    writer.write(text, result)
                sys.stdout.flush()
                progress.update(len(chunk.texts), chunk.size)
        writer.close()
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as a process killed by SIGPIPE would.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return 0
