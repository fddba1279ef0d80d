"""The output folder of a batch job, held by one run at a time.

It is checked (a folder, writable) and locked before the model loads. It mirrors the inputs
below their common folder, its *root*, kept in its manifest: a later run with inputs outside the
root widens it and moves the finished outputs along, so the output path of an input depends on
what the input is, not on how a run named it (files inside the output folder are never inputs).

Resuming: each input is stamped before it is read (plan.py) and, once its output is published,
appended with that stamp to the manifest's journal. A rerun skips the files whose stamp still
matches, so a run that was interrupted, even killed, goes on where it stopped, and an input
changed during or after a run is labelled again.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

from ..errors import BatchError, JobError
from ..files import AtomicFile, temporary_for
from .plan import FileCounts, FileJob, Stamp, output_paths

__all__ = ["JOURNAL", "MANIFEST", "OutputFolder"]

MANIFEST = "manifest.json"
# Files finished since manifest.json was written, one JSON line each, appended as they finish
# (so that a file costs the same however many came before it) and folded into manifest.json at
# the end of the run or, after a kill, at the start of the next.
JOURNAL = "manifest.journal"


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

    def __init__(
        self, path: str | Path, options: dict[str, Any], defaults: dict[str, Any] | None = None
    ) -> None:
        """defaults: the value each option had before it existed (its default, which by rule
        keeps the old behaviour), for manifests written without it."""
        self.path = Path(path).expanduser().resolve()
        self.options = options
        self.defaults = defaults or {}
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
                saved_options = {**self.defaults, **saved["options"]}
                self.files = dict(saved["files"])
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
                tmp = temporary_for(path)  # beside the file a linked output names
                if tmp is not None:
                    tmp.unlink(missing_ok=True)

    # --- state of each file --------------------------------------------------------------

    def is_done(self, job: FileJob) -> bool:
        """Finished before, and unchanged since (`plan` has placed every entry's output where
        the job's is)."""
        entry = self.files.get(str(job.source))
        return (
            entry is not None
            and Stamp.saved(entry) == job.stamp
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
        payload = {
            "options": self.options,
            "root": str(self.root) if self.root is not None else None,
            "files": self.files,
        }
        with AtomicFile(self.path / MANIFEST) as out:
            out.write(json.dumps(payload, indent=1) + "\n")
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
