"""Batch NER over files: read records, label them, write one output record per input record.

    corpus/a.txt        one text a line          ->  out/a.jsonl    {"line": 1, "entities": [...]}
    corpus/b.jsonl      {"id": 7, "text": "..."} ->  out/b.jsonl    {"line": 1, "id": 7, "entities": []}
    corpus/x/c.parquet  a text column            ->  out/x/c.jsonl  {"row": 0, "entities": [...]}
                                                     out/b.errors.jsonl  {"line": 9, "error": "..."}
                                                     out/manifest.json   finished files, counts

The job (`run_batch`) and its pieces, one module each: records.py reads input files, and the
output formats' writers (../writers.py, the label command's too) write output files; plan.py
stamps and places each input (`FileJob`); folder.py holds the output folder (checks, lock,
stable root, manifest); local.py and ray_engine.py are the two engines, which label records
between the same reader and writer, so that moving from a laptop to a cluster is one flag.

The contract, for every input file: records in = written + errors. A record that cannot be
labelled (invalid UTF-8, not JSON, no text field, ...) goes with its reason to the file's
`.errors.jsonl`; nothing is dropped silently, and `BatchSummary.exit_status` says whether every
record was labelled. Each file's output is published when its last record is written and then
recorded in the manifest, so a run that stops, however it stops, resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO, get_args

from ..errors import BatchError, JobError
from ..inference.options import PipelineOptions
from ..writers import WRITERS, JsonlWriter, Writer
from .folder import OutputFolder
from .local import local_results
from .plan import FileCounts, FileJob, Result, Stamp
from .records import OUTPUT_FORMATS, OutputFormat, Record, check_input, key_columns, scan_inputs

__all__ = [
    "ENGINES",
    "Engine",
    "EXIT_INCOMPLETE",
    "BatchSummary",
    "ProgressLog",
    "model_fingerprint",
    "run_batch",
    "run_options",
    "write_results",
]

Engine = Literal["local", "ray"]
ENGINES: tuple[Engine, ...] = get_args(Engine)
# Exit status of a job that finished without labelling every record: some are in .errors.jsonl
# files, or an input changed while it was read. 0: every record labelled. An error ends the job
# with its `exit_status` (2: bad input or options; 1: `JobError`), Ctrl-C with 130.
EXIT_INCOMPLETE = 3


class FileOutput:
    """The outputs of one input file: entities records in the job's format, and error records
    (JSON lines) when there are any."""

    def __init__(
        self, job: FileJob, *, output_format: str, strategy: str, id_column: str | None
    ) -> None:
        self.job = job
        self.counts = FileCounts()
        keys = key_columns(job.source, id_column)
        self.output: Writer = WRITERS[output_format](job.output, keys=keys, strategy=strategy)
        self.errors: Writer | None = None  # opened at the first bad record

    def add(self, record: Record, entities: list[dict[str, Any]] | None) -> None:
        self.counts.records += 1
        error = record.error
        if error is None:
            row = {**record.key, "entities": entities}
            error = self.output.problem(row)  # a record the output format cannot hold
        if error is not None:
            if self.errors is None:
                self.errors = JsonlWriter(self.job.errors)
            self.errors.write({**record.key, "error": error})
            self.counts.errors += 1
        else:
            self.output.write(row)
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


@dataclass
class BatchSummary:
    """What a run did. `counts`: the records of the files labelled now; `total`: those of every
    input, finished now or before. `exit_status`: 0 when every record of every input was
    labelled, else EXIT_INCOMPLETE."""

    files: int = 0  # labelled by this run
    skipped: int = 0  # finished before, unchanged since
    counts: FileCounts = field(default_factory=FileCounts)
    total: FileCounts = field(default_factory=FileCounts)
    changed: list[Path] = field(default_factory=list)  # changed while read: to label again
    unreadable: list[tuple[Path, str]] = field(default_factory=list)  # (input met, why)
    seconds: float = 0.0

    @property
    def records_per_second(self) -> float:
        return self.counts.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def complete(self) -> bool:
        return self.total.errors == 0 and not self.changed and not self.unreadable

    @property
    def exit_status(self) -> int:
        return 0 if self.complete else EXIT_INCOMPLETE

    def describe(self) -> str:
        """One line: the files, the record counts (of every input when some were done
        before), the speed, and what is left to do."""
        c, t = self.counts, self.total
        line = (
            f"{self.files} files labelled, {self.skipped} already done; {c.records} records = "
            f"{c.written} written + {c.errors} errors"
        )
        if self.skipped:
            line += (
                f"; all {self.files + self.skipped} files: {t.records} records = "
                f"{t.written} written + {t.errors} errors"
            )
        line += f"; {self.seconds:.1f} s ({self.records_per_second:.1f} records/s)"
        if self.changed:
            line += f"; {len(self.changed)} files changed while read: run again to label them"
        if self.unreadable:
            line += f"; {len(self.unreadable)} inputs cannot be read (named above): not labelled"
        return line


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

    def file_done(self, output: FileOutput, changed: bool) -> None:
        self.done += 1
        self.counts.add(output.counts)
        c = output.counts
        self.say(
            f"[{self.done}/{self.total} files] {output.job.source} -> {output.job.output}: "
            f"{c.records} records = {c.written} written + {c.errors} errors"
            + (f" (see {output.job.errors})" if c.errors else "")
            + f"; {self._rate(self.counts.records)}"
        )
        if changed:
            self.say(
                f"{output.job.source} changed while it was read: its output holds the "
                f"{c.records} records of its first {output.job.stamp.size} bytes; run again to "
                "label it as it is now"
            )

    def gone(self, source: Path) -> None:
        self.done += 1
        self.say(
            f"[{self.done}/{self.total} files] {source} was deleted while the job ran: no "
            "output for it; the other files go on"
        )


def write_results(
    jobs: Sequence[FileJob],
    results: Iterable[Result],
    folder: OutputFolder,
    progress: ProgressLog,
    *,
    output_format: str = "jsonl",
    strategy: str = "simple",
    id_column: str | None = None,
) -> tuple[FileCounts, list[Path]]:
    """Write an engine's results (see `Result`) file by file, in `output_format` (one of
    OUTPUT_FORMATS); each completed file is published and recorded in the manifest as soon as
    its end mark arrives. Returns the total counts and the inputs that changed while they were
    read."""
    total, changed = FileCounts(), []
    current: FileOutput | None = None
    finished = 0
    try:
        for index, record, entities in results:
            if index != finished:
                raise RuntimeError(f"engine sent file {index} while file {finished} was open")
            if current is None:
                current = FileOutput(
                    jobs[index], output_format=output_format, strategy=strategy, id_column=id_column
                )
            if record is None:  # the file's end mark
                job = current.job
                stamp = _stamp_now(job.source)  # None: deleted while the job ran
                if stamp is None:  # nothing to publish
                    current.abort()
                    progress.gone(job.source)
                else:
                    current.commit()
                    folder.finished(job, current.counts)
                    total.add(current.counts)
                    progress.file_done(current, stamp != job.stamp)
                if stamp != job.stamp:
                    changed.append(job.source)
                current, finished = None, finished + 1
                continue
            current.add(record, entities)
            progress.tick(current)
    except BaseException as e:
        if current is not None:
            current.abort()  # an interrupted file leaves no output and no manifest entry
        if isinstance(e, OSError):
            where = e.filename or (current.job.output if current else folder.path)
            raise JobError(
                f"cannot write {where}: {e.strerror or e}; the files finished so far are kept "
                "(nothing unfinished is left under a final name): make room or fix the "
                "folder, then run again to resume"
            ) from e
        raise
    if finished != len(jobs):
        raise RuntimeError(f"the engine stopped after {finished} of {len(jobs)} files")
    return total, changed


def _stamp_now(path: Path) -> Stamp | None:
    try:
        return Stamp.of(path)
    except OSError:
        return None  # gone: changed


def model_fingerprint(folder: Path) -> str:
    """What a local model folder holds: a SHA-256 over each file's name, size and bytes, so that
    the same files copied elsewhere or touched match, and any other config, weights or tokenizer
    (one bit anywhere in them) do not. Every file is read once per run, before the model loads
    (1.3 to 1.8 s for 265 MB on a busy 2-core machine: docs/batch.md)."""
    digest = hashlib.sha256()
    try:
        for path in sorted(folder.iterdir()):
            if path.name.startswith(".") or not path.is_file():
                continue  # hidden files (a hub cache's locks) and subfolders are not the model
            digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
    except OSError as e:
        raise BatchError(f"cannot read the model folder {folder}: {e.strerror or e}") from e
    return digest.hexdigest()[:16]


def run_options(
    model: str | Path,
    output_format: str,
    text_column: str,
    id_column: str | None,
    options: PipelineOptions,
) -> dict[str, Any]:
    """The settings that decide the output's content, as stored in (and checked against) the
    manifest: the pipeline options that change the output (`PipelineOptions.output_fields`), and
    the model: a hub id by its name (and `revision`), a local folder by its absolute path, so
    that `./m` and `/abs/m` match, and by what it holds (`model_fingerprint`), so that weights
    replaced at the same path are another model."""
    local = Path(model).expanduser()
    is_folder = local.is_dir()
    return {
        "model": str(local.resolve()) if is_folder else str(model),
        "model_fingerprint": model_fingerprint(local) if is_folder else None,
        "format": output_format,
        "text_column": text_column,
        "id_column": id_column,
        **options.output_fields(),
    }


def run_batch(
    inputs: str | Path | Sequence[str | Path],
    output_dir: str | Path,
    model: str | Path,
    *,
    engine: Engine = "local",
    output_format: OutputFormat = "jsonl",
    text_column: str = "text",
    id_column: str | None = None,
    address: str | None = None,
    num_actors: int | None = None,
    cpus_per_actor: float | None = None,
    connect_timeout: float | None = None,
    log: TextIO | None = None,
    options: PipelineOptions | None = None,
    gliner: Mapping[str, Any] | None = None,
    **changes: Any,
) -> BatchSummary:
    """Label every record of `inputs` (paths, folders or globs) into `output_dir`.

    `engine="local"` runs the in-process pipeline; `engine="ray"` runs Ray Data actors (on the
    cluster at `address`, else a local Ray instance, or the one already initialised), each with
    `cpus_per_actor` CPUs (default 1; or one GPU each when `device` is "cuda"), waiting at most
    `connect_timeout` seconds for the cluster (default 30). `options` and `changes` are the
    pipeline's (`PipelineOptions`: aggregation_strategy, device, dtype, batch_size, ...), as
    for `minibert_ner.pipeline`. `gliner`: the model is a GLiNER model, run with these settings
    (labels, and optionally threshold, flat_ner, multi_label: `GLiNERPipeline`'s fields), on
    either engine.
    Files finished by an earlier run into the same folder are skipped. Progress lines go to
    `log` (e.g. sys.stderr; None: quiet).

    Everything that can be checked without the model is checked before it loads: the options,
    the inputs, the output folder (created, writable, not in use by another run). Raises
    BatchError for bad input or options, JobError when the job stops part-way (an output it
    cannot write, a Ray failure); finished files are kept either way.
    """
    if not str(model):  # Path("") is ".": never a model the user meant
        raise BatchError("the model is empty (an unset variable?); pass a hub id or folder")
    if engine not in ENGINES:
        raise BatchError(f"unknown engine {engine!r}; use one of {ENGINES}")
    if output_format not in OUTPUT_FORMATS:
        raise BatchError(f"unknown output format {output_format!r}; use one of {OUTPUT_FORMATS}")
    ray_only = {
        "--address": address,
        "--num-actors": num_actors,
        "--cpus-per-actor": cpus_per_actor,
        "--connect-timeout": connect_timeout,
    }
    given = [flag for flag, value in ray_only.items() if value is not None]
    if engine == "local" and given:
        raise BatchError(f"{', '.join(given)}: only for the Ray engine; add --engine ray")
    options = (options or PipelineOptions()).replace(**changes)
    manifest_options = run_options(model, output_format, text_column, id_column, options)
    manifest_options["gliner"] = dict(gliner) if gliner is not None else None
    output_dir = Path(output_dir).expanduser()
    found = scan_inputs(inputs, exclude=output_dir)
    sources = found.files
    named = [inputs] if isinstance(inputs, (str, Path)) else inputs
    named_folders = [Path(p).expanduser() for p in named if Path(p).expanduser().is_dir()]
    # An output option added since a folder's manifest was written counts as its default there;
    # a manifest without a model fingerprint (written before they were kept) cannot tell: accept.
    fingerprint = {"model_fingerprint": manifest_options["model_fingerprint"]}
    defaults = {**PipelineOptions().output_fields(), **fingerprint, "gliner": None}
    with OutputFolder(output_dir, manifest_options, defaults) as folder:
        # Outputs mirror the inputs below a folder named as input (or the inputs' own folder).
        jobs = folder.plan(sources, output_format, named_folders)
        done = [folder.is_done(job) for job in jobs]
        todo = [job for job, is_done in zip(jobs, done, strict=True) if not is_done]
        for job in todo:
            check_input(job.source, text_column, id_column)
        folder.prepare(todo)
        summary = BatchSummary(
            files=len(todo), skipped=len(jobs) - len(todo), unreadable=found.unreadable
        )
        for job, is_done in zip(jobs, done, strict=True):
            if is_done:
                summary.total.add(folder.counts(job))
        progress = ProgressLog(log, len(todo))
        for path, why in found.unreadable:
            progress.say(f"cannot read {path}: {why}; it is not labelled")
        progress.say(
            f"{len(jobs)} input files: {summary.skipped} already done, {len(todo)} to do "
            f"({engine} engine) -> {output_dir}"
        )
        if not todo:
            return summary
        columns = {"text_column": text_column, "id_column": id_column}
        if engine == "local":
            results = local_results(todo, str(model), options, gliner=gliner, **columns)
        else:
            from .ray_engine import ray_results

            results = ray_results(
                todo,
                str(model),
                options,
                address=address,
                num_actors=num_actors,
                cpus_per_actor=cpus_per_actor or 1,
                connect_timeout=connect_timeout,
                gliner=gliner,
                **columns,
            )
        try:
            summary.counts, summary.changed = write_results(
                todo,
                results,
                folder,
                progress,
                output_format=output_format,
                strategy=options.aggregation_strategy,
                id_column=id_column,
            )
        except KeyboardInterrupt:
            progress.say(
                f"interrupted: {progress.done} of {len(todo)} files finished and kept; run the "
                "same command again to resume (finished files are skipped)"
            )
            raise
    summary.total.add(summary.counts)
    summary.seconds = time.perf_counter() - progress.start
    progress.say(f"done: {summary.describe()}")
    return summary
