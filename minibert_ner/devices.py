"""Devices and dtypes: the names users give them, checked and turned into torch's.

What `device=None` means, for every entry that takes a device:
- `pipeline()`, `train()` and the inspect command: CUDA when PyTorch sees a GPU, else the CPU
  (`resolve_device(None)`), as transformers' pipeline does;
- `load_model()`: the CPU: the weights go where they are told, and nowhere else unless told;
- `NERPipeline(model, tokenizer)`: wherever the model already is (it is used as it is).

A device is given as a name ("cpu", "cuda", "cuda:1", "mps"), as transformers' integers (-1: the
CPU, N: GPU N) or as a `torch.device`; `canonical_device` turns each into its name (options keep
names, so that they compare and serialise equal), `resolve_device` checks the name against what
PyTorch sees. Importing this module does not import torch: option checking (and the command
line's --help) stays torch-free.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from .config import DTYPE_NAMES
from .errors import InputError

if TYPE_CHECKING:
    import torch

__all__ = ["DEVICE_TYPES", "canonical_device", "resolve_device", "resolve_dtype"]

# The devices a model can run on here, by torch's device type.
DEVICE_TYPES = ("cpu", "cuda", "mps")


def canonical_device(device: object) -> str | None:
    """A device as its name: transformers' integers (-1: "cpu", N: "cuda:N"), a torch.device, or
    a str (checked against the hardware when the model loads: `resolve_device`). None stays None
    (see the module docstring for what it means)."""
    if isinstance(device, str) and device.strip().lstrip("-").isdigit():
        device = int(device)  # "0" / "-1" from a command line, as transformers' integers
    if device is None or isinstance(device, str):
        return device
    if isinstance(device, int) and not isinstance(device, bool):
        if device < -1:
            raise InputError(f"device {device}: use -1 for the CPU or N >= 0 for GPU N")
        return "cpu" if device == -1 else f"cuda:{device}"
    torch = sys.modules.get("torch")  # a torch.device exists only once torch is imported
    if torch is not None and isinstance(device, torch.device):
        return str(device)
    raise InputError(
        f"device must be a str such as 'cuda:0', an int or a torch.device, got {device!r}"
    )


def resolve_device(device: str | int | torch.device | None) -> torch.device:
    """`device` checked against what PyTorch sees; None: CUDA when there is a GPU, else the CPU
    (the module docstring says which entry reads None this way). Integers as transformers reads
    them: -1 the CPU, N the GPU N."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = canonical_device(device)
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InputError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from e
    if resolved.type not in DEVICE_TYPES:
        raise InputError(f"device {device!r} cannot run a model here; use cpu, cuda, cuda:N or mps")
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise InputError(f"device {device!r}: PyTorch sees no CUDA GPU here; use cpu")
        if resolved.index is not None and resolved.index >= count:
            raise InputError(f"device {device!r}: PyTorch sees only {count} CUDA GPU(s)")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"device {device!r}: the Apple MPS backend is not available here")
    return resolved


def resolve_dtype(dtype: torch.dtype | str | None) -> torch.dtype | None:
    """torch.float32 or one of its names in `config.DTYPE_NAMES` ("float32", "bf16", "half", ...).
    None stays None: each entry has its own default (float32 to label, bfloat16 on CUDA to
    train)."""
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPE_NAMES:
        raise InputError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPE_NAMES)}")
    return getattr(torch, DTYPE_NAMES[dtype])
