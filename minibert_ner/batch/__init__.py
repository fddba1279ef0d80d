"""Labelling corpora of files: records in and out (records.py), the job with its output folder,
resume and counts (job.py), and the Ray Data engine (ray_engine.py, with the `ray` extra).
The guide: docs/batch.md."""

from .job import EXIT_INCOMPLETE, BatchSummary, run_batch

__all__ = ["EXIT_INCOMPLETE", "BatchSummary", "run_batch"]
