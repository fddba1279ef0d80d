"""Where commands write: standard output, guarded so that a failed write (disk full, closed
pipe) is one line, not a traceback; files written complete or not at all; output folders
checked before any model loads."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TextIO

from ..errors import InputError, JobError
from ..files import AtomicFile

__all__ = ["GuardedOutput", "check_folder", "output_file", "silence_stdout"]


class GuardedOutput(io.TextIOBase):
    """An output stream (standard output, or a file) whose write failures (disk full, closed
    pipe) become errors we report: `JobError` naming it, or BrokenPipeError when the reader of
    a pipe went away."""

    def __init__(self, stream: Any, name: str = "standard output") -> None:
        self.stream = stream
        self.name = name
        self.failed = False  # a write failed: what is still buffered must go nowhere

    def _guard(self, call: Any, *args: Any) -> Any:
        try:
            return call(*args)
        except OSError as e:
            self.failed = True
            if isinstance(e, BrokenPipeError):
                raise
            raise JobError(f"cannot write to {self.name}: {e.strerror or e}") from e

    def write(self, text: str) -> int:
        return self._guard(self.stream.write, text)

    def flush(self) -> None:
        self._guard(self.stream.flush)

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def writable(self) -> bool:
        return True


def silence_stdout() -> None:
    """After a failed write: send what is left in the buffer nowhere, so that the interpreter's
    own flush at exit does not fail again with a traceback."""
    with suppress(OSError, ValueError, io.UnsupportedOperation):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


@contextmanager
def output_file(path: str | None, flag: str = "--output") -> Iterator[TextIO]:
    """Standard output, or the file `path` (given as `flag`) written as an `AtomicFile`: under a
    temporary name, renamed into place once complete; after a failure or Ctrl-C it is absent,
    never cut short."""
    if path is None:
        yield sys.stdout
        return
    target = Path(path)
    if target.is_dir():
        raise InputError(f"{flag} {path} is a folder; give a file name")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        file = AtomicFile(target)
    except OSError as e:
        raise InputError(f"cannot write {flag} {path}: {e.strerror or e}") from e
    guarded = GuardedOutput(file.stream, str(path))
    try:
        yield guarded
        guarded.flush()  # the last buffered bytes: a full disk shows here
        try:
            file.commit()
        except OSError as e:
            raise JobError(f"cannot write to {path}: {e.strerror or e}") from e
    finally:
        file.abort()  # after a failure: the temporary goes (after a commit: nothing to do)


def check_folder(path: str | Path) -> Path:
    """An output folder that exists (made if need be) and can be written, or an InputError
    saying why not."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"--output {path} is a file; give a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create the --output folder {path}: {e.strerror or e}") from e
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"cannot write into the --output folder {path}: permission denied")
    return folder
