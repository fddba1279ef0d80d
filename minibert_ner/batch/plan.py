"""What a batch job works on: each input file stamped and placed (`FileJob`), the record
counts that must add up (`FileCounts`), the records both engines label (`job_records`,
`label_texts`) and the stream of results an engine yields (`Result`). Both engines (local.py,
ray_engine.py) and the job (job.py) share these; they import nothing of the job, so the
engines sit below it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BatchError
from ..writers import WRITERS
from .records import Record, read_records

if TYPE_CHECKING:
    from ..inference.pipeline import NERPipeline

__all__ = [
    "RECORDS_PER_CHUNK",
    "FileCounts",
    "FileJob",
    "Result",
    "Stamp",
    "job_records",
    "label_texts",
    "output_paths",
]

# Records handed to the pipeline at a time by the local engine (and to each Ray actor call): big
# enough to fill forward batches, small enough that progress and memory stay smooth.
RECORDS_PER_CHUNK = 256


@dataclass(frozen=True)
class Stamp:
    """An input file's identity and state, read without reading the file: equal stamps mean an
    unchanged file (a rewrite changes the times, a replacement the inode)."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> Stamp:
        st = path.stat()
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)

    @classmethod
    def saved(cls, entry: dict[str, Any]) -> Stamp | None:
        """The stamp of a manifest entry (None for an entry without one)."""
        values = {f.name: entry.get(f.name) for f in fields(cls)}
        return None if None in values.values() else cls(**values)


@dataclass(frozen=True)
class FileJob:
    """One input file and where its results go."""

    source: Path  # absolute, links resolved
    output: Path  # <stem>.jsonl or <stem>.parquet
    errors: Path  # <stem>.errors.jsonl, written only when the file has bad records
    stamp: Stamp  # taken before reading; the file is read up to stamp.size


def output_paths(relative: Path, output_dir: Path, output_format: str) -> tuple[Path, Path]:
    """The output file (with its format's suffix) and errors file of an input at `relative`
    below the root."""
    return (
        output_dir / relative.with_suffix(WRITERS[output_format].suffixes[0]),
        output_dir / relative.with_suffix(".errors.jsonl"),
    )


@dataclass
class FileCounts:
    """Records of one file (or a whole run): records = written + errors."""

    records: int = 0
    written: int = 0
    errors: int = 0

    def add(self, other: FileCounts) -> None:
        self.records += other.records
        self.written += other.written
        self.errors += other.errors


# What an engine yields, in input order: (index of the file in the job list, record, entities),
# entities None for a record with an error; after each file's records, (index, None, None) to say
# that the file is complete (so that it is published before the next file's first record).
Result = tuple[int, "Record | None", "list[dict[str, Any]] | None"]


def job_records(
    files: Iterable[tuple[int, str | Path, int]], *, text_column: str, id_column: str | None
) -> Iterator[tuple[int, Record | None]]:
    """(index, record) for every record of each file (its index, path and stamped size; read up
    to that size), in order, each file followed by its end mark (index, None). A file deleted
    since it was stamped has no records: the writer finds it gone and reports it as changed."""
    for index, path, size in files:
        try:
            for record in read_records(
                path, text_column=text_column, id_column=id_column, size=size
            ):
                yield index, record
        except BatchError as e:
            if not isinstance(e.__cause__, FileNotFoundError):
                raise
        yield index, None


def label_texts(ner: NERPipeline, texts: Sequence[str | None]) -> list[Any]:
    """The entities of each text, with the pipeline's options, in one run of its entry
    (`NERPipeline.label`); None where the text is None (a record with an error, a null in a
    dataset's text column)."""
    todo = [i for i, text in enumerate(texts) if text is not None]
    found = ner.label([texts[i] for i in todo]).entities if todo else []
    entities: list[Any] = [None] * len(texts)
    for i, ents in zip(todo, found, strict=True):
        entities[i] = ents
    return entities
