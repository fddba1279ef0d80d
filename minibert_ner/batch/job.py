"""Batch NER over files: read records, label them, write one output record per input record.

    corpus/a.txt        one text a line          ->  out/a.jsonl    {"line": 1, "entities": [...]}
    corpus/b.jsonl      {"id": 7, "text": "..."} ->  out/b.jsonl    {"line": 1, "id": 7, "entities": []}
    corpus/x/c.parquet  a text column            ->  out/x/c.jsonl  {"row": 0, "entities": [...]}
                                                     out/b.errors.jsonl  {"line": 9, "error": "..."}
                                                     out/manifest.json   finished files, counts

Reading records and writing output files is `corpus.py`'s; this module is the job around them.
Its contract, for every input file: records in = written + errors. A record that cannot be
labelled (invalid UTF-8, not JSON, no text field, ...) goes with its reason to the file's
`.errors.jsonl`; nothing is dropped silently, and `BatchSummary.exit_status` says whether every
record was labelled.

The output folder (`OutputFolder`) is checked and locked, one run at a time, before the model
loads. It mirrors the inputs below their common folder, its *root*, kept in its manifest: a
later run with inputs outside the root widens it and moves the finished outputs along, so the
output path of an input depends on what the input is, not on how a run named it. Files inside
the output folder are never inputs.

Resuming: each input is stamped (size, times, inode) before it is read and read only up to the
stamped size. Its output is written under a temporary name, renamed when complete, then
appended with the stamp to the manifest's journal. A rerun skips the files whose stamp still
matches, so a run that was interrupted, even killed, goes on where it stopped, and an input
changed during or after a run is labelled again.

Two engines label records between the same reader and writer: "local" (the in-process pipeline)
and "ray" (Ray Data actors, `ray_engine.py`), so moving from a laptop to a cluster is one flag.
"""

from __future__ import annotations

import inspect
import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TextIO

from ..errors import BatchError, JobError
from .records import (
    OUTPUT_FORMATS,
    JsonlWriter,
    ParquetWriter,
    Record,
    check_input,
    find_inputs,
    key_columns,
    publish,
    read_records,
    temporary_path,
)

ENGINES = ("local", "ray")
MANIFEST = "manifest.json"
# Files finished since manifest.json was written, one JSON line each, appended as they finish
# (so that a file costs the same however many came before it) and folded into manifest.json at
# the end of the run or, after a kill, at the start of the next.
JOURNAL = "manifest.journal"
# Records handed to the pipeline at a time by the local engine (and to each Ray actor call): big
# enough to fill forward batches, small enough that progress and memory stay smooth.
RECORDS_PER_CHUNK = 256
# Pipeline options left out of the manifest: those that do not change the labels (a resumed run
# may change them), and the hub access token, which must not be written to disk.
NOT_IN_MANIFEST = ("device", "batch_size", "max_batch_tokens", "compile", "token")
# Exit status of a job that finished without labelling every record: some are in .errors.jsonl
# files, or an input changed while it was read. 0: every record labelled. An error ends the job
# with its `exit_status` (2: bad input or options; 1: `JobError`), Ctrl-C with 130.
EXIT_INCOMPLETE = 3


# ---------------------------------------------------------------------------------------------
# Planning: what each input is, and where its results go
# ---------------------------------------------------------------------------------------------


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
    """The output and errors file of an input at `relative` below the root."""
    return (
        output_dir / relative.with_suffix(f".{output_format}"),
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


# ---------------------------------------------------------------------------------------------
# The output folder: checks, lock, manifest
# ---------------------------------------------------------------------------------------------


class OutputFolder:
    """The output folder of a job, held by one run at a time, and its manifest.

    `manifest.json`: {"options": the run options, "root": the inputs' common folder, "files":
    {input path: {size, mtime_ns, ctime_ns, inode, output, records, written, errors}}}; plus the
    journal (JOURNAL) while a run goes on. A file counts as finished when its entry's stamp is
    the input's stamp now and its outputs exist. Options that change the labels (model,
    aggregation, columns, format) must match the folder's: two models' results never mix.

        with OutputFolder(out, options) as folder:   # checked, locked, manifest read
            jobs = folder.plan(sources, "jsonl")      # outputs placed (and moved) below the root
    """

    def __init__(self, path: str | Path, options: dict[str, Any]) -> None:
        self.path = Path(path).expanduser().resolve()
        self.options = options
        self.root: Path | None = None
        self.files: dict[str, dict[str, Any]] = {}
        self._lock_fd: int | None = None
        self._journal: TextIO | None = None
        self._dirty = False  # the state differs from manifest.json's
        self._create()
        self._lock()
        try:
            self._load()
        except BaseException:
            self._unlock()
            raise

    def __enter__(self) -> OutputFolder:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            # Nothing finished in a new folder: leave no manifest, which would hold the folder
            # to options that may have been wrong.
            if self._dirty and (self.files or (self.path / MANIFEST).exists()):
                self._fold_journal()
        except OSError as e:  # the journal stays; the next run folds it
            if exc_type is None:
                raise JobError(f"cannot write {self.path / MANIFEST}: {e.strerror or e}") from e
        finally:
            self._unlock()

    # --- opening: before the model loads -------------------------------------------------

    def _create(self) -> None:
        if self.path.exists() and not self.path.is_dir():
            raise BatchError(
                f"--output {self.path} is a file; pass a folder (it is created if missing)"
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=self.path):
                pass  # a file can be created and written here
        except OSError as e:
            raise BatchError(
                f"cannot write to the output folder {self.path}: {e.strerror or e}; "
                "pass an --output folder you can write to"
            ) from e

    def _lock(self) -> None:
        """An exclusive lock, held until the run ends; the system drops it when the process
        dies, however it dies."""
        fd = _lock_folder(self.path)
        if fd is None:
            raise BatchError(
                f"{self.path} is in use by another minibert-ner batch run; wait for it to end, "
                "or pass another --output"
            )
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the lock
            self._lock_fd = None

    def _load(self) -> None:
        manifest, journal = self.path / MANIFEST, self.path / JOURNAL
        saved_options = None
        if manifest.is_file():
            try:
                saved = json.loads(manifest.read_text("utf-8"))
                saved_options, self.files = saved["options"], dict(saved["files"])
                root = saved.get("root")
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise BatchError(
                    f"cannot read {manifest} ({e}); delete it to redo every file"
                ) from e
            if root is not None:
                self.root = Path(root)
            elif self.files:  # a manifest written before roots were kept: its files' folder
                self.root = Path(os.path.commonpath([Path(s).parent for s in self.files]))
        if journal.is_file():
            self._dirty = True
            for line in journal.read_text("utf-8", errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                    self.files[entry.pop("source")] = entry
                except (ValueError, KeyError, AttributeError, TypeError):
                    continue  # a line cut short by a kill: its file is done again
        if saved_options is not None and saved_options != self.options:
            diff = ", ".join(
                f"{k}: {saved_options.get(k)!r} then, {self.options.get(k)!r} now"
                for k in sorted(set(saved_options) | set(self.options))
                if saved_options.get(k) != self.options.get(k)
            )
            raise BatchError(
                f"{self.path} holds results made with other options ({diff}); "
                f"pass another --output folder, or delete {manifest} to redo every file"
            )

    # --- planning ----------------------------------------------------------------------------

    def plan(
        self, sources: Sequence[Path], output_format: str, folders: Sequence[Path] = ()
    ) -> list[FileJob]:
        """A job for each input (absolute paths, as `find_inputs` gives them), its outputs
        mirroring its path below the root: the common folder of the inputs, of the `folders`
        named as inputs and of the root so far. Inputs outside the root widen it, and the
        files finished before move to their place below the new root. Two inputs writing the
        same output (`a.txt`, `a.jsonl`), now or in an earlier run, are an error."""
        if not sources:
            return []
        folders = [p.parent for p in sources] + [Path(f).resolve() for f in folders]
        folders += [self.root] if self.root is not None else []
        try:
            root = Path(os.path.commonpath(folders))
        except ValueError as e:  # Windows: inputs on different drives
            raise BatchError(f"inputs on different drives cannot share --output: {e}") from e
        owners = {self.path / MANIFEST: "the manifest", self.path / JOURNAL: "the manifest"}

        def place(source: str) -> tuple[Path, Path]:
            output, errors = output_paths(Path(source).relative_to(root), self.path, output_format)
            for target in (output, errors):  # never an input: none is in the output folder
                owner = owners.setdefault(target, source)
                if owner != source:
                    raise BatchError(
                        f"{source} and {owner} would both write {target}; rename one, or "
                        "run them into different --output folders"
                    )
            return output, errors

        placed = {source: place(source) for source in self.files}
        jobs = [FileJob(p, *place(str(p)), stamp=_stamp(p)) for p in sources]
        moves = []  # (from, to) of finished outputs, when the root widened
        for source, (output, errors) in placed.items():
            entry = self.files[source]
            old = self.path / entry["output"]
            if old != output:
                moves += [(old, output), (old.with_suffix(".errors.jsonl"), errors)]
                entry["output"] = output.relative_to(self.path).as_posix()
        # Deepest first: a file's new place (below the widened root) may be where a deeper
        # file was until it moved. A kill part-way is safe: the next run moves the rest, and a
        # file found in neither place is done again.
        for old, new in sorted(moves, key=lambda m: -len(m[0].parts)):
            if old.exists():
                new.parent.mkdir(parents=True, exist_ok=True)
                os.replace(old, new)
        if root != self.root or moves:
            self.root, self._dirty = root, True
        return jobs

    def prepare(self, jobs: Sequence[FileJob]) -> None:
        """Create the jobs' output folders and remove temporaries that a killed run left, so
        that a folder that cannot be written fails now, not after the model has loaded."""
        for folder in sorted({job.output.parent for job in jobs}):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise BatchError(f"cannot create output folder {folder}: {e.strerror or e}") from e
        for job in jobs:
            for path in (job.output, job.errors):
                temporary_path(path).unlink(missing_ok=True)

    # --- state of each file --------------------------------------------------------------

    def is_done(self, job: FileJob) -> bool:
        entry = self.files.get(str(job.source))
        return (
            entry is not None
            and Stamp.saved(entry) == job.stamp
            and self.path / entry["output"] == job.output
            and job.output.is_file()
            and (not entry.get("errors") or job.errors.is_file())
        )

    def counts(self, job: FileJob) -> FileCounts:
        """The record counts of a finished file, as its entry holds them."""
        entry = self.files[str(job.source)]
        return FileCounts(entry["records"], entry["written"], entry["errors"])

    def finished(self, job: FileJob, counts: FileCounts) -> None:
        """Record a file as finished, with the stamp it had before it was read: one line
        appended to the journal (a kill can cut only that line short, and then the file is
        done again)."""
        entry = {
            **asdict(job.stamp),
            "output": job.output.relative_to(self.path).as_posix(),
            **asdict(counts),
        }
        self.files[str(job.source)] = entry
        if self._journal is None:
            if self._dirty:  # the root the journal's output paths are relative to, saved first
                self._fold_journal()
            self._journal = open(self.path / JOURNAL, "a", encoding="utf-8")  # noqa: SIM115
            self._dirty = True
        self._journal.write(json.dumps({"source": str(job.source), **entry}) + "\n")
        self._journal.flush()  # in the system's hands: a killed process loses nothing

    def _fold_journal(self) -> None:
        """Write manifest.json whole (atomically) and drop the journal it now holds."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        manifest = self.path / MANIFEST
        tmp = temporary_path(manifest)
        payload = {
            "options": self.options,
            "root": str(self.root) if self.root is not None else None,
            "files": self.files,
        }
        tmp.write_text(json.dumps(payload, indent=1) + "\n", "utf-8")
        publish(tmp, manifest)
        (self.path / JOURNAL).unlink(missing_ok=True)
        self._dirty = False


def _stamp(path: Path) -> Stamp:
    try:
        return Stamp.of(path)
    except OSError as e:
        raise BatchError(f"cannot read {path}: {e.strerror or e}") from e


def _lock_folder(path: Path) -> int | None:
    """A descriptor holding an exclusive lock on the folder `path` (closing it unlocks), or
    None when another process holds it. POSIX: flock on the folder itself, so no lock file is
    left behind; Windows, which cannot lock a folder: on a `.lock` file in it."""
    try:
        import fcntl
    except ImportError:
        import msvcrt

        fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            os.close(fd)
            return None
        return fd
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


# ---------------------------------------------------------------------------------------------
# Running: engine results -> outputs, with progress
# ---------------------------------------------------------------------------------------------

# What an engine yields, in input order: (index of the file in the job list, record, entities),
# entities None for a record with an error; after each file's records, (index, None, None) to say
# that the file is complete (so that it is published before the next file's first record).
Result = tuple[int, "Record | None", "list[dict[str, Any]] | None"]


class FileOutput:
    """The outputs of one input file: entities records, and error records when there are any."""

    def __init__(self, job: FileJob, *, strategy: str, id_column: str | None) -> None:
        self.job = job
        self.counts = FileCounts()
        keys = key_columns(job.source, id_column)
        self.output: JsonlWriter | ParquetWriter = (
            ParquetWriter(job.output, keys=keys, strategy=strategy)
            if job.output.suffix == ".parquet"
            else JsonlWriter(job.output)
        )
        self.errors: JsonlWriter | None = None  # opened at the first bad record

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
    seconds: float = 0.0

    @property
    def records_per_second(self) -> float:
        return self.counts.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def complete(self) -> bool:
        return self.total.errors == 0 and not self.changed

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


def write_results(
    jobs: Sequence[FileJob],
    results: Iterable[Result],
    folder: OutputFolder,
    progress: ProgressLog,
    *,
    strategy: str = "simple",
    id_column: str | None = None,
) -> tuple[FileCounts, list[Path]]:
    """Write an engine's results (see `Result`) file by file; each completed file is published
    and recorded in the manifest as soon as its end mark arrives. Returns the total counts and
    the inputs that changed while they were read."""
    total, changed = FileCounts(), []
    current: FileOutput | None = None
    finished = 0
    try:
        for index, record, entities in results:
            if index != finished:
                raise RuntimeError(f"engine sent file {index} while file {finished} was open")
            if current is None:
                current = FileOutput(jobs[index], strategy=strategy, id_column=id_column)
            if record is None:  # the file's end mark
                current.commit()
                job = current.job
                folder.finished(job, current.counts)
                total.add(current.counts)
                is_changed = _stamp_now(job.source) != job.stamp
                if is_changed:
                    changed.append(job.source)
                progress.file_done(current, is_changed)
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
    *,
    text_column: str = "text",
    id_column: str | None = None,
    **pipeline_options: Any,
) -> Iterator[Result]:
    """The local engine: the in-process pipeline, over chunks of records that run across file
    boundaries (so that many small files still fill forward batches)."""
    from ..inference.pipeline import pipeline

    ner = pipeline(model=model, **pipeline_options)
    size = max(RECORDS_PER_CHUNK, pipeline_options.get("batch_size") or 0)

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
    from ..inference.pipeline import pipeline

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
    connect_timeout: float | None = None,
    log: TextIO | None = None,
    **pipeline_options: Any,
) -> BatchSummary:
    """Label every record of `inputs` (paths, folders or globs) into `output_dir`.

    `engine="local"` runs the in-process pipeline; `engine="ray"` runs Ray Data actors (on the
    cluster at `address`, else a local Ray instance, or the one already initialised), each with
    `cpus_per_actor` CPUs (default 1; or one GPU each when `device` is "cuda"), waiting at most
    `connect_timeout` seconds for the cluster (default 30). `pipeline_options`
    (aggregation_strategy, device, dtype, batch_size, ...) go to `minibert_ner.pipeline`.
    Files finished by an earlier run into the same folder are skipped. Progress lines go to
    `log` (e.g. sys.stderr; None: quiet).

    Everything that can be checked without the model is checked before it loads: the options,
    the inputs, the output folder (created, writable, not in use by another run). Raises
    BatchError for bad input or options, JobError when the job stops part-way (an output it
    cannot write, a Ray failure); finished files are kept either way.
    """
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
    pipeline_options = {k: v for k, v in pipeline_options.items() if v is not None}
    options = run_options(model, output_format, text_column, id_column, pipeline_options)
    output_dir = Path(output_dir).expanduser()
    sources = find_inputs(inputs, exclude=output_dir)
    named = [inputs] if isinstance(inputs, (str, Path)) else inputs
    named_folders = [Path(p).expanduser() for p in named if Path(p).expanduser().is_dir()]
    with OutputFolder(output_dir, options) as folder:
        # Outputs mirror the inputs below a folder named as input (or the inputs' own folder).
        jobs = folder.plan(sources, output_format, named_folders)
        done = [folder.is_done(job) for job in jobs]
        todo = [job for job, is_done in zip(jobs, done, strict=True) if not is_done]
        for job in todo:
            check_input(job.source, text_column, id_column)
        folder.prepare(todo)
        summary = BatchSummary(files=len(todo), skipped=len(jobs) - len(todo))
        for job, is_done in zip(jobs, done, strict=True):
            if is_done:
                summary.total.add(folder.counts(job))
        progress = ProgressLog(log, len(todo))
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
                connect_timeout=connect_timeout,
                **columns,
                **pipeline_options,
            )
        try:
            summary.counts, summary.changed = write_results(
                todo,
                results,
                folder,
                progress,
                strategy=options["aggregation_strategy"],
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
