"""The hyper-parameters of fine-tuning, declared once: `TrainConfig` (no torch import, so that the
command line builds its flags from it cheaply: cli/train.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError

__all__ = ["TrainConfig"]


@dataclass
class TrainConfig:
    """Hyper-parameters of a fine-tuning run; the defaults follow the BERT paper."""

    epochs: int = 3
    lr: float = 5e-5  # peak learning rate (BERT paper grid: 5e-5, 3e-5, 2e-5)
    batch_size: int = 16  # sentences per step (BERT paper: 16 or 32)
    warmup_ratio: float = 0.1  # fraction of steps with the learning rate rising linearly from 0
    weight_decay: float = 0.01  # AdamW decay on weight matrices (not biases or LayerNorm)
    max_grad_norm: float = 1.0  # clip the gradient norm (as transformers' Trainer does)
    seed: int = 42
    max_steps: int | None = None  # stop after this many steps (the schedule then spans them)
    eval_batch_size: int = 64
    log_every: int = 50  # steps between progress lines

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "log_every", "max_steps"):
            value = getattr(self, name)
            if not (value is None and name == "max_steps") and (
                not isinstance(value, int) or value < 1
            ):
                raise InputError(f"{name} must be a whole number of at least 1, got {value!r}")
        if not self.lr > 0:
            raise InputError(f"lr must be above 0, got {self.lr}")
        if not 0 <= self.warmup_ratio < 1:
            raise InputError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if not self.weight_decay >= 0:
            raise InputError(f"weight_decay must be at least 0, got {self.weight_decay}")
