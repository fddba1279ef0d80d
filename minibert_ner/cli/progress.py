"""A one-line progress bar on stderr, drawn only when stderr is a terminal (so logs and pipes
stay clean), written here rather than taken from a dependency."""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = [
    "Progress",
]


class Progress:
    """Counts items (e.g. lines) and, when the total is known, how much of it is done.

        with Progress(total=file_size, unit="lines") as bar:
            bar.update(count=len(lines), amount=bytes_read)

    Draws `37% |###########.................| 1204 lines, 311.0 lines/s`, or without a total
    `1204 lines, 311.0 lines/s`, at most every `interval` seconds.
    """

    WIDTH = 30

    def __init__(
        self,
        total: int | None = None,
        unit: str = "lines",
        stream: TextIO | None = None,
        interval: float = 0.1,
        enabled: bool = True,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.total = total or None  # in the same units as `amount` (bytes of a file)
        self.unit = unit
        self.interval = interval
        self.count = 0  # items done
        self.amount = 0  # progress towards `total`
        self.started = time.monotonic()
        self._drawn = 0.0

    def update(self, count: int = 0, amount: int = 0) -> None:
        self.count += count
        self.amount += amount
        if self.enabled and time.monotonic() - self._drawn >= self.interval:
            self._draw()

    def _draw(self) -> None:
        self._drawn = time.monotonic()
        rate = self.count / max(self._drawn - self.started, 1e-9)
        line = f"{self.count} {self.unit}, {rate:.1f} {self.unit}/s"
        if self.total:
            done = min(self.amount / self.total, 1.0)
            filled = int(done * self.WIDTH)
            line = f"{done:4.0%} |{'#' * filled}{'.' * (self.WIDTH - filled)}| {line}"
        self.stream.write(f"\r{line}\x1b[K")  # \x1b[K: erase what a longer line left behind
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
