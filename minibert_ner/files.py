"""Files that appear under their name only when complete.

`AtomicFile` writes under a temporary name (`temporary_path`: `<name>.tmp`, beside the target)
and `publish`es it, flushed to disk and renamed in one step, once it is complete; on failure
the temporary is removed. So whoever reads a file under its final name reads it whole, and a
run that fails, is interrupted or is killed leaves no file cut short. Every command and batch
job that writes a result file writes it through here: this is the one place that decides how a
file is replaced. It imports nothing of ours.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

__all__ = ["AtomicFile", "publish", "temporary_path"]


def temporary_path(path: Path) -> Path:
    """Where `path` is written until it is complete: `<name>.tmp` in the same folder (the same
    disk, so that the rename is one step)."""
    return path.with_name(path.name + ".tmp")


def publish(tmp: Path, path: Path) -> None:
    """Make a complete file visible under its final name in one step (a rename on one disk)."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())  # its bytes are on disk before the name says it is complete
    os.replace(tmp, path)


class AtomicFile:
    """A file written at `temporary_path(path)` (UTF-8 text, or bytes with `binary=True`) and
    renamed to `path` by `commit()`; `abort()` removes it. As a context manager: the stream to
    write, committed when the block ends, aborted when it raises.

        with AtomicFile(path) as out:
            out.write(text)

    The folder must exist; OSError when the temporary cannot be created.
    """

    def __init__(self, path: str | Path, *, binary: bool = False) -> None:
        self.path = Path(path)
        self.tmp = temporary_path(self.path)
        mode, encoding = ("wb", None) if binary else ("w", "utf-8")
        self.stream: IO[Any] = open(self.tmp, mode, encoding=encoding)  # noqa: SIM115 (until commit)

    def commit(self) -> None:
        """Close the temporary and publish it as `path` (OSError if that fails: then `abort`)."""
        self.stream.close()
        publish(self.tmp, self.path)

    def abort(self) -> None:
        """Close and remove the temporary; `path` is left as it was. Safe after `commit`."""
        try:
            self.stream.close()
        except OSError:
            pass  # the write that failed fails again on close; the file goes anyway
        finally:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> IO[Any]:
        return self.stream

    def __exit__(self, exc_type: object, *_: object) -> None:
        try:
            if exc_type is None:
                self.commit()
        finally:
            self.abort()
