"""ModernBERT token classifier in one file (answerdotai/ModernBERT, jhu-clsp's Ettin encoders,
mmBERT): pre-LayerNorm blocks, rotary positions, global and sliding-window attention, GeGLU.

    x = LN(word)                                            # ModernBertEmbeddings (no positions)
    for block i:
        x = x + Wo attn(LN(x))                              # block 0: no LN before attention
        x = x + W2 (gelu(W1a LN(x)) * W1b LN(x))            # GeGLU feed-forward
    x = final_norm(x)
    logits = classifier(LN(act(dense(x))))                  # the head, then the classifier

Attention rotates queries and keys by their position (rotary embeddings, computed and applied
in float32). A block is global (`full_attention`: every token sees every token, rotary base
`global_rope_theta`) or local (`sliding_attention`: a token sees the tokens at most
`local_attention // 2` positions away, base `local_rope_theta`), as `config.layer_types` says;
checkpoints make every third block global (`global_attn_every_n_layers`). No LayerNorm has a bias
and no projection either, unless the config says (`norm_bias`, `attention_bias`, `mlp_bias`).

A local block's fast path costs about what a global one would, or less: a row no longer than the
window (+ 1) runs exactly as in a global block (every pair is within reach); a row long enough
runs in chunks of queries, each against only the keys within its reach (`queries_per_chunk`),
so a row of T tokens costs T x (chunk + 2 x window) scores instead of T x T; in between, a dense
band mask. The masks (`Biases`) are made once per forward pass, at their first use, and shared
by every block. An ONNX export traces `forward(..., any_length=True)`: no branch on the row
length, the dense band in every local block, so that one graph holds at every length.

Packed batches (`packing.py`) as in the other model files: every projection runs on the real
tokens only, and attention per group of rows of similar length, each row in a group starting at
slot 0, so positions (and the sliding window) stay within each row.

The public surface is `families.Model`, as for `model.TokenClassifier`; module names follow ours
(`embeddings.word_embeddings`, `layers.{i}.attention.qkv` / `.output`, `layers.{i}.ffn`), and the
family's key table (`families.py`) maps the checkpoint's names onto them. What this file shares
with `model.py` is a copy marked `# Copied from minibert_ner.model.NAME` (tests/test_copies.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ACTIVATIONS, GLOBAL, ModelConfig
from .packing import Packed, packing_for

__all__ = [
    "Biases",
    "GeGLU",
    "ModernBertAttention",
    "ModernBertBlock",
    "ModernBertEmbeddings",
    "ModernBertOutput",
    "ModernBertTokenClassifier",
    "Positions",
    "PredictionHead",
    "band_bias",
    "queries_per_chunk",
    "rotary_tables",
]


# Copied from minibert_ner.model.matmul_dtype
def matmul_dtype(config: ModelConfig) -> torch.dtype | None:
    """The dtype the blocks' linear layers run in (`config.matmul_dtype`); None: their input's.
    They hold their weights in it (checkpoint.stored_dtypes)."""
    return getattr(torch, config.matmul_dtype) if config.matmul_dtype else None


# Copied from minibert_ner.model.cast
def cast(x: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """x in `dtype`, or as it is (None): a linear layer's input, in mixed precision."""
    return x if dtype is None else x.to(dtype)


# Copied from minibert_ner.model.make_activation
def make_activation(name: str) -> nn.Module:
    """The module for a config.json activation name (the table is `config.ACTIVATIONS`)."""
    cls, kwargs = ACTIVATIONS[name]
    return getattr(nn, cls)(**kwargs)


# Copied from minibert_ner.model.embedding
def embedding(num: int, dim: int, padding_idx: int | None = None) -> nn.Embedding:
    """nn.Embedding with torch's own initialisation (N(0, 1), the padding row zero), except on
    the meta device (a model built only to receive a checkpoint's tensors): there are no values
    to fill, and the first `normal_` on meta costs ~0.9 s of imports."""
    weight = torch.empty(num, dim)  # on the device of an enclosing `with torch.device(...)`
    if weight.device.type != "meta":
        with torch.no_grad():
            nn.init.normal_(weight)
            if padding_idx is not None:
                weight[padding_idx].zero_()
    return nn.Embedding(num, dim, padding_idx=padding_idx, _weight=weight)


# Copied from minibert_ner.model.attention_mask_bias
def attention_mask_bias(
    attention_mask: torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor | None:
    """(B, T) 1/0 mask -> (B, 1, 1, T) additive bias: 0 for real keys, dtype's minimum for padding.

    The most negative finite value rather than -inf, as the reference does: a row whose keys are
    all padding then gets a uniform softmax instead of NaN. No mask at all keeps SDPA free to pick
    its fastest kernel.
    """
    if attention_mask is None:
        return None
    keep = attention_mask[:, None, None, :].to(dtype)  # (B, 1, 1, T)
    return (1.0 - keep) * torch.finfo(dtype).min


# ---------------------------------------------------------------------------------------------
# Positions: rotary tables and the sliding window


def rotary_tables(
    positions: torch.Tensor, head_size: int, theta: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions (...) -> cos, sin (..., 1, hs): the rotation angles position x theta^(-2i/hs)
    for each pair of dimensions, each half of hs repeating them (rotate_half's layout).
    Computed in float32, then rounded to the model's dtype as transformers does."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_size, 2, dtype=torch.float) / head_size))
    angles = positions[..., None].float() * inv_freq.to(positions.device)  # (..., hs/2)
    angles = torch.cat((angles, angles), dim=-1)[..., None, :]  # (..., 1, hs): one for all heads
    return angles.cos().to(dtype), angles.sin().to(dtype)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotary embedding of x (..., nh, hs) in float32: each pair (x_i, x_{i+hs/2}) turned by its
    angle; cos, sin broadcast over the heads. Back in x's dtype."""
    x32 = x.float()
    half = x.shape[-1] // 2
    rotated = torch.cat((-x32[..., half:], x32[..., :half]), dim=-1)  # rotate_half
    return (x32 * cos.float() + rotated * sin.float()).to(x.dtype)


def band_bias(
    queries: torch.Tensor,
    keys: torch.Tensor,
    window: int,
    keep: torch.Tensor | None,
    dtype: torch.dtype,
) -> torch.Tensor:
    """The additive bias of sliding-window attention for query positions `queries` (tq,)
    against key positions `keys` (tk,): 0 where |q - k| <= window and the key is real (`keep`
    (B, tk) bool, None: all real), dtype's minimum elsewhere. (1 or B, 1, tq, tk). Tensor ops
    only, so a trace computes it from the traced row length."""
    allowed = ((queries[:, None] - keys[None, :]).abs() <= window)[None, None]  # (1, 1, tq, tk)
    if keep is not None:
        allowed = allowed & keep[:, None, None, :]  # (B, 1, tq, tk)
    zero = torch.zeros((), dtype=dtype, device=queries.device)
    return torch.where(allowed, zero, torch.finfo(dtype).min)


class Biases:
    """The attention biases of one batch of rows (or one packed row group), each made at its
    first use in a forward pass and then shared by every block: making a local block's costs
    up to a fifth of its attention (scripts/modernbert_speed.py). `keep` (B, T) bool: the real
    keys; None: no padding."""

    def __init__(self, keep: torch.Tensor | None) -> None:
        self.keep = keep
        self.made: dict[tuple, object] = {}

    def padding(self, dtype: torch.dtype) -> torch.Tensor | None:
        """A global block's: only padding hidden, (B, 1, 1, T), or None."""
        key = ("padding", dtype)
        if key not in self.made:
            self.made[key] = attention_mask_bias(self.keep, dtype)
        return self.made[key]  # type: ignore[return-value]

    def band(self, T: int, window: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """A local block's dense band |q - k| <= window, and padding: (1 or B, 1, T, T). Tensor
        ops on positions from T, a traced value too (ONNX export)."""
        key = ("band", T, window, dtype)
        if key not in self.made:
            at = torch.arange(T, device=device)  # (T,) positions
            self.made[key] = band_bias(at, at, window, self.keep, dtype)
        return self.made[key]  # type: ignore[return-value]

    def chunks(
        self, T: int, window: int, chunk: int, dtype: torch.dtype, device: torch.device
    ) -> list[tuple[slice, slice, torch.Tensor]]:
        """A local block's band in chunks of `chunk` queries: for each, its queries, the keys
        within `window` of them, and its bias (1 or B, 1, queries, keys). A key outside a
        chunk's reach would get a zero weight anyway: real tokens get the dense band's numbers."""
        key = ("chunks", T, window, chunk, dtype)
        if key not in self.made:
            at = torch.arange(T, device=device)  # (T,) positions
            made = []
            for start in range(0, T, chunk):
                end = min(T, start + chunk)
                lo, hi = max(0, start - window), min(T, end + window)  # the keys these reach
                keep = None if self.keep is None else self.keep[:, lo:hi]
                bias = band_bias(at[start:end], at[lo:hi], window, keep, dtype)
                made.append((slice(start, end), slice(lo, hi), bias))
            self.made[key] = made
        return self.made[key]  # type: ignore[return-value]


def queries_per_chunk(T: int, window: int) -> int | None:
    """Queries per chunk of a local block's fast path on a row of T tokens, or None: the row
    in one piece. Chunks of the window's size (at least 32 queries), each against the
    chunk + 2 x window keys within reach, once those are under two thirds of the row: each SDPA
    call costs something of its own, so fewer scores alone do not pay (ModernBERT's window of
    64: chunks of 64 from 289 tokens; the table in docs/families.md)."""
    chunk = max(window, 32)
    return chunk if 2 * T > 3 * (chunk + 2 * window) else None


@dataclass
class Positions:
    """What every block's attention needs besides x, made once per forward pass."""

    rotary: dict[str, tuple[torch.Tensor, torch.Tensor]]  # layer type -> cos, sin (T or N, 1, hs)
    biases: Biases  # the padded rows' attention biases (unused when packed)
    packed: Packed | None = None  # packed rows: each row group's Biases
    any_length: bool = False  # a trace: one attention path, exact at every row length


# ---------------------------------------------------------------------------------------------
# Modules


class ModernBertEmbeddings(nn.Module):
    """Token embeddings, LayerNorm (no bias by default) and dropout: no positions here, they are
    rotations inside attention."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        H = config.hidden_size
        self.word_embeddings = embedding(config.vocab_size, H, padding_idx=config.pad_token_id)
        self.LayerNorm = nn.LayerNorm(H, eps=config.layer_norm_eps, bias=config.norm_bias)
        self.dropout = nn.Dropout(config.embedding_dropout)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.LayerNorm(self.word_embeddings(input_ids)))  # (B, T, H)


class ModernBertAttention(nn.Module):
    """Multi-head attention with rotary positions, global or sliding-window.

    Two paths with the same numbers: `F.scaled_dot_product_attention` (fused, fast; local blocks
    on long rows in chunks of queries) and the explicit softmax(QK^T / sqrt(d) + bias) V, which
    also returns the attention probabilities.
    """

    # queries per chunk of a local block's fast path; None: `queries_per_chunk` picks
    local_chunk: int | None = None

    def __init__(self, config: ModelConfig, layer_type: str) -> None:
        super().__init__()
        H = config.hidden_size
        self.num_heads = config.num_heads
        self.head_size = config.head_size
        self.layer_type = layer_type
        self.qkv = nn.Linear(H, 3 * H, bias=config.attention_bias)  # q, k, v side by side
        self.output = nn.Linear(H, H, bias=config.attention_bias)
        self.output_dropout = nn.Dropout(config.attention_dropout)
        self.dropout_p = config.attention_dropout
        # local blocks: a token sees the tokens at most `window` positions away, on both sides
        self.window = None if layer_type == GLOBAL else config.local_attention // 2
        self.use_sdpa = True  # set False to always run the readable path
        self.matmul_dtype = matmul_dtype(config)

    def forward(
        self, x: torch.Tensor, positions: Positions, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, T, H), or the packed real tokens (N, H) when `positions.packed` is set
        (attention then runs per row group)."""
        *lead, _ = x.shape
        nh, hs = self.num_heads, self.head_size
        # The projections in the matmuls' dtype; rotary and attention (its softmax) in x's.
        qkv = self.qkv(cast(x, self.matmul_dtype)).to(x.dtype)
        q, k, v = qkv.chunk(3, dim=-1)  # (B, T, nh*hs) or (N, nh*hs) each
        cos, sin = positions.rotary[self.layer_type]  # (T or N, 1, hs)
        q = rotate(q.view(*lead, nh, hs), cos, sin).view(*lead, nh * hs)
        k = rotate(k.view(*lead, nh, hs), cos, sin).view(*lead, nh * hs)
        if positions.packed is not None:
            y = positions.packed.attend(
                lambda q, k, v, biases: self.attend(q, k, v, biases)[0], q, k, v
            )
            return self.output_dropout(self.project(y, x.dtype)), None  # (N, H)
        y, probs = self.attend(q, k, v, positions.biases, output_attentions, positions.any_length)
        return self.output_dropout(self.project(y, x.dtype)), probs  # (B, T, H)

    def project(self, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """The heads' outputs through `output` (in the matmuls' dtype), back in `dtype`."""
        return self.output(cast(y, self.matmul_dtype)).to(dtype)

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        biases: Biases,
        output_attentions: bool = False,
        any_length: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Rotated q, k and v (B, T, nh*hs), the rows' `biases` -> the heads' outputs side by
        side (B, T, nh*hs), and the attention probabilities (B, nh, T, T) on the readable path.
        any_length: for a trace, whose T is a traced value (ONNX export): no branch on T, a
        local block always masks the dense band."""
        B, T, _ = q.shape
        nh, hs = self.num_heads, self.head_size
        q = q.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        dropout_p = self.dropout_p if self.training else 0.0
        fast = self.use_sdpa and not output_attentions
        window = self.window
        # A row no longer than the window + 1 has every pair within reach: no band to mask.
        # Not in a trace (any_length): a branch on T would hold at the traced length only,
        # and the band is exact at every length.
        if window is not None and not any_length and T <= window + 1:
            window = None
        chunk = None  # queries per chunk of the band, None: the row in one piece
        if fast and window is not None and not any_length:
            chunk = queries_per_chunk(T, window) if self.local_chunk is None else self.local_chunk
            chunk = chunk if chunk is not None and T > chunk + 2 * window else None

        probs = None
        if window is not None and chunk is not None:  # the band in chunks of queries
            y = torch.empty_like(q)  # (B, nh, T, hs)
            for queries, keys, bias in biases.chunks(T, window, chunk, q.dtype, q.device):
                y[:, :, queries] = F.scaled_dot_product_attention(
                    q[:, :, queries], k[:, :, keys], v[:, :, keys], attn_mask=bias,
                    dropout_p=dropout_p,
                )  # fmt: skip
        else:
            if window is None:  # global: only padding is hidden, (B, 1, 1, T) or None
                bias = biases.padding(q.dtype)
            else:  # local: the band |q - k| <= window, and padding: (1 or B, 1, T, T)
                bias = biases.band(T, window, q.dtype, q.device)
            if fast:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout_p)
            else:
                scores = (q @ k.transpose(-2, -1)) * hs**-0.5  # (B, nh, T, T)
                if bias is not None:
                    scores = scores + bias  # hidden keys -> very negative
                probs = scores.softmax(dim=-1, dtype=torch.float32).to(q.dtype)  # (B, nh, T, T)
                y = F.dropout(probs, dropout_p) @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, nh * hs)  # heads side by side
        return y, probs


class GeGLU(nn.Module):
    """Gated feed-forward: H -> 2 x intermediate (input and gate) -> act(input) * gate -> H."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        H, I = config.hidden_size, config.intermediate_size  # noqa: E741
        self.intermediate = nn.Linear(H, 2 * I, bias=config.mlp_bias)  # transformers' Wi
        self.act = make_activation(config.activation)
        self.dropout = nn.Dropout(config.hidden_dropout)  # mlp_dropout
        self.output = nn.Linear(I, H, bias=config.mlp_bias)  # transformers' Wo
        self.matmul_dtype = matmul_dtype(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Both matmuls and the gating between them in the matmuls' dtype; the result in x's.
        value, gate = self.intermediate(cast(x, self.matmul_dtype)).chunk(2, dim=-1)  # (..., I)
        return self.output(self.dropout(self.act(value) * gate)).to(x.dtype)  # (..., H)


class ModernBertBlock(nn.Module):
    """One pre-LN block: x = x + Attn(LN(x)); x = x + FFN(LN(x)). Block 0 has no LayerNorm
    before attention (the embeddings' LayerNorm has just run)."""

    def __init__(self, config: ModelConfig, index: int) -> None:
        super().__init__()
        H, eps, bias = config.hidden_size, config.layer_norm_eps, config.norm_bias
        self.layer_type = config.layer_types[index]  # "full_attention" or "sliding_attention"
        self.attention_norm = nn.LayerNorm(H, eps=eps, bias=bias) if index else nn.Identity()
        self.attention = ModernBertAttention(config, self.layer_type)
        self.ffn_norm = nn.LayerNorm(H, eps=eps, bias=bias)
        self.ffn = GeGLU(config)

    def forward(
        self, x: torch.Tensor, positions: Positions, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, T, H), or packed (N, H) with `positions.packed`."""
        a, probs = self.attention(self.attention_norm(x), positions, output_attentions)
        x = x + a
        x = x + self.ffn(self.ffn_norm(x))
        return x, probs


class PredictionHead(nn.Module):
    """Before the classifier: dense, activation, LayerNorm (transformers' `head`)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        H = config.hidden_size
        self.dense = nn.Linear(H, H, bias=config.head_bias)
        self.act = make_activation(config.head_activation)
        self.norm = nn.LayerNorm(H, eps=config.layer_norm_eps, bias=config.norm_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.act(self.dense(x)))


# Copied from minibert_ner.model.TokenClassifierOutput with TokenClassifierOutput->ModernBertOutput, TokenClassifier->ModernBertTokenClassifier
@dataclass
class ModernBertOutput:
    """What `ModernBertTokenClassifier.forward` returns."""

    logits: torch.Tensor  # (B, T, num_labels)
    hidden_states: tuple[torch.Tensor, ...] | None = None  # embeddings + each block: (B, T, H)
    attentions: tuple[torch.Tensor, ...] | None = None  # one per block: (B, nh, T, T)


class ModernBertTokenClassifier(nn.Module):
    """A ModernBERT encoder with its prediction head and a linear token-classification head."""

    block_type = ModernBertBlock  # what `layers` stacks

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = ModernBertEmbeddings(config)
        self.layers = nn.ModuleList(
            self.block_type(config.for_block(i), i) for i in range(config.num_layers)
        )
        eps, bias = config.layer_norm_eps, config.norm_bias
        self.final_norm = nn.LayerNorm(config.hidden_size, eps=eps, bias=bias)
        self.head = PredictionHead(config)
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def rotary(
        self, positions: torch.Tensor, dtype: torch.dtype
    ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """cos, sin for each kind of block (its own rotary base) at these positions."""
        c = self.config
        theta = {GLOBAL: c.global_rope_theta}
        theta |= {t: c.local_rope_theta for t in c.layer_types if t != GLOBAL}
        return {t: rotary_tables(positions, c.head_size, base, dtype) for t, base in theta.items()}

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        *,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        packed: bool = False,
        any_length: bool = False,
    ) -> ModernBertOutput:
        """Label scores for every token; the same contract as `TokenClassifier.forward`
        (token_type_ids are ignored: ModernBERT has none). The hidden states are, as in
        transformers, the embeddings output, each block's output, the last one after
        `final_norm`. any_length: for a trace (the ONNX export, `Family.onnx_trace`), padded
        rows: no branch on the row length or the mask, so that the graph holds at every length
        (local blocks mask their band with a dense (T, T) bias)."""
        B, T = input_ids.shape
        x = self.embeddings(input_ids)  # (B, T, H)
        packing = packing_for(attention_mask, packed, output_attentions)
        keep = None if attention_mask is None else attention_mask.bool()  # (B, T)
        if packing is not None:
            x = packing.pack(x)  # (N, H)
            # each packed token's position in its row: its slot in the flat (B*T) batch, mod T
            where = self.rotary(packing.positions % T, x.dtype)  # (N, 1, hs) tables
            per_group = [Biases(None if g.mask is None else g.mask.bool()) for g in packing.groups]
            positions = Positions(where, Biases(None), Packed(packing, per_group))
        else:
            where = self.rotary(torch.arange(T, device=x.device), x.dtype)  # (T, 1, hs) tables
            if keep is not None and not any_length and bool(keep.all()):
                keep = None  # no padding: no mask, SDPA's fastest kernel
            positions = Positions(where, Biases(keep), any_length=any_length)
        unpack = packing.unpack if packing is not None else lambda t: t  # -> (B, T, ·)
        hidden_states = [unpack(x)] if output_hidden_states else None
        attentions = [] if output_attentions else None
        for block in self.layers:
            x, probs = block(x, positions, output_attentions)
            if hidden_states is not None:
                hidden_states.append(unpack(x))
            if attentions is not None:
                attentions.append(probs)
        x = self.final_norm(x)
        if hidden_states is not None:
            hidden_states[-1] = unpack(x)  # the last one after final_norm, as transformers
        logits = unpack(self.classify(x))  # (B, T, num_labels)
        return ModernBertOutput(
            logits=logits,
            hidden_states=tuple(hidden_states) if hidden_states is not None else None,
            attentions=tuple(attentions) if attentions is not None else None,
        )

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The head on the encoder's output (after final_norm): (..., H) -> (..., num_labels)."""
        return self.classifier(self.dropout(self.head(x)))

    # Copied from minibert_ner.model.TokenClassifier.id2label
    @property
    def id2label(self) -> dict[int, str]:
        return self.config.id2label

    # Copied from minibert_ner.model.TokenClassifier.device
    @property
    def device(self) -> torch.device:
        return self.classifier.weight.device

    # Copied from minibert_ner.model.TokenClassifier.dtype
    @property
    def dtype(self) -> torch.dtype:
        return self.classifier.weight.dtype

    def init_weights(self, module: nn.Module | None = None) -> None:
        """Fresh weights as `transformers` initialises ModernBERT: a normal cut at
        +-initializer_cutoff_factor standard deviations, std initializer_range for the
        embeddings and the projections into a block, initializer_range / sqrt(2 x layers) for
        those out of it and the head's dense layer, hidden_size^-0.5 for the classifier; biases
        0, LayerNorm 1/0. For `module` (a part of this model) or the whole model."""
        c = self.config
        inside = {id(m) for m in (module or self).modules()}
        std_in = c.initializer_range
        std_out = c.initializer_range / math.sqrt(2.0 * c.num_layers)
        stds: dict[int, float] = {id(self.embeddings.word_embeddings): std_in}
        for block in self.layers:
            if isinstance(block, self.block_type):
                stds[id(block.attention.qkv)] = stds[id(block.ffn.intermediate)] = std_in
                stds[id(block.attention.output)] = stds[id(block.ffn.output)] = std_out
        stds[id(self.head.dense)] = std_out
        stds[id(self.classifier)] = c.hidden_size**-0.5
        cutoff = c.initializer_cutoff_factor
        for m in (module or self).modules():
            if id(m) in stds and id(m) in inside:
                std = stds[id(m)]
                nn.init.trunc_normal_(m.weight, std=std, a=-cutoff * std, b=cutoff * std)
            if isinstance(m, nn.LayerNorm) and m.weight is not None:
                nn.init.ones_(m.weight)
            if isinstance(m, (nn.Linear, nn.LayerNorm)) and m.bias is not None:
                nn.init.zeros_(m.bias)
