"""Checkpoint <-> model: the key-mapping tables, loading with full checks, and saving.

    model = load_model("dslim/distilbert-NER")     # a hub id or a folder: config + safetensors
    save_model(model, "out/")                      # config.json + model.safetensors

Published checkpoints name their tensors after the `transformers` classes
(`distilbert.transformer.layer.3.attention.q_lin.weight`, `bert.encoder.layer.3.attention.self.query.weight`;
RoBERTa, XLM-RoBERTa and CamemBERT use BERT's names under `roberta.`, ELECTRA under `electra.`;
DeBERTa-v2/v3 its own, under `deberta.`: `deberta.encoder.layer.3.attention.self.query_proj.weight`;
ModernBERT under `model.`, its head's dense layer and LayerNorm beside it: `model.layers.3.attn.Wqkv`,
`head.dense`).
One explicit table per family (its `key_table` in `families.py`) maps each checkpoint module to
ours; the same table, read backwards, names the tensors when we save, so what we write loads in
`transformers` too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from .config import ModelConfig
from .deberta import DebertaTokenClassifier
from .devices import resolve_dtype
from .errors import CheckpointError
from .families import FAMILIES, Model
from .files import AtomicFile
from .hub import WEIGHT_FILES, resolve_folder
from .model import TokenClassifier, matmul_dtype
from .modernbert import ModernBertTokenClassifier

__all__ = [
    "KEY_TABLES",
    "MODEL_CLASSES",
    "Model",
    "PREFIXES",
    "build_model",
    "convert_model",
    "load_model",
    "read_safetensors",
    "resolve_dtype",
    "save_model",
    "stored_dtypes",
]

# The model classes; a family names the one that runs it (`Family.model_class`).
MODEL_CLASSES = (TokenClassifier, DebertaTokenClassifier, ModernBertTokenClassifier)
MODEL_CLASS_NAMES = {cls.__name__: cls for cls in MODEL_CLASSES}

# Views of the family registry (families.py), by model_type: checkpoint module (after the
# family prefix) -> our module, "{}" the block index; the prefix of the base model's tensors.
KEY_TABLES = {t: family.key_table for t, family in FAMILIES.items()}
PREFIXES = {t: family.prefix for t, family in FAMILIES.items()}
# The head sits outside the base model, so it never carries the family prefix.
HEAD_TABLE = {"classifier": "classifier"}
# Old TensorFlow-era names of LayerNorm parameters.
LEGACY_PARAM_NAMES = {"gamma": "weight", "beta": "bias"}
# Tensors that are known and irrelevant to token classification: buffers some versions saved,
# and the heads each family's checkpoints carry that NER does not use (`Family.unused_modules`).
# Anything else unknown is an error.
_UNUSED_HEADS = dict.fromkeys(
    rf"^({re.escape(f.prefix)})?({'|'.join(f.unused_modules)})\." for f in FAMILIES.values()
)
IGNORED_KEYS = re.compile("|".join([r"(^|\.)(position_ids|token_type_ids)$", *_UNUSED_HEADS]))


def build_model(config: ModelConfig) -> Model:
    """The model class the config's family needs, with fresh weights (or none, on meta)."""
    return MODEL_CLASS_NAMES[config.family.model_class](config)


def module_map(config: ModelConfig) -> dict[str, str]:
    """Checkpoint module name (unprefixed) -> our module name, with block indices filled in."""
    out: dict[str, str] = {}
    for theirs, ours in KEY_TABLES[config.model_type].items():
        if "{}" in theirs:
            for i in range(config.num_layers):
                out[theirs.format(i)] = ours.format(i)
        else:
            out[theirs] = ours
    return out


def our_key(checkpoint_key: str, modules: dict[str, str], prefix: str) -> str | None:
    """Our parameter name for a checkpoint key, or None if the key has no place in the model."""
    module, _, param = checkpoint_key.rpartition(".")
    param = LEGACY_PARAM_NAMES.get(param, param)
    if module in HEAD_TABLE:
        return f"{HEAD_TABLE[module]}.{param}"
    if module.startswith(prefix):
        module = module[len(prefix) :]
    return f"{modules[module]}.{param}" if module in modules else None


def read_safetensors(
    folder: Path,
    names_only: bool = False,
    convert: Callable[[str, torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, torch.Tensor | None]:
    """All tensors of `model.safetensors`, or of the shards that `model.safetensors.index.json`
    lists; names_only: their names, each mapped to None (nothing is read). convert(key, tensor):
    applied to each tensor as it is read, so that a model loaded in a smaller dtype never holds
    the file's copy of more than one tensor."""
    index = folder / "model.safetensors.index.json"
    if (folder / "model.safetensors").is_file():
        files = [folder / "model.safetensors"]
    elif index.is_file():
        try:
            weight_map = json.loads(index.read_text("utf-8"))["weight_map"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"cannot read the shard index {index}: {e}") from e
        files = [folder / name for name in sorted(set(weight_map.values()))]
    elif (folder / "pytorch_model.bin").is_file():
        raise CheckpointError(
            f"{folder} has only pytorch_model.bin; minibert-ner reads safetensors only (a pickle "
            "can run code when loaded). Convert it once: load it in transformers and call "
            "save_pretrained(folder, safe_serialization=True)"
        )
    else:
        raise CheckpointError(f"{folder} holds no model.safetensors (nor a sharded index)")

    tensors: dict[str, torch.Tensor | None] = {}
    for file in files:
        if not file.is_file():
            raise CheckpointError(f"weight file {file} is missing (listed in the shard index)")
        try:
            with safe_open(str(file), framework="pt") as f:
                keys = list(f.keys())
                if convert is None:
                    for key in keys:
                        tensors[key] = None if names_only else f.get_tensor(key)
            # Converted, each tensor is read through a mapping of its own, unmapped once the
            # converted copy is made: the file's pages of a tensor the model does not keep
            # leave memory with it (one mapping for all would keep every page read resident).
            for key in keys if convert is not None else ():
                with safe_open(str(file), framework="pt") as f:
                    tensors[key] = convert(key, f.get_tensor(key))
        except Exception as e:  # safetensors raises its own error types for corrupt files
            raise CheckpointError(
                f"{file} is not a readable safetensors file (truncated or corrupt?): {e}"
            ) from e
    return tensors


def stored_dtypes(model: Model, dtype: torch.dtype) -> dict[str, torch.dtype]:
    """Our parameter name -> the dtype it is stored (and runs) in: the blocks' linear layers' in
    `config.matmul_dtype` when set (mixed precision; from block `config.matmul_from_block` on),
    every other one in `dtype` (embeddings and their projection, LayerNorm, the head)."""
    matmul = matmul_dtype(model.config) or dtype
    first = model.config.first_matmul_block
    out = {}
    for module_name, module in model.named_modules():
        block = module_name.split(".")[1] if module_name.startswith("layers.") else None
        linear = isinstance(module, nn.Linear) and block is not None and int(block) >= first
        for name, _ in module.named_parameters(prefix=module_name, recurse=False):
            out[name] = matmul if linear else dtype
    return out


def convert_model(
    model: Model, dtype: torch.dtype, matmul: torch.dtype | None = None, from_block: int = 0
) -> Model:
    """A model of `model`'s class with its parameters in `dtype`, and its blocks' linear layers
    from block `from_block` on in `matmul` (mixed precision; None: `dtype`), converted tensor by
    tensor. The result may share unconverted tensors with `model`: give it a copy to keep the
    original apart."""
    name = str(matmul).removeprefix("torch.") if matmul not in (None, dtype) else None
    config = dataclasses.replace(model.config, matmul_dtype=name, matmul_from_block=from_block)
    with torch.device("meta"):
        converted = build_model(config)
    targets = stored_dtypes(converted, dtype)
    state = model.state_dict()
    for key in list(state):
        if key in targets:
            state[key] = state[key].to(targets[key])
    converted.load_state_dict(state, assign=True)
    return converted.train(model.training)


def _fresh_head(config: ModelConfig) -> nn.Linear:
    head = nn.Linear(config.hidden_size, config.num_labels)
    nn.init.normal_(head.weight, std=config.initializer_range)
    nn.init.zeros_(head.bias)
    return head


def state_dict_from_checkpoint(
    tensors: dict[str, torch.Tensor], config: ModelConfig, expected: dict[str, torch.Size]
) -> dict[str, torch.Tensor]:
    """Rename checkpoint tensors to ours; raise naming every missing, unexpected or mis-shaped key.

    `expected` is our parameter name -> shape (the classifier left out when it is to be fresh).
    """
    modules = module_map(config)
    prefix = PREFIXES[config.model_type]
    state: dict[str, torch.Tensor] = {}
    unexpected: list[str] = []
    for key, tensor in tensors.items():
        if IGNORED_KEYS.search(key):
            continue
        ours = our_key(key, modules, prefix)
        if ours == "embeddings.position_embeddings.weight" and ours not in expected:
            # DeBERTa-v3 checkpoints keep an absolute table their config never uses
            # (position_biased_input false); transformers skips it as well.
            continue
        if ours is None or ours not in expected:
            if ours is None or not ours.startswith("classifier."):
                unexpected.append(key)
            continue
        if ours in state:
            raise CheckpointError(f"checkpoint holds two tensors for {ours} (one is {key})")
        state[ours] = tensor
    missing = sorted(set(expected) - set(state))
    wrong_shape = [
        f"{k}: checkpoint {tuple(state[k].shape)}, model {tuple(expected[k])}"
        for k in sorted(state)
        if state[k].shape != expected[k]
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensor(s): {', '.join(missing[:10])}")
    if unexpected:
        problems.append(
            f"unexpected {len(unexpected)} tensor(s): {', '.join(sorted(unexpected)[:10])}"
        )
    if wrong_shape:
        problems.append(f"wrong shape: {'; '.join(wrong_shape[:10])}")
    if problems:
        raise CheckpointError(
            f"checkpoint does not fit the {config.model_type} model its config describes: "
            + " | ".join(problems)
        )
    return state


def other_head(config_file: Path) -> str | None:
    """The model class `config.json`'s `architectures` names when it is not a token classifier
    (a sequence classifier's head has the NER head's name, `classifier`); None when it is one,
    or names none."""
    names = json.loads(config_file.read_text("utf-8")).get("architectures") or []
    if not names or any(str(n).endswith("ForTokenClassification") for n in names):
        return None
    return str(names[0])


def load_model(
    name_or_path: str | Path,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | str | None = None,
    matmul_dtype: torch.dtype | str | None = None,
    matmul_from_block: int = 0,
    num_labels: int | None = None,
    id2label: dict[int, str] | None = None,
) -> Model:
    """Build the model a checkpoint's `config.json` describes and load its safetensors weights.

    A checkpoint without a classifier (a base model) needs labels (`id2label` or `num_labels`) and
    gets a fresh, randomly initialised head for fine-tuning; so does a classifier checkpoint whose
    labels differ from the ones given. Every tensor is checked; the model is returned in eval mode,
    on `device` (None: the CPU; devices.py says what None means for each entry) in `dtype`
    (None: float32), with the blocks' linear layers from `matmul_from_block` on in
    `matmul_dtype` when given (mixed precision: `ModelConfig.matmul_dtype`). Each tensor is
    converted as it is read.
    """
    folder = resolve_folder(name_or_path, revision=revision, token=token, files=WEIGHT_FILES)
    if not (folder / "config.json").is_file():
        if (folder / "gliner_config.json").is_file():
            raise CheckpointError(
                f"{folder} is a GLiNER model (labels named at call time): load it with "
                "minibert_ner.GLiNER.from_pretrained(...), or on the command line give "
                "--labels (minibert-ner --model MODEL --labels person,company TEXT)"
            )
        raise CheckpointError(f"{folder} has no config.json; is it a model folder?")
    config = ModelConfig.from_json_file(folder / "config.json")
    # One dtype for the whole model, float32 unless asked (checkpoints may store fp16); the
    # encoder's linear layers in matmul_dtype when it differs.
    torch_dtype = resolve_dtype(dtype) or torch.float32
    matmul = resolve_dtype(matmul_dtype)
    if matmul not in (None, torch_dtype):
        name = str(matmul).removeprefix("torch.")
        config = dataclasses.replace(config, matmul_dtype=name, matmul_from_block=matmul_from_block)
    with torch.device("meta"):  # the labels (a base model has none) change no tensor's dtype
        shapes = build_model(dataclasses.replace(config, id2label={0: "O"}))
    targets = stored_dtypes(shapes, torch_dtype)
    modules, prefix = module_map(config), PREFIXES[config.model_type]

    def convert(key: str, tensor: torch.Tensor) -> torch.Tensor:
        ours = our_key(key, modules, prefix)
        return tensor.to(targets.get(ours, torch_dtype)) if tensor.is_floating_point() else tensor

    tensors = read_safetensors(folder, convert=convert)

    head_keys = [k for k in tensors if k.startswith("classifier.")]
    if "classifier.weight" in tensors and not config.id2label:
        # transformers would default to 2 labels; the head's shape knows better.
        n = tensors["classifier.weight"].shape[0]
        config = dataclasses.replace(config, id2label={i: f"LABEL_{i}" for i in range(n)})
    if num_labels is not None and id2label is None:
        id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
    fresh_head = False
    if id2label is not None:
        id2label = {int(k): str(v) for k, v in id2label.items()}
        fresh_head = not head_keys or id2label != config.id2label
        config = dataclasses.replace(config, id2label=id2label)  # validated again
    elif not head_keys:
        raise CheckpointError(
            f"{name_or_path} is a base model: it has no NER head (no classifier weights). "
            f"Fine-tune it first (minibert-ner train --model {name_or_path} --train TRAIN "
            "--valid VALID -o DIR); in Python, load_model(..., id2label=...) gives it a fresh head"
        )
    elif other := other_head(folder / "config.json"):
        raise CheckpointError(
            f"{name_or_path} is a {other}, not a token classifier: its `classifier` does not "
            "label tokens; use an NER (ForTokenClassification) model, or fine-tune this one "
            "(load_model(..., id2label=...) gives it a fresh head)"
        )

    with torch.device("meta"):
        model = build_model(config)  # shapes only: the checkpoint's tensors are assigned below
    expected = {k: v.shape for k, v in model.state_dict().items()}
    # The head's layers before the classifier (ModernBERT): fresh too where a base model has none.
    modules = module_map(config)
    fresh_parts = [
        modules[theirs]
        for theirs in config.family.head_modules
        if fresh_head and not any(k.startswith(f"{theirs}.") for k in tensors)
    ]
    for part in ["classifier"] * fresh_head + fresh_parts:
        expected = {k: v for k, v in expected.items() if not k.startswith(f"{part}.")}
    state = state_dict_from_checkpoint(tensors, config, expected)
    model.load_state_dict(state, strict=False, assign=True)
    del tensors, state  # the model holds every tensor now
    if fresh_head:
        model.classifier = _fresh_head(config).to(torch_dtype)
    for part in fresh_parts:
        module = model.get_submodule(part).to_empty(device="cpu")
        model.init_weights(module)
        module.to(torch_dtype)
    return model.to(device=device or "cpu").eval()


def save_model(model: Model, folder: str | Path) -> None:
    """Write `config.json` and `model.safetensors`, named as `transformers` names them."""
    config = model.config
    pruned = [i for i, b in enumerate(model.layers) if b.attention.num_heads != config.num_heads]
    if pruned:
        # Neither we nor transformers (5.x dropped `pruned_heads`) can load uneven head counts.
        raise CheckpointError(
            f"blocks {pruned} have pruned attention heads; a checkpoint needs the same number of "
            "heads in every block, so save the model before pruning (or mask heads instead)"
        )
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    ours_to_theirs = {ours: theirs for theirs, ours in module_map(config).items()}
    prefix = PREFIXES[config.model_type]
    tensors: dict[str, torch.Tensor] = {}
    for key, tensor in model.state_dict().items():
        module, _, param = key.rpartition(".")
        theirs = HEAD_TABLE.get(module) or ours_to_theirs[module]
        beside = module in HEAD_TABLE or theirs in config.family.head_modules
        name = f"{'' if beside else prefix}{theirs}.{param}"
        tensors[name] = tensor.detach().to("cpu").contiguous()
    config.save(out)
    path = out / "model.safetensors"
    # Whole or not at all, by files.py's rules (a link stays, a device is written through);
    # safetensors writes the file by its name.
    file = AtomicFile(path, binary=True)
    try:
        # metadata format=pt: transformers refuses safetensors files without it.
        save_file(tensors, file.stream.name, metadata={"format": "pt"})
        file.commit()
    except SafetensorError as e:  # an I/O error, as an OSError that names the file
        found = re.search(r"os error (\d+)", str(e))
        number = int(found.group(1)) if found else None
        raise OSError(number, os.strerror(number) if number else str(e), str(path)) from e
    finally:
        file.abort()
