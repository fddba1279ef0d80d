"""A token classifier as an ONNX graph, in a folder the torch-free ONNX engine (or any runtime
that follows its pipeline.json) runs.

    report = export_onnx("dslim/distilbert-NER", "exported/", quantize="int8")

What it writes (inference/onnx_engine.py reads it): `model.onnx`, input_ids and attention_mask
(B, T) int64 -> logits (B, T, num_labels), batch and sequence axes dynamic, its weights in
`model.onnx.data` beside it (ONNX's external data, which onnxruntime maps rather than copies); `tokenizer.json`
(the tokenizer as it runs, rebuilt classes included), `tokenizer_config.json`, `config.json`,
and `pipeline.json` (labels, template, windows, word rule, how it was verified).

How: torch's TorchScript exporter (`dynamo=False`, dynamic axes), which exports every family in
about a second and gives the graph onnxruntime's transformer fusions know; the dynamo exporter
takes ~30 s for a small model and fails on DeBERTa's attention reshape. The model is traced on
rows of its full window: DeBERTa slices its relative table by the trace's length, so the longest
row the pipeline runs fixes the slice that fits every row. A family whose forward takes options
that make the graph hold at every length (`Family.onnx_trace`: ModernBERT, whose attention
otherwise branches on the length) is traced with them, on short rows, and checked on longer ones
too. Options: float16 weights
(`dtype`), onnxruntime's dynamic int8 quantization of the encoder's weight matmuls (`quantize`,
the classifier stays in float as in quantize.py), and onnxruntime's transformer fusions
(`optimize`, where the family registers them: `Family.onnx_fusions`).

Before anything is published the graph is checked: onnxruntime's logits against the PyTorch
model's on padded sample batches (float32: within `TOLERANCE`; float16/int8: the share of equal
best labels is reported). Files are written in a staging folder and moved into place only then.
The output folder must be new, empty or an earlier export; other files in it are left alone.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checkpoint import MODEL_CLASSES, load_model
from ..errors import CheckpointError, InputError, MiniBertError, MissingExtraError
from ..families import Model
from ..files import AtomicFile, publish
from ..inference.onnx_engine import (
    DESCRIPTION_FILE,
    INPUTS,
    MODEL_FILE,
    OUTPUT,
    WEIGHTS_FILE,
    describe,
    is_export,
)
from ..inference.windows import window_length
from ..tokenizer import Tokenizer

__all__ = ["DTYPES", "OPSET", "TOLERANCE", "ExportReport", "export_onnx"]

OPSET = 17  # LayerNormalization is one op from 17 on; onnxruntime >= 1.14 runs it
DTYPES = ("float32", "float16")
TOLERANCE = 1e-4  # float32: onnxruntime's logits against ours, at most this far apart
# A family whose graph holds at every length (`Family.onnx_trace`) is traced on rows of
# TRACE_LENGTH tokens and checked on rows of up to CHECK_LENGTH, longer and shorter than the
# traced ones, rather than of its full window: ModernBERT's 8192 tokens would cost (T, T)
# scores per head.
TRACE_LENGTH, CHECK_LENGTH = 64, 512
STAGING = (
    ".minibert-ner-export.tmp"  # inside the output folder: the same disk, so moves are renames
)
FILES = (MODEL_FILE, WEIGHTS_FILE, "tokenizer.json", "tokenizer_config.json", "config.json",
         DESCRIPTION_FILE)  # fmt: skip
EXPORT_EXTRA = "export needs onnx and onnxruntime: pip install 'minibert-ner[onnx-export]'"


@dataclass(frozen=True)
class ExportReport:
    """What `export_onnx` wrote and how the graph compared with the model."""

    folder: Path
    files: tuple[str, ...]
    megabytes: float  # model.onnx's size
    max_abs_diff: float  # largest |onnxruntime logit - ours| over the real tokens checked
    label_agreement: float  # share of checked tokens whose best label is ours
    tokens_checked: int


class Logits(nn.Module):
    """The graph's signature: (input_ids, attention_mask) -> logits; the family's
    `onnx_trace` options passed to the model's forward."""

    def __init__(self, model: Model) -> None:
        super().__init__()
        self.model = model
        self.options = dict(model.config.family.onnx_trace or {})

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids, attention_mask=attention_mask, **self.options).logits


def export_onnx(
    model: str | Path | Model,
    output_dir: str | Path,
    *,
    tokenizer: str | Path | Tokenizer | None = None,
    dtype: str = "float32",
    quantize: str | None = None,
    optimize: bool = False,
    opset: int = OPSET,
    revision: str | None = None,
    token: str | bool | None = None,
) -> ExportReport:
    """Export `model` (a hub id, a folder, or a loaded model with its `tokenizer`) to
    `output_dir` for the ONNX engine; verified against the model before it is published.

    dtype: "float32" or "float16" (weights and activations; for GPUs: onnxruntime's CPU
    kernels are float32). quantize: "int8", onnxruntime's dynamic quantization of the encoder's
    weight matmuls. optimize: onnxruntime's transformer fusions (attention, LayerNorm, GELU)
    where the family has them. opset: the ONNX opset (>= 17).
    """
    if dtype not in DTYPES:
        raise InputError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if quantize not in (None, "int8"):
        raise InputError(f"unknown quantize={quantize!r}; use None or 'int8'")
    if quantize and dtype != "float32":
        raise InputError("int8 quantization starts from float32 weights: leave dtype out")
    if isinstance(opset, bool) or not isinstance(opset, int) or opset < OPSET:
        raise InputError(f"opset must be an integer >= {OPSET}, got {opset!r}")
    out = Path(output_dir)
    check_output(out)
    try:
        import onnx  # noqa: F401  (the exporter's own need)
        import onnxruntime as ort
    except ImportError as e:
        raise MissingExtraError(EXPORT_EXTRA) from e
    if isinstance(model, MODEL_CLASSES):
        if tokenizer is None:
            raise InputError("a loaded model needs its tokenizer: pass tokenizer=")
    else:
        from ..gliner.pipeline import is_gliner_model

        if is_gliner_model(model, revision=revision, token=token):
            raise InputError(
                f"{model} is a GLiNER model: ONNX export runs token classifiers only (GLiNER's "
                "span head is not exported); run it with minibert_ner.GLiNER or --labels"
            )
        tokenizer = model if tokenizer is None else tokenizer
        model = load_model(model, revision=revision, token=token)
    if not isinstance(tokenizer, Tokenizer):
        tokenizer = Tokenizer.from_pretrained(tokenizer, revision=revision, token=token)
    config = model.config
    window = window_length(config.max_positions, tokenizer.model_max_length)
    trace_length = check_length = window  # the longest sample row of the trace, the check
    if config.family.onnx_trace is not None:
        trace_length, check_length = min(window, TRACE_LENGTH), min(window, CHECK_LENGTH)

    out.mkdir(parents=True, exist_ok=True)
    stage = out / STAGING
    shutil.rmtree(stage, ignore_errors=True)  # an earlier export's, cut short
    stage.mkdir()
    try:
        # eval: the exporter restores the wrapper's mode, which must then be eval too
        model.eval()
        graph = Logits(copy.deepcopy(model).half() if dtype == "float16" else model).eval()
        trace(graph, stage / MODEL_FILE, trace_length, tokenizer.pad_token_id, opset)
        if optimize and config.family.onnx_fusions:
            fuse(stage / MODEL_FILE, config.family.onnx_fusions, config, dtype)
        if quantize:
            quantize_int8(stage / MODEL_FILE)
        externalize(stage / MODEL_FILE)
        session = ort.InferenceSession(str(stage / MODEL_FILE), providers=["CPUExecutionProvider"])
        checked = verify(model, session, check_length, tokenizer.pad_token_id, dtype, quantize)
        tokenizer.save(stage)
        config.save(stage)
        description = describe(
            config, tokenizer, window, opset=opset, dtype=dtype, quantize=quantize,
            optimized=bool(optimize and config.family.onnx_fusions), verified=checked,
        )  # fmt: skip
        with AtomicFile(stage / DESCRIPTION_FILE) as f:
            f.write(json.dumps(description, indent=2) + "\n")
        for name in FILES:
            publish(stage / name, out / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return ExportReport(
        folder=out,
        files=FILES,
        megabytes=(out / MODEL_FILE).stat().st_size / 1e6,
        max_abs_diff=checked["max_abs_diff"],
        label_agreement=checked["label_agreement"],
        tokens_checked=checked["tokens"],
    )


def check_output(out: Path) -> None:
    """Refuse a folder that holds anything but an earlier export: its files are not ours."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out} is a file; give a folder to export into")
    if out.is_dir() and any(out.iterdir()) and not is_export(out):
        raise InputError(
            f"{out} is not empty and holds no earlier export (no {DESCRIPTION_FILE}); export "
            "into a new or empty folder"
        )


def sample_ids(rows: int, length: int, vocab_size: int, pad: int, seed: int) -> torch.Tensor:
    """(rows, length) random token ids, none of them the padding id."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size, (rows, length), generator=generator)  # (rows, length)
    return torch.where(ids == pad, (pad + 1) % vocab_size, ids)


def padded(lengths: list[int], vocab_size: int, pad: int, seed: int) -> tuple[torch.Tensor, ...]:
    """A padded batch of rows of `lengths` tokens: (input_ids, attention_mask), (B, T) each."""
    T = max(lengths)
    ids = sample_ids(len(lengths), T, vocab_size, pad, seed)  # (B, T)
    mask = (torch.arange(T) < torch.tensor(lengths)[:, None]).long()  # (B, T)
    return ids.masked_fill(mask == 0, pad), mask


def trace(graph: Logits, path: Path, longest: int, pad: int, opset: int) -> None:
    """torch's TorchScript exporter, on a padded batch of rows of `longest` tokens (the full
    window, or `TRACE_LENGTH`) and half that."""
    example = padded([longest, max(1, longest // 2)], graph.model.config.vocab_size, pad, seed=0)
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUTS}
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's deprecation and tracer notes
        try:
            torch.onnx.export(
                graph, example, str(path), input_names=list(INPUTS), output_names=[OUTPUT],
                dynamic_axes={**axes, OUTPUT: {0: "batch", 1: "sequence"}},
                opset_version=opset, dynamo=False, do_constant_folding=True,
            )  # fmt: skip
        except Exception as e:  # the exporter's own errors (an op it cannot write, > 2 GB)
            first = (str(e).strip().splitlines() or [""])[0][:300]
            raise MiniBertError(f"torch could not export the model ({first})") from e


def fuse(path: Path, model_type: str, config: Any, dtype: str) -> None:
    """onnxruntime's transformer fusions, in place."""
    from onnxruntime.transformers.optimizer import optimize_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimized = optimize_model(
            str(path), model_type=model_type, num_heads=config.num_heads,
            hidden_size=config.hidden_size, use_gpu=False,
        )  # fmt: skip
        if dtype == "float16":
            optimized.convert_float_to_float16(keep_io_types=False)
    optimized.save_model_to_file(str(path))


def externalize(path: Path) -> None:
    """The weights out of model.onnx into WEIGHTS_FILE beside it, in place: onnxruntime maps that
    file instead of copying the tensors out of the graph (dslim's shape: 393 MB peak for a bare
    session, 520 MB with the weights inside), and the graph stays small to read."""
    import onnx

    model = onnx.load(str(path))
    onnx.save_model(
        model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
        location=WEIGHTS_FILE, size_threshold=1024,
    )  # fmt: skip


def quantize_int8(path: Path) -> None:
    """onnxruntime's dynamic int8 quantization of the weight matmuls (not the classifier's:
    tiny, and its scores are what is reported), in place."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    classifier = [n.name for n in onnx.load(str(path)).graph.node if "classifier" in n.name]
    quantized = path.with_name(path.name + ".int8")
    # Fused ops (--optimize) have outputs shape inference cannot type: they are float.
    options = {"MatMulConstBOnly": True, "DefaultTensorType": onnx.TensorProto.FLOAT}
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # its advice to pre-process is for static quantization
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            quantize_dynamic(
                str(path), str(quantized), weight_type=QuantType.QInt8,
                nodes_to_exclude=classifier, extra_options=options,
            )  # fmt: skip
    finally:
        root.setLevel(level)
    os.replace(quantized, path)


def verify(
    model: Model, session: Any, longest: int, pad: int, dtype: str, quantize: str | None
) -> dict[str, Any]:
    """onnxruntime's logits against the model's own forward (float32, without the trace's
    options: the paths the PyTorch engine runs) on padded sample batches: a row of `longest`
    tokens (the full window, or `CHECK_LENGTH`), half one and a few tokens; short rows of equal
    length; one row of one token."""
    vocab = model.config.vocab_size
    batches = [[longest, max(1, longest // 2), min(longest, 5)], [min(longest, 9)] * 2, [1]]
    worst, agree, tokens = 0.0, 0, 0
    for seed, lengths in enumerate(batches, start=1):
        ids, mask = padded(lengths, vocab, pad, seed)
        with torch.inference_mode():
            ours = model(ids, attention_mask=mask).logits.float()  # (B, T, L)
        (theirs,) = session.run(
            [OUTPUT], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
        )
        theirs = torch.from_numpy(theirs).float()  # (B, T, L)
        real = mask.bool()  # (B, T)
        if not torch.isfinite(theirs[real]).all():
            raise CheckpointError(
                f"the exported {dtype} graph gives NaN or infinite logits; export in float32"
            )
        worst = max(worst, (ours[real] - theirs[real]).abs().max().item())
        agree += (ours[real].argmax(-1) == theirs[real].argmax(-1)).sum().item()
        tokens += int(real.sum())
    exact = dtype == "float32" and not quantize
    if exact and worst > TOLERANCE:
        raise CheckpointError(
            f"the exported graph's logits differ from the model's by up to {worst:.2g} (more "
            f"than {TOLERANCE}); nothing was written. Please report it with the model's name"
        )
    return {
        "batches": [[len(lengths), max(lengths)] for lengths in batches],
        "tokens": tokens,
        "max_abs_diff": worst,
        "label_agreement": agree / tokens,
        "tolerance": TOLERANCE if exact else None,
    }
