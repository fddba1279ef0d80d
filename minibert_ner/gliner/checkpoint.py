"""A GLiNER checkpoint folder -> `GLiNERModel` and its tokenizer, every key and shape checked.

A published GLiNER model is `gliner_config.json` plus `model.safetensors` or `pytorch_model.bin`
(gliner's default save), and usually its tokenizer. The backbone's config is inline
(`encoder_config`) or, in older configs, the `config.json` of `model_name` (a hub id or a folder);
the tokenizer is the folder's, else `model_name`'s, with gliner's tokens `[FLERT]`, `<<ENT>>`,
`<<SEP>>` added when it lacks them. `.bin` is read with torch's weights-only unpickler: a pickle
that would run code is refused, nothing of it executed.

Keys: the backbone's tensors sit under `token_rep_layer.bert_layer.model.` with the backbone
family's own names (`checkpoint.state_dict_from_checkpoint` maps them); the head's are in
`HEAD_KEYS` below, read forwards to load and backwards (`checkpoint_state_dict`) to save.
"""

from __future__ import annotations

import json
import pickle
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from tokenizers import AddedToken

from ..checkpoint import build_model, module_map, state_dict_from_checkpoint
from ..config import ModelConfig
from ..devices import resolve_dtype
from ..errors import CheckpointError, ConfigError
from ..hub import TOKENIZER_FILES, resolve_folder
from ..tokenizer import Tokenizer
from .model import GLiNERModel, GLiNERShape

__all__ = [
    "BACKBONE_PREFIX",
    "GLINER_FILES",
    "HEAD_KEYS",
    "GLiNERConfig",
    "checkpoint_state_dict",
    "copy_gliner",
    "load_gliner",
]

GLINER_FILES = [
    "gliner_config.json",
    "model.safetensors",
    "pytorch_model.bin",
    *TOKENIZER_FILES,
    "added_tokens.json",
    "spm.model",
]
BACKBONE_PREFIX = "token_rep_layer.bert_layer.model."
# gliner module -> ours, per span mode (parameters keep their names: weight, bias, LSTM's own).
_COMMON = {"token_rep_layer.projection": "projection", "rnn.lstm": "rnn"}
_SPAN = "span_rep_layer.span_rep_layer."
HEAD_KEYS = {
    "markerV0": _COMMON
    | {f"{_SPAN}{part}.{i}": f"{part}.{i}" for part in ("project_start", "project_end", "out_project") for i in (0, 3)}
    | {f"prompt_rep_layer.{i}": f"prompt_mlp.{i}" for i in (0, 3)},
    "token_level": _COMMON
    | {"scorer.proj_token": "scorer.proj_token", "scorer.proj_label": "scorer.proj_label"}
    | {f"scorer.out_mlp.{i}": f"scorer.out_mlp.{i}" for i in (0, 3)},
}  # fmt: skip
SPLITTERS = ("whitespace",)  # gliner's others: spacy, mecab, jieba, hanlp, janome, camel, ...
# Configs for GLiNER variants this package does not run, and what each means.
_VARIANTS = {
    "labels_encoder": "a bi-encoder (labels encoded by a second model)",
    "labels_decoder": "a label-generating decoder model",
    "relations_layer": "a relation-extraction model",
    "post_fusion_schema": "a model with post-fusion layers",
    "span_encoder_config": "a model with a span context encoder",
    "fuse_layers": "a model that fuses the backbone's layers",
    "represent_spans": "a token_level model with span representations",
}


@dataclass(frozen=True)
class GLiNERConfig:
    """What inference reads of gliner_config.json (gliner's names)."""

    model_name: str  # the backbone: a hub id or a folder
    span_mode: str = "markerV0"
    hidden_size: int = 512
    max_width: int = 12
    max_len: int = 384  # words per pass; gliner cuts there, we window
    num_rnn_layers: int = 1
    embed_ent_token: bool = True
    class_token_index: int = -1  # -1: the tokenizer's <<ENT>> id
    vocab_size: int = -1  # the backbone's embedding rows after gliner's tokens (-1: tokenizer's)
    ent_token: str = "<<ENT>>"
    sep_token: str = "<<SEP>>"
    words_splitter_type: str = "whitespace"
    subtoken_pooling: str = "first"
    encoder_config: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def from_json_file(cls, path: Path) -> GLiNERConfig:
        try:
            raw = json.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ConfigError(f"cannot read {path}: {e}") from e
        if not isinstance(raw, dict):
            raise ConfigError(f"{path} does not hold a JSON object")
        for key, what in _VARIANTS.items():
            if raw.get(key):
                raise ConfigError(
                    f"{path} describes {what} ({key}); minibert-ner runs GLiNER's uni-encoder "
                    "span (markerV0) and token_level models"
                )
        if raw.get("model_type") == "gliner_streaming_span":
            raise ConfigError(f"{path} describes a streaming GLiNER model, which is not supported")
        values = {k: raw[k] for k in cls.__dataclass_fields__ if raw.get(k) is not None}
        config = cls(**values) if "model_name" in values else None
        if config is None:
            raise ConfigError(f"{path} names no backbone (model_name)")
        if config.span_mode not in HEAD_KEYS:
            raise ConfigError(
                f"{path} has span_mode {config.span_mode!r}; supported: markerV0, token_level"
            )
        if config.words_splitter_type not in SPLITTERS:
            raise ConfigError(
                f"{path} splits words with {config.words_splitter_type!r}; minibert-ner has "
                "gliner's whitespace splitter only (the regex \\w+(?:[-_]\\w+)*|\\S), not "
                "spacy, mecab, jieba, hanlp, janome, camel or stanza"
            )
        if config.subtoken_pooling != "first":
            raise ConfigError(
                f"{path} pools subtokens with {config.subtoken_pooling!r}; supported: first"
            )
        return config


def _model_name_folder(name: str, model_folder: Path, **hub: Any) -> Path:
    """The backbone folder `model_name` names: a folder (as given, as gliner reads it: from the
    working directory; else inside or next to the model's folder), else a hub id."""
    for candidate in (Path(name).expanduser(), model_folder / name, model_folder.parent / name):
        if candidate.is_dir():
            return candidate
    files = ["config.json", *TOKENIZER_FILES, "spm.model", "added_tokens.json"]
    return resolve_folder(name, files=files, **hub)


SAVED_BACKBONE = "minibert_gliner_backbone"  # a self-contained copy's backbone folder


def _files(folder: Path, patterns: list[str]) -> list[Path]:
    found = {p for pattern in patterns for p in folder.glob(pattern)}
    return sorted(p for p in found if p.is_file())


def copy_gliner(folder: Path, out: Path, **hub: Any) -> None:
    """Copy the GLiNER model in `folder` into `out`, self-contained: when it reads anything of
    its backbone (`model_name`'s config.json without `encoder_config`, its tokenizer when the
    folder has none), those files go to `out`/minibert_gliner_backbone, and the copy's
    gliner_config.json names that folder (found inside the model's folder when loaded)."""
    config = GLiNERConfig.from_json_file(folder / "gliner_config.json")
    has_tokenizer = any(
        (folder / name).is_file() for name in ("tokenizer_config.json", "tokenizer.json")
    )
    files = _files(folder, GLINER_FILES)
    if not files:
        raise CheckpointError(f"{folder} holds no GLiNER files to copy")
    out.mkdir(parents=True, exist_ok=True)
    for file in files:
        shutil.copyfile(file, out / file.name)  # a hub cache's links: their targets
    if config.encoder_config is not None and has_tokenizer:
        return
    backbone = _model_name_folder(config.model_name, folder, **hub)
    (out / SAVED_BACKBONE).mkdir(exist_ok=True)
    for file in _files(backbone, ["config.json", *TOKENIZER_FILES]):
        shutil.copyfile(file, out / SAVED_BACKBONE / file.name)
    raw = json.loads((folder / "gliner_config.json").read_text("utf-8"))
    raw["model_name"] = SAVED_BACKBONE
    (out / "gliner_config.json").write_text(json.dumps(raw, indent=2), "utf-8")


def backbone_config(config: GLiNERConfig, folder: Path, **hub: Any) -> ModelConfig:
    """The backbone's ModelConfig: `encoder_config`, else `model_name`'s config.json."""
    raw = config.encoder_config
    if raw is None:
        path = _model_name_folder(config.model_name, folder, **hub) / "config.json"
        try:
            raw = json.loads(path.read_text("utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ConfigError(
                f"the backbone config {path} (gliner_config.json's model_name) cannot be read: {e}"
            ) from e
        if config.vocab_size != -1:
            raw = {**raw, "vocab_size": config.vocab_size}
    raw = {**raw, "id2label": {0: "O"}}  # the backbone's head is replaced: any one label
    raw.pop("num_labels", None)
    return ModelConfig.from_dict(raw)


def gliner_tokenizer(config: GLiNERConfig, folder: Path, **hub: Any) -> Tokenizer:
    """The folder's tokenizer, else model_name's, with [FLERT], <<ENT>>, <<SEP>> added (as
    gliner adds them) when it lacks them."""
    has_own = any((folder / name).is_file() for name in ("tokenizer_config.json", "tokenizer.json"))
    source = folder if has_own else _model_name_folder(config.model_name, folder, **hub)
    tokenizer = Tokenizer.from_pretrained(source)
    tokens = ["[FLERT]", config.ent_token, config.sep_token]
    missing = [t for t in tokens if tokenizer.backend.token_to_id(t) is None]
    if missing:
        tokenizer.backend.add_special_tokens([AddedToken(t, special=True) for t in tokens])
    return tokenizer


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """model.safetensors, else pytorch_model.bin through the weights-only unpickler."""
    if (folder / "model.safetensors").is_file():
        path = folder / "model.safetensors"
        try:
            with safe_open(str(path), framework="pt") as f:
                return {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        except Exception as e:  # safetensors' own error types
            raise CheckpointError(f"{path} is not a readable safetensors file: {e}") from e
    path = folder / "pytorch_model.bin"
    if not path.is_file():
        raise CheckpointError(f"{folder} holds neither model.safetensors nor pytorch_model.bin")
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as e:  # a legacy (pre-zip) file cannot be mapped: read it whole
            if "mmap" not in str(e):
                raise
            with warnings.catch_warnings():  # torch notes the old pickle protocol: no news
                warnings.simplefilter("ignore", UserWarning)
                state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(
            f"refused {path}: it is a pickle that would run code or build objects when loaded "
            f"(torch's weights-only loader stopped it: {reason}); only plain tensors are read. "
            "Get the model from a source you trust, or as model.safetensors"
        ) from e
    except (OSError, RuntimeError, EOFError) as e:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: {e}") from e
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return state


def head_state(
    tensors: dict[str, torch.Tensor], span_mode: str, expected: dict[str, torch.Size]
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The head's tensors renamed through HEAD_KEYS, and what is wrong with them (missing,
    unexpected, wrong shape), for one report with the backbone's problems."""
    table = HEAD_KEYS[span_mode]
    state: dict[str, torch.Tensor] = {}
    unexpected = []
    for key, tensor in tensors.items():
        module, _, param = key.rpartition(".")
        ours = f"{table[module]}.{param}" if module in table else None
        if ours is None or ours not in expected:
            unexpected.append(key)
        else:
            state[ours] = tensor
    problems = []
    missing = sorted(set(expected) - set(state))
    if missing:
        problems.append(f"missing {len(missing)} head tensor(s): {', '.join(missing[:10])}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} tensor(s): {', '.join(unexpected[:10])}")
    wrong = [
        f"{k}: checkpoint {tuple(v.shape)}, model {tuple(expected[k])}"
        for k, v in state.items()
        if v.shape != expected[k]
    ]
    if wrong:
        problems.append(f"wrong shape: {'; '.join(wrong[:10])}")
    return state, problems


def checkpoint_state_dict(model: GLiNERModel) -> dict[str, torch.Tensor]:
    """Our state dict under gliner's names (HEAD_KEYS and the backbone's key table backwards)."""
    head = {ours: theirs for theirs, ours in HEAD_KEYS[model.shape.span_mode].items()}
    backbone = {ours: theirs for theirs, ours in module_map(model.backbone.config).items()}
    out = {}
    for key, tensor in model.state_dict().items():
        module, _, param = key.rpartition(".")
        if key.startswith("backbone."):
            out[f"{BACKBONE_PREFIX}{backbone[module.removeprefix('backbone.')]}.{param}"] = tensor
        else:
            out[f"{head[module]}.{param}"] = tensor
    return out


def load_gliner(
    name_or_path: str | Path,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
) -> tuple[GLiNERModel, Tokenizer, GLiNERConfig]:
    """Build the model a GLiNER folder (or hub id) describes and load its weights."""
    folder = resolve_folder(name_or_path, revision=revision, token=token, files=GLINER_FILES)
    if not (folder / "gliner_config.json").is_file():
        hint = (
            "; it is a token classifier: use minibert_ner.pipeline(...) (command line: drop --labels)"
            if (folder / "config.json").is_file()
            else ""
        )
        raise ConfigError(f"{folder} has no gliner_config.json: it is not a GLiNER model{hint}")
    config = GLiNERConfig.from_json_file(folder / "gliner_config.json")
    hub = {"token": token}
    bconfig = backbone_config(config, folder, **hub)
    tokenizer = gliner_tokenizer(config, folder, **hub)
    ent_id = tokenizer.backend.token_to_id(config.ent_token)
    if config.class_token_index not in (-1, ent_id):
        raise CheckpointError(
            f"gliner_config.json's class_token_index {config.class_token_index} is not the "
            f"tokenizer's id of {config.ent_token} ({ent_id}): the tokenizer does not belong "
            "to this model"
        )
    tensors = read_weights(folder)
    shape = GLiNERShape(
        span_mode=config.span_mode,
        hidden_size=config.hidden_size,
        backbone_size=bconfig.hidden_size,
        max_width=config.max_width,
        num_rnn_layers=config.num_rnn_layers,
        class_token_index=ent_id,
        embed_ent_token=config.embed_ent_token,
    )
    with torch.device("meta"):
        model = GLiNERModel(build_model(bconfig), shape)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    backbone_expected = {
        k.removeprefix("backbone."): v for k, v in expected.items() if k.startswith("backbone.")
    }
    head_expected = {k: v for k, v in expected.items() if not k.startswith("backbone.")}
    backbone_tensors = {
        k.removeprefix(BACKBONE_PREFIX): v
        for k, v in tensors.items()
        if k.startswith(BACKBONE_PREFIX)
    }
    head, problems = head_state(
        {k: v for k, v in tensors.items() if not k.startswith(BACKBONE_PREFIX)},
        config.span_mode,
        head_expected,
    )
    try:
        backbone = state_dict_from_checkpoint(backbone_tensors, bconfig, backbone_expected)
    except CheckpointError as e:
        problems.insert(0, f"backbone ({BACKBONE_PREFIX}*): {e}")
        backbone = {}
    if problems:
        raise CheckpointError(
            f"{folder} does not fit its gliner_config.json: " + " | ".join(problems)
        )
    state = head | {f"backbone.{k}": v for k, v in backbone.items()}
    model.load_state_dict(state, strict=False, assign=True)
    model.to(device=device or "cpu", dtype=resolve_dtype(dtype) or torch.float32)
    if model.rnn is not None:
        model.rnn.flatten_parameters()
    return model.eval(), tokenizer, config
