"""What the server accepts and how it batches: `ServeLimits`, declared once.

The serve command's flags take their defaults from here, and importing this module needs neither
the serve extra nor torch (so that `minibert-ner serve --help` stays fast, and works without the
extra).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["MAX_PORT", "ServeLimits"]

MAX_PORT = 65535  # TCP ports are 16 bits (0: any free port)


@dataclass(frozen=True)
class ServeLimits:
    """What the server accepts and how it batches (the serve command's flags)."""

    max_request_bytes: int = 1 << 20  # a request's body, at most
    max_inputs: int = 64  # texts in one request, at most
    max_queue: int = 256  # requests waiting for the model; more are answered 503
    batch_wait: float = 0.010  # seconds a batch may wait for more requests (batcher.py, step 1)
    header_timeout: float = 10.0  # seconds a request's headers may take to arrive; then 408
    body_timeout: float = 30.0  # seconds a request's body may stall between two reads; then 408
    drain_timeout: float = 30.0  # seconds a shutdown waits for requests in flight; then cut
    api_key: str | None = dataclasses.field(default=None, repr=False)  # None: no key needed
