"""Record files: reading input corpora into records, and writing records to output files.

Reading: `read_records` turns one input file into `Record`s, by its suffix (`INPUT_FORMATS`):

    corpus/a.txt      one text a line
    corpus/b.jsonl    one JSON object a line, text in a field: {"id": 7, "text": "..."}
    corpus/c.parquet  a text column

Records are numbered by `line` (1-based, as editors count) in text and JSONL files and by `row`
(0-based, as Arrow and pandas index) in Parquet files; `id` is added when an id column is named.
A record that cannot be labelled (invalid UTF-8, not JSON, no text field, text not a string, ...)
carries the reason instead of a text, so that it can be reported rather than dropped.

Reading stops at a given size (`read_records(size=)`): the size the job stamped the file with
before reading it, so that lines appended while it runs are left for the next run, not half read.

Writing: `JsonlWriter` and `ParquetWriter` (`OUTPUT_FORMATS`) write records to `<name>.tmp` and
rename it to `<name>` when complete (`publish`), so a file under its final name is always whole.
Parquet columns have declared types (`ParquetWriter`), never types guessed from the first rows.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, get_args

from ..errors import BatchError, MissingExtraError
from ..inference.aggregation import entity_fields
from ..textio import decode_line, json_line, utf8_problem

__all__ = [
    "INPUT_FORMATS",
    "OUTPUT_FORMATS",
    "JsonlWriter",
    "OutputFormat",
    "ParquetWriter",
    "Record",
    "arrow_entities_type",
    "check_input",
    "find_inputs",
    "key_columns",
    "publish",
    "read_records",
    "require_pyarrow",
    "temporary_path",
]

# Input file suffix -> how its records are read.
INPUT_FORMATS = {".txt": "text", ".text": "text", ".jsonl": "jsonl", ".ndjson": "jsonl",
                 ".parquet": "parquet"}  # fmt: skip
# Output formats, one writer each: JsonlWriter, ParquetWriter.
OutputFormat = Literal["jsonl", "parquet"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = get_args(OutputFormat)


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
    text: str | None = None  # None for a bad record
    error: str | None = None  # why the record cannot be labelled; None for a good record


def find_inputs(
    patterns: str | Path | Sequence[str | Path], *, exclude: str | Path | None = None
) -> list[Path]:
    """The input files named by paths, folders (their files with a known suffix, recursively) or
    glob patterns (`corpus/*.jsonl`, `data/**/*.parquet`), as absolute paths with links resolved
    (a file is what it is, however it was named), sorted and without duplicates.

    Files inside the folder `exclude` (the job's output folder) are never inputs: a folder or glob
    that reaches into it leaves them out, and naming one of them is an error.
    """
    if isinstance(patterns, (str, Path)):
        patterns = [patterns]
    skip = Path(exclude).expanduser().resolve() if exclude is not None else None
    found: dict[Path, None] = {}  # insertion-ordered set
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in INPUT_FORMATS and p.is_file())
            files = [p.resolve() for p in files]
            if skip is not None:
                files = [p for p in files if not p.is_relative_to(skip)]
            if not files:
                outside = f" outside the output folder {skip}" if skip else ""
                raise BatchError(f"folder {path} holds no {_suffixes()} files{outside}")
        elif path.is_file():
            files = [path.resolve()]
            if skip is not None and files[0].is_relative_to(skip):
                raise BatchError(
                    f"input {path} is inside the output folder {skip}; results are not read "
                    "back as inputs: move it, or pass another --output"
                )
        else:
            named = (Path(p) for p in glob.glob(str(path), recursive=True))
            files = sorted(p.resolve() for p in named if p.is_file())
            if not files:
                raise BatchError(f"no input file matches {str(pattern)!r}")
            if skip is not None:
                files = [p for p in files if not p.is_relative_to(skip)]
                if not files:
                    raise BatchError(
                        f"{str(pattern)!r} matches only files inside the output folder {skip}"
                    )
        for file in files:
            if file.suffix not in INPUT_FORMATS:
                raise BatchError(
                    f"{file}: unknown input type {file.suffix!r}; input files must end in "
                    f"{_suffixes()} (text lines, JSON lines, Parquet)"
                )
            found[file] = None
    return sorted(found)


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


def key_columns(path: Path, id_column: str | None) -> tuple[str, ...]:
    """The fields of the key of each record of an input file: its number, "line" (text, JSONL)
    or "row" (Parquet), then "id" when an id column is named and the file has columns."""
    kind = INPUT_FORMATS[path.suffix]
    number = "row" if kind == "parquet" else "line"
    return (number, "id") if id_column is not None and kind != "text" else (number,)


def read_records(
    path: str | Path,
    *,
    text_column: str = "text",
    id_column: str | None = None,
    size: int | None = None,
) -> Iterator[Record]:
    """Every record of one input file, in order, each with its text or its error.

    Text files: one text a line (an empty line is an empty text; `id_column` does not apply).
    JSONL: one JSON object a line, text in `text_column` (blank lines are not records).
    Parquet: text in column `text_column` (see `check_input` for the column checks).
    `size`: read text and JSONL files up to this many bytes only (the size the file had when the
    job stamped it); a Parquet file is read whole.
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
            for number, raw in enumerate(_lines(f, size), start=1):
                key: dict[str, Any] = {"line": number}
                try:
                    line = decode_line(raw, first=number == 1)
                except UnicodeDecodeError as e:
                    yield Record(key, error=utf8_problem(e))
                    continue
                if kind == "text":
                    yield Record(key, text=line)
                elif line.strip():
                    yield _json_record(line, key, text_column, id_column)
    except OSError as e:
        raise BatchError(f"cannot read {path}: {e}") from e


def _lines(f: BinaryIO, size: int | None) -> Iterator[bytes]:
    """The lines of a binary file (each with its b"\\n"), up to `size` bytes (None: to the end)."""
    if size is None:
        yield from f
        return
    left = size
    for raw in f:
        if len(raw) >= left:
            if left:
                yield raw[:left]
            return
        left -= len(raw)
        yield raw


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
    if isinstance(value, str):
        return _text_problem(value, column)
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
                            yield Record(key, error=f"id: {utf8_problem(e)}")
                            continue
                    key["id"] = id_value
                if raw is None:
                    yield Record(key, error=f"{text_column!r} is null")
                    continue
                try:
                    yield Record(key, text=raw.decode("utf-8"))
                except UnicodeDecodeError as e:
                    yield Record(key, error=utf8_problem(e))
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
    """JSON lines (UTF-8, one record a line whoever splits them) to `<path>.tmp`, renamed to
    `path` by `commit()`."""

    def __init__(self, path: Path) -> None:
        self.path, self.tmp = path, temporary_path(path)
        self.file = open(self.tmp, "w", encoding="utf-8")  # noqa: SIM115 (open until commit)

    def problem(self, record: dict[str, Any]) -> str | None:
        return None  # a JSON line holds any record

    def write(self, record: dict[str, Any]) -> None:
        self.file.write(json_line(record) + "\n")

    def commit(self) -> None:
        self.file.close()
        publish(self.tmp, self.path)

    def abort(self) -> None:
        try:
            self.file.close()
        except OSError:
            pass  # the write that failed fails again on close; the file goes anyway
        finally:
            self.tmp.unlink(missing_ok=True)


def arrow_entities_type(strategy: str) -> Any:
    """The Arrow type of a column of entity lists for an aggregation strategy: a list of structs
    with the fields (and field order) of `aggregation.entity_fields`."""
    pa, _ = require_pyarrow("an Arrow column of entities")
    types = {str: pa.string(), float: pa.float64(), int: pa.int64()}
    return pa.list_(pa.struct([(name, types[kind]) for name, kind in entity_fields(strategy)]))


_INT64_RANGE = range(-(2**63), 2**63)


class ParquetWriter:
    """Rows to a Parquet file at `<path>.tmp` in row groups, renamed to `path` by `commit()`.

    The schema is declared, not guessed from the first rows: the key columns (`key_columns`:
    `line` or `row`, int64; `id`), and `entities` (`arrow_entities_type`). The id
    column takes the type of the file's first id, integer (int64) or string; a record whose id
    does not fit it has a `problem()`, which the job reports as that record's error (a JSONL
    output holds any id).
    """

    ROWS_PER_GROUP = 8192

    def __init__(self, path: Path, *, keys: tuple[str, ...], strategy: str) -> None:
        self.pa, self.pq = require_pyarrow(f"writing Parquet output {path}")
        self.path, self.tmp = path, temporary_path(path)
        self.key, self.has_id = keys[0], "id" in keys
        self.entities_type = arrow_entities_type(strategy)
        self.id_kind: type | None = None  # int or str: the first written record's id
        self.rows: list[dict[str, Any]] = []
        self.writer: Any = None
        self.file = open(self.tmp, "wb")  # noqa: SIM115 (open until commit)

    def problem(self, record: dict[str, Any]) -> str | None:
        """Why `record` cannot be a row of this file, or None if it can."""
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
        fields = [(self.key, pa.int64())]
        if self.has_id:
            ids = {int: pa.int64(), str: pa.string(), None: pa.null()}  # None: no record
            fields.append(("id", ids[self.id_kind]))
        return pa.schema([*fields, ("entities", self.entities_type)])

    def _flush(self) -> None:
        if self.writer is None:
            self.writer = self.pq.ParquetWriter(self.file, self._schema())
        table = self.pa.Table.from_pylist(self.rows, schema=self.writer.schema)
        self.writer.write_table(table)
        self.rows = []

    def commit(self) -> None:
        if self.rows or self.writer is None:
            self._flush()
        self.writer.close()
        self.file.close()
        publish(self.tmp, self.path)

    def abort(self) -> None:
        try:
            if self.writer is not None:
                self.writer.close()
        except Exception:  # noqa: BLE001 (an abort after a failed write: the file goes anyway)
            pass
        finally:
            self.file.close()
            self.tmp.unlink(missing_ok=True)
