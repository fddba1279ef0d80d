"""The whole model in one file: embeddings, self-attention, feed-forward, post-LN blocks, and the
token-classification head shared by every family (DistilBERT, BERT, RoBERTa, XLM-RoBERTa,
CamemBERT, ELECTRA).

All are the same post-LayerNorm encoder:

    x = LN(word + [token_type] + position)                 # Embeddings
    x = project(x)                                          # ELECTRA, when embeddings are narrower
    for each block:
        x = LN(x + Attention(x))                            # Block.attention / attention_norm
        x = LN(x + W2 act(W1 x))                            # Block.ffn / output_norm
    logits = classifier(x)                                  # TokenClassifier.classifier

The differences are small and explicit, all read from the config: BERT-likes add token-type
embeddings (RoBERTa's table has one row) and a dropout after the attention projection, DistilBERT
has neither; the RoBERTa family numbers positions from pad_token_id + 1 (`config.position_offset`);
ELECTRA's embeddings may be narrower than the blocks (`config.embedding_size`). Checkpoint key
names are mapped onto these modules by the families' key tables (`families.py`).

Mixed precision (`config.matmul_dtype`, e.g. bfloat16 in a float32 model): the blocks' linear
layers hold their weights in that dtype and cast their inputs to it and their outputs back, so
that only those matmuls run in it; the embeddings (ELECTRA's projection included: rounding there
reaches every later layer), the residual sums, LayerNorm, attention's softmax and the head stay
in the model's dtype (`matmul_dtype` / `cast` below: the whole of it).

`forward(..., packed=True)` runs the same layers on a batch's real tokens only (`packing.py`):
x is then (N, H), every Linear and LayerNorm sees N rows, and attention runs per group of rows
of similar length. The pipeline uses it for batches of mixed lengths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import ACTIVATIONS, ModelConfig
from .packing import Packed, packing_for

__all__ = [
    "Block",
    "Embeddings",
    "FeedForward",
    "SelfAttention",
    "TokenClassifier",
    "TokenClassifierOutput",
    "attention_mask_bias",
    "cast",
    "make_activation",
    "matmul_dtype",
]


def make_activation(name: str) -> nn.Module:
    """The module for a config.json activation name (the table is `config.ACTIVATIONS`)."""
    cls, kwargs = ACTIVATIONS[name]
    return getattr(nn, cls)(**kwargs)


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


def matmul_dtype(config: ModelConfig) -> torch.dtype | None:
    """The dtype the blocks' linear layers run in (`config.matmul_dtype`); None: their input's.
    They hold their weights in it (checkpoint.stored_dtypes)."""
    return getattr(torch, config.matmul_dtype) if config.matmul_dtype else None


def cast(x: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """x in `dtype`, or as it is (None): a linear layer's input, in mixed precision."""
    return x if dtype is None else x.to(dtype)


@dataclass
class TokenClassifierOutput:
    """What `TokenClassifier.forward` returns."""

    logits: torch.Tensor  # (B, T, num_labels)
    hidden_states: tuple[torch.Tensor, ...] | None = None  # embeddings + each block: (B, T, H)
    attentions: tuple[torch.Tensor, ...] | None = None  # one per block: (B, nh, T, T)


class Embeddings(nn.Module):
    """Token + (segment) + position embeddings, then LayerNorm and dropout (and ELECTRA's
    projection to the blocks' width)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        E, pad = config.embedding_width, config.pad_token_id
        self.pad_token_id = pad
        self.position_offset = config.position_offset
        self.word_embeddings = embedding(config.vocab_size, E, padding_idx=pad)
        # The RoBERTa family gives padding its own position row (pad_token_id), zero like the
        # padding token's.
        position_padding = pad if self.position_offset else None
        self.position_embeddings = embedding(config.max_position_embeddings, E, position_padding)
        # DistilBERT has no segment embeddings; BERT has `type_vocab_size` of them (RoBERTa: 1).
        self.token_type_embeddings = (
            embedding(config.type_vocab_size, E) if config.type_vocab_size > 0 else None
        )
        self.LayerNorm = nn.LayerNorm(E, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)
        # ELECTRA: embeddings narrower than the residual stream are projected up to it.
        self.project = nn.Linear(E, config.hidden_size) if E != config.hidden_size else None

    def position_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> position ids, (T,) or (B, T).

        Every family but the RoBERTa family: 0..T-1 whatever the tokens. The RoBERTa family (fairseq's
        make_positions): real tokens are numbered from pad_token_id + 1, counting real tokens
        only, and every padding token gets pad_token_id.
        """
        T = input_ids.shape[1]
        if not self.position_offset:
            return torch.arange(T, device=input_ids.device)  # (T,)
        real = (input_ids != self.pad_token_id).long()  # (B, T)
        return real.cumsum(dim=1) * real + self.pad_token_id  # (B, T)

    def forward(
        self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        T = input_ids.shape[1]
        max_T = self.position_embeddings.num_embeddings - self.position_offset
        if T > max_T:
            raise ValueError(
                f"input has {T} tokens but the model knows only {max_T} positions; "
                "split the text into windows (the NER pipeline does this for you)"
            )
        x = self.word_embeddings(input_ids)  # (B, T, E)
        if self.token_type_embeddings is not None:
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(input_ids)
            x = x + self.token_type_embeddings(token_type_ids)
        x = x + self.position_embeddings(self.position_ids(input_ids))  # (T or B,T, E) broadcast
        x = self.dropout(self.LayerNorm(x))  # (B, T, E)
        return self.project(x) if self.project is not None else x  # (B, T, H)


class SelfAttention(nn.Module):
    """Multi-head self-attention.

    Two paths with the same numbers: `F.scaled_dot_product_attention` (fused, fast) and the
    explicit softmax(QK^T / sqrt(d)) V, which also returns the attention probabilities.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        H = config.hidden_size
        self.num_heads = config.num_heads
        self.head_size = config.head_size
        self.query = nn.Linear(H, H)
        self.key = nn.Linear(H, H)
        self.value = nn.Linear(H, H)
        self.output = nn.Linear(H, H)
        self.dropout_p = config.attention_dropout
        self.use_sdpa = True  # set False to always run the readable path
        self.matmul_dtype = matmul_dtype(config)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | Packed | None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, T, H) with `mask` the additive bias (B, 1, 1, T) or None; or packed real
        tokens (N, H) with `mask` their Packed (attention then runs per group of rows, each
        with its own mask bias)."""
        h = cast(x, self.matmul_dtype)
        # The projections in the matmuls' dtype, attention (its softmax) in x's.
        q, k, v = (p(h).to(x.dtype) for p in (self.query, self.key, self.value))  # (B, T, H)/(N, H)
        if isinstance(mask, Packed):
            y = mask.attend(lambda q, k, v, bias: self.attend(q, k, v, bias)[0], q, k, v)
            return self.output(cast(y, self.matmul_dtype)).to(x.dtype), None  # (N, H)
        y, probs = self.attend(q, k, v, mask, output_attentions)
        return self.output(cast(y, self.matmul_dtype)).to(x.dtype), probs  # (B, T, H)

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask_bias: torch.Tensor | None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Projected q, k, v (B, T, H) -> the heads' outputs side by side (B, T, nh*hs), and the
        attention probabilities (B, nh, T, T) on the readable path."""
        B, T, _ = q.shape
        nh, hs = self.num_heads, self.head_size
        q = q.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        dropout_p = self.dropout_p if self.training else 0.0

        probs = None
        if self.use_sdpa and not output_attentions:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask_bias, dropout_p=dropout_p)
        else:
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(hs)  # (B, nh, T, T)
            if mask_bias is not None:
                scores = scores + mask_bias  # (B, 1, 1, T) broadcast: padded keys -> very negative
            probs = scores.softmax(dim=-1)  # (B, nh, T, T)
            y = F.dropout(probs, dropout_p) @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, nh * hs)  # heads side by side; nh*hs = H unless pruned
        return y, probs


class FeedForward(nn.Module):
    """Position-wise MLP: H -> intermediate -> H."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.intermediate = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = make_activation(config.activation)
        self.output = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.matmul_dtype = matmul_dtype(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Both matmuls and the activation between them in the matmuls' dtype; the result in x's.
        h = self.act(self.intermediate(cast(x, self.matmul_dtype)))  # (·, intermediate)
        return self.dropout(self.output(h).to(x.dtype))


class Block(nn.Module):
    """One post-LN transformer block: x = LN(x + Attn(x)); x = LN(x + FFN(x))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attention = SelfAttention(config)
        # BERT and the others drop out the attention projection's output; DistilBERT does not.
        p = config.hidden_dropout if config.family.attention_output_dropout else 0.0
        self.attention_dropout = nn.Dropout(p)
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn = FeedForward(config)
        self.output_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | Packed | None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, T, H) with the mask bias, or packed (N, H) with its Packed."""
        a, probs = self.attention(x, mask, output_attentions)
        x = self.attention_norm(x + self.attention_dropout(a))
        x = self.output_norm(x + self.ffn(x))
        return x, probs


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


class TokenClassifier(nn.Module):
    """An encoder of any family with a linear token-classification head."""

    block_type = Block  # what `layers` stacks

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.layers = nn.ModuleList(
            self.block_type(config.for_block(i)) for i in range(config.num_layers)
        )
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        *,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        packed: bool = False,
    ) -> TokenClassifierOutput:
        """Label scores for every token.

        input_ids, attention_mask, token_type_ids: (B, T). Returns logits (B, T, num_labels) and,
        when asked, the hidden states (embeddings output + every block, like `transformers`) and
        each block's attention probabilities (B, nh, T, T).

        packed: run every layer on the real tokens only (packing.py), attention on groups of
        rows of similar length: the same numbers for real tokens, little work for padding, which
        gets zeros. The fast path for batches of mixed lengths; no attention probabilities.
        """
        x = self.embeddings(input_ids, token_type_ids)  # (B, T, H)
        packing = packing_for(attention_mask, packed, output_attentions)
        mask: torch.Tensor | Packed | None
        if packing is not None:
            x = packing.pack(x)  # (N, H)
            # each row group's mask bias (b, 1, 1, t), made once for every block
            mask = Packed(packing, [attention_mask_bias(g.mask, x.dtype) for g in packing.groups])
        else:
            mask = attention_mask_bias(attention_mask, x.dtype)  # (B, 1, 1, T) or None
        unpack = packing.unpack if packing is not None else lambda t: t  # -> (B, T, ·)
        hidden_states = [unpack(x)] if output_hidden_states else None
        attentions = [] if output_attentions else None
        for block in self.layers:
            x, probs = block(x, mask, output_attentions)
            if hidden_states is not None:
                hidden_states.append(unpack(x))
            if attentions is not None:
                attentions.append(probs)
        logits = unpack(self.classify(x))  # (B, T, num_labels)
        return TokenClassifierOutput(
            logits=logits,
            hidden_states=tuple(hidden_states) if hidden_states is not None else None,
            attentions=tuple(attentions) if attentions is not None else None,
        )

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The head on the last block's output: (..., H) -> (..., num_labels)."""
        return self.classifier(self.dropout(x))

    @property
    def id2label(self) -> dict[int, str]:
        return self.config.id2label

    @property
    def device(self) -> torch.device:
        return self.classifier.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.classifier.weight.dtype

    def init_weights(self, module: nn.Module | None = None) -> None:
        """Fresh weights as `transformers` initialises them: N(0, initializer_range) for linear,
        convolution and embedding weights (the padding row zero), biases 0, LayerNorm 1/0."""
        std = self.config.initializer_range
        for m in (module or self).modules():
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.Embedding)):
                nn.init.normal_(m.weight, std=std)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                m.weight.data[m.padding_idx].zero_()
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
            if isinstance(m, (nn.Linear, nn.Conv1d, nn.LayerNorm)) and m.bias is not None:
                nn.init.zeros_(m.bias)
