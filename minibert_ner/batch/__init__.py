"""Labelling corpora of files: records in and out (records.py), the job with its output folder,
resume and counts (job.py), and the Ray Data engine (ray_engine.py, with the `ray` extra).
The guide: docs/batch.md. The names below load on first use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

_EXPORTS = {"EXIT_INCOMPLETE": "job", "BatchSummary": "job", "run_batch": "job"}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .job import EXIT_INCOMPLETE, BatchSummary, run_batch

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
