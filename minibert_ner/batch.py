"""Batch NER over files: read records, label them, write one output record per input record.

    corpus/a.txt      one text a line          ->  out/a.jsonl  {"line": 1, "entities": [...]}
    corpus/b.jsonl    {"id": 7, "text": "..."} ->  out/b.jsonl  {"line": 1, "id": 7, "entities": []}
    corpus/c.parquet  a text column            ->  out/c.jsonl  {"row": 0, "entities": [...]}
                                                   out/b.errors.jsonl  {"line": 9, "error": "..."}
                                                   out/manifest.json   finished files, counts

Reading records and writing output files is `corpus.py`'s; this module is the job around them.
It plans one output file per input file, and sends each record's entities to that file or, for
a record that cannot be labelled (invalid UTF-8, not JSON, no text field, ...), its reason to
the file's `.errors.jsonl`, so records in = written + errors, per file and in total: nothing is
dropped silently.

Resuming: each output file is written under a temporary name and renamed when complete, then
listed in the manifest with the input's size and modification time. A rerun skips the files the
manifest lists (unless they changed), so an interrupted run goes on where it stopped.

Two engines label records between the same reader and writer: "local" (the in-process pipeline)
and "ray" (Ray Data actors, `ray_engine.py`), so moving from a laptop to a cluster is one flag.
"""

from __future__ import annotations

import inspect
import json
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .corpus import (
    OUTPUT_FORMATS,
    JsonlWriter,
    ParquetWriter,
    Record,
    check_input,
    find_inputs,
    publish,
    read_records,
    temporary_path,
)
from .errors import BatchError

ENGINES = ("local", "ray")
MANIFEST = "manifest.json"
# Records handed to the pipeline at a time by the local engine (and to each Ray actor call): big
# enough to fill forward batches, small enough that progress and memory stay smooth.
RECORDS_PER_CHUNK = 256
# Pipeline options left out of the manifest: those that do not change the labels (a resumed run
# may change them), and the hub access token, which must not be written to disk.
NOT_IN_MANIFEST = ("device", "batch_size", "max_batch_tokens", "compile", "token")


# ---------------------------------------------------------------------------------------------
# Planning: one output file (and errors file) per input file
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileJob:
    """One input file and where its results go."""

    source: Path
    output: Path  # <stem>.jsonl or <stem>.parquet
    errors: Path  # <stem>.errors.jsonl, written only when the file has bad records


def plan_jobs(sources: Sequence[Path], output_dir: str | Path, output_format: str) -> list[FileJob]:
    """Output paths mirroring the inputs' layout below their common folder: `corpus/x/a.txt` ->
    `out/x/a.jsonl`. Two inputs writing the same output (`a.txt`, `a.jsonl`) are an error."""
    if output_format not in OUTPUT_FORMATS:
        raise BatchError(f"unknown output format {output_format!r}; use one of {OUTPUT_FORMATS}")
    out = Path(output_dir).expanduser()
    root = Path(os.path.commonpath([p.resolve().parent for p in sources])) if sources else out
    jobs, owner = [], {(out / MANIFEST).resolve(): Path(MANIFEST)}
    inputs = {p.resolve() for p in sources}
    for source in sources:
        rel = source.resolve().relative_to(root)
        job = FileJob(
            source,
            out / rel.with_suffix(f".{output_format}"),
            out / rel.with_suffix(".errors.jsonl"),
        )
        for target in (job.output, job.errors):
            resolved = target.resolve()
            if resolved in inputs:
                raise BatchError(
                    f"writing {target} would overwrite an input; choose another --output"
                )
            if resolved in owner:
                raise BatchError(
                    f"{source} and {owner[resolved]} would both write {target}; rename one, "
                    "or run them into different --output folders"
                )
            owner[resolved] = source
        jobs.append(job)
    return jobs


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


class FileOutput:
    """The outputs of one input file: entities records, and error records when there are any."""

    def __init__(self, job: FileJob) -> None:
        self.job = job
        self.counts = FileCounts()
        kind = job.output.suffix.lstrip(".")
        self.output = ParquetWriter(job.output) if kind == "parquet" else JsonlWriter(job.output)
        self.errors: JsonlWriter | None = None  # opened at the first bad record

    def add(self, record: Record, entities: list[dict[str, Any]] | None) -> None:
        self.counts.records += 1
        if record.error is not None:
            if self.errors is None:
                self.errors = JsonlWriter(self.job.errors)
            self.errors.write({**record.key, "error": record.error})
            self.counts.errors += 1
        else:
            self.output.write({**record.key, "entities": entities})
            self.counts.written += 1

    def commit(self) -> None:
        if self.errors is not None:
            self.errors.commit()
        else:
            self.job.errors.unlink(missing_ok=True)  # a stale one from an earlier run
        self.output.commit()

    def abort(self) -> None:
        for writer in (self.output, self.errors):
            if writer is not None:
                writer.abort()


# ---------------------------------------------------------------------------------------------
# Resuming: the manifest of finished files
# ---------------------------------------------------------------------------------------------


class Manifest:
    """`manifest.json` in the output folder: the options of the run and each finished file.

    A file counts as finished when it is listed with its current size and modification time and
    its output exists. Options that change the labels (model, aggregation, columns, format) must
    match the folder's; mixing two models' results in one folder is refused.
    """

    def __init__(self, output_dir: str | Path, options: dict[str, Any]) -> None:
        self.path = Path(output_dir).expanduser() / MANIFEST
        self.options = options
        self.files: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            try:
                saved = json.loads(self.path.read_text("utf-8"))
                saved_options, self.files = saved["options"], saved["files"]
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise BatchError(
                    f"cannot read {self.path} ({e}); delete it to redo every file"
                ) from e
            if saved_options != options:
                diff = ", ".join(
                    f"{k}: {saved_options.get(k)!r} then, {options.get(k)!r} now"
                    for k in sorted(set(saved_options) | set(options))
                    if saved_options.get(k) != options.get(k)
                )
                raise BatchError(
                    f"{self.path.parent} holds results made with other options ({diff}); "
                    f"pass another --output folder, or delete {self.path} to redo every file"
                )

    @staticmethod
    def _stamp(job: FileJob) -> dict[str, Any]:
        stat = job.source.stat()
        return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    def is_done(self, job: FileJob) -> bool:
        entry = self.files.get(str(job.source.resolve()))
        return (
            entry is not None
            and {k: entry.get(k) for k in ("size", "mtime_ns")} == self._stamp(job)
            and job.output.is_file()
        )

    def finished(self, job: FileJob, counts: FileCounts) -> None:
        """Record a file as finished (written atomically, so a crash leaves the old manifest)."""
        self.files[str(job.source.resolve())] = {
            **self._stamp(job),
            "output": job.output.name,
            **asdict(counts),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_path(self.path)
        payload = {"options": self.options, "files": self.files}
        tmp.write_text(json.dumps(payload, indent=1) + "\n", "utf-8")
        publish(tmp, self.path)


# ---------------------------------------------------------------------------------------------
# Running: engine results -> outputs, with progress
# ---------------------------------------------------------------------------------------------

# What an engine yields, in input order: (index of the file in the job list, record, entities),
# entities None for a record with an error; after each file's records, (index, None, None) to say
# that the file is complete (so that it is published before the next file's first record).
Result = tuple[int, "Record | None", "list[dict[str, Any]] | None"]


@dataclass
class BatchSummary:
    """What a run did: files done now and skipped (finished before), and record counts."""

    files: int = 0
    skipped: int = 0
    counts: FileCounts = field(default_factory=FileCounts)
    seconds: float = 0.0

    @property
    def records_per_second(self) -> float:
        return self.counts.records / self.seconds if self.seconds > 0 else 0.0


class ProgressLog:
    """Progress as log lines on a stream (stderr): one per finished file, and a running count at
    most every `interval` seconds. Lines, not a redrawn bar (progress.py), as batch jobs mostly
    run where stderr is a log file."""

    def __init__(self, stream: TextIO | None, total_files: int, interval: float = 5.0) -> None:
        self.stream, self.total, self.interval = stream, total_files, interval
        self.start = self.last = time.perf_counter()
        self.counts = FileCounts()  # finished files
        self.done = 0

    def say(self, message: str) -> None:
        if self.stream is not None:
            print(f"minibert-ner batch: {message}", file=self.stream, flush=True)

    def _rate(self, records: int) -> str:
        return f"{records / max(time.perf_counter() - self.start, 1e-9):.1f} records/s"

    def tick(self, current: FileOutput) -> None:
        now = time.perf_counter()
        if now - self.last >= self.interval:
            self.last = now
            records = self.counts.records + current.counts.records
            self.say(
                f"[{self.done}/{self.total} files] {current.job.source.name}: "
                f"{current.counts.records} records so far; {self._rate(records)}"
            )

    def file_done(self, output: FileOutput) -> None:
        self.done += 1
        self.counts.add(output.counts)
        c = output.counts
        self.say(
            f"[{self.done}/{self.total} files] {output.job.source} -> {output.job.output}: "
            f"{c.records} records = {c.written} written + {c.errors} errors"
            + (f" (see {output.job.errors})" if c.errors else "")
            + f"; {self._rate(self.counts.records)}"
        )


def write_results(
    jobs: Sequence[FileJob], results: Iterable[Result], manifest: Manifest, progress: ProgressLog
) -> FileCounts:
    """Write an engine's results (see `Result`) file by file; each completed file is published
    and recorded in the manifest as soon as its end mark arrives. Returns the total counts."""
    total = FileCounts()
    current: FileOutput | None = None
    finished = 0
    try:
        for index, record, entities in results:
            if index != finished:
                raise RuntimeError(f"engine sent file {index} while file {finished} was open")
            if current is None:
                current = FileOutput(jobs[index])
            if record is None:  # the file's end mark
                current.commit()
                manifest.finished(current.job, current.counts)
                total.add(current.counts)
                progress.file_done(current)
                current, finished = None, finished + 1
                continue
            current.add(record, entities)
            progress.tick(current)
    except BaseException:
        if current is not None:
            current.abort()  # an interrupted file leaves no output and no manifest entry
        raise
    if finished != len(jobs):
        raise RuntimeError(f"the engine stopped after {finished} of {len(jobs)} files")
    return total


def chunks(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    """Consecutive lists of `size` records (the last may be shorter)."""
    chunk: list[Record] = []
    for record in records:
        chunk.append(record)
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
    *,
    text_column: str = "text",
    id_column: str | None = None,
    **pipeline_options: Any,
) -> Iterator[Result]:
    """The local engine: the in-process pipeline, one chunk of records after another."""
    from .pipeline import pipeline

    ner = pipeline(model=model, **pipeline_options)
    size = max(RECORDS_PER_CHUNK, pipeline_options.get("batch_size") or 0)
    for index, job in enumerate(jobs):
        records = read_records(job.source, text_column=text_column, id_column=id_column)
        for chunk in chunks(records, size):
            for record, entities in zip(chunk, label_records(ner, chunk), strict=True):
                yield index, record, entities
        yield index, None, None


def run_options(
    model: str | Path,
    output_format: str,
    text_column: str,
    id_column: str | None,
    pipeline_options: dict[str, Any],
) -> dict[str, Any]:
    """The settings that decide the output's content, as stored in (and checked against) the
    manifest: pipeline defaults filled in, so that leaving an option out equals passing its
    default; a local model folder as an absolute path, so that `./m` and `/abs/m` match."""
    from .pipeline import pipeline

    signature = inspect.signature(pipeline).parameters.items()
    defaults = {n: p.default for n, p in signature if p.default is not inspect.Parameter.empty}
    local = Path(model).expanduser()
    options: dict[str, Any] = {
        "model": str(local.resolve()) if local.is_dir() else str(model),
        "format": output_format,
        "text_column": text_column,
        "id_column": id_column,
    }
    for name, value in sorted({**defaults, **pipeline_options}.items()):
        if name != "model" and name not in NOT_IN_MANIFEST:
            simple = isinstance(value, (str, int, float, bool, tuple, list, type(None)))
            options[name] = value if simple else str(value)
    return json.loads(json.dumps(options))  # as it reads back from the manifest (tuples -> lists)


def run_batch(
    inputs: str | Path | Sequence[str | Path],
    output_dir: str | Path,
    model: str | Path,
    *,
    engine: str = "local",
    output_format: str = "jsonl",
    text_column: str = "text",
    id_column: str | None = None,
    address: str | None = None,
    num_actors: int | None = None,
    cpus_per_actor: float | None = None,
    log: TextIO | None = None,
    **pipeline_options: Any,
) -> BatchSummary:
    """Label every record of `inputs` (paths, folders or globs) into `output_dir`.

    `engine="local"` runs the in-process pipeline; `engine="ray"` runs Ray Data actors (on the
    cluster at `address`, else a local Ray instance, or the one already initialised), each with
    `cpus_per_actor` CPUs (default 1; or one GPU each when `device` is "cuda"). `pipeline_options`
    (aggregation_strategy, device, dtype, batch_size, ...) go to `minibert_ner.pipeline`.
    Files finished by an earlier run into the same folder are skipped. Progress lines go to
    `log` (e.g. sys.stderr; None: quiet).
    """
    if engine not in ENGINES:
        raise BatchError(f"unknown engine {engine!r}; use one of {ENGINES}")
    ray_only = {
        "--address": address,
        "--num-actors": num_actors,
        "--cpus-per-actor": cpus_per_actor,
    }
    given = [flag for flag, value in ray_only.items() if value is not None]
    if engine == "local" and given:
        raise BatchError(f"{', '.join(given)}: only for the Ray engine; add --engine ray")
    pipeline_options = {k: v for k, v in pipeline_options.items() if v is not None}
    jobs = plan_jobs(find_inputs(inputs), output_dir, output_format)
    options = run_options(model, output_format, text_column, id_column, pipeline_options)
    manifest = Manifest(output_dir, options)
    todo = [job for job in jobs if not manifest.is_done(job)]
    for job in todo:
        check_input(job.source, text_column, id_column)
    progress = ProgressLog(log, len(todo))
    summary = BatchSummary(files=len(todo), skipped=len(jobs) - len(todo))
    progress.say(
        f"{len(jobs)} input files: {summary.skipped} already done, {len(todo)} to do "
        f"({engine} engine) -> {output_dir}"
    )
    if not todo:
        return summary
    columns = {"text_column": text_column, "id_column": id_column}
    if engine == "local":
        results = local_results(todo, str(model), **columns, **pipeline_options)
    else:
        from .ray_engine import ray_results

        results = ray_results(
            todo,
            str(model),
            address=address,
            num_actors=num_actors,
            cpus_per_actor=cpus_per_actor or 1,
            **columns,
            **pipeline_options,
        )
    summary.counts = write_results(todo, results, manifest, progress)
    summary.seconds = time.perf_counter() - progress.start
    c = summary.counts
    progress.say(
        f"done: {c.records} records = {c.written} written + {c.errors} errors, in "
        f"{summary.seconds:.1f} s ({summary.records_per_second:.1f} records/s)"
    )
    return summary
