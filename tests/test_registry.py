"""The family registry (`families.FAMILIES`) agrees with everything it names: each registration
with its model class (the modules its key table maps to, both ways), with `ModelConfig`, with the
tokenizers tokenizer.py builds and with transformers (the config class and its defaults, the
architecture, the base-model prefix, the tokenizer class); the tables other modules keep are
views of it. A new family passes these before anything else."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import minibert_ner
from minibert_ner import checkpoint, config, tokenizer
from minibert_ner.checkpoint import HEAD_TABLE, MODEL_CLASS_NAMES, MODEL_CLASSES, build_model
from minibert_ner.config import ModelConfig
from minibert_ner.families import FAMILIES, Family, Model

from .helpers.checkpoints import FAMILIES as TEST_FAMILIES

# Our field -> a value that turns on an optional part of a model, for the families whose
# config.json has that field: token types, narrower embeddings projected up, DeBERTa's absolute
# positions, both relative terms with their own projections, the LayerNorm on the relative
# table, the convolution after the first block.
EVERY_PART = {
    "type_vocab_size": 2,
    "embedding_size": 16,
    "position_biased_input": True,
    "relative_attention": True,
    "pos_att_type": ("c2p", "p2c"),
    "share_att_key": False,
    "norm_rel_ebd": "layer_norm",
    "conv_kernel_size": 3,
    "norm_bias": True,
    "attention_bias": True,
    "mlp_bias": True,
    "head_bias": True,
}
TINY = {"vocab_size": 50, "hidden_size": 32, "num_layers": 2, "num_heads": 2,
        "intermediate_size": 64, "max_position_embeddings": 40}  # fmt: skip
CONFIG_FIELDS = {f.name for f in dataclasses.fields(ModelConfig)}


def tiny_config(family: Family, parts: dict) -> ModelConfig:
    used = {k: v for k, v in parts.items() if k in family.field_names}
    values = {**family.defaults, **TINY, **used}
    if values.get("pad_token_id", 0) >= TINY["vocab_size"]:
        values["pad_token_id"] = 0  # ModernBERT's 50283 is beyond the tiny vocabulary
    return ModelConfig(model_type=family.model_type, id2label={0: "O", 1: "B-PER"}, **values)


def meta_model(config: ModelConfig) -> Model:
    with torch.device("meta"):
        return build_model(config)


def module_names(model: Model) -> set[str]:
    """The modules that hold the model's tensors."""
    return {key.rpartition(".")[0] for key in model.state_dict()}


families = pytest.mark.parametrize("family", list(FAMILIES.values()), ids=list(FAMILIES))


def test_one_registration_per_model_type_and_the_tables_are_its_views():
    assert all(family.model_type == t for t, family in FAMILIES.items())
    architectures = [family.architecture for family in FAMILIES.values()]
    assert len(set(architectures)) == len(architectures)
    assert config.SUPPORTED_MODEL_TYPES == tuple(FAMILIES)
    for t, family in FAMILIES.items():
        assert config.FIELD_NAMES[t] is family.field_names
        assert config.ARCHITECTURES[t] == family.architecture
        assert checkpoint.KEY_TABLES[t] is family.key_table
        assert checkpoint.PREFIXES[t] == family.prefix
        assert tokenizer.MODEL_TOKENIZERS[t] == family.tokenizer_class
    assert config.FAMILIES is FAMILIES and config.Family is Family
    # The test suite's own description of the families names the same transformers classes.
    for t, test_family in TEST_FAMILIES.items():
        assert test_family.model_class == FAMILIES[t].architecture


@families
def test_model_class_runs_the_family(family):
    assert family.model_class in MODEL_CLASS_NAMES
    cls = MODEL_CLASS_NAMES[family.model_class]
    assert cls in MODEL_CLASSES
    assert getattr(minibert_ner, cls.__name__) is cls  # exported from the package
    model = meta_model(tiny_config(family, EVERY_PART))
    assert type(model) is cls
    assert len(model.layers) == 2 and all(isinstance(b, cls.block_type) for b in model.layers)
    members = set(Model.__annotations__) | {n for n in vars(Model) if not n.startswith("_")}
    assert {"forward", "init_weights", "block_type", "config"} <= members
    assert [m for m in sorted(members) if not hasattr(model, m)] == []


@families
def test_key_table_reaches_exactly_the_models_modules(family):
    """With every optional part on, each key-table target is a module of the model (one without
    tensors only where transformers' has none either: ModernBERT's block 0 has no LayerNorm
    before attention) and each of the model's tensors is reached by the key table or the head;
    with the family's defaults, still every tensor is reached."""
    full = tiny_config(family, EVERY_PART)
    mapped = set(checkpoint.module_map(full).values())
    model = meta_model(full)
    ours = module_names(model) - set(HEAD_TABLE.values())
    empty = {name for name in mapped - ours if not list(model.get_submodule(name).parameters())}
    assert empty <= {"layers.0.attention_norm"}, "key-table targets without tensors"
    assert sorted(mapped - ours - empty) == [], "key-table targets the model does not have"
    assert sorted(ours - mapped) == [], "model modules no checkpoint key reaches"
    plain = tiny_config(family, {})
    assert module_names(meta_model(plain)) - set(HEAD_TABLE.values()) <= mapped
    assert len(set(family.key_table.values())) == len(family.key_table)  # one way back to save


@families
def test_config_names_defaults_and_round_trip(family):
    assert set(family.field_names) <= CONFIG_FIELDS
    assert set(family.defaults) <= set(family.field_names)  # keys a config.json may leave out
    assert family.head_size_key not in family.field_names.values()
    full = tiny_config(family, EVERY_PART)
    assert ModelConfig.from_dict(full.to_dict()) == full
    assert full.to_dict()["architectures"] == [family.architecture]


@families
def test_tokenizer_class_is_one_tokenizer_py_builds(family):
    """Rebuilt in code (`tokenizer.REBUILT`), the generic backend (tokenizer.json as it is,
    `tokenizer.AS_IS`), or a WordPiece class (a BertTokenizer), whose tokenizer.json or
    vocab.txt is read as it is."""
    if family.tokenizer_class in tokenizer.REBUILT or family.tokenizer_class in tokenizer.AS_IS:
        return
    transformers = pytest.importorskip("transformers")
    cls = getattr(transformers, family.tokenizer_class)
    assert issubclass(cls, transformers.BertTokenizer), family.tokenizer_class


@families
def test_transformers_knows_the_family_as_registered(family):
    """The model_type, its config class and its defaults, the architecture, the prefix."""
    transformers = pytest.importorskip("transformers")
    config_class = transformers.CONFIG_MAPPING[family.model_type]
    architecture = getattr(transformers, family.architecture)
    assert architecture.config_class is config_class
    assert family.prefix == architecture.base_model_prefix + "."
    assert hasattr(transformers, family.tokenizer_class)
    # A config.json that leaves every key out means transformers' defaults: the same config as
    # one that writes every key the config class has.
    theirs = ModelConfig.from_dict(config_class().to_dict())
    ours = ModelConfig.from_dict({"model_type": family.model_type})
    assert dataclasses.replace(theirs, id2label={}, extra={}) == ours
