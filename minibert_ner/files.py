"""Files that appear under their name only when complete.

`AtomicFile` writes under a temporary name (`temporary_path`: `<name>.tmp`, beside the target)
and `publish`es it, flushed to disk and renamed in one step, once it is complete; on failure
the temporary is removed. So whoever reads a file under its final name reads it whole, and a
run that fails, is interrupted or is killed leaves no file cut short. Every command and batch
job that writes a result file writes it through here: this is the one place that decides how a
file is replaced, by what the path is:

    a regular file, or nothing yet   written under the temporary name, then renamed over it
    a symbolic link                  the same for the file it points to; the link stays
    a device, a pipe (FIFO), other   written through, as the shell's `>` writes it: no
                                     temporary, no rename (/dev/null, /dev/stdout are never
                                     replaced); one that cannot be opened (a socket) is an
                                     OSError

It imports nothing of ours.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

__all__ = ["AtomicFile", "is_special", "publish", "target_of", "temporary_for", "temporary_path"]


def temporary_path(path: Path) -> Path:
    """Where `path` is written until it is complete: `<name>.tmp` in the same folder (the same
    disk, so that the rename is one step)."""
    return path.with_name(path.name + ".tmp")


def publish(tmp: Path, path: Path) -> None:
    """Make a complete file visible under its final name in one step (a rename on one disk)."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())  # its bytes are on disk before the name says it is complete
    os.replace(tmp, path)


def is_special(path: Path) -> bool:
    """Whether `path` is something other than a regular file, a folder or nothing (a device, a
    pipe, a socket): what is written to it goes through, never by a rename."""
    return path.exists() and not path.is_file() and not path.is_dir()


def target_of(path: Path) -> Path:
    """The file that writing `path` replaces: the file a link names (the link stays), or a
    device or pipe as it is (/dev/stdout is a link to one: opened as it is)."""
    return path if is_special(path) else Path(os.path.realpath(path))


def temporary_for(path: Path) -> Path | None:
    """Where `AtomicFile(path)` writes until commit (beside `target_of(path)`), or None for a
    device or pipe, written through. A run killed mid-write leaves its temporary there; whoever
    writes `path` again removes it first."""
    return None if is_special(path) else temporary_path(target_of(path))


class AtomicFile:
    """A file written at `temporary_path(path)` (UTF-8 text, or bytes with `binary=True`) and
    renamed to `path` by `commit()`; `abort()` removes it. As a context manager: the stream to
    write, committed when the block ends, aborted when it raises.

        with AtomicFile(path) as out:
            out.write(text)

    A symbolic link: the file it points to is written so (`path` is that file). A device or a
    pipe: written directly (`tmp` is None). The folder must exist; OSError when the temporary
    (or the device) cannot be opened.
    """

    def __init__(self, path: str | Path, *, binary: bool = False) -> None:
        self.path, self.tmp = target_of(Path(path)), temporary_for(Path(path))
        mode, encoding = ("wb", None) if binary else ("w", "utf-8")
        # Open until commit or abort.
        self.stream: IO[Any] = open(self.tmp or self.path, mode, encoding=encoding)  # noqa: SIM115

    def commit(self) -> None:
        """Close the temporary and publish it as `path` (OSError if that fails: then `abort`)."""
        self.stream.close()
        if self.tmp is not None:
            publish(self.tmp, self.path)

    def abort(self) -> None:
        """Close and remove the temporary; `path` is left as it was. Safe after `commit`."""
        try:
            self.stream.close()
        except OSError:
            pass  # the write that failed fails again on close; the file goes anyway
        finally:
            if self.tmp is not None:
                self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> IO[Any]:
        return self.stream

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            if exc_type is None:
                self.commit()
        finally:
            self.abort()
