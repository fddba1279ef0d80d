"""`torch.compile` at the call site: the model stays a plain module, and callers choose.

Inductor specialises on input shapes; callers that feed many lengths should pad them to a few
buckets (the pipeline pads T to a multiple of `LENGTH_BUCKET`) so that it compiles a handful of
graphs rather than one per length.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..errors import MiniBertError
from ..families import Model

__all__ = ["LENGTH_BUCKET", "compile_model"]

LENGTH_BUCKET = 64  # pad sequence lengths up to a multiple of this when compiled


def compile_model(model: Model, *, mode: str | None = None) -> Callable[..., object]:
    """`torch.compile(model)`: same call signature and outputs, faster after a warm-up per shape.

    mode: None (default), "reduce-overhead" (CUDA graphs, CUDA only) or "max-autotune".
    """
    if mode == "reduce-overhead" and model.device.type != "cuda":
        raise MiniBertError("mode 'reduce-overhead' uses CUDA graphs; it needs a CUDA device")
    # dynamic=False: bucketed shapes recompile a few times; dynamic shapes would give up the
    # shape-specialised kernels that make compiling worth it.
    return torch.compile(model, mode=mode, dynamic=False)
