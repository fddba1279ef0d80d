"""The ONNX engine: an exported folder (`minibert-ner export`) run by onnxruntime, without torch.

    ner = minibert_ner.pipeline("exported/")        # a folder with pipeline.json: this engine
    ner("My name is Wolfgang and I live in Berlin")

An export folder holds `model.onnx` (input_ids, attention_mask (B, T) int64 -> logits
(B, T, num_labels); its weights in `model.onnx.data`), `tokenizer.json` (the tokenizer exactly as it runs: loaded as it is, never
rebuilt), `tokenizer_config.json`, `config.json` and `pipeline.json`, the description another
runtime can follow (`describe`: labels, template, windows, the word rule; export.py writes it).

Everything around the graph is the PyTorch engine's own code: the tokenizer (tokenizer.py),
windows and length-sorted batches (runner.py: `OnnxRunner` only replaces one batch's forward
pass), aggregation (aggregation.py), the pipeline (pipeline.py). The graph takes padded rows, so
a batch holds rows of similar lengths (at most 10% shorter than its longest) instead of packed
ones. What this module imports needs `tokenizers`, `numpy` and `onnxruntime` only.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tokenizers import Tokenizer as Backend

from ..config import ModelConfig
from ..errors import CheckpointError, ConfigError, InputError, MiniBertError, MissingExtraError
from ..tokenizer import Tokenizer
from .options import PipelineOptions
from .runner import BatchResult, Output, WindowRunner

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "DESCRIPTION_FILE",
    "FORMAT",
    "INPUTS",
    "MODEL_FILE",
    "OUTPUT",
    "WEIGHTS_FILE",
    "OnnxModel",
    "OnnxRunner",
    "describe",
    "is_export",
    "load_onnx",
]

FORMAT, VERSION = "minibert-ner-onnx", 1  # pipeline.json's "format" and "version"
DESCRIPTION_FILE = "pipeline.json"
MODEL_FILE = "model.onnx"
WEIGHTS_FILE = "model.onnx.data"  # model.onnx's tensors (ONNX external data), beside it
INPUTS = ("input_ids", "attention_mask")  # (B, T) int64 each; token types are all 0 inside
OUTPUT = "logits"  # (B, T, num_labels), float32 (float16 for a --dtype float16 export)
ORT_EXTRA = "the ONNX engine needs onnxruntime: pip install 'minibert-ner[onnx]'"
# The word rules of aggregation.py (rule 1), as another runtime must apply them.
WORD_RULES = {
    "subword_prefix": "a token continues the previous token's word when the tokenizer has a "
    "continuing-subword prefix and the token's string is not as long as the text it covers "
    '("##ing" covers 3 characters); [UNK] never continues a word',
    "space_before": "a token continues the previous token's word when its start is not 0 and "
    "neither the character before it nor its first character is a space; [UNK] never continues "
    "a word",
}


def is_export(model: object) -> bool:
    """Whether `model` names a local folder written by `minibert-ner export`."""
    return isinstance(model, (str, Path)) and (Path(model) / DESCRIPTION_FILE).is_file()


def describe(
    config: ModelConfig,
    tokenizer: Tokenizer,
    window: int,
    *,
    opset: int,
    dtype: str,
    quantize: str | None,
    optimized: bool,
    verified: dict[str, Any],
) -> dict[str, Any]:
    """pipeline.json: what a runtime needs to turn text into the entities this package gives."""
    prefix = tokenizer.subword_prefix
    rule = "subword_prefix" if prefix else "space_before"
    return {
        "format": FORMAT,
        "version": VERSION,
        "model_type": config.model_type,
        "graph": {
            "file": MODEL_FILE,
            "weights": WEIGHTS_FILE,  # its tensors, as ONNX external data
            "opset": opset,
            "inputs": {name: ["batch", "sequence"] for name in INPUTS},
            "outputs": {OUTPUT: ["batch", "sequence", config.num_labels]},
            "dtype": dtype,
            "quantize": quantize,
            "optimized": optimized,
        },
        "labels": [config.id2label[i] for i in range(config.num_labels)],
        "tokenizer": {
            "file": "tokenizer.json",  # as it runs: load it as it is
            "template": {"prefix": tokenizer.template.prefix, "suffix": tokenizer.template.suffix},
            "pad_token_id": tokenizer.pad_token_id,
            "unk_token_id": tokenizer.unk_token_id,
            "subword_prefix": prefix,
            "model_max_length": tokenizer.model_max_length,
            # pre-split words: each after the first encoded with a space before it, as it
            # stands in its text (ModernBERT's byte-level tokens carry the space)
            "spaced_words": tokenizer.spaced_words,
        },
        "windows": {
            "length": window,  # tokens per row, special tokens included
            "stride": PipelineOptions().stride,  # tokens neighbouring windows share, at least
            "rule": "windows of `length` tokens spread evenly over the text, overlapping by at "
            "least `stride`; each token is labelled by the window whose centre is nearest "
            "(minibert_ner/inference/windows.py)",
        },
        "word_rule": {"name": rule, "text": WORD_RULES[rule]},
        "aggregation": {
            "default": PipelineOptions().aggregation_strategy,
            "ignore_labels": list(PipelineOptions().ignore_labels),
            "rules": "minibert_ner/inference/aggregation.py (transformers' pipeline rules)",
        },
        "verified": verified,
    }


def read_description(folder: Path) -> dict[str, Any]:
    path = folder / DESCRIPTION_FILE
    try:
        description = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise ConfigError(f"cannot read {path}: {e}; export the model again") from e
    if not isinstance(description, dict) or description.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a minibert-ner export description; export again")
    if description.get("version") != VERSION:
        raise ConfigError(
            f"{path} is version {description.get('version')!r} of the export format; this "
            f"minibert-ner reads version {VERSION}: export the model again"
        )
    return description


class OnnxRunner(WindowRunner):
    """WindowRunner with an onnxruntime forward pass: the same windows, batches and results;
    each batch's rows of similar lengths, padded (the graph is not packed)."""

    def _packs_rows(self) -> bool:
        return False

    def _padded_length(self, n: int) -> int:
        return n

    def _inference(self) -> Any:
        from contextlib import nullcontext

        return nullcontext()

    def _forward_batch(self, rows: list[list[int]], T: int, output: Output) -> BatchResult:
        import numpy as np

        ids = np.full((len(rows), T), self.pad_token_id, dtype=np.int64)  # (B, T)
        mask = np.zeros((len(rows), T), dtype=np.int64)  # (B, T)
        for j, row in enumerate(rows):
            ids[j, : len(row)] = row
            mask[j, : len(row)] = 1
        logits = self.model.logits(ids, mask)  # (B, T, num_labels)
        if not np.isfinite(logits).all():
            raise MiniBertError(
                f"the ONNX graph produced NaN or infinite scores in {self.model.dtype}; "
                "export it in float32"
            )
        label = logits.argmax(-1)  # (B, T): the first maximum on ties, as torch's max
        if output == "labels":
            return label.tolist(), None, None
        # float32 softmax, as the PyTorch engine computes it
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)  # (B, T, num_labels)
        best = np.take_along_axis(p, label[..., None], -1)[..., 0]  # (B, T)
        return label.tolist(), best.tolist(), p.tolist() if output == "probs" else None


class OnnxModel:
    """An export's graph in an onnxruntime session, with what the pipeline asks of a model:
    `config`, `id2label`, `device`, `dtype`, `training`."""

    training = False
    device = "cpu"
    runner_class = OnnxRunner  # what NERPipeline runs it with

    def __init__(self, session: Any, config: ModelConfig, description: dict[str, Any]) -> None:
        self.session = session
        self.config = config
        self.description = description
        graph = description["graph"]
        self.dtype = "int8" if graph.get("quantize") else graph.get("dtype", "float32")

    @property
    def id2label(self) -> dict[int, str]:
        return self.config.id2label

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """(B, T) int64 ids and 1/0 mask -> (B, T, num_labels) float32 logits."""
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        (logits,) = self.session.run([OUTPUT], feed)
        return logits.astype("float32", copy=False)


def check_options(options: PipelineOptions, description: dict[str, Any]) -> None:
    """The loading options an export fixes: refuse those that would ask for something else."""
    graph = description["graph"]
    if options.quantize is not None and options.quantize != graph.get("quantize"):
        raise InputError(
            f"this export is not quantized ({options.quantize} asked); the ONNX engine runs "
            "the graph as exported: export it with --quantize int8"
        )
    if options.dtype is not None and options.dtype != graph.get("dtype"):
        raise InputError(
            f"this export is {graph.get('dtype')}, not {options.dtype}; the ONNX engine runs the "
            f"graph as exported: export it with --dtype {options.dtype}"
        )
    if options.compile:
        raise InputError("compile is torch.compile's: the ONNX engine has no use for it")
    if options.device not in (None, "cpu"):
        raise InputError(
            f"the ONNX engine runs on the CPU (onnxruntime's CPU provider), not {options.device}"
        )


def load_onnx(folder: str | Path, options: PipelineOptions) -> tuple[OnnxModel, Tokenizer]:
    """An export folder's graph (in an onnxruntime session) and tokenizer, checked."""
    folder = Path(folder)
    description = read_description(folder)
    check_options(options, description)
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise MissingExtraError(ORT_EXTRA) from e
    config = ModelConfig.from_json_file(folder / "config.json")
    path = folder / MODEL_FILE
    if not path.is_file():
        raise CheckpointError(f"{folder} has no {MODEL_FILE}; export the model again")
    session_options = ort.SessionOptions()
    session_options.log_severity_level = 3  # errors only: they are raised below as one line
    if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE":
        # What makes torch's (OpenMP) threads sleep between jobs rather than spin, here too:
        # on a shared machine spinning threads take cores from other processes.
        session_options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = ort.InferenceSession(
            str(path), session_options, providers=["CPUExecutionProvider"]
        )
    except Exception as e:  # onnxruntime raises its own Fail/InvalidGraph/..., all Exceptions
        first = (str(e).strip().splitlines() or [""])[0][:300]
        if "opset" in first.lower() or "ir version" in first.lower():
            raise CheckpointError(
                f"{path} needs a newer onnxruntime than {ort.__version__} ({first}); upgrade "
                "onnxruntime, or export with a lower --opset"
            ) from e
        raise CheckpointError(f"cannot load {path}: {first}; export the model again") from e
    check_graph(session, path, config.num_labels)
    tokenizer = Tokenizer(
        read_backend(folder / "tokenizer.json"),
        model_max_length=description["tokenizer"].get("model_max_length"),
        config=read_json(folder / "tokenizer_config.json"),
        spaced_words=bool(description["tokenizer"].get("spaced_words", False)),
    )
    return OnnxModel(session, config, description), tokenizer


def check_graph(session: Any, path: Path, num_labels: int) -> None:
    """The graph takes `INPUTS` and gives `OUTPUT` with one score per label, or it is refused."""
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    expected = f"{', '.join(INPUTS)} (B, T) -> {OUTPUT} (B, T, {num_labels})"
    found = f"{', '.join(inputs)} -> {', '.join(outputs)}"
    ok = set(inputs) == set(INPUTS) and OUTPUT in outputs
    ok = ok and all(len(inputs[name].shape) == 2 for name in INPUTS)
    if ok:
        shape = outputs[OUTPUT].shape
        ok = len(shape) == 3 and (not isinstance(shape[2], int) or shape[2] == num_labels)
    if not ok:
        raise CheckpointError(
            f"{path} is not a minibert-ner export: it takes {found}; an export takes {expected}. "
            "Export the model with minibert-ner export"
        )


def read_backend(path: Path) -> Backend:
    try:
        return Backend.from_file(str(path))
    except Exception as e:  # the Rust side raises a plain Exception
        raise CheckpointError(f"cannot read {path}: {e}; export the model again") from e


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"cannot read {path}: {e}; export the model again") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} does not hold a JSON object; export the model again")
    return data
