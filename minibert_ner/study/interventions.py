"""Interventions: change a loaded model on purpose and see what each part contributes.

Every function here works on our own model modules (`TokenClassifier`, `DebertaTokenClassifier`,
`ModernBertTokenClassifier`: the same module names), through PyTorch forward hooks or by swapping a sub-module, never by
editing `model.py` or `deberta.py`. Each returns an `Intervention` handle that
undoes the change with `.remove()` or at the end of a `with` block, except `prune_heads`, which
really removes weights (copy the model first to keep the original):

    with mask_heads(model, {2: [0, 5]}), skip_layers(model, [4]):
        logits = model(**batch).logits          # heads 2.0, 2.5 silenced, block 4 bypassed
    # the model is whole again here

Hook points, by module name (`model.get_submodule(name)`; `{i}` is the block index, from 0),
with each module's first positional input -> its output:

    embeddings                        input_ids (B, T) -> x (B, T, H), after LayerNorm
    embeddings.word_embeddings        input_ids (B, T) -> (B, T, E)   (E = H but for ELECTRA)
    embeddings.position_embeddings    positions (T,) -> (T, E)   (RoBERTa family: (B, T) -> (B, T, E))
    embeddings.token_type_embeddings  token_type_ids (B, T) -> (B, T, E)    (not DistilBERT)
    embeddings.LayerNorm              word + [type] + position (B, T, E) -> (B, T, E)
    embeddings.project                (B, T, E) -> (B, T, H)          (ELECTRA with E != H)
    layers.{i}                        x (B, T, H) -> (x (B, T, H), probs (B, nh, T, T) | None)
    layers.{i}.attention              x (B, T, H) -> (a (B, T, H), probs | None)
    layers.{i}.attention.query        x (B, T, H) -> (B, T, nh*hs), head h in columns h*hs:(h+1)*hs
    layers.{i}.attention.key, .value  likewise
    layers.{i}.attention.output       heads side by side (B, T, nh*hs) -> a (B, T, H)
    layers.{i}.attention_dropout      a -> a                  (not DistilBERT, training only)
    layers.{i}.attention_norm         x + a (B, T, H) -> (B, T, H)
    layers.{i}.ffn                    x (B, T, H) -> (B, T, H)
    layers.{i}.ffn.intermediate       x (B, T, H) -> (B, T, I)
    layers.{i}.ffn.act                (B, T, I) -> (B, T, I)
    layers.{i}.ffn.output             (B, T, I) -> (B, T, H)
    layers.{i}.output_norm            x + ffn (B, T, H) -> block output (B, T, H)
    ModernBERT (pre-LN) instead: layers.{i}.attention_norm before attention (none in block 0),
    layers.{i}.attention.qkv x (B, T, H) -> q, k, v side by side (B, T, 3*nh*hs),
    layers.{i}.ffn_norm before the GeGLU ffn, whose `intermediate` gives input and gate
    (B, T, 2*I); then final_norm, head (dense, act, norm) before dropout and classifier.
    dropout                           last block output -> same            (training only)
    classifier                        (B, T, H) -> logits (B, T, num_labels)

`layers.{i}` and `layers.{i}.attention` also take the padding bias (B, 1, 1, T) and the
`output_attentions` flag; probs is None unless attentions were asked for. DeBERTa's blocks take
`RelativePositions` (pairwise mask, bucketed distances, relative table) instead of the bias, and
add `layers.{i}.attention.pos_key`, `.pos_query` (v2: the relative table -> (2*span, nh*hs)),
`rel_embeddings`, `rel_norm` and `conv` (after block 0); their embeddings may have no
`position_embeddings` (v3) and add `embeddings.embed_proj`.

The input of `layers.{i}.attention.output` is the one place where the heads are still apart:
`mask_heads` works there. `capture` records any of these for reading.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import torch
from torch import nn

from ..config import ACTIVATIONS
from ..errors import InterventionError
from ..families import Model
from ..model import make_activation

__all__ = [
    "Intervention",
    "Recording",
    "SkippedBlock",
    "cap_sequence_length",
    "capture",
    "mask_heads",
    "parse_heads",
    "prune_heads",
    "replace_activation",
    "skip_layers",
]


class Intervention:
    """A change made to a model, undone by `remove()` or by leaving its `with` block."""

    def __init__(self, undo: Callable[[], None], description: str) -> None:
        self._undo: Callable[[], None] | None = undo
        self.description = description

    def remove(self) -> None:
        """Restore the model as it was. Safe to call twice."""
        if self._undo is not None:
            self._undo()
            self._undo = None

    def __enter__(self) -> Intervention:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        state = "active" if self._undo is not None else "removed"
        return f"Intervention({self.description}, {state})"


def _check_layers(model: Model, layers: Iterable[int]) -> list[int]:
    n = len(model.layers)
    layers = list(layers)
    bad = [i for i in layers if not isinstance(i, int) or not 0 <= i < n]
    if bad:
        raise InterventionError(f"layer(s) {bad} do not exist: the model has layers 0..{n - 1}")
    return sorted(set(layers))


def _block(model: Model, layer: int) -> nn.Module:
    """The block at `layer` (a `model.block_type`), refusing one that `skip_layers` has taken
    out."""
    block = model.layers[layer]
    if not isinstance(block, model.block_type):
        raise InterventionError(
            f"layer {layer} is skipped (skip_layers); it has no parts to change"
        )
    return block


def _check_heads(model: Model, heads: Mapping[int, Iterable[int]]) -> dict[int, list[int]]:
    """{layer: heads} with every index checked against the layer's current number of heads."""
    checked: dict[int, list[int]] = {}
    for layer in _check_layers(model, heads):
        nh = _block(model, layer).attention.num_heads
        hs = list(heads[layer])
        bad = [h for h in hs if not isinstance(h, int) or not 0 <= h < nh]
        if bad:
            raise InterventionError(
                f"layer {layer} has heads 0..{nh - 1}; there is no head {', '.join(map(str, bad))}"
            )
        checked[layer] = sorted(set(hs))
    return checked


def parse_heads(specs: Iterable[str]) -> dict[int, list[int]]:
    """["2.0", "2.5", "4.1"] -> {2: [0, 5], 4: [1]}: "LAYER.HEAD", both counted from 0."""
    heads: dict[int, list[int]] = {}
    for spec in specs:
        layer, dot, head = spec.partition(".")
        if not (dot and layer.isdigit() and head.isdigit()):
            raise InterventionError(f"head {spec!r} is not LAYER.HEAD (e.g. 2.5, counted from 0)")
        heads.setdefault(int(layer), []).append(int(head))
    return heads


def mask_heads(model: Model, heads: Mapping[int, Iterable[int]]) -> Intervention:
    """Silence attention heads: {layer: [head, ...]}, counted from 0.

    A forward pre-hook on `layers.{i}.attention.output` zeroes the head's hs columns of the
    concatenated head outputs, so the output projection sees nothing from it. This is exactly
    what pruning the head does (`prune_heads`) without changing any weight. The head's attention
    probabilities are still computed and returned with `output_attentions=True`.
    """
    checked = _check_heads(model, heads)
    handles = []
    for layer, hs in checked.items():
        attention = model.layers[layer].attention
        size = attention.head_size

        def zero_heads(
            module: nn.Module, args: tuple, hs: list[int] = hs, size: int = size
        ) -> tuple:
            y = args[0].clone()  # (B, T, nh*hs): never write into a tensor autograd may need
            for h in hs:
                y[..., h * size : (h + 1) * size] = 0
            return (y, *args[1:])

        handles.append(attention.output.register_forward_pre_hook(zero_heads))

    def undo() -> None:
        for handle in handles:
            handle.remove()

    return Intervention(undo, f"mask heads {_describe(checked)}")


# DeBERTa-v2's separate projections of the relative table, split into heads like key/query.
POSITION_PROJECTIONS = ("pos_key", "pos_query")


def prune_heads(model: Model, heads: Mapping[int, Iterable[int]]) -> Model:
    """Remove attention heads for good: {layer: [head, ...]}, in the layer's current numbering.

    The query/key/value projections (and DeBERTa's pos_key/pos_query) lose the head's hs output rows and the output projection its
    hs input columns; `num_heads` of that layer drops accordingly (the remaining heads are
    renumbered 0..n-1). The outputs equal `mask_heads` with the same heads. Not reversible and
    not saveable (config.json has one head count for all layers): deep-copy the model first if
    you need the original. Returns the model, changed in place.
    """
    checked = _check_heads(model, heads)
    for layer in checked:
        attention = model.layers[layer].attention
        names = ("qkv",) if hasattr(attention, "qkv") else ("query", "key", "value")
        projections = [getattr(attention, n) for n in names] + [attention.output]
        projections += [getattr(attention, n, None) for n in POSITION_PROJECTIONS]
        projections = [p for p in projections if p is not None]
        if any(p._forward_pre_hooks or p._forward_hooks for p in projections):
            # The projections are replaced below: hooks on the old ones would silently stop.
            raise InterventionError(
                f"layer {layer}'s attention projections carry hooks (mask_heads, capture?); "
                "remove them before pruning, then apply them again (head numbers change)"
            )
    for layer, hs in checked.items():
        attention = model.layers[layer].attention
        size, nh = attention.head_size, attention.num_heads
        keep = [h for h in range(nh) if h not in hs]
        # Indices of the kept heads' features in the (nh*hs) concatenation.
        idx = torch.cat([torch.arange(h * size, (h + 1) * size) for h in keep] or [torch.arange(0)])
        idx = idx.to(attention.output.weight.device)
        if hasattr(attention, "qkv"):  # ModernBERT: q, k, v side by side, nh*hs rows each
            width = nh * size
            rows = torch.cat([idx, idx + width, idx + 2 * width])
            attention.qkv = _linear_subset(attention.qkv, rows=rows)
        for name in ("query", "key", "value", *POSITION_PROJECTIONS):
            if getattr(attention, name, None) is not None:
                setattr(attention, name, _linear_subset(getattr(attention, name), rows=idx))
        attention.output = _linear_subset(attention.output, cols=idx)
        attention.num_heads = len(keep)
    return model


def _linear_subset(
    linear: nn.Linear, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None
) -> nn.Linear:
    """A new Linear holding only the given output rows (with their bias) or input columns."""
    weight = linear.weight.detach()
    bias = linear.bias.detach() if linear.bias is not None else None
    if rows is not None:
        weight = weight[rows]  # (len(rows), in)
        bias = bias[rows] if bias is not None else None
    if cols is not None:
        weight = weight[:, cols]  # (out, len(cols))
    with warnings.catch_warnings():  # all heads pruned: a zero-size weight, which is fine here
        warnings.filterwarnings("ignore", "Initializing zero-element tensors")
        new = torch.nn.utils.skip_init(  # no random init: every weight is overwritten below
            nn.Linear, weight.shape[1], weight.shape[0], bias=bias is not None,
            device=weight.device, dtype=weight.dtype,
        )  # fmt: skip
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    new.requires_grad_(linear.weight.requires_grad)
    return new


class SkippedBlock(nn.Module):
    """Stands in for a bypassed block: its input goes straight on, with no attention."""

    def forward(
        self, x: torch.Tensor, mask_bias: torch.Tensor | None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, None]:
        return x, None


def skip_layers(model: Model, layers: Iterable[int]) -> Intervention:
    """Bypass whole blocks (counted from 0): block i's output becomes its input.

    The block is swapped for a `SkippedBlock` (it does not run at all); its entry in
    `output_attentions` is None and its hidden state repeats the previous one (DeBERTa-v2's
    ConvLayer, which follows block 0 outside it, still runs).
    """
    checked = _check_layers(model, layers)
    originals = {i: model.layers[i] for i in checked}
    for i in checked:
        model.layers[i] = SkippedBlock()

    def undo() -> None:
        for i, block in originals.items():
            model.layers[i] = block

    return Intervention(undo, f"skip layers {checked}")


def replace_activation(
    model: Model,
    activation: str | nn.Module | Callable[[], nn.Module],
    layers: Iterable[int] | None = None,
) -> Intervention:
    """Swap the feed-forward non-linearity (`layers.{i}.ffn.act`) of some or all blocks.

    `activation` is a config name ("relu", "gelu_new", ...: see `config.ACTIVATIONS`), a module
    (shared by the blocks; it should hold no state) or a function returning a fresh module.
    """
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise InterventionError(
                f"unknown activation {activation!r}; choose one of {', '.join(sorted(ACTIVATIONS))}"
                " or pass a torch module"
            )
        make: Callable[[], nn.Module] = partial(make_activation, activation)
    elif isinstance(activation, nn.Module):
        make = lambda: activation  # noqa: E731
    elif callable(activation):
        make = activation
    else:
        raise InterventionError(f"activation must be a name or a torch module, not {activation!r}")
    if layers is None:  # every block that runs
        layers = [i for i, block in enumerate(model.layers) if isinstance(block, model.block_type)]
    checked = _check_layers(model, layers)
    originals = {i: _block(model, i).ffn.act for i in checked}
    for i in checked:
        model.layers[i].ffn.act = make()

    def undo() -> None:
        for i, act in originals.items():
            model.layers[i].ffn.act = act

    name = activation if isinstance(activation, str) else type(make()).__name__
    return Intervention(undo, f"activation {name} in layers {checked}")


def cap_sequence_length(model: Model, max_tokens: int) -> Intervention:
    """Let the model see at most `max_tokens` positions (special tokens included).

    The position table is cut to the rows of its first `max_tokens` positions (sharing their
    storage; the RoBERTa family's rows before its first position stay) and
    `config.max_position_embeddings` follows, so longer inputs are refused with the model's own
    error and the NER pipeline splits text into windows of that size: a way to study how much
    context each prediction needs.
    """
    table = getattr(model.embeddings, "position_embeddings", None)
    if table is None:
        raise InterventionError(
            "this model has no absolute positions (DeBERTa-v3: relative ones only; ModernBERT: "
            "rotary ones), so there is no position table to cap; use the pipeline's "
            "max_length to shorten its windows"
        )
    config = model.config
    n = config.max_positions
    if not isinstance(max_tokens, int) or not 2 <= max_tokens <= n:
        raise InterventionError(
            f"max_tokens must be an integer from 2 ([CLS] + [SEP]) to the model's {n} positions, "
            f"got {max_tokens!r}"
        )
    rows = max_tokens + config.position_offset
    capped = nn.Embedding(
        rows, table.embedding_dim, padding_idx=table.padding_idx, _weight=table.weight[:rows]
    )
    model.embeddings.position_embeddings = capped
    # DeBERTa-v2 reads its relative range from max_position_embeddings when it states none:
    # pin it, so that only the absolute table changes.
    pinned = {"max_relative_positions": config.relative_max_position}
    pin = config.relative_attention and config.max_relative_positions < 1
    model.config = dataclasses.replace(
        config, max_position_embeddings=rows, **(pinned if pin else {})
    )

    def undo() -> None:
        model.embeddings.position_embeddings = table
        model.config = config

    return Intervention(undo, f"cap sequence length at {max_tokens}")


@dataclass
class Recording:
    """What `capture` saw: module name -> its output, and -> its first positional input."""

    outputs: dict[str, object] = field(default_factory=dict)
    inputs: dict[str, torch.Tensor] = field(default_factory=dict)

    def __getitem__(self, name: str) -> object:
        return self.outputs[name]


@contextmanager
def capture(model: Model, names: Sequence[str]) -> Iterator[Recording]:
    """Record the input and output of the named modules (see the table above) during forwards.

    with capture(model, ["embeddings", "layers.0.attention.output"]) as seen:
        model(input_ids)
    seen["embeddings"]                          # (B, T, H)
    seen.inputs["layers.0.attention.output"]    # (B, T, nh*hs): the heads side by side

    Tensors are detached; a module called twice keeps its last call. Through the pipeline,
    batches of mixed lengths run packed (packing.py): the blocks' tensors are then (N, ·), the
    batch's real tokens back to back; call the model directly for the (B, T, ·) layout.
    """
    modules = dict(model.named_modules())
    unknown = [n for n in names if n not in modules]
    if unknown:
        raise InterventionError(
            f"no module named {', '.join(map(repr, unknown))}; names look like "
            "'embeddings', 'layers.0.attention.output', 'layers.3.ffn.act', 'classifier' "
            "(see the table in minibert_ner/interventions.py)"
        )
    seen = Recording()

    def detach(value: object) -> object:
        if isinstance(value, torch.Tensor):
            return value.detach()
        if isinstance(value, tuple):
            return tuple(detach(v) for v in value)
        return value

    def hook(name: str) -> Callable:
        def record(module: nn.Module, args: tuple, output: object) -> None:
            if args:
                seen.inputs[name] = detach(args[0])
            seen.outputs[name] = detach(output)

        return record

    handles = [modules[n].register_forward_hook(hook(n)) for n in names]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def _describe(heads: Mapping[int, Sequence[int]]) -> str:
    return ", ".join(f"{layer}.{h}" for layer, hs in heads.items() for h in hs) or "(none)"
