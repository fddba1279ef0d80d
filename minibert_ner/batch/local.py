"""The local engine: the in-process pipeline over the records of the job's files, in chunks
that run across file boundaries (so that many small files still fill forward batches)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from ..inference.options import PipelineOptions
from .plan import RECORDS_PER_CHUNK, FileJob, Result
from .records import Record, read_records

__all__ = ["chunks", "label_records", "local_results"]


def chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of `size` items (the last may be shorter)."""
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def label_records(ner: Any, records: Sequence[Record]) -> list[list[dict[str, Any]] | None]:
    """Entities for each record that has a text (None for those with an error), in one call."""
    texts = [r.text for r in records if r.error is None]
    found = iter(ner(texts) if texts else [])
    return [next(found) if r.error is None else None for r in records]


def local_results(
    jobs: Sequence[FileJob],
    model: str,
    options: PipelineOptions,
    *,
    text_column: str = "text",
    id_column: str | None = None,
) -> Iterator[Result]:
    """The local engine: the in-process pipeline, over chunks of records that run across file
    boundaries (so that many small files still fill forward batches)."""
    from ..inference.pipeline import pipeline

    ner = pipeline(model, options=options)
    size = max(RECORDS_PER_CHUNK, options.batch_size)

    def stream() -> Iterator[tuple[int, Record | None]]:  # records, then each file's end mark
        for index, job in enumerate(jobs):
            for record in read_records(
                job.source, text_column=text_column, id_column=id_column, size=job.stamp.size
            ):
                yield index, record
            yield index, None

    for chunk in chunks(stream(), size):
        records = [record for _, record in chunk if record is not None]
        found = iter(label_records(ner, records))
        for index, record in chunk:
            yield (index, record, next(found)) if record is not None else (index, None, None)
