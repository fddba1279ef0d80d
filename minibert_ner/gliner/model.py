"""GLiNER's network in one file: a backbone encoder (ours: model.py or deberta.py) under a small
head that scores every span of words against every label of the prompt.

    input   [CLS] <<ENT>> person <<ENT>> city <<SEP>> Ada lives in Paris [SEP]
    x = backbone(input)                      (B, T, H) -> projection when H != D -> (B, T, D)
    labels = x at each <<ENT>>               (B, C, D)
    words  = x at each word's first subtoken (B, W, D) -> BiLSTM (packed by length) (B, W, D)

    span model (span_mode "markerV0", the v2.1 models), K = max_width:
        start, end = MLP_s(words), MLP_e(words)                               (B, W, D)
        span(i, k) = MLP_o(ReLU([start_i ; end_{i+k}]))                        (B, W, K, D)
        logits = span . MLP_p(labels)                                          (B, W, K, C)
    token model (span_mode "token_level", NuNER_Zero style):
        t0, t1 = split(Linear_t(words));  l0, l1 = split(Linear_l(labels))      (B, W|C, D) each
        logits = MLP([t0 ; l0 ; t1 * l1])                                      (B, W, C, 3)
        (start, end, inside)

MLP is gliner's projection: Linear(d, 4 d_out), ReLU, Dropout, Linear(4 d_out, d_out). Each step is
a small function below, with the shapes it takes and gives; `GLiNERModel.forward` strings them
together. The module names follow gliner's checkpoint keys through the table in `checkpoint.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..families import Model

__all__ = [
    "GLiNERModel",
    "GLiNERShape",
    "bilstm",
    "label_vectors",
    "mlp",
    "span_logits",
    "span_logits_folded",
    "span_representations",
    "token_logits",
    "word_vectors",
]


@dataclass(frozen=True)
class GLiNERShape:
    """The head's shape, from gliner_config.json."""

    span_mode: str  # "markerV0" (span model) or "token_level"
    hidden_size: int  # D, the head's width; the backbone's is projected to it when different
    backbone_size: int  # H, the backbone's width
    max_width: int = 12  # K: spans of 1..K words
    num_rnn_layers: int = 1  # BiLSTM layers over the word vectors (0: none)
    class_token_index: int = -1  # the <<ENT>> token's id
    embed_ent_token: bool = True  # label vector at <<ENT>> (else at the token after it)


def mlp(d_in: int, d_out: int, dropout: float = 0.0) -> nn.Sequential:
    """gliner's `create_projection_layer`: d_in -> 4 d_out -> d_out (keys .0 and .3)."""
    return nn.Sequential(
        nn.Linear(d_in, 4 * d_out), nn.ReLU(), nn.Dropout(dropout), nn.Linear(4 * d_out, d_out)
    )


class TokenScorer(nn.Module):
    """gliner's `Scorer` (token_level): start, end and inside logits per word and label."""

    def __init__(self, D: int) -> None:
        super().__init__()
        self.proj_token = nn.Linear(D, 2 * D)
        self.proj_label = nn.Linear(D, 2 * D)
        self.out_mlp = nn.Sequential(
            nn.Linear(3 * D, 4 * D), nn.Dropout(0.0), nn.ReLU(), nn.Linear(4 * D, 3)
        )


def label_vectors(
    x: torch.Tensor, input_ids: torch.Tensor, class_token_index: int, embed_ent_token: bool
) -> torch.Tensor:
    """x (B, T, D) -> each row's <<ENT>> vectors in order (B, C, D), C the most in any row;
    rows with fewer labels are padded with zeros (their scores are never read)."""
    is_class = input_ids == class_token_index  # (B, T)
    counts = is_class.sum(dim=1)  # (B,)
    C = int(counts.max()) if counts.numel() else 0
    rows, positions = torch.where(is_class)  # row-major: each row's labels in prompt order
    if not embed_ent_token:
        positions = positions + 1  # the label's first token instead of <<ENT>>
    slots = torch.arange(C, device=x.device).expand(len(counts), C)  # (B, C)
    out = x.new_zeros(x.shape[0], C, x.shape[-1])  # (B, C, D)
    out[torch.where(slots < counts[:, None])] = x[rows, positions]
    return out


def word_vectors(x: torch.Tensor, words_mask: torch.Tensor, num_words: int) -> torch.Tensor:
    """x (B, T, D) -> each word's first-subtoken vector (B, W, D); words_mask (B, T) holds the
    1-based word index at first subtokens, 0 elsewhere (a word without tokens stays zero)."""
    out = x.new_zeros(x.shape[0], num_words, x.shape[-1])  # (B, W, D)
    rows, positions = torch.where(words_mask > 0)
    out[rows, words_mask[rows, positions] - 1] = x[rows, positions]
    return out


def bilstm(lstm: nn.LSTM, words: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """words (B, W, D) -> (B, W, D): the BiLSTM over each row's first `lengths` words, packed
    by length as gliner packs it (padding stays zero and never reaches a real word)."""
    W = words.shape[1]
    packed = pack_padded_sequence(words, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, _ = pad_packed_sequence(lstm(packed)[0], batch_first=True, total_length=W)
    return out  # (B, W, D): two directions of D/2 side by side


def span_indices(lengths: torch.Tensor, W: int, K: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Start and end word of every span (i, i + k), (B, W*K) each; a span past its row's last
    word points at (0, 0), as gliner masks it."""
    start = torch.arange(W, device=lengths.device).repeat_interleave(K)  # (W*K,)
    end = start + torch.arange(K, device=lengths.device).repeat(W)  # (W*K,)
    valid = end[None, :] < lengths[:, None]  # (B, W*K)
    return start * valid, end * valid


def span_representations(
    words: torch.Tensor,
    lengths: torch.Tensor,
    project_start: nn.Module,
    project_end: nn.Module,
    out_project: nn.Module,
    K: int,
) -> torch.Tensor:
    """gliner's markerV0: words (B, W, D) -> span vectors (B, W, K, D)."""
    B, W, D = words.shape
    start, end = span_indices(lengths, W, K)  # (B, W*K) each
    start_rep = torch.gather(project_start(words), 1, start[..., None].expand(-1, -1, D))
    end_rep = torch.gather(project_end(words), 1, end[..., None].expand(-1, -1, D))
    both = torch.cat([start_rep, end_rep], dim=-1).relu()  # (B, W*K, 2D)
    return out_project(both).view(B, W, K, D)


def span_logits(spans: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """spans (B, W, K, D) . labels (B, C, D) -> logits (B, W, K, C)."""
    return torch.einsum("BLKD,BCD->BLKC", spans, labels)


def span_logits_folded(
    words: torch.Tensor,
    project_start: nn.Module,
    project_end: nn.Module,
    out_project: nn.Sequential,
    labels: torch.Tensor,
    K: int,
) -> torch.Tensor:
    """The fast path: span_logits(span_representations(...), labels) without the span vectors.

    out_project is Linear(2D, 4D), ReLU, Dropout, Linear(4D, D). Its first Linear splits over
    [start; end], so it runs once per word, not once per span; its last Linear folds into the
    labels, (D, 4D) x (B, C, D) -> (B, 4D, C), so each span costs 4D x C instead of 4D x D.
    Spans of width k are computed together, only those that end inside the rows: words
    (B, W, D), labels (B, C, D) -> logits (B, W, K, C), zero for spans past the last word (gliner
    scores them as the span (0, 0); neither is ever read).
    """
    B, W, D = words.shape
    first, last = out_project[0], out_project[3]
    per_start = project_start(words).relu() @ first.weight[:, :D].T + first.bias  # (B, W, 4D)
    per_end = project_end(words).relu() @ first.weight[:, D:].T  # (B, W, 4D)
    folded = torch.einsum("DE,BCD->BEC", last.weight, labels)  # (D, 4D) x (B, C, D) -> (B, 4D, C)
    bias = (labels @ last.bias)[:, None]  # (B, 1, C)
    out = words.new_zeros(B, W, K, labels.shape[1])  # (B, W, K, C)
    for k in range(min(K, W)):
        hidden = (per_start[:, : W - k] + per_end[:, k:]).relu_()  # (B, W-k, 4D): spans (i, i+k)
        out[:, : W - k, k] = hidden @ folded + bias  # (B, W-k, C)
    return out


def token_logits(scorer: TokenScorer, words: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """words (B, W, D), labels (B, C, D) -> start, end and inside logits (B, W, C, 3)."""
    B, W, D = words.shape
    C = labels.shape[1]
    t = scorer.proj_token(words).view(B, W, 1, 2, D).expand(-1, -1, C, -1, -1)  # (B, W, C, 2, D)
    l = scorer.proj_label(labels).view(B, 1, C, 2, D).expand(-1, W, -1, -1, -1)  # noqa: E741
    both = torch.cat([t[..., 0, :], l[..., 0, :], t[..., 1, :] * l[..., 1, :]], dim=-1)
    return scorer.out_mlp(both)  # (B, W, C, 3D) -> (B, W, C, 3)


class GLiNERModel(nn.Module):
    """The backbone and GLiNER's head; `forward` gives span logits (B, W, K, C) or, for
    token_level, word logits (B, W, C, 3)."""

    def __init__(self, backbone: Model, shape: GLiNERShape) -> None:
        super().__init__()
        self.shape = shape
        self.readable = False  # True: the span vectors (B, W, K, D), as gliner computes them
        D, H = shape.hidden_size, shape.backbone_size
        # The backbone's token-classification head is not part of GLiNER: its "logits" are then
        # the last hidden state.
        backbone.classifier = nn.Identity()  # type: ignore[assignment]
        backbone.dropout = nn.Identity()  # type: ignore[assignment]
        self.backbone = backbone
        self.projection = nn.Linear(H, D) if H != D else None
        self.rnn = (
            nn.LSTM(
                D, D // 2, num_layers=shape.num_rnn_layers, bidirectional=True, batch_first=True
            )
            if shape.num_rnn_layers > 0
            else None
        )
        if shape.span_mode == "token_level":
            self.scorer = TokenScorer(D)
        else:
            self.project_start = mlp(D, D)
            self.project_end = mlp(D, D)
            self.out_project = mlp(2 * D, D)
            self.prompt_mlp = mlp(D, D)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        words_mask: torch.Tensor,
        lengths: torch.Tensor,
        *,
        packed: bool = True,
    ) -> torch.Tensor:
        """input_ids, attention_mask, words_mask (B, T); lengths (B,) words per row."""
        x = self.backbone(input_ids, attention_mask, packed=packed).logits  # (B, T, H)
        if self.projection is not None:
            x = self.projection(x)  # (B, T, D)
        labels = label_vectors(
            x, input_ids, self.shape.class_token_index, self.shape.embed_ent_token
        )  # (B, C, D)
        words = word_vectors(x, words_mask, int(lengths.max()))  # (B, W, D)
        if self.rnn is not None:
            words = bilstm(self.rnn, words, lengths)
        if self.shape.span_mode == "token_level":
            return token_logits(self.scorer, words, labels)  # (B, W, C, 3)
        labels = self.prompt_mlp(labels)  # (B, C, D)
        if not self.readable:
            return span_logits_folded(
                words, self.project_start, self.project_end, self.out_project, labels,
                self.shape.max_width,
            )  # fmt: skip
        spans = span_representations(
            words, lengths, self.project_start, self.project_end, self.out_project,
            self.shape.max_width,
        )  # fmt: skip
        return span_logits(spans, labels)  # (B, W, K, C)
