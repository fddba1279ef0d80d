"""Record files: reading input corpora into records, and the formats records are written in.

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

Writing: a job writes each file's records with the writer of its format (`OUTPUT_FORMATS`: the
formats of `writers.WRITERS` that batch offers) given the output path, so that the file appears
under its name only when complete (`files.AtomicFile`). The writers, `publish` and
`temporary_path` are importable from here as well.
"""

from __future__ import annotations

import glob
import json
import os
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal

from ..errors import BatchError
from ..files import publish, temporary_path
from ..textio import decode_line, utf8_problem
from ..writers import (
    JsonlWriter,
    ParquetWriter,
    arrow_entities_type,
    formats_for,
    require_pyarrow,
)

__all__ = [
    "INPUT_FORMATS",
    "Inputs",
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
    "scan_inputs",
    "require_pyarrow",
    "temporary_path",
]

# Input file suffix -> how its records are read.
INPUT_FORMATS = {".txt": "text", ".text": "text", ".jsonl": "jsonl", ".ndjson": "jsonl",
                 ".parquet": "parquet"}  # fmt: skip
# The output formats of a batch job: those of writers.WRITERS offered to "batch".
OutputFormat = Literal["jsonl", "parquet"]
OUTPUT_FORMATS: tuple[OutputFormat, ...] = formats_for("batch")  # type: ignore[assignment]


@dataclass(frozen=True)
class Record:
    """One input record: where it is, and its text or the reason it has none."""

    key: dict[str, Any]  # {"line": 3} or {"row": 2}, plus {"id": ...} when an id column is named
    text: str | None = None  # None for a bad record
    error: str | None = None  # why the record cannot be labelled; None for a good record


@dataclass(frozen=True)
class Inputs:
    """The input files found (absolute, links resolved, sorted, no duplicates), and what was met
    on the way that cannot be read: (its path, links resolved as for the files; a dangling link
    where it stands; why), to report by name."""

    files: list[Path]
    unreadable: list[tuple[Path, str]]


def find_inputs(
    patterns: str | Path | Sequence[str | Path], *, exclude: str | Path | None = None
) -> list[Path]:
    """The input files of `scan_inputs` (what cannot be read is left out: use `scan_inputs` to
    report it)."""
    return scan_inputs(patterns, exclude=exclude).files


def scan_inputs(
    patterns: str | Path | Sequence[str | Path], *, exclude: str | Path | None = None
) -> Inputs:
    """The input files named by paths, folders (their files with a known suffix, recursively) or
    glob patterns (`corpus/*.jsonl`, `data/**/*.parquet`), as absolute paths with links resolved
    (a file is what it is, however it was named), sorted and without duplicates; and what cannot
    be read (an unreadable folder or file, a FIFO, a dangling link, a path below a folder that
    cannot be entered), by name. Folders are walked following links, each folder once (a link
    back to a folder walked already, as in a loop, is not walked again).

    Files inside the folder `exclude` (the job's output folder) are never inputs: a folder or glob
    that reaches into it leaves them out, and naming one of them is an error.
    """
    if isinstance(patterns, (str, Path)):
        patterns = [patterns]
    skip = Path(exclude).expanduser().resolve() if exclude is not None else None
    found: dict[Path, None] = {}  # insertion-ordered set
    unreadable: list[tuple[Path, str]] = []
    seen: set[tuple[int, int]] = set()  # (device, inode) of the folders walked
    for pattern in patterns:
        if not str(pattern):  # Path("") is ".": an unset shell variable would label the cwd
            raise BatchError("an input is empty (an unset variable?); name a file, folder or glob")
        path = Path(pattern).expanduser()
        try:
            is_dir, exists = path.is_dir(), os.path.lexists(path)
        except OSError as e:  # below a folder that cannot be entered
            unreadable.append((path, e.strerror or str(e)))
            continue
        if is_dir:
            before = len(unreadable)
            files = [p.resolve() for p in _walk(path, skip, seen, unreadable)]
            if skip is not None:
                files = [p for p in files if not p.is_relative_to(skip)]
            if not files and len(unreadable) == before:
                outside = f" outside the output folder {skip}" if skip else ""
                raise BatchError(f"folder {path} holds no {_suffixes()} files{outside}")
        elif exists:
            files = [p.resolve() for p in _readable([path], unreadable)]
            if skip is not None and files and files[0].is_relative_to(skip):
                raise BatchError(
                    f"input {path} is inside the output folder {skip}; results are not read "
                    "back as inputs: move it, or pass another --output"
                )
        else:
            named = (Path(p) for p in glob.glob(str(path), recursive=True) if not os.path.isdir(p))
            before = len(unreadable)
            files = sorted(p.resolve() for p in _readable(named, unreadable))
            if not files and len(unreadable) == before:
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
    return Inputs(sorted(found), list(dict(unreadable).items()))  # each named once


def _walk(
    folder: Path, skip: Path | None, seen: set[tuple[int, int]], unreadable: list[tuple[Path, str]]
) -> Iterator[Path]:
    """The files with an input suffix below `folder`, following links to folders, each folder
    once; what cannot be read goes to `unreadable`."""
    try:
        info = folder.stat()
        if (info.st_dev, info.st_ino) in seen or (skip is not None and folder.resolve() == skip):
            return  # walked already (two links to it, or a loop), or the output folder
        seen.add((info.st_dev, info.st_ino))
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as e:
        unreadable.append((folder.resolve(), e.strerror or str(e)))
        return
    candidates = []
    for entry in entries:
        path = Path(entry.path)
        try:
            is_dir = entry.is_dir()  # follows a link
        except OSError:
            is_dir = False  # found unreadable below
        if is_dir:
            yield from _walk(path, skip, seen, unreadable)
        elif path.suffix in INPUT_FORMATS or (entry.is_symlink() and not path.exists()):
            candidates.append(path)
    yield from _readable(candidates, unreadable)


def _readable(paths: Iterable[Path], unreadable: list[tuple[Path, str]]) -> Iterator[Path]:
    """The paths that are regular files this process may read; the others go to `unreadable`
    with the reason."""
    for path in paths:
        try:
            info = path.stat()  # follows a link
        except FileNotFoundError:
            # a dangling link is named in its folder, that folder's links resolved
            name = path.parent.resolve() / path.name
            unreadable.append((name, "a link to nothing" if path.is_symlink() else "gone"))
            continue
        except OSError as e:
            unreadable.append((path, e.strerror or str(e)))
            continue
        # Named by what it is, links resolved, as the files found are (so reached once).
        if not stat.S_ISREG(info.st_mode):
            unreadable.append((path.resolve(), "not a regular file (a FIFO, socket or device)"))
        elif not os.access(path, os.R_OK):
            unreadable.append((path.resolve(), "permission denied"))
        else:
            yield path


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
    except RecursionError:  # the parser recurses once per level of nesting
        return Record(key, error="not valid JSON here: nested too deeply to parse")
    except ValueError as e:  # e.g. an integer longer than Python converts
        return Record(key, error=f"not valid JSON here: {e}")
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
