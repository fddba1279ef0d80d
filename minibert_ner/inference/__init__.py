"""Inference: text in, entities out.

`pipeline()` / `NERPipeline` (pipeline.py) tokenize, run the model over length-sorted batches of
windows (windows.py: long text is never cut) and turn token labels into entities by
`transformers`' rules (aggregation.py); compile.py and quantize.py are the optional speed options.
"""

from .aggregation import Entity, TokenEntity
from .options import PipelineOptions
from .pipeline import NERPipeline, pipeline

__all__ = ["Entity", "NERPipeline", "PipelineOptions", "TokenEntity", "pipeline"]
