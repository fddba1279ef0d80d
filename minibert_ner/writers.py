"""Output formats: one writer class per format, and the table of them (`WRITERS`) from which
every command takes its `--format` choices, the file suffixes that imply a format, and the
writer itself.

    json     one JSON array of records                      label
    jsonl    one JSON object a line                         label, batch
    table    aligned text for people                        label
    conll    one "word label" line a word                   label
    parquet  one row a record, columns of declared types    batch

A record is a dict: the label command's {"text", "entities"} ({"text", "labels"} for CoNLL,
which labels words: `Writer.result`), a batch job's {"line" or "row", "id"?, "entities"}. Every
writer has the same interface: `write(record)`; `problem(record)`, why a record cannot be
written in the format (the caller reports it instead of writing it); and an end. A writer
given a stream writes to it and `close()` ends the format (the stream is the caller's); one
given a path writes an `AtomicFile`, which `commit()` ends and publishes under the path and
`abort()` removes.

Adding a format is one class here and one entry in `WRITERS`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any, ClassVar

from .errors import MissingExtraError
from .files import AtomicFile
from .inference.aggregation import entity_fields
from .textio import for_terminal, json_line

__all__ = [
    "WRITERS",
    "ConllWriter",
    "JsonWriter",
    "JsonlWriter",
    "ParquetWriter",
    "TableWriter",
    "Writer",
    "arrow_entities_type",
    "formats_for",
    "require_pyarrow",
    "suffix_formats",
]


def require_pyarrow(purpose: str) -> tuple[Any, Any]:
    """`pyarrow` and `pyarrow.parquet`, or a MissingExtraError saying how to install them."""
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError as e:
        raise MissingExtraError(
            f"{purpose} needs pyarrow, which is not installed: pip install pyarrow "
            "(or pip install 'minibert-ner[ray]', which includes it); or use JSONL files"
        ) from e
    return pyarrow, pyarrow.parquet


def arrow_entities_type(strategy: str) -> Any:
    """The Arrow type of a column of entity lists for an aggregation strategy: a list of structs
    with the fields (and field order) of `aggregation.entity_fields`."""
    pa, _ = require_pyarrow("an Arrow column of entities")
    types = {str: pa.string(), float: pa.float64(), int: pa.int64()}
    return pa.list_(pa.struct([(name, types[kind]) for name, kind in entity_fields(strategy)]))


class Writer:
    """Writes records in one format as they come, to a stream or (given a path) to a file that
    appears under its name only once `commit()` has run.

    `keys`: the key fields of each record before its result ("line" or "row", then "id"), for
    formats with declared columns; `strategy`: the aggregation strategy, which decides the
    entities' fields; `live`: others read the stream as it grows (standard output), so a format
    that is only valid whole (a JSON array) is held until `close()`.
    """

    name: ClassVar[str]  # the --format value
    description: ClassVar[str]  # for --help
    commands: ClassVar[tuple[str, ...]]  # the commands that offer it
    suffixes: ClassVar[tuple[str, ...]] = ()  # file suffixes that imply it; the first is written
    result: ClassVar[str] = "entities"  # the record's result field: "entities" or "labels"
    binary: ClassVar[bool] = False  # writes bytes, not text

    def __init__(
        self,
        out: IO[Any] | str | Path,
        *,
        keys: tuple[str, ...] = (),
        strategy: str = "simple",
        live: bool = False,
    ) -> None:
        to_path = isinstance(out, (str, os.PathLike))
        self.file = AtomicFile(out, binary=self.binary) if to_path else None
        self.out = self.file.stream if self.file is not None else out
        self.keys, self.strategy, self.live = keys, strategy, live

    def problem(self, record: dict[str, Any]) -> str | None:
        """Why `record` cannot be written in this format, or None if it can."""
        return None

    def write(self, record: dict[str, Any]) -> None:
        """Write one record (one whose `problem` is None)."""
        raise NotImplementedError

    def close(self) -> None:
        """End the format (a closing bracket, a file footer) and flush; the stream stays open."""
        self.out.flush()

    def commit(self) -> None:
        """End the format and publish the file under its path (writers given a path)."""
        assert self.file is not None, "a writer given a stream: its owner ends the stream"
        self.close()
        self.file.commit()

    def abort(self) -> None:
        """Remove the unfinished file (writers given a path)."""
        assert self.file is not None, "a writer given a stream: its owner ends the stream"
        self.file.abort()


class JsonWriter(Writer):
    """One JSON array, a record a line: "[\\n{...},\\n{...}\\n]\\n" (none: "[]\\n")."""

    name, description = "json", "one JSON document"
    commands, suffixes = ("label",), (".json",)

    def __init__(self, out: IO[Any] | str | Path, **options: Any) -> None:
        super().__init__(out, **options)
        self.count = 0
        self.held: list[str] | None = [] if self.live else None

    def write(self, record: dict[str, Any]) -> None:
        line = json_line(record)
        if self.held is not None:
            self.held.append(line)
        else:
            self.out.write(("[\n" if self.count == 0 else ",\n") + line)
        self.count += 1

    def close(self) -> None:
        if self.held is not None:
            # Line by line, as unheld: one write larger than a pipe holds can be cut short
            # without an error, and a reader that went away would go unnoticed.
            for i, line in enumerate(self.held):
                self.out.write(("[\n" if i == 0 else ",\n") + line)
        self.out.write("[]\n" if self.count == 0 else "\n]\n")
        super().close()


class JsonlWriter(Writer):
    """JSON lines: UTF-8, one record a line whoever splits them (`textio.json_line`)."""

    name, description = "jsonl", "one JSON object a line"
    commands, suffixes = ("label", "batch"), (".jsonl", ".ndjson")

    def write(self, record: dict[str, Any]) -> None:
        self.out.write(json_line(record) + "\n")


def preview(text: str, width: int = 100) -> str:
    """One line of a text for the table: whitespace collapsed, cut at `width`."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


class TableWriter(Writer):
    """For people: each text's first line, then one aligned row per entity (group, score, span,
    word); control characters and bidirectional overrides shown escaped (`textio.for_terminal`)."""

    name, description = "table", "aligned text for people"
    commands = ("label",)

    def __init__(self, out: IO[Any] | str | Path, **options: Any) -> None:
        super().__init__(out, **options)
        self.count = 0

    def write(self, record: dict[str, Any]) -> None:
        out, entities = self.out, record["entities"]
        out.write(("" if self.count == 0 else "\n") + for_terminal(preview(record["text"])) + "\n")
        self.count += 1
        if not entities:
            out.write("  (no entities)\n")
        rows = [
            (for_terminal(e.get("entity_group", e.get("entity"))), f"{e['score']:.4f}",
             f"{e['start']}:{e['end']}", for_terminal(e["word"]))
            for e in entities
        ]  # fmt: skip
        widths = [max(len(row[k]) for row in rows) for k in range(3)] if rows else []
        for label, score, span, word in rows:
            out.write(f"  {label:<{widths[0]}}  {score}  {span:>{widths[2]}}  {word}\n")


class ConllWriter(Writer):
    """CoNLL: one "word label" line per whitespace-separated word of the text, a blank line
    after each text. Records hold the words' labels: {"text", "labels"}."""

    name, description = "conll", "one 'word label' line a word, a blank line after each text"
    commands, suffixes = ("label",), (".conll",)
    result = "labels"

    def write(self, record: dict[str, Any]) -> None:
        words = record["text"].split()
        self.out.writelines(
            f"{word} {label}\n" for word, label in zip(words, record["labels"], strict=True)
        )
        self.out.write("\n")


_INT64_RANGE = range(-(2**63), 2**63)


class ParquetWriter(Writer):
    """Rows to a Parquet file in row groups, with a declared schema, never one guessed from the
    first rows: the key columns (`keys`: `line` or `row`, int64; `id`), and `entities`
    (`arrow_entities_type`). The id column takes the type of the first record's id, integer
    (int64) or string; a record whose id does not fit it has a `problem()` (a JSONL output holds
    any id)."""

    name, description = "parquet", "one Parquet file per input file"
    commands, suffixes = ("batch",), (".parquet",)
    binary = True
    ROWS_PER_GROUP = 8192

    def __init__(self, out: IO[Any] | str | Path, **options: Any) -> None:
        self.pa, self.pq = require_pyarrow(f"writing Parquet output {out}")  # before any file
        super().__init__(out, **options)
        self.has_id = "id" in self.keys
        self.entities_type = arrow_entities_type(self.strategy)
        self.id_kind: type | None = None  # int or str: the first written record's id
        self.rows: list[dict[str, Any]] = []
        self.writer: Any = None

    def problem(self, record: dict[str, Any]) -> str | None:
        if not self.has_id:
            return None
        value = record["id"]
        if isinstance(value, int) and value not in _INT64_RANGE:
            return f"id {value} does not fit a 64-bit integer column; use --format jsonl"
        kind = int if isinstance(value, int) else str
        if self.id_kind is not None and kind is not self.id_kind:
            names = {int: "an integer", str: "a string"}
            return (
                f"id {value!r} is {names[kind]}, but this file's first id is {names[self.id_kind]}; "
                "a Parquet column holds one type: use --format jsonl, or ids of one type"
            )
        return None

    def write(self, record: dict[str, Any]) -> None:
        if self.has_id and self.id_kind is None:
            self.id_kind = int if isinstance(record["id"], int) else str
        self.rows.append(record)
        if len(self.rows) >= self.ROWS_PER_GROUP:
            self._flush()

    def _schema(self) -> Any:
        pa = self.pa
        fields = [(self.keys[0], pa.int64())]
        if self.has_id:
            ids = {int: pa.int64(), str: pa.string(), None: pa.null()}  # None: no record
            fields.append(("id", ids[self.id_kind]))
        return pa.schema([*fields, ("entities", self.entities_type)])

    def _flush(self) -> None:
        if self.writer is None:
            self.writer = self.pq.ParquetWriter(self.out, self._schema())
        table = self.pa.Table.from_pylist(self.rows, schema=self.writer.schema)
        self.writer.write_table(table)
        self.rows = []

    def close(self) -> None:
        if self.rows or self.writer is None:
            self._flush()
        self.writer.close()
        super().close()

    def abort(self) -> None:
        try:
            if self.writer is not None:
                self.writer.close()
        except Exception:  # noqa: BLE001 (an abort after a failed write: the file goes anyway)
            pass
        finally:
            super().abort()


# Every output format -> its writer. Order: as each command lists its choices.
WRITERS: dict[str, type[Writer]] = {
    w.name: w for w in (JsonWriter, JsonlWriter, TableWriter, ConllWriter, ParquetWriter)
}


def formats_for(command: str) -> tuple[str, ...]:
    """The formats a command offers (its --format choices)."""
    return tuple(name for name, w in WRITERS.items() if command in w.commands)


def suffix_formats(command: str) -> dict[str, str]:
    """File suffix -> the format it implies, among those `command` offers."""
    return {s: name for name in formats_for(command) for s in WRITERS[name].suffixes}
