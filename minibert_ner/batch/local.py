"""The local engine: the in-process pipeline over the records of the job's files, in chunks
that run across file boundaries (so that many small files still fill forward batches)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from ..inference.options import PipelineOptions
from .plan import RECORDS_PER_CHUNK, FileJob, Result, job_records, label_texts

__all__ = ["chunks", "local_results"]


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


def local_results(
    jobs: Sequence[FileJob],
    model: str,
    options: PipelineOptions,
    *,
    text_column: str = "text",
    id_column: str | None = None,
    gliner: Mapping[str, Any] | None = None,
) -> Iterator[Result]:
    """The local engine: the in-process pipeline, over chunks of records that run across file
    boundaries (so that many small files still fill forward batches). gliner: the model is a
    GLiNER model, run with these settings (`GLiNERPipeline`'s fields)."""
    from ..inference.pipeline import pipeline

    if gliner is not None:
        from ..gliner.pipeline import GLiNERPipeline

        ner: Any = GLiNERPipeline.from_options(model, options, **gliner)
    else:
        ner = pipeline(model, options=options)
    size = max(RECORDS_PER_CHUNK, options.batch_size)
    files = ((index, job.source, job.stamp.size) for index, job in enumerate(jobs))
    stream = job_records(files, text_column=text_column, id_column=id_column)
    for chunk in chunks(stream, size):
        # A bad record has no text, and so no entities; an end mark is not a record.
        found = iter(label_texts(ner, [record.text for _, record in chunk if record is not None]))
        for index, record in chunk:
            yield (index, record, next(found)) if record is not None else (index, None, None)
