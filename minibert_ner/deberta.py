"""DeBERTa-v2/v3 (and mDeBERTa-v3) token classifier in one file: disentangled attention.

DeBERTa is a post-LayerNorm encoder like BERT, but a token's position does not enter through its
embedding (v3 has no absolute positions at all). Every block's attention instead scores a query
token i against a key token j with up to three terms, all scaled by sqrt(head_size x terms):

    score(i, j) = q_i . k_j                       content -> content   (c2c, always)
                + q_i . pos_k[d(i, j)]            content -> position  (c2p, "c2p" in pos_att_type)
                + k_j . pos_q[d(i, j)]            position -> content  (p2c, "p2c" in pos_att_type)

where d(i, j) is the relative distance i - j, log-bucketed (`log_bucket`) and shifted into the
rows of one relative-embedding table shared by all blocks: pos_k / pos_q are that table through
the block's own key/query projections (`share_att_key`, v3) or through separate `pos_key` /
`pos_query` projections (v2).

    x = LN(word [+ position] [+ token_type]) [-> embed_proj], padded rows zeroed  # Embeddings
    for each block:
        x = LN(x + Attention(x, relative positions))                           # DebertaBlock
        x = LN(x + W2 act(W1 x))
        after block 0 only: x = ConvLayer(embeddings, x)                       # v2-xlarge style
    logits = classifier(x)

Attention masks are pairwise, as in `transformers`: query i may see key j only when both are real
tokens, so a padded query row spreads its attention evenly (its output is never used). The
public surface (forward, config, id2label, device, dtype, layers, classifier, dropout) is
`families.Model`, as `model.TokenClassifier`'s, so the pipeline, training and the study kit run
either. Checkpoint key names are mapped onto these modules by the family's key table
(`families.py`). What this file shares with `model.py` (the feed-forward, the helpers, the output,
the properties and init_weights, the mixed-precision helpers) is a copy, so that each file reads alone: each is marked
`# Copied from minibert_ner.model.NAME`, and tests/test_copies.py keeps it equal to its original.
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
    "ConvLayer",
    "DebertaBlock",
    "DebertaEmbeddings",
    "DebertaTokenClassifier",
    "DisentangledAttention",
    "RelativePositions",
    "content_to_position",
    "log_bucket",
    "position_to_content",
    "relative_positions",
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


# ---------------------------------------------------------------------------------------------
# Relative positions


def log_bucket(relative: torch.Tensor, buckets: int, max_position: int) -> torch.Tensor:
    """Relative distances -> bucketed distances, in the same long range but fewer values.

    With mid = buckets // 2, a distance r with |r| <= mid is kept as is; farther ones share
    buckets that grow logarithmically, up to |r| = max_position - 1 landing on mid + (mid - 1):

        bucket(r) = r                                                     if |r| <= mid
        bucket(r) = sign(r) * (mid + ceil(log(|r| / mid) / log((max_position - 1) / mid)
                                          * (mid - 1)))                    otherwise

    (|r| < mid is replaced by mid - 1 before the log only to keep log() finite there; those
    entries take the first branch.) The float32 operations are transformers', so that every
    bucket id is the same.
    """
    sign = torch.sign(relative)
    mid = buckets // 2
    inside = (relative < mid) & (relative > -mid)
    abs_pos = torch.where(inside, torch.tensor(mid - 1).type_as(relative), torch.abs(relative))
    log_ratio = torch.log(abs_pos / mid) / torch.log(torch.tensor((max_position - 1) / mid))
    log_pos = torch.ceil(log_ratio * (mid - 1)) + mid
    return torch.where(abs_pos <= mid, relative.type_as(log_pos), log_pos * sign).long()


def relative_positions(
    T: int, buckets: int, max_position: int, device: torch.device | None = None
) -> torch.Tensor:
    """(T, T) long: entry [i, j] is the distance i - j from key j to query i, log-bucketed
    when `buckets` > 0."""
    ids = torch.arange(T, dtype=torch.long, device=device)
    relative = ids[:, None] - ids[None, :]  # (T, T)
    if buckets > 0 and max_position > 0:
        relative = log_bucket(relative, buckets, max_position)
    return relative


def content_to_position(q: torch.Tensor, pos_k: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """c2p: query i against the key-side embedding of its distance to key j.

    q (B, nh, T, hs); pos_k (nh, R, hs): rows of the relative table projected like keys;
    index (T, T): [i, j] = the row holding d(i, j). Returns (B, nh, T, T): q_i . pos_k[index[i, j]].
    """
    B, nh, T, _ = q.shape
    every = q @ pos_k.transpose(-1, -2)  # (B, nh, T, R): query i against every distance
    return every.gather(-1, index.expand(B, nh, T, T))  # (B, nh, T, T)


def position_to_content(k: torch.Tensor, pos_q: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """p2c: key j against the query-side embedding of the distance between them.

    k (B, nh, T, hs); pos_q (nh, R, hs): rows of the relative table projected like queries;
    index (T keys, T queries): [j, i] = the row for key j seen from query i. Computed from the
    key's side, as transformers does: row j of k @ pos_q^T is gathered, then transposed.
    Returns (B, nh, T queries, T keys): k_j . pos_q[index[j, i]].
    """
    B, nh, T, _ = k.shape
    every = k @ pos_q.transpose(-1, -2)  # (B, nh, T keys, R): key j against every distance
    return every.gather(-1, index.expand(B, nh, T, T)).transpose(-1, -2)  # (B, nh, T q, T k)


@dataclass
class RelativePositions:
    """What every block's attention needs besides x: computed once per forward pass."""

    keep: torch.Tensor | None  # (B, 1, T, T) bool: query i may see key j; None = no padding
    c2p_index: torch.Tensor | None = None  # (T, T) long: row of `table` for d(i, j)
    p2c_index: torch.Tensor | None = None  # (T keys, T queries) long: row for key j, query i
    table: torch.Tensor | None = None  # (R, H): the relative-table rows the indices reach


# ---------------------------------------------------------------------------------------------
# Modules


class DebertaEmbeddings(nn.Module):
    """Word [+ absolute position] [+ token type] embeddings, [projected], LayerNorm, padding
    rows zeroed, dropout."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        E, H = config.embedding_width, config.hidden_size
        self.word_embeddings = embedding(config.vocab_size, E, padding_idx=config.pad_token_id)
        # v3 has no absolute positions: only the relative terms in attention know about order.
        self.position_embeddings = (
            embedding(config.max_position_embeddings, E) if config.position_biased_input else None
        )
        self.token_type_embeddings = (
            embedding(config.type_vocab_size, E) if config.type_vocab_size > 0 else None
        )
        self.embed_proj = nn.Linear(E, H, bias=False) if E != H else None
        self.LayerNorm = nn.LayerNorm(H, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = self.word_embeddings(input_ids)  # (B, T, E)
        if self.position_embeddings is not None:
            T, max_T = input_ids.shape[1], self.position_embeddings.num_embeddings
            if T > max_T:
                raise ValueError(
                    f"input has {T} tokens but the model knows only {max_T} positions; "
                    "split the text into windows (the NER pipeline does this for you)"
                )
            x = x + self.position_embeddings(torch.arange(T, device=input_ids.device))  # (T, E)
        if self.token_type_embeddings is not None:
            if token_type_ids is None:
                token_type_ids = torch.zeros_like(input_ids)
            x = x + self.token_type_embeddings(token_type_ids)
        if self.embed_proj is not None:
            x = self.embed_proj(x)  # (B, T, E) -> (B, T, H)
        x = self.LayerNorm(x)
        if attention_mask is not None:
            x = x * attention_mask[:, :, None].to(x.dtype)  # padded rows -> 0
        return self.dropout(x)


class DisentangledAttention(nn.Module):
    """Multi-head attention with the content and relative-position terms (module docstring).

    Two paths with the same numbers: the readable one builds the full score matrix and returns
    the probabilities; the fast one hands the position terms to
    `F.scaled_dot_product_attention` as an additive bias.
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
        terms = config.pos_att_type
        self.c2p, self.p2c = "c2p" in terms, "p2c" in terms
        # The scale counts the terms named in pos_att_type, with relative_attention on or off.
        self.scale = math.sqrt(self.head_size * (1 + self.c2p + self.p2c))
        self.relative = config.relative_attention
        self.share_att_key = config.share_att_key
        # v2: the relative table gets its own projections; v3 (share_att_key) reuses key/query.
        separate = self.relative and not self.share_att_key
        self.pos_key = nn.Linear(H, H) if separate and self.c2p else None
        self.pos_query = nn.Linear(H, H) if separate and self.p2c else None
        self.pos_dropout = nn.Dropout(config.hidden_dropout)
        self.dropout_p = config.attention_dropout
        self.use_sdpa = True  # set False to always run the readable path
        self.matmul_dtype = matmul_dtype(config)

    def project(self, layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
        """layer(x), its matmul in the matmuls' dtype (mixed precision), the result in x's."""
        return layer(cast(x, self.matmul_dtype)).to(x.dtype)

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        """(..., T, nh*hs) -> (..., nh, T, hs)."""
        *lead, T, _ = x.shape
        return x.view(*lead, T, self.num_heads, self.head_size).transpose(-3, -2)

    def position_terms(
        self, q: torch.Tensor, k: torch.Tensor, positions: RelativePositions
    ) -> dict[str, torch.Tensor]:
        """The c2p and p2c terms that pos_att_type names, each (B, nh, T, T), already scaled."""
        if not self.relative or positions.table is None:
            return {}
        table = self.pos_dropout(positions.table)  # (R, H)
        terms = {}
        if self.c2p:
            pos_k = self.heads(
                self.project(self.key if self.share_att_key else self.pos_key, table)
            )
            terms["c2p"] = content_to_position(q, pos_k, positions.c2p_index) / self.scale
        if self.p2c:
            pos_q = self.heads(
                self.project(self.query if self.share_att_key else self.pos_query, table)
            )
            terms["p2c"] = position_to_content(k, pos_q, positions.p2c_index) / self.scale
        return terms

    def score_terms(self, x: torch.Tensor, positions: RelativePositions) -> dict[str, torch.Tensor]:
        """Every term of the attention scores for x (B, T, H), by name ("c2c", "c2p", "p2c"),
        each (B, nh, T, T) and scaled: their sum, masked, is what the softmax sees. For study
        (the study kit's position share); forward does not call it."""
        q, k = self.heads(self.project(self.query, x)), self.heads(self.project(self.key, x))
        return {
            "c2c": q @ (k.transpose(-1, -2) / self.scale),
            **self.position_terms(q, k, positions),
        }

    def forward(
        self,
        x: torch.Tensor,
        positions: RelativePositions | Packed,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x: (B, T, H) with its RelativePositions, or packed real tokens (N, H) with a
        Packed holding each row group's RelativePositions (attention then runs per group)."""
        # The projections in the matmuls' dtype, attention (its softmax) in x's.
        q, k, v = (self.project(p, x) for p in (self.query, self.key, self.value))  # (B, T, H)
        if isinstance(positions, Packed):
            y = positions.attend(lambda q, k, v, group: self.attend(q, k, v, group)[0], q, k, v)
            return self.project(self.output, y), None  # (N, H)
        y, probs = self.attend(q, k, v, positions, output_attentions)
        return self.project(self.output, y), probs  # (B, T, H)

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        positions: RelativePositions,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Projected q, k, v (B, T, H) -> the heads' outputs side by side (B, T, nh*hs), and the
        attention probabilities (B, nh, T, T) on the readable path."""
        B, T, _ = q.shape
        q, k, v = self.heads(q), self.heads(k), self.heads(v)  # (B, nh, T, hs) each
        terms = self.position_terms(q, k, positions)  # c2p, p2c: (B, nh, T, T) each
        bias = sum(terms.values()) if terms else None  # (B, nh, T, T)
        dropout_p = self.dropout_p if self.training else 0.0
        keep = positions.keep  # (B, 1, T, T) or None

        probs = None
        if self.use_sdpa and not output_attentions:
            if keep is not None:  # padding: the dtype's minimum where a pair may not attend
                if bias is None:
                    bias = torch.zeros(keep.shape, dtype=q.dtype, device=q.device)
                bias = bias.masked_fill(~keep, torch.finfo(q.dtype).min)
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=bias, dropout_p=dropout_p, scale=1 / self.scale
            )
        else:
            scores = q @ (k.transpose(-1, -2) / self.scale)  # (B, nh, T, T): c2c
            if bias is not None:
                scores = scores + bias  # + c2p + p2c
            if keep is not None:
                scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
            probs = scores.softmax(dim=-1)  # (B, nh, T, T)
            y = F.dropout(probs, dropout_p) @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).reshape(B, T, -1)  # heads side by side: (B, T, nh*hs)
        return y, probs


# Copied from minibert_ner.model.FeedForward
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


class DebertaBlock(nn.Module):
    """One post-LN block: x = LN(x + Attn(x)); x = LN(x + FFN(x))."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.attention = DisentangledAttention(config)
        self.attention_dropout = nn.Dropout(config.hidden_dropout)
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn = FeedForward(config)
        self.output_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self,
        x: torch.Tensor,
        positions: RelativePositions | Packed,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        a, probs = self.attention(x, positions, output_attentions)
        x = self.attention_norm(x + self.attention_dropout(a))
        x = self.output_norm(x + self.ffn(x))
        return x, probs


class ConvLayer(nn.Module):
    """v2-xlarge's convolution after the first block: a 1-D convolution over the embeddings
    output, added to the block's output (padded rows zeroed before and after the LayerNorm)."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        H, kernel = config.hidden_size, config.conv_kernel_size
        self.conv = nn.Conv1d(H, H, kernel, padding=(kernel - 1) // 2, groups=config.conv_groups)
        self.act = make_activation(config.conv_act)
        self.LayerNorm = nn.LayerNorm(H, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def forward(
        self, embedded: torch.Tensor, x: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> torch.Tensor:
        out = self.conv(embedded.transpose(1, 2)).transpose(1, 2)  # (B, H, T) conv -> (B, T, H)
        real = None if attention_mask is None else attention_mask[:, :, None].bool()  # (B, T, 1)
        if real is not None:
            out = out.masked_fill(~real, 0)
        out = self.LayerNorm(x + self.act(self.dropout(out)))
        return out if real is None else out * real.to(out.dtype)


# Copied from minibert_ner.model.TokenClassifierOutput with TokenClassifierOutput->DebertaOutput, TokenClassifier->DebertaTokenClassifier
@dataclass
class DebertaOutput:
    """What `DebertaTokenClassifier.forward` returns."""

    logits: torch.Tensor  # (B, T, num_labels)
    hidden_states: tuple[torch.Tensor, ...] | None = None  # embeddings + each block: (B, T, H)
    attentions: tuple[torch.Tensor, ...] | None = None  # one per block: (B, nh, T, T)


class DebertaTokenClassifier(nn.Module):
    """A DeBERTa-v2/v3 encoder with a linear token-classification head."""

    block_type = DebertaBlock  # what `layers` stacks

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = DebertaEmbeddings(config)
        self.layers = nn.ModuleList(
            self.block_type(config.for_block(i)) for i in range(config.num_layers)
        )
        # One relative-embedding table for all blocks: rows 0..2*span-1 hold distances -span..span-1.
        self.rel_embeddings = (
            embedding(2 * config.relative_span, config.hidden_size)
            if config.relative_attention
            else None
        )
        self.rel_norm = (
            nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
            if config.norm_rel_layer_norm
            else None
        )
        self.conv = ConvLayer(config) if config.conv_kernel_size > 0 else None
        self.dropout = nn.Dropout(config.classifier_dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def relative_positions(
        self, T: int, attention_mask: torch.Tensor | None, device: torch.device
    ) -> RelativePositions:
        """The pairwise mask, the table rows of every (query, key) distance and those rows of
        the relative table, for rows of T tokens."""
        keep = None
        if attention_mask is not None:
            real = attention_mask.bool()  # (B, T)
            keep = real[:, None, :, None] & real[:, None, None, :]  # (B, 1, T query, T key)
        if self.rel_embeddings is None:
            return RelativePositions(keep)
        c = self.config
        span, buckets, max_position = c.relative_span, c.position_buckets, c.relative_max_position
        relative = relative_positions(T, buckets, max_position, device)  # (T, T)
        # Table row of a distance: rows 0..2*span-1 hold distances -span..span-1, farther ones
        # share the end rows. c2p looks d(i, j) up; p2c, from the key's side, span - d(j, i).
        c2p_index = torch.clamp(relative + span, 0, 2 * span - 1)  # (T, T)
        p2c_index = torch.clamp(span - relative, 0, 2 * span - 1)  # (T keys, T queries)
        # A text of T tokens reaches only distances up to +-(T - 1): project just those rows
        # (a short sentence needs a few dozen of deberta-v3's 512), the same numbers per row.
        reach = T - 1
        if buckets > 0 and max_position > 0:
            reach = int(log_bucket(torch.tensor([reach]), buckets, max_position)[0])
        first, last = max(0, span - reach), min(2 * span - 1, span + reach)
        table = self.rel_embeddings.weight[first : last + 1]  # (R, H)
        if self.rel_norm is not None:
            table = self.rel_norm(table)  # row by row: the same as normalising the whole table
        return RelativePositions(keep, c2p_index - first, p2c_index - first, table)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        *,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        packed: bool = False,
    ) -> DebertaOutput:
        """Label scores for every token; the same contract as `TokenClassifier.forward`
        (`packed`: every layer on the real tokens only, attention per group of rows)."""
        embedded = self.embeddings(input_ids, token_type_ids, attention_mask)  # (B, T, H)
        x, packing = embedded, packing_for(attention_mask, packed, output_attentions)
        positions: RelativePositions | Packed
        if packing is not None:
            x = packing.pack(embedded)  # (N, H)
            positions = Packed(
                packing,
                [self.relative_positions(g.length, g.mask, x.device) for g in packing.groups],
            )  # fmt: skip
        else:
            positions = self.relative_positions(input_ids.shape[1], attention_mask, x.device)
        unpack = packing.unpack if packing is not None else lambda t: t  # -> (B, T, ·)
        hidden_states = [unpack(x)] if output_hidden_states else None
        attentions = [] if output_attentions else None
        for i, block in enumerate(self.layers):
            x, probs = block(x, positions, output_attentions)
            if i == 0 and self.conv is not None:  # a convolution over each row: rows, not packed
                if packing is not None:
                    x = packing.pack(self.conv(embedded, packing.unpack(x), attention_mask))
                else:
                    x = self.conv(embedded, x, attention_mask)
            if hidden_states is not None:
                hidden_states.append(unpack(x))
            if attentions is not None:
                attentions.append(probs)
        logits = unpack(self.classify(x))  # (B, T, num_labels)
        return DebertaOutput(
            logits=logits,
            hidden_states=tuple(hidden_states) if hidden_states is not None else None,
            attentions=tuple(attentions) if attentions is not None else None,
        )

    # Copied from minibert_ner.model.TokenClassifier.classify
    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The head on the last block's output: (..., H) -> (..., num_labels)."""
        return self.classifier(self.dropout(x))

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

    # Copied from minibert_ner.model.TokenClassifier.init_weights
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
