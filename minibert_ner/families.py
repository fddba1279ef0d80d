"""The families minibert-ner runs, one registration each, and `Model`: what every model file's
token classifier is to the rest of the package.

A family is its model file (`model.py`, `deberta.py`, `modernbert.py`: torch modules that read alone) and one
`Family` below, which holds everything else the package knows about it: `config.py` reads its
config.json names, defaults and traits, `checkpoint.py` its key table, prefix and model class,
`tokenizer.py` its tokenizer class. `tests/test_registry.py` checks that every registration
agrees with its model file, with `ModelConfig` and with `transformers`; docs/families.md says how
to add a family.

Data and a protocol only: it imports nothing of ours, and torch only for type checkers
(config.py, which the command line reads before torch is loaded, is built on it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = ["FAMILIES", "Family", "Model", "ModelOutput"]


@dataclass(frozen=True)
class Family:
    """One family of checkpoints (one `model_type`) and what runs it."""

    model_type: str  # config.json's `model_type`: the family's key everywhere
    architecture: str  # the transformers token-classifier class (config.json's `architectures`)
    model_class: str  # the class that runs it, by name: one of `checkpoint.MODEL_CLASSES`
    # Our `ModelConfig` field -> its name in this family's config.json. Two fields may share a
    # name (DistilBERT's `dropout`); the first listed is the one written.
    field_names: Mapping[str, str]
    # The transformers config class's values for keys a config.json may leave out, where they
    # differ from ModelConfig's defaults. classifier_dropout missing means hidden_dropout.
    defaults: Mapping[str, Any]
    # Checkpoint module (after `prefix`) -> our module; "{}" is the block index. Read forwards to
    # load, backwards to save; the head (`classifier`) is the same in every family.
    key_table: Mapping[str, str]
    # The base model's tensors sit under this prefix in *ForTokenClassification checkpoints (the
    # transformers class's `base_model_prefix`), and under none in base-model checkpoints.
    prefix: str
    # Checkpoint modules token classification does not use (pre-training and sentence heads),
    # with or without the prefix: skipped on load. Anything else unknown is an error.
    unused_modules: tuple[str, ...]
    tokenizer_class: str  # the transformers tokenizer class when tokenizer_config.json names none
    # RoBERTa family: position ids number real tokens from pad_token_id + 1, padding takes row
    # pad_token_id (fairseq's make_positions), so 2 of the 514 rows are never a real position.
    positions_from_padding: bool = False
    attention_output_dropout: bool = True  # dropout on the attention projection (not DistilBERT)
    # A config.json key that fixes the heads' width, which must then be hidden_size / heads (the
    # model files derive it); None: the family has no such key.
    head_size_key: str | None = None
    # Key-table modules of the head before the classifier (ModernBERT's `head.dense`, `head.norm`):
    # beside the base model, so never under `prefix`. A checkpoint without them (a base model)
    # gets them fresh, with the classifier.
    head_modules: tuple[str, ...] = ()
    # Our field -> a key path into config.json read before its flat name in `field_names` (the
    # nested form newer transformers writes, e.g. ModernBERT's rope_parameters); saved flat.
    nested_names: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # config.json key paths whose value, when present, must be this one (what we implement).
    supported_only: Mapping[tuple[str, ...], Any] = field(default_factory=dict)
    # The onnxruntime.transformers optimizer's `model_type` whose fusions (attention, LayerNorm,
    # GELU) fit this family's exported graph (`minibert-ner export --optimize`); None: onnxruntime's
    # generic graph optimizations only.
    onnx_fusions: str | None = None
    # Keyword arguments to the model's forward for the ONNX export's trace that make one graph
    # exact at every row length (ModernBERT's attention otherwise picks its path by the length,
    # which a trace freezes); the export then traces on short rows (`onnx_export.TRACE_LENGTH`)
    # and checks on rows up to `CHECK_LENGTH`. None: traced and checked on rows of the full
    # window (DeBERTa slices its relative table by the traced length: the longest row fixes it).
    onnx_trace: Mapping[str, Any] | None = None


# ---------------------------------------------------------------------------------------------
# config.json names (our field -> theirs) and checkpoint key tables, shared where families share

DISTILBERT_FIELDS = {
    "vocab_size": "vocab_size",
    "hidden_size": "dim",
    "num_layers": "n_layers",
    "num_heads": "n_heads",
    "intermediate_size": "hidden_dim",
    "activation": "activation",
    "max_position_embeddings": "max_position_embeddings",
    "sinusoidal_pos_embds": "sinusoidal_pos_embds",
    "pad_token_id": "pad_token_id",
    "hidden_dropout": "dropout",
    "attention_dropout": "attention_dropout",
    "classifier_dropout": "dropout",  # DistilBertForTokenClassification uses `dropout`
    "initializer_range": "initializer_range",
}
BERT_FIELDS = {
    "vocab_size": "vocab_size",
    "hidden_size": "hidden_size",
    "num_layers": "num_hidden_layers",
    "num_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size",
    "activation": "hidden_act",
    "max_position_embeddings": "max_position_embeddings",
    "type_vocab_size": "type_vocab_size",
    "layer_norm_eps": "layer_norm_eps",
    "pad_token_id": "pad_token_id",
    "hidden_dropout": "hidden_dropout_prob",
    "attention_dropout": "attention_probs_dropout_prob",
    "classifier_dropout": "classifier_dropout",  # None means: use hidden_dropout_prob
    "initializer_range": "initializer_range",
}
# ELECTRA adds the width of its (smaller) embeddings.
ELECTRA_FIELDS = BERT_FIELDS | {"embedding_size": "embedding_size"}
# DeBERTa-v2/v3 write BERT's names too, but no classifier_dropout (its head's dropout is
# hidden_dropout_prob), and add those of the relative-position attention.
DEBERTA_V2_FIELDS = {
    ours: theirs for ours, theirs in BERT_FIELDS.items() if ours != "classifier_dropout"
} | {
    "embedding_size": "embedding_size",
    "position_biased_input": "position_biased_input",
    "relative_attention": "relative_attention",
    "max_relative_positions": "max_relative_positions",
    "position_buckets": "position_buckets",
    "pos_att_type": "pos_att_type",
    "share_att_key": "share_att_key",
    "norm_rel_ebd": "norm_rel_ebd",
    "conv_kernel_size": "conv_kernel_size",
    "conv_groups": "conv_groups",
    "conv_act": "conv_act",
}

# Each module's parameters keep their names (weight, bias), except legacy LayerNorm gamma/beta.
DISTILBERT_KEYS = {
    "embeddings.word_embeddings": "embeddings.word_embeddings",
    "embeddings.position_embeddings": "embeddings.position_embeddings",
    "embeddings.LayerNorm": "embeddings.LayerNorm",
    "transformer.layer.{}.attention.q_lin": "layers.{}.attention.query",
    "transformer.layer.{}.attention.k_lin": "layers.{}.attention.key",
    "transformer.layer.{}.attention.v_lin": "layers.{}.attention.value",
    "transformer.layer.{}.attention.out_lin": "layers.{}.attention.output",
    "transformer.layer.{}.sa_layer_norm": "layers.{}.attention_norm",
    "transformer.layer.{}.ffn.lin1": "layers.{}.ffn.intermediate",
    "transformer.layer.{}.ffn.lin2": "layers.{}.ffn.output",
    "transformer.layer.{}.output_layer_norm": "layers.{}.output_norm",
}
BERT_KEYS = {
    "embeddings.word_embeddings": "embeddings.word_embeddings",
    "embeddings.position_embeddings": "embeddings.position_embeddings",
    "embeddings.token_type_embeddings": "embeddings.token_type_embeddings",
    "embeddings.LayerNorm": "embeddings.LayerNorm",
    "encoder.layer.{}.attention.self.query": "layers.{}.attention.query",
    "encoder.layer.{}.attention.self.key": "layers.{}.attention.key",
    "encoder.layer.{}.attention.self.value": "layers.{}.attention.value",
    "encoder.layer.{}.attention.output.dense": "layers.{}.attention.output",
    "encoder.layer.{}.attention.output.LayerNorm": "layers.{}.attention_norm",
    "encoder.layer.{}.intermediate.dense": "layers.{}.ffn.intermediate",
    "encoder.layer.{}.output.dense": "layers.{}.ffn.output",
    "encoder.layer.{}.output.LayerNorm": "layers.{}.output_norm",
}
# ELECTRA: BERT's, and the projection of its embeddings.
ELECTRA_KEYS = BERT_KEYS | {"embeddings_project": "embeddings.project"}
DEBERTA_V2_KEYS = {
    "embeddings.word_embeddings": "embeddings.word_embeddings",
    "embeddings.position_embeddings": "embeddings.position_embeddings",  # v2 only
    "embeddings.token_type_embeddings": "embeddings.token_type_embeddings",
    "embeddings.embed_proj": "embeddings.embed_proj",  # embedding_size != hidden_size
    "embeddings.LayerNorm": "embeddings.LayerNorm",
    "encoder.rel_embeddings": "rel_embeddings",
    "encoder.LayerNorm": "rel_norm",  # norm_rel_ebd = "layer_norm"
    "encoder.conv.conv": "conv.conv",  # conv_kernel_size > 0
    "encoder.conv.LayerNorm": "conv.LayerNorm",
    "encoder.layer.{}.attention.self.query_proj": "layers.{}.attention.query",
    "encoder.layer.{}.attention.self.key_proj": "layers.{}.attention.key",
    "encoder.layer.{}.attention.self.value_proj": "layers.{}.attention.value",
    "encoder.layer.{}.attention.self.pos_key_proj": "layers.{}.attention.pos_key",
    "encoder.layer.{}.attention.self.pos_query_proj": "layers.{}.attention.pos_query",
    "encoder.layer.{}.attention.output.dense": "layers.{}.attention.output",
    "encoder.layer.{}.attention.output.LayerNorm": "layers.{}.attention_norm",
    "encoder.layer.{}.intermediate.dense": "layers.{}.ffn.intermediate",
    "encoder.layer.{}.output.dense": "layers.{}.ffn.output",
    "encoder.layer.{}.output.LayerNorm": "layers.{}.output_norm",
}

MODERNBERT_FIELDS = {
    "vocab_size": "vocab_size",
    "hidden_size": "hidden_size",
    "num_layers": "num_hidden_layers",
    "num_heads": "num_attention_heads",
    "intermediate_size": "intermediate_size",
    "activation": "hidden_activation",
    "max_position_embeddings": "max_position_embeddings",
    "layer_norm_eps": "norm_eps",
    "norm_bias": "norm_bias",
    "pad_token_id": "pad_token_id",
    "attention_bias": "attention_bias",
    "mlp_bias": "mlp_bias",
    "head_bias": "classifier_bias",
    "head_activation": "classifier_activation",
    "embedding_dropout": "embedding_dropout",
    "hidden_dropout": "mlp_dropout",
    "attention_dropout": "attention_dropout",
    "classifier_dropout": "classifier_dropout",
    "initializer_range": "initializer_range",
    "initializer_cutoff_factor": "initializer_cutoff_factor",
    "layer_types": "layer_types",
    "global_attn_every_n_layers": "global_attn_every_n_layers",
    "local_attention": "local_attention",
    "global_rope_theta": "global_rope_theta",
    "local_rope_theta": "local_rope_theta",
}
MODERNBERT_KEYS = {
    "embeddings.tok_embeddings": "embeddings.word_embeddings",
    "embeddings.norm": "embeddings.LayerNorm",
    "layers.{}.attn_norm": "layers.{}.attention_norm",  # not in block 0
    "layers.{}.attn.Wqkv": "layers.{}.attention.qkv",
    "layers.{}.attn.Wo": "layers.{}.attention.output",
    "layers.{}.mlp_norm": "layers.{}.ffn_norm",
    "layers.{}.mlp.Wi": "layers.{}.ffn.intermediate",
    "layers.{}.mlp.Wo": "layers.{}.ffn.output",
    "final_norm": "final_norm",
    "head.dense": "head.dense",
    "head.norm": "head.norm",
}

# ---------------------------------------------------------------------------------------------
# The registrations

_BERT_DEFAULTS = {"vocab_size": 30522, "num_layers": 12, "type_vocab_size": 2}
_ROBERTA_DEFAULTS = _BERT_DEFAULTS | {"pad_token_id": 1}
# The RoBERTa family (RoBERTa, XLM-RoBERTa, CamemBERT) is BERT with fairseq's positions, under
# `roberta.` in every one of them (transformers keeps RoBERTa's attribute name).
_ROBERTA = {
    "field_names": BERT_FIELDS,
    "key_table": BERT_KEYS,
    "prefix": "roberta.",
    "unused_modules": ("pooler", "lm_head"),
    "positions_from_padding": True,
    "onnx_fusions": "bert",
}

FAMILIES: dict[str, Family] = {
    family.model_type: family
    for family in (
        Family(
            "distilbert",
            "DistilBertForTokenClassification",
            "TokenClassifier",
            field_names=DISTILBERT_FIELDS,
            defaults={"vocab_size": 30522},
            key_table=DISTILBERT_KEYS,
            prefix="distilbert.",
            unused_modules=("vocab_transform", "vocab_layer_norm", "vocab_projector"),  # MLM
            tokenizer_class="DistilBertTokenizer",
            attention_output_dropout=False,
            onnx_fusions="bert",
        ),
        Family(
            "bert",
            "BertForTokenClassification",
            "TokenClassifier",
            field_names=BERT_FIELDS,
            defaults=_BERT_DEFAULTS,
            key_table=BERT_KEYS,
            prefix="bert.",
            unused_modules=("pooler", "cls"),  # sentence pooler; MLM and NSP heads
            tokenizer_class="BertTokenizer",
            onnx_fusions="bert",
        ),
        Family(
            "roberta",
            "RobertaForTokenClassification",
            "TokenClassifier",
            defaults=_ROBERTA_DEFAULTS | {"vocab_size": 50265},
            tokenizer_class="RobertaTokenizer",
            **_ROBERTA,
        ),
        Family(
            "xlm-roberta",
            "XLMRobertaForTokenClassification",
            "TokenClassifier",
            defaults=_ROBERTA_DEFAULTS,
            tokenizer_class="XLMRobertaTokenizer",
            **_ROBERTA,
        ),
        Family(
            "camembert",
            "CamembertForTokenClassification",
            "TokenClassifier",
            defaults=_ROBERTA_DEFAULTS,
            tokenizer_class="CamembertTokenizer",
            **_ROBERTA,
        ),
        Family(
            "electra",
            "ElectraForTokenClassification",
            "TokenClassifier",
            field_names=ELECTRA_FIELDS,
            defaults={  # ElectraConfig() is electra-small's shape
                **_BERT_DEFAULTS,
                "hidden_size": 256,
                "num_heads": 4,
                "intermediate_size": 1024,
                "embedding_size": 128,
            },
            key_table=ELECTRA_KEYS,
            prefix="electra.",
            unused_modules=(
                "discriminator_predictions",
                "generator_predictions",
                "generator_lm_head",
            ),
            tokenizer_class="BertTokenizer",
            onnx_fusions="bert",
        ),
        Family(  # v2, v3 and mDeBERTa-v3; DebertaV2Config() is the v2-xlarge shape
            "deberta-v2",
            "DebertaV2ForTokenClassification",
            "DebertaTokenClassifier",
            field_names=DEBERTA_V2_FIELDS,
            defaults={
                "vocab_size": 128100,
                "hidden_size": 1536,
                "num_layers": 24,
                "num_heads": 24,
                "intermediate_size": 6144,
                "type_vocab_size": 0,
                "layer_norm_eps": 1e-7,
            },
            key_table=DEBERTA_V2_KEYS,
            prefix="deberta.",
            unused_modules=("lm_predictions", "mask_predictions"),  # MLM, replaced-token heads
            tokenizer_class="DebertaV2Tokenizer",
            head_size_key="attention_head_size",
        ),
        Family(  # ModernBERT-base's shape; also the Ettin encoders and mmBERT
            "modernbert",
            "ModernBertForTokenClassification",
            "ModernBertTokenClassifier",
            field_names=MODERNBERT_FIELDS,
            defaults={
                "vocab_size": 50368,
                "num_layers": 22,
                "intermediate_size": 1152,
                "max_position_embeddings": 8192,
                "layer_norm_eps": 1e-5,
                "norm_bias": False,
                "pad_token_id": 50283,
                "attention_bias": False,
                "mlp_bias": False,
                "hidden_dropout": 0.0,
                "attention_dropout": 0.0,
                "classifier_dropout": 0.0,
            },
            key_table=MODERNBERT_KEYS,
            prefix="model.",
            head_modules=("head.dense", "head.norm"),
            unused_modules=("decoder",),  # the MLM head's projection (`head` is shared)
            tokenizer_class="TokenizersBackend",  # tokenizer.json as it is, whatever is named
            nested_names={
                "global_rope_theta": ("rope_parameters", "full_attention", "rope_theta"),
                "local_rope_theta": ("rope_parameters", "sliding_attention", "rope_theta"),
            },
            supported_only={
                ("rope_parameters", "full_attention", "rope_type"): "default",
                ("rope_parameters", "sliding_attention", "rope_type"): "default",
            },
            onnx_trace={"any_length": True},  # onnxruntime's optimizer has no ModernBERT type
        ),
    )
}


# ---------------------------------------------------------------------------------------------
# What a model file's token classifier is to the rest of the package


class ModelOutput(Protocol):
    """What a model's forward returns (`model.TokenClassifierOutput`, `deberta.DebertaOutput`)."""

    logits: torch.Tensor  # (B, T, num_labels)
    hidden_states: tuple[torch.Tensor, ...] | None  # embeddings + each block: (B, T, H)
    attentions: tuple[torch.Tensor, ...] | None  # one per block: (B, nh, T, T)


class Model(Protocol):
    """A token classifier of any family: the small surface every model file's top class has, and
    all that the pipeline, training, serving and the study kit use of it besides its being a
    `torch.nn.Module` (`model(...)` runs `forward`; eval, to, state_dict, hooks).

    Its module names are the ones the family's key table maps to: `embeddings`,
    `layers.{i}` (each a `block_type`, with `attention` of `num_heads` heads, `attention_norm`,
    `ffn`, `output_norm`; ModernBERT's pre-LN blocks `attention_norm` and `ffn_norm` before
    them), `dropout`, `classifier` (ModernBERT: `final_norm` and a `head` before it).
    """

    block_type: ClassVar[type[nn.Module]]  # the block class `layers` stacks
    config: Any  # its config.ModelConfig (not named here: config.py is built on this module)
    embeddings: nn.Module  # input_ids (B, T) -> x (B, T, H)
    layers: nn.ModuleList  # the blocks, in order
    dropout: nn.Dropout  # on the last block's output, before the head (training only)
    classifier: nn.Linear  # x (B, T, H) -> logits (B, T, num_labels)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        *,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        packed: bool = False,
    ) -> ModelOutput:
        """Label scores for every token: input_ids, attention_mask, token_type_ids (B, T) ->
        logits (B, T, num_labels) and, when asked, the hidden states (embeddings output + every
        block) and each block's attention probabilities (B, nh, T, T). packed: every layer on
        the real tokens only (packing.py), the same numbers; no attention probabilities."""
        ...

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The head on the encoder's output (`hidden_states[-1]`): (..., H) ->
        (..., num_labels), what forward does after its last block (and final norm)."""
        ...

    @property
    def id2label(self) -> dict[int, str]:
        """The label of each classifier row."""
        ...

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    def init_weights(self, module: nn.Module | None = None) -> None:
        """Fresh weights, as transformers initialises them, for `module` or the whole model."""
        ...
