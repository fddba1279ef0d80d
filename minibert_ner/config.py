"""Model configuration: one dataclass for every family, read from and written to `config.json`.

The families (DistilBERT, BERT, RoBERTa, XLM-RoBERTa, CamemBERT, ELECTRA; DeBERTa-v2/v3, whose
attention is its own, `deberta.py`) are post-LayerNorm encoders; ModernBERT (`modernbert.py`) is
a pre-LayerNorm one with rotary positions and sliding-window blocks. They name the same
hyper-parameters differently (`dim` vs `hidden_size`, `n_layers` vs `num_hidden_layers`, ...).
Each family's registration in `families.py` holds the names its config.json uses, the
transformers config class's defaults, and what the family fixes in code rather than in its
config.json (RoBERTa's position numbering, DistilBERT's missing attention-output dropout);
`FIELD_NAMES`, `FAMILIES`, `SUPPORTED_MODEL_TYPES` and `ARCHITECTURES` are that registry here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .families import FAMILIES, Family
from .files import AtomicFile

__all__ = [
    "ACTIVATIONS",
    "ARCHITECTURES",
    "DTYPE_NAMES",
    "FAMILIES",
    "FIELD_NAMES",
    "Family",
    "MATMUL_DTYPES",
    "SUPPORTED_MODEL_TYPES",
    "ModelConfig",
]

# Views of the family registry (families.py), by model_type.
SUPPORTED_MODEL_TYPES = tuple(FAMILIES)
FIELD_NAMES: dict[str, Mapping[str, str]] = {t: f.field_names for t, f in FAMILIES.items()}
ARCHITECTURES = {t: f.architecture for t, f in FAMILIES.items()}
# The relative-position terms DeBERTa's attention knows (pos_att_type).
DEBERTA_TERMS = ("c2p", "p2c")
# ModernBERT's two kinds of attention block (layer_types).
GLOBAL, LOCAL = "full_attention", "sliding_attention"

# config.json activation name -> the torch.nn class (and its arguments) that model.py builds.
# "gelu" is the exact erf GELU the checkpoints were trained with; the tanh approximation differs
# by up to 5e-4 and must not stand in for it.
ACTIVATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "gelu": ("GELU", {}),
    "gelu_new": ("GELU", {"approximate": "tanh"}),
    "gelu_pytorch_tanh": ("GELU", {"approximate": "tanh"}),
    "relu": ("ReLU", {}),
    "silu": ("SiLU", {}),
    "swish": ("SiLU", {}),
    "tanh": ("Tanh", {}),
}

# The names a dtype goes by (config.json's `torch_dtype`, users' shorthands) -> torch's own name.
# Plain strings, so that option checking needs no torch import; devices.resolve_dtype maps
# them to torch dtypes.
DTYPE_NAMES: dict[str, str] = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "float64": "float64", "double": "float64",
}  # fmt: skip
# The dtypes a model's linear layers may run in while the rest stays in the model's (matmul_dtype).
MATMUL_DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class ModelConfig:
    """Hyper-parameters of a token classifier of any family (our names, one for all families)."""

    model_type: str = "distilbert"  # a key of FAMILIES: decides checkpoint key names and traits
    vocab_size: int = 28996  # rows of the word-embedding table
    hidden_size: int = 768  # width of the residual stream (DistilBERT: dim)
    embedding_size: int | None = (
        None  # width of the embeddings (ELECTRA, DeBERTa); None: hidden_size
    )
    num_layers: int = 6  # transformer blocks
    num_heads: int = 12  # attention heads per block; hidden_size must divide evenly
    intermediate_size: int = 3072  # width of the feed-forward hidden layer (DistilBERT: hidden_dim)
    activation: str = "gelu"  # feed-forward non-linearity; "gelu" is the exact erf form
    max_position_embeddings: int = 512  # rows of the learned position table (see max_positions)
    type_vocab_size: int = 0  # segment (token type) embeddings; 0 = none (DistilBERT)
    sinusoidal_pos_embds: bool = False  # DistilBERT: how the position table was initialised
    layer_norm_eps: float = 1e-12  # DistilBERT hard-codes 1e-12; others read it (RoBERTa: 1e-5)
    pad_token_id: int = 0  # id of the padding token: [PAD] = 0, RoBERTa family <pad> = 1
    hidden_dropout: float = 0.1  # dropout on embeddings and block outputs (training only)
    attention_dropout: float = 0.1  # dropout on attention probabilities (training only)
    classifier_dropout: float = 0.1  # dropout before the classification head (training only)
    initializer_range: float = 0.02  # std of the normal init for fresh weights
    # DeBERTa-v2/v3 only (defaults: transformers' for a config.json that omits them).
    position_biased_input: bool = True  # add absolute position embeddings (v3: False)
    relative_attention: bool = False  # the c2p / p2c terms over relative positions
    max_relative_positions: int = -1  # largest relative distance; < 1 = max_position_embeddings
    position_buckets: int = -1  # > 0: log-bucket distances into 2 x this many rows (v3: 256)
    pos_att_type: tuple[str, ...] = ()  # which position terms attention adds: "c2p", "p2c"
    share_att_key: bool = False  # position projections = the key/query ones (v3), else their own
    norm_rel_ebd: str = "none"  # "layer_norm": LayerNorm on the relative embeddings (v3)
    conv_kernel_size: int = 0  # > 0: a ConvLayer after the first block (v2-xlarge)
    conv_groups: int = 1  # its groups
    conv_act: str = "tanh"  # its activation
    # ModernBERT only (defaults: transformers' ModernBertConfig for a config.json that omits them).
    norm_bias: bool = True  # LayerNorms have a bias (ModernBERT: none)
    attention_bias: bool = True  # the fused q/k/v and output projections have biases
    mlp_bias: bool = True  # the GeGLU feed-forward's projections have biases
    head_bias: bool = False  # the head's dense layer has a bias (config.json: classifier_bias)
    head_activation: str = "gelu"  # the head's activation (classifier_activation)
    embedding_dropout: float = 0.0  # dropout after the embeddings' LayerNorm (training only)
    initializer_cutoff_factor: float = 2.0  # fresh weights: normal cut at +-factor x std
    # Each block's attention, "full_attention" (global) or "sliding_attention" (local); empty:
    # every global_attn_every_n_layers-th block from 0 is global, the others local.
    layer_types: tuple[str, ...] = ()
    global_attn_every_n_layers: int = 3  # what older config.json files state instead
    local_attention: int = 128  # local blocks: a token sees tokens up to local_attention // 2 away
    global_rope_theta: float = 160_000.0  # rotary base of the global blocks
    local_rope_theta: float = 10_000.0  # rotary base of the local blocks
    id2label: dict[int, str] = field(default_factory=dict)  # label order of the classifier rows
    extra: dict[str, Any] = field(default_factory=dict)  # unknown config.json keys, kept for saving
    # How the model runs, not what it is (never read from or written to config.json): the dtype
    # of the blocks' linear layers, whose weights are stored in it and whose inputs are cast to
    # it; everything else (embeddings, the residual stream, LayerNorm, attention's softmax, the
    # head) stays in the model's dtype. None: the model's dtype everywhere. "bfloat16" with a
    # float32 model is the pipeline's dtype="bfloat16-mixed" (inference/precision.py).
    matmul_dtype: str | None = None
    # The first block whose linear layers run in matmul_dtype, at most the middle one
    # (`first_matmul_block`): those before it keep the model's dtype, since what the first
    # blocks round off reaches every later one (docs/benchmarks.md).
    matmul_from_block: int = 0

    def __post_init__(self) -> None:
        for name in POSITIVE_FIELDS:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)!r}")
        for name in PROBABILITY_FIELDS:
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if not self.layer_norm_eps > 0:
            raise ConfigError(f"layer_norm_eps must be above 0, got {self.layer_norm_eps!r}")
        if self.num_layers < 0:
            raise ConfigError(f"num_layers must be at least 0, got {self.num_layers!r}")
        if not 0 <= self.pad_token_id < self.vocab_size or self.type_vocab_size < 0:
            raise ConfigError(
                f"pad_token_id {self.pad_token_id} is not a token id below vocab_size "
                f"{self.vocab_size} (or type_vocab_size {self.type_vocab_size} is negative)"
            )
        if self.model_type not in SUPPORTED_MODEL_TYPES:
            raise ConfigError(
                f"model_type {self.model_type!r} is not supported; "
                f"minibert-ner runs {', '.join(SUPPORTED_MODEL_TYPES)} checkpoints"
            )
        if self.hidden_size % self.num_heads != 0:
            raise ConfigError(
                f"hidden size {self.hidden_size} is not divisible by the {self.num_heads} heads"
            )
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"activation {self.activation!r} is not supported; "
                f"choose one of {', '.join(sorted(ACTIVATIONS))}"
            )
        if self.conv_act not in ACTIVATIONS:
            raise ConfigError(
                f"conv_act {self.conv_act!r} is not supported; "
                f"choose one of {', '.join(sorted(ACTIVATIONS))}"
            )
        if isinstance(self.pos_att_type, str):  # config.json may write "p2c|c2p"
            self.pos_att_type = tuple(t.strip() for t in self.pos_att_type.lower().split("|"))
        if not isinstance(self.pos_att_type, (list, tuple)):
            raise ConfigError(
                f"pos_att_type must be a list of terms or a 'p2c|c2p' string, "
                f"got {self.pos_att_type!r}"
            )
        self.pos_att_type = tuple(self.pos_att_type)
        unknown = [t for t in self.pos_att_type if t not in DEBERTA_TERMS]
        if unknown:
            raise ConfigError(
                f"pos_att_type {list(self.pos_att_type)} has unknown term(s) {unknown}; "
                f"DeBERTa-v2 attention knows {', '.join(DEBERTA_TERMS)}"
            )
        mid = self.position_buckets // 2
        if (
            self.relative_attention
            and self.position_buckets > 0
            and not (1 <= mid < self.relative_max_position - 1)
        ):
            raise ConfigError(
                f"position_buckets {self.position_buckets} cannot bucket distances up to "
                f"{self.relative_max_position - 1}: the log buckets need "
                "2 <= position_buckets < 2 x (max_relative_positions - 1)"
            )
        if self.head_activation not in ACTIVATIONS:
            raise ConfigError(
                f"classifier_activation {self.head_activation!r} is not supported; "
                f"choose one of {', '.join(sorted(ACTIVATIONS))}"
            )
        self.check_layer_types()
        if self.embedding_size is None and "embedding_size" in FIELD_NAMES[self.model_type]:
            self.embedding_size = self.hidden_size  # written to config.json, so never None
        if self.max_positions is not None and self.max_positions < 1:
            raise ConfigError(
                f"max_position_embeddings {self.max_position_embeddings} leaves no position for a "
                f"token ({self.model_type} numbers positions from {self.position_offset})"
            )
        if not isinstance(self.matmul_from_block, int) or self.matmul_from_block < 0:
            raise ConfigError(
                f"matmul_from_block must be a block index >= 0, got {self.matmul_from_block!r}"
            )
        if self.matmul_dtype is not None and self.matmul_dtype not in MATMUL_DTYPES:
            raise ConfigError(
                f"matmul_dtype must be one of {', '.join(MATMUL_DTYPES)} or None, "
                f"got {self.matmul_dtype!r}"
            )
        self.id2label = {int(k): str(v) for k, v in self.id2label.items()}
        if self.id2label and sorted(self.id2label) != list(range(len(self.id2label))):
            raise ConfigError(
                f"id2label must number labels 0..n-1, got ids {sorted(self.id2label)}"
            )

    def check_layer_types(self) -> None:
        """ModernBERT: layer_types as a tuple of known kinds, one per block (worked out from
        global_attn_every_n_layers when config.json has none); other families have none."""
        if "layer_types" not in FIELD_NAMES[self.model_type]:
            return
        if self.global_attn_every_n_layers < 1 or self.local_attention < 0:
            raise ConfigError(
                f"global_attn_every_n_layers must be at least 1 and local_attention at least 0, "
                f"got {self.global_attn_every_n_layers!r} and {self.local_attention!r}"
            )
        if not self.layer_types:
            every = self.global_attn_every_n_layers
            self.layer_types = tuple(
                LOCAL if i % every else GLOBAL for i in range(self.num_layers)
            )  # fmt: skip
        if not isinstance(self.layer_types, (list, tuple)):
            raise ConfigError(f"layer_types must be a list, got {self.layer_types!r}")
        self.layer_types = tuple(self.layer_types)
        unknown = sorted({t for t in self.layer_types if t not in (GLOBAL, LOCAL)}, key=str)
        if unknown or len(self.layer_types) != self.num_layers:
            raise ConfigError(
                f"layer_types must name {GLOBAL!r} or {LOCAL!r} for each of the "
                f"{self.num_layers} layers, got {list(self.layer_types)}"
            )

    def for_block(self, index: int) -> ModelConfig:
        """The config block `index` is built with: without matmul_dtype before
        matmul_from_block (that block's matmuls then run in the model's dtype)."""
        if self.matmul_dtype is None or index >= self.first_matmul_block:
            return self
        return replace(self, matmul_dtype=None)

    @property
    def first_matmul_block(self) -> int:
        """The first block in matmul_dtype: matmul_from_block, but never past the middle block
        (a small model keeps its first half in the model's dtype, not all of it)."""
        return min(self.matmul_from_block, self.num_layers // 2)

    @property
    def family(self) -> Family:
        return FAMILIES[self.model_type]

    @property
    def position_offset(self) -> int:
        """Position row of the first real token: 0, or pad_token_id + 1 (RoBERTa family)."""
        return self.pad_token_id + 1 if self.family.positions_from_padding else 0

    @property
    def embedding_width(self) -> int:
        """Width of the embedding tables; ELECTRA and DeBERTa project it to hidden_size when they
        differ."""
        return self.embedding_size or self.hidden_size

    @property
    def max_positions(self) -> int | None:
        """The longest input the model takes, special tokens included (RoBERTa: 514 rows, 512);
        None for no limit: a model without absolute positions (DeBERTa-v3) runs any length."""
        if not self.position_biased_input:
            return None
        return self.max_position_embeddings - self.position_offset

    @property
    def num_labels(self) -> int:
        return len(self.id2label)

    @property
    def label2id(self) -> dict[str, int]:
        return {label: i for i, label in self.id2label.items()}

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def relative_max_position(self) -> int:
        """DeBERTa: the largest relative distance (max_relative_positions, or the absolute
        table's size when that is < 1), which the log buckets stretch to."""
        if self.max_relative_positions < 1:
            return self.max_position_embeddings
        return self.max_relative_positions

    @property
    def relative_span(self) -> int:
        """DeBERTa: distances -span..span-1 have rows in the relative table (2 x span rows)."""
        return self.position_buckets if self.position_buckets > 0 else self.relative_max_position

    @property
    def norm_rel_layer_norm(self) -> bool:
        """DeBERTa: whether the relative embeddings pass a LayerNorm (norm_rel_ebd)."""
        return "layer_norm" in [x.strip() for x in self.norm_rel_ebd.lower().split("|")]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> ModelConfig:
        """Build from the contents of a Hugging Face `config.json`."""
        model_type = raw.get("model_type")
        if model_type not in FIELD_NAMES:
            raise ConfigError(
                f"config.json has model_type {model_type!r}; minibert-ner runs "
                f"{', '.join(SUPPORTED_MODEL_TYPES)} checkpoints only"
            )
        if raw.get("position_embedding_type", "absolute") != "absolute":
            raise ConfigError(
                f"position_embedding_type {raw['position_embedding_type']!r} is not supported "
                "(only 'absolute' position embeddings are implemented)"
            )
        family = FAMILIES[model_type]
        names = family.field_names
        for path, supported in family.supported_only.items():
            found = nested(raw, path)
            if found is not None and found != supported:
                raise ConfigError(
                    f"config.json: {'.'.join(path)} is {found!r}; minibert-ner supports only "
                    f"{supported!r}"
                )
        values: dict[str, Any] = {"model_type": model_type, **family.defaults}
        for ours, theirs in names.items():
            value = nested(raw, family.nested_names[ours]) if ours in family.nested_names else None
            if value is None:
                value = raw.get(theirs)
            if value is not None:
                values[ours] = (
                    checked_type(theirs, value, FIELD_TYPES[ours]) if ours in FIELD_TYPES else value
                )
        values.setdefault("classifier_dropout", values.get("hidden_dropout", 0.1))
        head_size = raw.get(family.head_size_key) if family.head_size_key else None
        heads, width = raw.get(names["num_heads"]), raw.get(names["hidden_size"])
        if head_size is not None and head_size * (heads or 0) != width:
            raise ConfigError(
                f"{family.head_size_key} {head_size} x {heads} heads "
                f"differs from hidden_size {width}; not supported"
            )
        values["id2label"] = read_id2label(raw.get("id2label"), raw.get("num_labels"))
        known = set(names.values()) | {"model_type", "id2label", "label2id", "architectures"}
        known |= {path[0] for path in family.nested_names.values()}
        values["extra"] = {k: v for k, v in raw.items() if k not in known}
        return cls(**values)

    @classmethod
    def from_json_file(cls, path: str | Path) -> ModelConfig:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ConfigError(f"cannot read config file {path}: {e}") from e
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {path} does not hold a JSON object")
        return cls.from_dict(raw)

    def to_dict(self) -> dict[str, Any]:
        """The `config.json` contents in this family's own names, loadable by `transformers`."""
        out: dict[str, Any] = dict(self.extra)
        out.pop("transformers_version", None)
        out["architectures"] = [ARCHITECTURES[self.model_type]]
        out["model_type"] = self.model_type
        field_of: dict[str, str] = {}  # their name -> our field (of two, the first listed)
        for ours, theirs in self.family.field_names.items():
            field_of.setdefault(theirs, ours)
        for theirs, ours in field_of.items():
            value = getattr(self, ours)
            out[theirs] = list(value) if isinstance(value, tuple) else value  # pos_att_type
        out["id2label"] = {str(i): label for i, label in self.id2label.items()}
        out["label2id"] = self.label2id
        return out

    def save(self, folder: str | Path) -> None:
        with AtomicFile(Path(folder) / "config.json") as out:
            out.write(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")


# Our field -> the Python type its config.json value must have (JSON: number, string, boolean).
# ("int | None": an int, or absent from the file.)
FIELD_TYPES: dict[str, type] = {
    f.name: {"int": int, "float": float, "str": str, "bool": bool}[kind]
    for f in fields(ModelConfig)
    if (kind := str(f.type).removesuffix(" | None")) in ("int", "float", "str", "bool")
}
POSITIVE_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_heads",
    "intermediate_size",
    "max_position_embeddings",
)  # fmt: skip (num_layers may be 0: embeddings and head alone, a research baseline)
PROBABILITY_FIELDS = (
    "hidden_dropout", "attention_dropout", "classifier_dropout", "embedding_dropout"
)  # fmt: skip
JSON_TYPES = {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}


def json_type(value: Any) -> str:
    """What a JSON value is, in JSON's words."""
    kinds = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    kinds |= {list: "an array", dict: "an object", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def checked_type(key: str, value: Any, expected: type) -> Any:
    """`value` of config.json's `key` if it has the `expected` type (a whole-valued float counts
    as an int, an int as a float), else a ConfigError that names the key."""
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, expected) and not (expected is not bool and isinstance(value, bool)):
        return value
    raise ConfigError(
        f"config.json: {key} is {value!r} ({json_type(value)}), but must be "
        f"{JSON_TYPES[expected]}; correct the file"
    )


def nested(raw: Mapping[str, Any], path: Sequence[str]) -> Any:
    """The value at a key path of config.json (("rope_parameters", "full_attention",
    "rope_theta")), or None where the path does not lead to one."""
    value: Any = raw
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def read_id2label(id2label: Any, num_labels: Any) -> dict[int, str]:
    """config.json's labels: `id2label` ({"0": "O", ...}), else `num_labels` generic ones
    (LABEL_0, ...), as transformers reads them; neither: none (a base model)."""
    if id2label is None:
        if num_labels is None:
            return {}
        n = checked_type("num_labels", num_labels, int)
        if n < 0:
            raise ConfigError(f"config.json: num_labels is {n}, but must be at least 0")
        return {i: f"LABEL_{i}" for i in range(n)}
    if not isinstance(id2label, dict):
        raise ConfigError(
            f"config.json: id2label is {json_type(id2label)}, but must be an object of label ids "
            'to names, e.g. {"0": "O", "1": "B-PER"}; correct the file'
        )
    labels = {}
    for key, name in id2label.items():
        try:
            i = int(key)
        except ValueError:
            raise ConfigError(
                f"config.json: id2label has the key {key!r}, which is not a label id (0, 1, ...)"
            ) from None
        if not isinstance(name, str):
            raise ConfigError(
                f"config.json: id2label[{key!r}] is {name!r} ({json_type(name)}), but must be "
                "a label name (a string)"
            )
        labels[i] = name
    return labels
