"""Precision modes on a CPU, and `dtype="auto"`: the fastest mode whose answers can be trusted.

A mode is how the model's numbers are stored and computed (`MODES`):

    float32          every operation in float32: the reference
    bfloat16         weights and activations in bfloat16
    bfloat16-mixed   the blocks' matmuls in bfloat16 (`ModelConfig.matmul_dtype`) but those of
                     the first three (at most half the blocks); embeddings, LayerNorm,
                     attention's softmax, the residual sums and the head in float32
    int8             the encoder's linear layers int8 (torchao, dynamic activations: quantize.py)

`dtype="auto"` picks, from the modes this CPU runs at speed (`cpu_features`: detected, not
assumed; bfloat16 needs AVX512-BF16 or AMX, int8 VNNI or AMX), the fastest one whose measured
answers on the fine-tuned MiniLM meet `TRUSTED` (CoNLL test F1 within 0.1 points of float32's
and at least 99.7% of sentences' entities identical to float32's); float32 where none does.
`FIGURES` holds those measurements, the one table the choice reads; `choose` is the choice
itself, a function of the features and the table (tests give it made-up CPUs).
Importing this module does not import torch.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "AUTO",
    "BF16_UNITS",
    "FIGURES",
    "INT8_UNITS",
    "MODES",
    "TRUSTED",
    "Choice",
    "Figures",
    "Mode",
    "choose",
    "cpu_features",
    "describe",
    "resolve",
]

AUTO = "auto"


@dataclass(frozen=True)
class Mode:
    """How a model is stored and run: what `pipeline(dtype=...)` loads for the mode's name."""

    name: str
    dtype: str  # the model's dtype: embeddings, LayerNorm, residual stream, head
    matmul_dtype: str | None = None  # the blocks' linear layers', where it differs
    matmul_from_block: int = 0  # the first block whose linear layers run in matmul_dtype
    quantize: str | None = None  # the encoder's linear layers quantized (quantize.py)
    fast_with: frozenset[str] = frozenset()  # CPU features of which one makes it fast; none: any


BF16_UNITS = frozenset({"avx512_bf16", "amx_bf16"})  # bfloat16 dot products in hardware
INT8_UNITS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})  # int8 dot products
MODES = {
    m.name: m
    for m in (
        Mode("float32", "float32"),
        Mode("bfloat16", "bfloat16", fast_with=BF16_UNITS),
        Mode("bfloat16-mixed", "float32", "bfloat16", matmul_from_block=3, fast_with=BF16_UNITS),
        Mode("int8", "float32", quantize="int8", fast_with=INT8_UNITS),
    )
}


@dataclass(frozen=True)
class Figures:
    """One mode measured against float32 (`python scripts/precision_modes.py`, docs/benchmarks.md)."""

    speed: float  # throughput / float32's: dslim/distilbert-NER shape, CoNLL test, end to end
    identical: float  # share of CoNLL test sentences whose entities equal float32's (MiniLM)
    f1_delta: float  # CoNLL test F1 minus float32's, in points (x100), the fine-tuned MiniLM


@dataclass(frozen=True)
class Trusted:
    """What a mode's answers must meet for `auto` to pick it."""

    max_f1_loss: float = 0.1  # points of CoNLL test F1 below float32's, at most
    min_identical: float = 0.997  # share of sentences whose entities equal float32's, at least

    def met_by(self, figures: Figures) -> bool:
        return figures.f1_delta >= -self.max_f1_loss and figures.identical >= self.min_identical


TRUSTED = Trusted()
# Measured on an AVX512 CPU with AVX512-BF16 and VNNI (2 cores, shared), torch 2.13, by
# scripts/precision_modes.py: answers on the fine-tuned MiniLM (`--model runs/minilm-conll
# --parts answers`), speed on the dslim shape (`--parts speed`, the median of three runs);
# docs/benchmarks.md has the runs.
FIGURES: dict[str, Figures] = {
    "bfloat16": Figures(speed=1.80, identical=0.9957, f1_delta=+0.06),
    "bfloat16-mixed": Figures(speed=1.31, identical=0.9983, f1_delta=-0.02),
    "int8": Figures(speed=1.66, identical=0.9664, f1_delta=-0.09),
}


@dataclass(frozen=True)
class Choice:
    """The mode a pipeline runs in, and why (shown by /info, --verbose and the pipeline's repr)."""

    mode: Mode
    reason: str

    def __str__(self) -> str:
        return f"{self.mode.name} ({self.reason})"


def choose(
    features: Iterable[str],
    *,
    figures: dict[str, Figures] = FIGURES,
    trusted: Trusted = TRUSTED,
    available: Iterable[str] = tuple(MODES),
) -> Choice:
    """The fastest mode that is fast on a CPU with `features` (`cpu_features()`), among
    `available`, whose `figures` meet `trusted`; float32 when none qualifies."""
    features, available = frozenset(features), tuple(available)
    candidates = []
    for name in available:
        mode, measured = MODES[name], figures.get(name)
        if measured is None or not mode.fast_with & features:
            continue
        if trusted.met_by(measured) and measured.speed > 1:
            candidates.append((measured.speed, name))
    if not candidates:
        reasons = ", ".join(
            f"{name} {'not trusted' if MODES[name].fast_with & features else 'not fast here'}"
            for name in figures
            if name in available
        )
        return Choice(MODES["float32"], f"auto: {reasons}")
    speed, name = max(candidates)
    m = figures[name]
    return Choice(
        MODES[name],
        f"auto: {speed:.2f}x float32, {m.identical:.2%} of sentences' entities identical, "
        f"F1 {m.f1_delta:+.2f} points",
    )


# The flags of /proc/cpuinfo (Linux) that decide the modes' speed, and torch's dispatch levels.
CPU_FLAGS = BF16_UNITS | INT8_UNITS | {"avx2", "avx512f"}


def cpu_features(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """This CPU's features that matter here: torch's vectorisation level
    (`torch.backends.cpu.get_cpu_capability()`, lower-cased: "avx512", "avx2", "default", ...)
    and, where the kernel lists them (Linux), the bfloat16 and int8 dot-product flags. Nothing
    is assumed: a machine that lists none of them runs float32."""
    import torch

    found = {torch.backends.cpu.get_cpu_capability().lower()}
    try:
        with cpuinfo.open(encoding="utf-8", errors="replace") as lines:
            for line in lines:
                if line.startswith("flags"):
                    found |= set(line.partition(":")[2].split()) & CPU_FLAGS
                    break
    except OSError:
        pass
    return frozenset(found)


def describe(dtype: str | None, quantize: str | None = None) -> Mode:
    """The mode that the options `dtype` (not "auto") and `quantize` ask for."""
    name = dtype or "float32"
    if quantize is None:
        return MODES.get(name, Mode(name, name))
    if name == "float32":
        return MODES[quantize]
    return Mode(f"{name}+{quantize}", name, quantize=quantize)


def resolve(
    dtype: str | None,
    quantize: str | None,
    device_type: str,
    features: Iterable[str] | None = None,
) -> Choice:
    """The mode a pipeline with these options runs in on a device of `device_type`: the one
    asked for, or for "auto" `choose`'s pick for this CPU (`features`: `cpu_features()`) among
    the modes installed here (int8 needs torchao). The figures are a CPU's: on a GPU auto
    keeps float32."""
    if dtype != AUTO:
        return Choice(describe(dtype, quantize), "as asked")
    if device_type != "cpu":
        return Choice(MODES["float32"], f"auto: measured on CPUs only, float32 on {device_type}")
    available = [name for name in MODES if MODES[name].quantize is None or has_torchao()]
    return choose(cpu_features() if features is None else features, available=available)


def has_torchao() -> bool:
    import importlib.util

    return importlib.util.find_spec("torchao") is not None
