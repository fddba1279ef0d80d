"""Record files: reading input corpora into records, and writing records to output files.

Reading: `read_records` turns one input file into `Record`s, by its suffix (`INPUT_FORMATS`):

    corpus/a.txt      one text a line
    corpus/b.jsonl    one JSON object a line, text in a field: {"id": 7, "text": "..."}
    corpus/c.parquet  a text column

Records are numbered by `line` (1-based, as editors count) in text and JSONL files and by `row`
(0-based, as Arrow and pandas index) in Parquet files; `id` is added when an id column is named.
A record that cannot be labelled (invalid UTF-8, not JSON, no text field, text not a string, ...)
carries the reason instead of a text, so that it can be reported rather than dropped.

Writing: `JsonlWriter` and `ParquetWriter` (`OUTPUT_FORMATS`) write records to `<name>.tmp` and
rename it to `<name>` when complete (`publish`), so a file under its final name is always whole.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BatchError, MissingExtraError

# Input file suffix -> how its records are read.
INPUT_FORMATS = {".txt": "text", ".text": "text", ".jsonl": "jsonl", ".ndjson": "jsonl",
                 ".parquet": "parquet"}  # fmt: skip
# Output formats, one writer each: JsonlWriter, ParquetWriter.
OUTPUT_FORMATS = ("jsonl", "parquet")


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


# ---------------------------------------------------------------------------------------------
# Reading: files -> records
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One input record: where it is, and its text or the reason it has none."""

    key: dict[str, Any]  # {"line": 3} or {"row": 2}, plus {"id": ...} when an id column is named
    text: str | None = None  # None for a bad record (and once labelled by Ray: not sent back)
    error: str | None = None  # why the record cannot be labelled; None for a good record


def find_inputs(patterns: str | Path | Sequence[str | Path]) -> list[Path]:
    """The input files named by paths, folders (their files with a known suffix, recursively) or
    glob patterns (`corpus/*.jsonl`, `data/**/*.parquet`), sorted and without duplicates."""
    if isinstance(patterns, (str, Path)):
        patterns = [patterns]
    found: dict[Path, None] = {}  # insertion-ordered set
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in INPUT_FORMATS and p.is_file())
            if not files:
                raise BatchError(f"folder {path} holds no {_suffixes()} files")
        elif path.is_file():
            files = [path]
        else:
            files = sorted(
                Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file()
            )
            if not files:
                raise BatchError(f"no input file matches {str(pattern)!r}")
        for file in files:
            if file.suffix not in INPUT_FORMATS:
                raise BatchError(
                    f"{file}: unknown input type {file.suffix!r}; input files must end in "
                    f"{_suffixes()} (text lines, JSON lines, Parquet)"
                )
            found[file] = None
    return list(found)


def _suffixes() -> str:
    return "/".join(INPUT_FORMATS)


def check_input(path: Path, text_column: str = "text", id_column: str | None = None) -> None:
    """Fail early, before any labelling, on a Parquet file whose columns cannot be right (a
    missing column, a text column that is not text): that is a wrong option, not a bad record."""
    if INPUT_FORMATS[path.suffix] != "parquet":
        return  # text and JSON lines are checked record by record
    pa, pq = require_pyarrow(f"reading {path}")
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as e:
        raise BatchError(f"cannot read Parquet file {path}: {e}") from e
    names = ", ".join(schema.names)
    for column, wanted, is_ok in (
        (text_column, "text (string or binary)", _is_text_type),
        (id_column, "string or integer", _is_id_type),
    ):
        if column is None:
            continue
        if column not in schema.names:
            flag = "--text-column" if column == text_column else "--id-column"
            raise BatchError(f"{path} has no column {column!r} (columns: {names}); pass {flag}")
        if not is_ok(pa, schema.field(column).type):
            raise BatchError(
                f"{path}: column {column!r} holds {schema.field(column).type}, not {wanted}"
            )


def _is_text_type(pa: Any, t: Any) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return (
        pa.types.is_string(t)
        or pa.types.is_large_string(t)
        or pa.types.is_binary(t)
        or pa.types.is_large_binary(t)
        or pa.types.is_null(t)  # an all-null column: every record is reported as an error
        or getattr(pa.types, "is_string_view", lambda _: False)(t)
        or getattr(pa.types, "is_binary_view", lambda _: False)(t)
    )


def _is_id_type(pa: Any, t: Any) -> bool:
    return _is_text_type(pa, t) or pa.types.is_integer(t)


def read_records(
    path: str | Path, *, text_column: str = "text", id_column: str | None = None
) -> Iterator[Record]:
    """Every record of one input file, in order, each with its text or its error.

    Text files: one text a line (an empty line is an empty text; `id_column` does not apply).
    JSONL: one JSON object a line, text in `text_column` (blank lines are not records).
    Parquet: text in column `text_column` (see `check_input` for the column checks).
    """
    path = Path(path)
    kind = INPUT_FORMATS.get(path.suffix)
    if kind == "parquet":
        yield from _read_parquet(path, text_column, id_column)
        return
    if kind is None:
        raise BatchError(f"{path}: unknown input type {path.suffix!r}; use {_suffixes()}")
    try:
        with open(path, "rb") as f:
            for number, raw in enumerate(f, start=1):
                if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]  # UTF-8 byte-order mark
                raw = raw.removesuffix(b"\n").removesuffix(b"\r")
                key: dict[str, Any] = {"line": number}
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    yield Record(key, error=_utf8_error(raw, e))
                    continue
                if kind == "text":
                    yield Record(key, text=line)
                elif line.strip():
                    yield _json_record(line, key, text_column, id_column)
    except OSError as e:
        raise BatchError(f"cannot read {path}: {e}") from e


def _utf8_error(raw: bytes, e: UnicodeDecodeError) -> str:
    return f"invalid UTF-8: byte {raw[e.start]:#04x} at byte {e.start} of the line ({e.reason})"


def _json_record(line: str, key: dict[str, Any], text_column: str, id_column: str | None) -> Record:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        return Record(key, error=f"not valid JSON: {e.msg} at character {e.pos}")
    if not isinstance(obj, dict):
        return Record(key, error=f"a JSON {_json_type(obj)}, not an object")
    if id_column is not None:
        if id_column not in obj:
            return Record(key, error=f"no {id_column!r} field (the id column)")
        problem = _id_problem(obj[id_column], id_column)
        if problem:
            return Record(key, error=problem)
        key = {**key, "id": obj[id_column]}
    if text_column not in obj:
        fields = ", ".join(list(obj)[:10]) or "none"
        return Record(key, error=f"no {text_column!r} field (fields: {fields})")
    problem = _text_problem(obj[text_column], text_column)
    return Record(key, error=problem) if problem else Record(key, text=obj[text_column])


def _text_problem(value: Any, column: str) -> str | None:
    """Why `value` is not a text we can label, or None if it is one."""
    if not isinstance(value, str):
        return f"{column!r} is {_json_type(value)}, not a string"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:  # JSON "\ud800" escapes decode to lone surrogates
        return (
            f"{column!r} has a lone surrogate {value[e.start]!r} at character {e.start}, "
            "which is not valid Unicode"
        )
    return None


def _id_problem(value: Any, column: str) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return f"id {column!r} is {_json_type(value)}, not a string or integer"
    return None


def _json_type(value: Any) -> str:
    names = {type(None): "null", bool: "boolean", int: "number", float: "number",
             str: "string", list: "array", dict: "object"}  # fmt: skip
    return names.get(type(value), type(value).__name__)


def _read_parquet(path: Path, text_column: str, id_column: str | None) -> Iterator[Record]:
    pa, pq = require_pyarrow(f"reading {path}")
    columns = [text_column] + ([id_column] if id_column else [])
    row = 0
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=4096, columns=columns):
            # As bytes, so that invalid UTF-8 is one record's error, not the whole file's.
            texts = batch.column(text_column).cast(pa.large_binary()).to_pylist()
            ids = batch.column(id_column) if id_column else None
            if ids is not None and not pa.types.is_integer(ids.type):
                ids = ids.cast(pa.large_binary())
            id_values = ids.to_pylist() if ids is not None else [None] * len(texts)
            for raw, id_value in zip(texts, id_values, strict=True):
                key: dict[str, Any] = {"row": row}
                row += 1
                if id_column is not None:
                    if id_value is None:
                        yield Record(key, error=f"id {id_column!r} is null")
                        continue
                    if isinstance(id_value, bytes):
                        try:
                            id_value = id_value.decode("utf-8")
                        except UnicodeDecodeError as e:
                            yield Record(key, error=f"id: {_utf8_error(id_value, e)}")
                            continue
                    key["id"] = id_value
                if raw is None:
                    yield Record(key, error=f"{text_column!r} is null")
                    continue
                try:
                    yield Record(key, text=raw.decode("utf-8"))
                except UnicodeDecodeError as e:
                    yield Record(key, error=_utf8_error(raw, e))
    except (OSError, pa.ArrowException) as e:
        raise BatchError(f"cannot read Parquet file {path}: {e}") from e


# ---------------------------------------------------------------------------------------------
# Writing: records -> a file under a temporary name, renamed into place when complete
# ---------------------------------------------------------------------------------------------


def temporary_path(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


def publish(tmp: Path, path: Path) -> None:
    """Make a complete file visible under its final name in one step (a rename on one disk)."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())  # its bytes are on disk before the name says it is complete
    os.replace(tmp, path)


class JsonlWriter:
    """JSON lines to `<path>.tmp`, renamed to `path` by `commit()`."""

    def __init__(self, path: Path) -> None:
        self.path, self.tmp = path, temporary_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.tmp, "w", encoding="utf-8")  # noqa: SIM115 (open until commit)

    def write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record, ensure_ascii=False) + "\n")

    def commit(self) -> None:
        self.file.close()
        publish(self.tmp, self.path)

    def abort(self) -> None:
        self.file.close()
        self.tmp.unlink(missing_ok=True)


class ParquetWriter:
    """Rows to a Parquet file at `<path>.tmp` in row groups, renamed to `path` by `commit()`.

    Column types are inferred from the data (entities: list of structs). Until some record has
    an entity, that type is unknown, so rows are held back until one does (or the file ends).
    """

    ROWS_PER_GROUP = 8192

    def __init__(self, path: Path) -> None:
        self.pa, self.pq = require_pyarrow(f"writing Parquet output {path}")
        self.path, self.tmp = path, temporary_path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: list[dict[str, Any]] = []
        self.writer: Any = None

    def write(self, record: dict[str, Any]) -> None:
        self.rows.append(record)
        if len(self.rows) >= self.ROWS_PER_GROUP:
            self._flush(final=False)

    def _flush(self, final: bool) -> None:
        pa = self.pa
        schema = self.writer.schema if self.writer else None
        try:
            table = pa.Table.from_pylist(self.rows, schema=schema)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise BatchError(
                f"records for {self.path} do not fit one Parquet schema ({e}); ids of mixed "
                "types (numbers and strings) cannot share a column: use --format jsonl"
            ) from e
        if self.writer is None:
            if not final and pa.types.is_null(table.schema.field("entities").type.value_type):
                return  # no entity seen yet: the entities type is still unknown
            self.writer = self.pq.ParquetWriter(self.tmp, table.schema)
        self.writer.write_table(table)
        self.rows = []

    def commit(self) -> None:
        if self.rows or self.writer is None:
            self._flush(final=True)
        self.writer.close()
        publish(self.tmp, self.path)

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.tmp.unlink(missing_ok=True)
