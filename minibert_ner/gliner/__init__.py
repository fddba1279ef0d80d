"""GLiNER: zero-shot NER with labels named at call time, on our encoders (a drop-in for the
`gliner` package's inference). api.py (`GLiNER`), model.py (the head), checkpoint.py (loading),
decoding.py (gliner's greedy rules)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports

_EXPORTS = {"GLiNER": "api", "split_words": "api", "load_gliner": "checkpoint"}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .api import GLiNER, split_words
    from .checkpoint import load_gliner

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
