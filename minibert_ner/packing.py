"""Packed batches: a padded batch's real tokens back to back, so that no matmul sees padding.

    packing = Packing(attention_mask)               # (B, T) 1/0: rows of any lengths
    x = packing.pack(x)                             # (B, T, H) -> (N, H): the real tokens
    y = packing.attend(attention, q, k, v)          # attention(q, k, v, mask), group by group
    logits = packing.unpack(logits)                 # (N, L) -> (B, T, L), zeros at padding

A model's forward pass gets its Packing from `packing_for` and hands its blocks a `Packed`: the
packing with what it prepared once per row group (mask biases; DeBERTa's relative positions).

Why: on a CPU a padding token costs as much as a real one. A batch of mixed lengths (a server's
batch, the texts of one call) would otherwise have to be padded to its longest row, or split into
many small forward passes of similar lengths. Packed, every projection, feed-forward and
LayerNorm runs once over the N real tokens, one large matmul each; only attention, which mixes
the tokens of a row, needs rows: it runs on groups of rows of similar length (`length_groups`),
each group padded to its longest row. A real token's result is the padded batch's: attention sees
the same keys, and every other step treats each token alone.

A leaf module like the model files that use it (model.py, deberta.py): it imports only torch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "PADDING_FRACTION",
    "PADDING_SLACK",
    "Packed",
    "Packing",
    "RowGroup",
    "length_groups",
    "packing_for",
]

PADDING_FRACTION, PADDING_SLACK = 0.1, 8  # rows padded together: at most 10% (or 8 tokens) shorter


def length_groups(
    lengths: Sequence[int],
    max_rows: int | None = None,
    max_tokens: int | None = None,
    *,
    similar: bool = True,
) -> list[list[int]]:
    """Row indices in groups, longest rows first, each padded to its first (longest) row.

    With `similar`, a group's rows are at most 10% (or 8 tokens) shorter than its longest, so
    that a few long rows do not pad many short ones. With limits, a group also holds at most
    `max_rows` rows and `max_tokens` padded tokens (rows x its longest; a row over that budget is
    a group alone).
    """
    order = sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True)
    groups: list[list[int]] = []
    for i in order:
        group = groups[-1] if groups else []
        longest = lengths[group[0]] if group else 0
        if (
            group
            and (max_rows is None or len(group) < max_rows)
            and (max_tokens is None or (len(group) + 1) * longest <= max_tokens)
            and (
                not similar
                or longest - lengths[i] <= max(PADDING_SLACK, PADDING_FRACTION * longest)
            )
        ):
            group.append(i)
        else:
            groups.append([i])
    return groups


@dataclass(frozen=True)
class RowGroup:
    """Rows that attention runs on together, padded to the longest: a (rows, length) block."""

    rows: int
    length: int
    slots: torch.Tensor  # (rows * length,) each slot's packed token; N (a zero row) after a row
    real: torch.Tensor  # (n,) the slots that hold packed tokens ...
    tokens: torch.Tensor  # (n,) ... and those tokens' packed positions
    mask: torch.Tensor | None  # (rows, length) the attention mask; None when all ones


class Packing:
    """Where a padded batch's real tokens are, and its rows grouped by length for attention."""

    def __init__(self, attention_mask: torch.Tensor) -> None:
        """From a (B, T) 1/0 attention mask. A row's packed tokens run from its start to its last
        real token: padding inside a row (left padding, holes) stays, masked, as in the padded
        pass, so that even relative positions (DeBERTa) are the padded pass's."""
        B, T = attention_mask.shape
        device = attention_mask.device
        j = torch.arange(T, device=device)  # (T,)
        real = attention_mask != 0  # (B, T)
        # (B,) tokens up to each row's last real one (amax: 0 for rows of no tokens at all)
        counts = torch.where(real, j + 1, 0).amax(1) if T else real.new_zeros(B, dtype=torch.long)
        in_row = j < counts[:, None]  # (B, T)
        self.batch_shape = (B, T)
        self.positions = in_row.reshape(-1).nonzero().squeeze(1)  # (N,) in the flat batch
        self.size = int(self.positions.numel())  # N
        starts = counts.cumsum(0) - counts  # (B,) packed position of each row's first token
        lengths = counts.tolist()
        self.groups: list[RowGroup] = []
        for group in length_groups(lengths):
            group = [r for r in group if lengths[r] > 0]  # a row of padding only: nothing to do
            if not group:
                continue
            rows = torch.tensor(group, device=device)
            t = lengths[group[0]]
            packed = starts[rows][:, None] + j[:t]  # (b, t) packed position of each slot
            filled = in_row[rows, :t]  # (b, t) slots holding one of the row's tokens
            filled_slots = filled.reshape(-1).nonzero().squeeze(1)  # (n,)
            mask = attention_mask[rows, :t]  # (b, t) 0 after a row's end (and in its holes)
            self.groups.append(
                RowGroup(
                    rows=len(group),
                    length=t,
                    slots=torch.where(filled, packed, self.size).reshape(-1),
                    real=filled_slots,
                    tokens=packed.reshape(-1)[filled_slots],
                    mask=None if bool(real[rows, :t].all()) else mask,
                )
            )

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (N, D): each row's tokens up to its last real one, row after row."""
        B, T = self.batch_shape
        return x.reshape(B * T, x.shape[-1]).index_select(0, self.positions)  # (N, D)

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (B, T, D), zeros after each row's last real token."""
        B, T = self.batch_shape
        out = x.new_zeros(B * T, x.shape[-1])
        out.index_copy_(0, self.positions, x)
        return out.view(B, T, x.shape[-1])  # (B, T, D)

    def attend(
        self,
        attention: Callable[..., torch.Tensor],
        *packed: torch.Tensor,
        per_group: Sequence[object] | None = None,
    ) -> torch.Tensor:
        """`attention(*blocks, extra)` on each row group: each packed (N, D) input as a
        (rows, length, D) block; `extra` the group's entry of `per_group` (what a model prepared
        for each group), by default its (rows, length) 1/0 mask or None. The (rows, length, E)
        outputs come back in packed order, (N, E)."""
        extras = per_group if per_group is not None else [g.mask for g in self.groups]
        # One zero row after the real tokens: the padding slots of every group point at it.
        extended = [torch.cat([p, p.new_zeros(1, p.shape[-1])]) for p in packed]  # (N+1, D)
        out: torch.Tensor | None = None
        for g, extra in zip(self.groups, extras, strict=True):
            blocks = [e.index_select(0, g.slots).view(g.rows, g.length, -1) for e in extended]
            y = attention(*blocks, extra)  # (rows, length, E)
            y = y.reshape(g.rows * g.length, -1).index_select(0, g.real)  # (n, E)
            if out is None:
                out = y.new_empty(self.size, y.shape[-1])
            out.index_copy_(0, g.tokens, y)
        if out is None:  # no real token at all
            return packed[-1].new_empty(0, packed[-1].shape[-1])
        return out


@dataclass(frozen=True)
class Packed:
    """A forward pass's Packing and what the model prepared once for each of its row groups
    (mask biases, relative positions): what every block's attention needs."""

    packing: Packing
    per_group: list[object]  # one per packing.groups

    def attend(self, attention: Callable[..., torch.Tensor], *packed: torch.Tensor) -> torch.Tensor:
        """`Packing.attend`, each group's call given its prepared entry."""
        return self.packing.attend(attention, *packed, per_group=self.per_group)


def packing_for(
    attention_mask: torch.Tensor | None, packed: bool, output_attentions: bool
) -> Packing | None:
    """A model's forward pass: its Packing when asked to run packed, or None (not asked, or no
    mask: nothing to leave out). Attention maps need the padded layout."""
    if not packed or attention_mask is None:
        return None
    if output_attentions:
        raise ValueError("a packed forward pass keeps no attention maps: use packed=False")
    return Packing(attention_mask)
